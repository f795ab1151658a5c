//! Who is asking. Built once at the edge for every request and passed to every use
//! case and into every unit of work: the workflow decides with it, the store narrows
//! reads and writes the audit trail with it. Today the `X-Acting-Party` header and open
//! mode map onto it; client authentication will build it from tokens instead. Jobs and
//! CLI commands act as a named system principal.

use crate::auth::scope::ScopeSet;
use crate::referral::workflow::Party;
use crate::store::{Access, ReadScope};

/// What a principal is, for the rules that depend on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A regional coordinator: assigns owners, cancels, deletes Tasks.
    Coordinator,
    /// A referrer or a welfare organisation, acting for [`Principal::organization`].
    Party,
    /// Open mode: an unnamed request from loopback may act as every party.
    Open,
    /// The service itself (background jobs) or an operator's command.
    System,
    /// Nobody named: reads and creates only, no Task workflow.
    Anonymous,
    /// An authenticated client in one of the registered roles, acting for
    /// [`Principal::organization`].
    Client(ClientRole),
}

/// The role an operator registers a client with (`wor-hub client add --role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientRole {
    /// A GP practice, its information system or a gateway: creates referrals, reads its
    /// own organisation's referrals, cancels them.
    Referrer,
    /// A welfare organisation's backend: works on the Tasks it owns.
    Performer,
    /// A regional coordinator: directory, unroutable queue, re-assignment, audit.
    Coordinator,
    /// A chain partner: statistics only, no patient data.
    Monitor,
}

impl ClientRole {
    pub const ALL: [Self; 4] = [
        Self::Referrer,
        Self::Performer,
        Self::Coordinator,
        Self::Monitor,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Referrer => "referrer",
            Self::Performer => "performer",
            Self::Coordinator => "coordinator",
            Self::Monitor => "monitor",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

#[derive(Debug, Clone)]
pub struct Principal {
    /// This request's id (every log line and audit record carries it).
    pub request_id: String,
    /// The request id when the client chose it: writes carrying one are idempotent.
    pub client_request_id: Option<String>,
    /// The client as authenticated (today: how the request identified itself).
    pub client_id: String,
    /// The reference the principal acts for: `Organization/<id>` of a welfare
    /// organisation, or a referrer's `Practitioner/<id>`, `PractitionerRole/<id>`, ...
    pub organization: Option<String>,
    pub role: Role,
    /// Granted scopes (SMART style); empty until client authentication grants them.
    pub scopes: Vec<String>,
    /// Which resources this principal may read; today everything.
    pub scope: ReadScope,
}

impl Principal {
    /// A request's principal from what it said: a party named in `X-Acting-Party`, or
    /// nobody (then `open` makes it act as any party).
    pub fn from_request(
        request_id: String,
        client_request_id: Option<String>,
        named: Option<Party>,
        open: bool,
    ) -> Self {
        let (role, organization, client_id) = match named {
            Some(Party::Coordinator) => (Role::Coordinator, None, "party:coordinator".into()),
            Some(Party::Reference(r)) => (Role::Party, Some(r.clone()), format!("party:{r}")),
            Some(Party::Any) | None if open => (Role::Open, None, "anonymous".into()),
            Some(Party::Any) | None => (Role::Anonymous, None, "anonymous".into()),
        };
        Self {
            request_id,
            client_request_id,
            client_id,
            organization,
            role,
            scopes: Vec::new(),
            scope: ReadScope::All,
        }
    }

    /// An authenticated client (a valid access token): its registered role and
    /// organisation, and the scopes the token grants.
    pub fn client(
        request_id: String,
        client_request_id: Option<String>,
        client_id: &str,
        role: ClientRole,
        organization: String,
        scopes: Vec<String>,
    ) -> Self {
        Self {
            request_id,
            client_request_id,
            client_id: format!("client:{client_id}"),
            scope: crate::app::access::read_scope(role, &organization),
            organization: Some(organization),
            role: Role::Client(role),
            scopes,
        }
    }

    /// A job or an operator's command, named in the audit trail (`system:contact-deadline`,
    /// `cli:directory-import`).
    pub fn system(name: &str) -> Self {
        Self {
            request_id: uuid::Uuid::new_v4().to_string(),
            client_request_id: None,
            client_id: name.to_owned(),
            organization: None,
            role: Role::System,
            scopes: Vec::new(),
            scope: ReadScope::All,
        }
    }

    /// Whether the granted SMART scopes allow `letter` (one of `c`reate, `r`ead,
    /// `u`pdate, `d`elete, `s`earch) on `resource_type`. Only authenticated clients
    /// are limited by scopes: every other role is allowed (its rules are elsewhere).
    pub fn allows(&self, resource_type: &str, letter: char) -> bool {
        match self.role {
            Role::Client(_) => ScopeSet::lenient(&self.scopes).allows(resource_type, letter),
            _ => true,
        }
    }

    /// The party the Task workflow sees.
    pub fn party(&self) -> Option<Party> {
        match self.role {
            Role::Coordinator => Some(Party::Coordinator),
            Role::Party => self.organization.clone().map(Party::Reference),
            Role::Open | Role::System => Some(Party::Any),
            Role::Anonymous => None,
            Role::Client(ClientRole::Coordinator) => Some(Party::Coordinator),
            Role::Client(_) => self.organization.clone().map(Party::Reference),
        }
    }

    /// What the store needs of the principal: the audit identity and the read scope.
    pub fn access(&self) -> Access {
        Access {
            request_id: self.request_id.clone(),
            actor: self.client_id.clone(),
            organization: self.organization.clone(),
            scope: self.scope.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(role: ClientRole, scopes: &[&str]) -> Principal {
        Principal::client(
            "r".into(),
            None,
            "gp",
            role,
            "Organization/x".into(),
            scopes.iter().map(|s| (*s).to_owned()).collect(),
        )
    }

    #[test]
    fn clients_are_limited_by_their_scopes() {
        let p = client(
            ClientRole::Performer,
            &["system/Task.rus", "system/Patient.rs"],
        );
        assert!(p.allows("Task", 'r'));
        assert!(p.allows("Task", 'u'));
        assert!(!p.allows("Task", 'c'));
        assert!(!p.allows("Task", 'd'));
        assert!(p.allows("Patient", 's'));
        assert!(!p.allows("Patient", 'u'));
        assert!(!p.allows("ServiceRequest", 'r'));
        assert!(!client(ClientRole::Monitor, &[]).allows("Task", 'r'));
        let coordinator = client(ClientRole::Coordinator, &["system/*.cruds"]);
        assert!(coordinator.allows("Organization", 'd'));
    }

    #[test]
    fn other_roles_are_not_limited_by_scopes() {
        assert!(Principal::system("cli:test").allows("Task", 'd'));
        let open = Principal::from_request("r".into(), None, None, true);
        assert!(open.allows("Patient", 'c'));
        let anonymous = Principal::from_request("r".into(), None, None, false);
        assert!(anonymous.allows("Patient", 'r'));
    }
}
