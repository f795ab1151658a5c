//! Who a unit of work runs for, as the store needs it: the audit identity and the read
//! scope. Every read the store answers passes [`ReadScope`] here, once: reads, vreads,
//! searches (including chained parameters and `_include`), history and Bundle GETs.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::query::{Criterion, Match};

/// The store's view of a principal.
#[derive(Debug, Clone)]
pub struct Access {
    pub request_id: String,
    /// Who acts, as the audit trail names them (`party:Organization/x`, `system:...`).
    pub actor: String,
    /// The organisation the actor acts for (`Organization/<id>`), when it has one.
    pub organization: Option<String>,
    pub scope: ReadScope,
}

impl Access {
    /// A job or command of the service itself; sees everything.
    pub fn system(actor: &str) -> Self {
        Self {
            request_id: uuid::Uuid::new_v4().to_string(),
            actor: actor.to_owned(),
            organization: None,
            scope: ReadScope::All,
        }
    }
}

/// An audit identity alone (tools and tests that act as the system): sees everything.
#[derive(Debug, Clone)]
pub struct AuditContext {
    pub request_id: String,
    pub actor: String,
}

impl From<AuditContext> for Access {
    fn from(ctx: AuditContext) -> Self {
        Self {
            request_id: ctx.request_id,
            actor: ctx.actor,
            organization: None,
            scope: ReadScope::All,
        }
    }
}

/// Which resources a principal may read.
#[derive(Debug, Clone, Default)]
pub enum ReadScope {
    /// Everything (today every principal; client authentication will narrow it).
    #[default]
    All,
    /// Per resource type, the criteria every visible resource of it meets (an empty
    /// list: all of that type); types not listed are invisible.
    Only(Arc<BTreeMap<String, Vec<Criterion>>>),
}

/// What a scope lets a unit of work see of one type.
#[derive(Debug, Clone, Copy)]
pub enum Visible<'a> {
    All,
    Nothing,
    Matching(&'a [Criterion]),
}

impl ReadScope {
    pub fn of(&self, resource_type: &str) -> Visible<'_> {
        match self {
            Self::All => Visible::All,
            Self::Only(types) => match types.get(resource_type) {
                None => Visible::Nothing,
                Some(c) if c.is_empty() => Visible::All,
                Some(c) => Visible::Matching(c),
            },
        }
    }

    /// `criteria` of a search on `resource_type`, narrowed to this scope, chained
    /// parameters included: a hidden resource neither matches nor makes another match.
    /// `None` when the type is invisible (the search finds nothing).
    pub fn narrow(&self, resource_type: &str, criteria: &[Criterion]) -> Option<Vec<Criterion>> {
        if matches!(self, Self::All) {
            return Some(criteria.to_vec());
        }
        let mut out: Vec<Criterion> = criteria.iter().map(|c| self.narrow_chains(c)).collect();
        match self.of(resource_type) {
            Visible::All => {}
            Visible::Nothing => return None,
            Visible::Matching(extra) => out.extend(extra.iter().cloned()),
        }
        Some(out)
    }

    fn narrow_chains(&self, c: &Criterion) -> Criterion {
        let alternatives = |ms: &[Match]| ms.iter().map(|m| self.narrow_match(m)).collect();
        match c {
            Criterion::Any(ms) => Criterion::Any(alternatives(ms)),
            Criterion::NoneOf(ms) => Criterion::NoneOf(alternatives(ms)),
            Criterion::All(cs) => {
                Criterion::All(cs.iter().map(|c| self.narrow_chains(c)).collect())
            }
            Criterion::Missing { .. } | Criterion::GrantedTo { .. } => c.clone(),
        }
    }

    fn narrow_match(&self, m: &Match) -> Match {
        let Match::Chain {
            param,
            target_type,
            criterion,
        } = m
        else {
            return m.clone();
        };
        let inner = self.narrow_chains(criterion);
        let narrowed = match self.of(target_type) {
            Visible::All => inner,
            Visible::Nothing => Criterion::Any(Vec::new()),
            Visible::Matching(extra) => {
                let mut all = vec![inner];
                all.extend(extra.iter().cloned());
                Criterion::All(all)
            }
        };
        Match::Chain {
            param: param.clone(),
            target_type: target_type.clone(),
            criterion: Box::new(narrowed),
        }
    }
}
