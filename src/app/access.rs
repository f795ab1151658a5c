//! Who may read what, kept in the unit of work of every write (README "Security").
//! The after-write hook calls [`follow_write`] for every version written: a referral's
//! rows (`referral::access`) are recomputed whenever its ServiceRequest, one of its
//! Tasks or a Consent of its Patient changes, so a new owner reads the referral, a
//! re-routed one stops reading the Patient, and a revoked Consent withholds the
//! Patient, all in the transaction that made the change: once per referral and unit of
//! work, before it commits or before something in it reads through the grants
//! (`Tx::defer`). [`read_scope`] turns the rows
//! into the read scope of an authenticated client; the store narrows every read by it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::app::error::{AppError, ErrorKind};
use crate::app::principal::{ClientRole, Principal};
use crate::fhir::outcome::{Issue, IssueCode};
use crate::referral::access::{consent_permits, grants, local_ref, Referral, WITHHELD_REASON};
use crate::store::query::{Match, RefTarget};
use crate::store::{Change, Criterion, ReadScope, StoredVersion, Tx, TxError};

/// Resource types an organisation reads only as granted to it: patient data, and what
/// its clients keep for themselves. A document or message (Bundle) is read by the
/// organisation whose client sent it, a Subscription or Endpoint by its creator's.
pub const PATIENT_DATA: [&str; 8] = [
    "Bundle",
    "Endpoint",
    "Patient",
    "ServiceRequest",
    "Task",
    "Consent",
    "QuestionnaireResponse",
    "Subscription",
];

/// The directory: every authenticated client except a monitor reads it.
pub const DIRECTORY: [&str; 5] = [
    "Organization",
    "HealthcareService",
    "Location",
    "Practitioner",
    "PractitionerRole",
];

/// The read scope of a client of `organization` in `role`, now.
pub fn read_scope(role: ClientRole, organization: &str) -> ReadScope {
    read_scope_at(role, organization, crate::fhir::instant::now_micros())
}

/// The read scope of a client of `organization` in `role` at `at` (microseconds): a
/// row bounded by a Consent's provision period grants only within it.
pub fn read_scope_at(role: ClientRole, organization: &str, at: i64) -> ReadScope {
    let mut types: BTreeMap<String, Vec<Criterion>> = BTreeMap::new();
    match role {
        ClientRole::Coordinator => return ReadScope::All,
        ClientRole::Monitor => {}
        ClientRole::Referrer | ClientRole::Performer => {
            for ty in DIRECTORY {
                types.insert(ty.to_owned(), Vec::new());
            }
            for ty in PATIENT_DATA {
                types.insert(
                    ty.to_owned(),
                    vec![Criterion::GrantedTo {
                        organizations: vec![organization.to_owned()],
                        at,
                    }],
                );
            }
        }
    }
    ReadScope::Only(Arc::new(types))
}

fn body(v: &StoredVersion) -> Option<Value> {
    v.body.as_deref().and_then(|b| serde_json::from_str(b).ok())
}

/// The body of `v`, or for a deletion the version before it.
fn body_or_previous(tx: &mut Tx<'_>, v: &StoredVersion) -> Result<Option<Value>, TxError> {
    if v.body.is_some() || v.version_id < 2 {
        return Ok(body(v));
    }
    Ok(tx
        .version_of(&v.resource_type, &v.id, v.version_id - 1)?
        .as_ref()
        .and_then(body))
}

/// Keeps the rows in step with the version just written (the after-write hook).
pub fn follow_write(tx: &mut Tx<'_>, v: &StoredVersion, change: Change) -> Result<(), TxError> {
    let narrowed = matches!(tx.access().scope, ReadScope::Only(_));
    if let (true, Some(org), Change::Create | Change::UpdateAsCreate) =
        (narrowed, tx.access().organization.clone(), change)
    {
        tx.record_creator(&v.resource_type, &v.id, &org)?;
    }
    match v.resource_type.as_str() {
        "ServiceRequest" => refresh_later(tx, &v.id),
        "Task" => {
            let focus = body_or_previous(tx, v)?.and_then(|task| referral_of(&task));
            match focus {
                Some(sr) => refresh_later(tx, &sr),
                None => Ok(()),
            }
        }
        "Consent" => {
            let patient = body_or_previous(tx, v)?
                .as_ref()
                .and_then(|c| c.pointer("/patient/reference").and_then(Value::as_str))
                .and_then(local_ref)
                .filter(|(ty, _)| *ty == "Patient")
                .map(|(_, id)| id.to_owned());
            let Some(patient) = patient else {
                return Ok(());
            };
            for sr in ids(tx, "ServiceRequest", "subject", "Patient", &patient)? {
                refresh_later(tx, &sr)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// What [`refresh_later`] defers: this prefix and the referral's id.
pub(crate) const DEFERRED: &str = "access:";

/// Refreshes the rows of referral `sr_id` before the unit of work commits, once however
/// many of its versions ask (a referral's Consent, ServiceRequest and Task all do), or
/// now when the unit defers nothing (see `Tx::defer`).
fn refresh_later(tx: &mut Tx<'_>, sr_id: &str) -> Result<(), TxError> {
    if tx.defer(format!("{DEFERRED}{sr_id}")) {
        return Ok(());
    }
    refresh(tx, sr_id)
}

/// The ServiceRequest a Task carries out (`Task.focus`).
pub(crate) fn referral_of(task: &Value) -> Option<String> {
    task.pointer("/focus/reference")
        .and_then(Value::as_str)
        .and_then(local_ref)
        .filter(|(ty, _)| *ty == "ServiceRequest")
        .map(|(_, id)| id.to_owned())
}

/// Ids of the current `ty` resources whose reference parameter `param` points to
/// `target_type/target_id`.
fn ids(
    tx: &mut Tx<'_>,
    ty: &str,
    param: &str,
    target_type: &str,
    target_id: &str,
) -> Result<Vec<String>, TxError> {
    let criterion = Criterion::Any(vec![Match::Reference {
        param: param.to_owned(),
        target: RefTarget::Local {
            target_type: Some(target_type.to_owned()),
            id: target_id.to_owned(),
        },
    }]);
    Ok(tx.find_ids(ty, &[criterion])?.into_iter().collect())
}

fn current(tx: &mut Tx<'_>, ty: &str, id: &str) -> Result<Option<Value>, TxError> {
    Ok(tx.current(ty, id)?.as_ref().and_then(body))
}

/// The Consents of a referral: those it carries in `supportingInfo` and those of its
/// Patient, id and current body.
fn consents_of(tx: &mut Tx<'_>, sr: &Value) -> Result<Vec<(String, Value)>, TxError> {
    let mut consent_ids: Vec<String> = sr
        .get("supportingInfo")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("reference").and_then(Value::as_str))
        .filter_map(local_ref)
        .filter(|(ty, _)| *ty == "Consent")
        .map(|(_, id)| id.to_owned())
        .collect();
    if let Some(patient) = patient_of(sr) {
        consent_ids.extend(ids(tx, "Consent", "patient", "Patient", &patient)?);
    }
    consent_ids.sort();
    consent_ids.dedup();
    let mut consents = Vec::new();
    for id in consent_ids {
        if let Some(consent) = current(tx, "Consent", &id)? {
            consents.push((id, consent));
        }
    }
    Ok(consents)
}

fn patient_of(sr: &Value) -> Option<String> {
    sr.pointer("/subject/reference")
        .and_then(Value::as_str)
        .and_then(local_ref)
        .filter(|(ty, _)| *ty == "Patient")
        .map(|(_, id)| id.to_owned())
}

/// Adds a note to a Task the hub builds for a referral when no active Consent lets
/// its owner read the Patient: the Task says why the owner does not see the
/// Patient's details (they become readable as soon as the GP records consent).
pub fn note_withheld(tx: &mut Tx<'_>, sr: &Value, task: &mut Value) -> Result<(), TxError> {
    let owned = task.pointer("/owner/reference").is_some();
    let Some(patient) = patient_of(sr).filter(|_| owned) else {
        return Ok(());
    };
    let now = tx.stamp()?;
    let permitted = consents_of(tx, sr)?
        .iter()
        .any(|(_, consent)| consent_permits(consent, &patient, now));
    if permitted {
        return Ok(());
    }
    let note = serde_json::json!({"text": format!("Patient/{patient} is withheld from the owner: {WITHHELD_REASON}")});
    match task.get_mut("note").and_then(Value::as_array_mut) {
        Some(notes) => notes.push(note),
        None => task["note"] = Value::Array(vec![note]),
    }
    Ok(())
}

/// Recomputes the rows of referral `sr_id` from what is stored now.
pub fn refresh(tx: &mut Tx<'_>, sr_id: &str) -> Result<(), TxError> {
    let anchor = format!("ServiceRequest/{sr_id}");
    let Some(sr) = current(tx, "ServiceRequest", sr_id)? else {
        return tx.replace_grants(&anchor, &[]);
    };
    let senders = tx.creators_of("ServiceRequest", sr_id)?;
    let requester_organization = match sr
        .pointer("/requester/reference")
        .and_then(Value::as_str)
        .and_then(local_ref)
    {
        Some(("PractitionerRole", id)) => current(tx, "PractitionerRole", id)?
            .as_ref()
            .and_then(|role| role.pointer("/organization/reference"))
            .and_then(Value::as_str)
            .and_then(local_ref)
            .filter(|(ty, _)| *ty == "Organization")
            .map(|(_, id)| format!("Organization/{id}")),
        _ => None,
    };
    let mut tasks = Vec::new();
    for id in ids(tx, "Task", "focus", "ServiceRequest", sr_id)? {
        if let Some(task) = current(tx, "Task", &id)? {
            tasks.push((id, task));
        }
    }
    let consents = consents_of(tx, &sr)?;
    let now = tx.stamp()?;
    let referral = Referral {
        id: sr_id,
        service_request: &sr,
        senders: &senders,
        requester_organization,
        tasks: &tasks,
        consents: &consents,
        now,
    };
    tx.replace_grants(&anchor, &grants(&referral))
}

/// The scope letter (SMART v2: create, read, update, delete, search) an interaction
/// needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Create,
    Read,
    Update,
    Delete,
    Search,
}

impl Need {
    fn letter(self) -> char {
        match self {
            Self::Create => 'c',
            Self::Read => 'r',
            Self::Update => 'u',
            Self::Delete => 'd',
            Self::Search => 's',
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Read => "read",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Search => "search",
        }
    }
}

/// Refuses (403) what the token's scopes do not grant: `system/<type>.<letters>`.
pub fn require(principal: &Principal, resource_type: &str, need: Need) -> Result<(), AppError> {
    if principal.allows(resource_type, need.letter()) {
        return Ok(());
    }
    Err(AppError::one(
        ErrorKind::Forbidden,
        Issue::error(
            IssueCode::Forbidden,
            format!(
                "The access token's scopes do not allow {} of {resource_type} (it would take system/{resource_type}.{})",
                need.verb(),
                need.letter()
            ),
        ),
    ))
}
