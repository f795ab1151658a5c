//! Routing on intake: when a referral (ServiceRequest) is created, the hub decides
//! who serves it and creates the Task in the same unit of work. The decision itself
//! is the domain's (`referral::route`); this module fetches what it needs and stores
//! the Task.

use std::collections::HashMap;

use serde_json::Value;

use crate::app::error::{AppError, ErrorKind};
use crate::fhir::criteria::parse_criteria;
use crate::fhir::index::index_rows;
use crate::fhir::instant::{format_instant, from_micros};
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::references::parse_local;
use crate::fhir::registry;
use crate::fhir::resource::IncomingResource;
use crate::referral::directory::read_service;
use crate::referral::route::{
    self, check_category, Decision, Directory, Organization, PostcodeHit,
};
use crate::referral::task::{build_task, TaskLinks};
use crate::store::{Failure, Tx, TxError};

/// Task statuses in which a Task is still being worked on.
pub const OPEN_TASK_STATUSES: &str = "draft,requested,received,accepted,ready,in-progress,on-hold";

/// What a directory was read from: `(id, version, lastUpdated)` of every live
/// HealthcareService, and of the live Organizations the services name.
#[derive(PartialEq, Eq)]
struct DirectorySource {
    services: Vec<(String, i64, i64)>,
    organizations: Vec<(String, i64, i64)>,
}

/// The directory last read, with its source: every referral is routed against the
/// directory, which seldom changes, so reading and parsing it again each time is
/// waste. A hit needs the same resources in the same versions, stamped at the same
/// microsecond by the change clock (so a directory of another database in this
/// process, as in the tests, never passes for this one's). A directory that includes
/// a version its own unit of work wrote is not remembered (it may roll back).
static LAST_DIRECTORY: std::sync::Mutex<Option<(DirectorySource, Directory)>> =
    std::sync::Mutex::new(None);

/// The organisations `directory`'s services name.
fn named_organizations(directory: &Directory) -> Vec<String> {
    let mut ids: Vec<String> = directory
        .services
        .iter()
        .filter_map(|s| s.organization.clone())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The directory as stored now: every HealthcareService that reads as a routing rule,
/// and the organisations they name (the last one read again when nothing it was
/// read from changed since).
pub fn load_directory(tx: &mut Tx<'_>) -> Result<Directory, TxError> {
    let services = tx.heads_of_type("HealthcareService", None)?;
    let cached = LAST_DIRECTORY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .filter(|(source, _)| source.services == services)
        .map(|(source, directory)| (source.organizations.clone(), directory.clone()));
    if let Some((organizations, directory)) = cached {
        let ids = named_organizations(&directory);
        if tx.heads_of_type("Organization", Some(&ids))? == organizations {
            return Ok(directory);
        }
    }
    let directory = read_directory(tx)?;
    let ids = named_organizations(&directory);
    let organizations = tx.heads_of_type("Organization", Some(&ids))?;
    // What this unit of work wrote itself may yet roll back (a dry run, a failing
    // Bundle): not remembered.
    let own = tx.stamp_taken();
    if services
        .iter()
        .chain(&organizations)
        .any(|(_, _, at)| Some(*at) == own)
    {
        return Ok(directory);
    }
    *LAST_DIRECTORY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((
        DirectorySource {
            services,
            organizations,
        },
        directory.clone(),
    ));
    Ok(directory)
}

/// Reads and parses the directory.
fn read_directory(tx: &mut Tx<'_>) -> Result<Directory, TxError> {
    let mut directory = Directory::default();
    for v in tx.current_of_type("HealthcareService")? {
        let Some(value) = v.body.as_deref().and_then(|b| serde_json::from_str(b).ok()) else {
            continue;
        };
        let (service, issues) = read_service(&v.id, &value);
        if issues.iter().all(|i| !i.is_error()) {
            directory.services.push(service);
        }
    }
    let mut organizations = HashMap::new();
    for id in directory
        .services
        .iter()
        .filter_map(|s| s.organization.clone())
    {
        if organizations.contains_key(&id) {
            continue;
        }
        let body: Option<Value> = tx
            .current("Organization", &id)?
            .and_then(|v| v.body)
            .and_then(|b| serde_json::from_str(&b).ok());
        if let Some(org) = body {
            organizations.insert(
                id,
                Organization {
                    name: org.get("name").and_then(Value::as_str).map(str::to_owned),
                    active: org.get("active").and_then(Value::as_bool) != Some(false),
                },
            );
        }
    }
    directory.organizations = organizations;
    Ok(directory)
}

/// The routing decision for `sr` with its Patient, reading the directory and the
/// postcode table in this unit of work. Nothing is written.
pub fn decide(
    tx: &mut Tx<'_>,
    sr: &Value,
    patient: Option<&Value>,
    received: i64,
) -> Result<Decision, Failure<AppError>> {
    let directory = load_directory(tx)?;
    decide_in(tx, &directory, sr, patient, received)
}

/// The routing decision against `directory`.
pub fn decide_in(
    tx: &mut Tx<'_>,
    directory: &Directory,
    sr: &Value,
    patient: Option<&Value>,
    received: i64,
) -> Result<Decision, Failure<AppError>> {
    check_category(sr, directory).map_err(|refused| {
        let codes: Vec<String> = refused
            .categories
            .iter()
            .map(|(system, code)| match system {
                Some(s) => format!("{s}|{code}"),
                None => code.clone(),
            })
            .collect();
        Failure::Abort(AppError::one(
            ErrorKind::Unprocessable,
            Issue::error(
                IssueCode::BusinessRule,
                format!(
                    "This hub routes Welzijn op Recept referrals; no service in the directory offers category {}",
                    codes.join(", ")
                ),
            )
            .at("ServiceRequest.category"),
        ))
    })?;
    Ok(route::route(
        sr,
        patient,
        from_micros(received),
        directory,
        |pc| postcode_hit(tx, pc),
    )?)
}

fn postcode_hit(
    tx: &mut Tx<'_>,
    pc: &crate::referral::postcode::Postcode,
) -> Result<PostcodeHit, TxError> {
    let rows = tx.postcode_lookup(pc.pc4(), pc.pc6().as_deref())?;
    Ok(PostcodeHit {
        loaded: rows.loaded,
        pc6: rows.pc6,
        pc4: rows.pc4,
    })
}

/// After a ServiceRequest `id` was created in this unit of work: route it and create
/// its Task, unless it is not active or an open Task for it exists already.
pub fn route_created(
    tx: &mut Tx<'_>,
    id: &str,
    sr: &Value,
    base: &str,
) -> Result<(), Failure<AppError>> {
    if sr.get("status").and_then(Value::as_str) != Some("active") {
        return Ok(());
    }
    if !open_tasks(tx, id)?.is_empty() {
        return Ok(());
    }
    let (patient_ref, patient) = patient_of(tx, sr, base)?;
    let at = tx.stamp()?;
    let decision = decide(tx, sr, patient.as_ref(), at)?;
    let focus = Some(format!("ServiceRequest/{id}"));
    let mut task = task_for(&decision, sr, focus, patient_ref, at);
    crate::app::access::note_withheld(tx, sr, &mut task)?;
    store_task(tx, &task)
}

/// The ids of the open Tasks (see [`OPEN_TASK_STATUSES`]) of ServiceRequest `sr_id`.
pub fn open_tasks(
    tx: &mut Tx<'_>,
    sr_id: &str,
) -> Result<std::collections::BTreeSet<String>, Failure<AppError>> {
    let internal = |e: &dyn std::fmt::Display| Failure::Abort(AppError::internal(e));
    let def = registry::resource("Task").ok_or_else(|| internal(&"no Task definition"))?;
    let criteria = parse_criteria(
        def,
        &format!("focus=ServiceRequest/{sr_id}&status={OPEN_TASK_STATUSES}"),
        &[],
    )
    .map_err(|issue| internal(&issue.diagnostics))?;
    Ok(tx.find_ids("Task", &criteria)?)
}

/// The referral's subject when it is a stored Patient: `Patient/<id>` and its body.
pub fn patient_of(
    tx: &mut Tx<'_>,
    sr: &Value,
    base: &str,
) -> Result<(Option<String>, Option<Value>), TxError> {
    let Some((_, pid)) = sr
        .pointer("/subject/reference")
        .and_then(Value::as_str)
        .and_then(|r| parse_local(r, base))
        .filter(|(ty, _)| ty == "Patient")
    else {
        return Ok((None, None));
    };
    let body = tx
        .current("Patient", &pid)?
        .and_then(|v| v.body)
        .and_then(|b| serde_json::from_str(&b).ok());
    Ok((Some(format!("Patient/{pid}")), body))
}

/// Stores a Task the hub built, with a new id.
pub fn store_task(tx: &mut Tx<'_>, task: &Value) -> Result<(), Failure<AppError>> {
    let internal = |e: &dyn std::fmt::Display| Failure::Abort(AppError::internal(e));
    let def = registry::resource("Task").ok_or_else(|| internal(&"no Task definition"))?;
    let text = serde_json::to_vec(task).map_err(|e| internal(&e))?;
    let incoming = IncomingResource::parse(&text).map_err(|i| internal(&i.diagnostics))?;
    let task_id = crate::fhir::resource::new_logical_id();
    let rows = index_rows(def, &incoming.value);
    tx.create(
        "Task",
        &task_id,
        &|v, at| incoming.render(&task_id, v, at),
        &rows,
    )?;
    Ok(())
}

/// What `$route` and `wor-hub route explain` are asked about.
pub struct Question {
    pub sr: Value,
    /// Set when the ServiceRequest is stored.
    pub sr_id: Option<String>,
    pub patient: Option<Value>,
    /// `Patient/<id>` when the Patient is stored.
    pub patient_ref: Option<String>,
}

fn invalid(at: &str, diagnostics: impl Into<String>) -> Failure<AppError> {
    Failure::Abort(AppError::invalid(vec![Issue::error(
        IssueCode::Invalid,
        diagnostics,
    )
    .at(at)]))
}

/// Reads the question from a request body: Parameters with `resource` (a
/// ServiceRequest whose Patient is contained and referenced as `#id`) or
/// `serviceRequest` (a reference to a stored one); a ServiceRequest alone; or a
/// transaction Bundle holding a ServiceRequest and its Patient. Reads of stored
/// resources are audited.
pub fn read_question(
    tx: &mut Tx<'_>,
    body: &Value,
    base: &str,
) -> Result<Question, Failure<AppError>> {
    match body.get("resourceType").and_then(Value::as_str) {
        Some("Parameters") => {
            let params = body
                .get("parameter")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            for (i, p) in params.iter().enumerate() {
                match p.get("name").and_then(Value::as_str) {
                    Some("resource") => {
                        let sr = p.get("resource").cloned().unwrap_or_default();
                        return with_contained_patient(
                            sr,
                            &format!("Parameters.parameter[{i}].resource"),
                        );
                    }
                    Some("serviceRequest") => {
                        let reference = p
                            .pointer("/valueReference/reference")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        return stored_question(
                            tx,
                            reference,
                            base,
                            &format!("Parameters.parameter[{i}].valueReference"),
                        );
                    }
                    _ => {}
                }
            }
            Err(invalid(
                "Parameters.parameter",
                "$route takes parameter 'resource' (a ServiceRequest with its Patient contained) or 'serviceRequest' (a reference)",
            ))
        }
        Some("ServiceRequest") => with_contained_patient(body.clone(), "ServiceRequest"),
        Some("Bundle") => bundle_question(body),
        _ => Err(invalid(
            "resourceType",
            "Expected Parameters, a ServiceRequest or a Bundle holding a ServiceRequest",
        )),
    }
}

fn checked(sr: &Value, at: &str) -> Result<(), Failure<AppError>> {
    if sr.get("resourceType").and_then(Value::as_str) != Some("ServiceRequest") {
        return Err(invalid(at, "Expected a ServiceRequest"));
    }
    crate::app::resources::check_valid("ServiceRequest", sr).map_err(|mut e| {
        for issue in &mut e.issues {
            issue.expression = Some(match issue.expression.take() {
                Some(x) => format!("{at}{}", x.strip_prefix("ServiceRequest").unwrap_or(&x)),
                None => at.to_owned(),
            });
        }
        Failure::Abort(e)
    })
}

fn with_contained_patient(sr: Value, at: &str) -> Result<Question, Failure<AppError>> {
    checked(&sr, at)?;
    let subject = sr
        .pointer("/subject/reference")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(local) = subject.strip_prefix('#') else {
        return Err(invalid(
            &format!("{at}.subject.reference"),
            "The Patient must be contained in the ServiceRequest and referenced as #id",
        ));
    };
    let patient = sr
        .get("contained")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| {
            c.get("id").and_then(Value::as_str) == Some(local)
                && c.get("resourceType").and_then(Value::as_str) == Some("Patient")
        })
        .cloned();
    if patient.is_none() {
        return Err(invalid(
            &format!("{at}.contained"),
            format!("No contained Patient with id '{local}'"),
        ));
    }
    Ok(Question {
        sr,
        sr_id: None,
        patient,
        patient_ref: None,
    })
}

pub fn stored_question(
    tx: &mut Tx<'_>,
    reference: &str,
    base: &str,
    at: &str,
) -> Result<Question, Failure<AppError>> {
    let Some((ty, id)) = parse_local(reference, base).filter(|(ty, _)| ty == "ServiceRequest")
    else {
        return Err(invalid(
            at,
            "serviceRequest must reference a stored ServiceRequest/<id>",
        ));
    };
    let sr: Value = match tx.read(&ty, &id, None)? {
        crate::store::Lookup::Found(v) => v
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or_default(),
        crate::store::Lookup::Deleted(_) => {
            return Err(Failure::Abort(AppError::gone(format!(
                "ServiceRequest/{id} was deleted"
            ))))
        }
        crate::store::Lookup::NotFound => {
            return Err(Failure::Abort(AppError::not_found(format!(
                "ServiceRequest/{id} does not exist"
            ))))
        }
    };
    let subject = sr
        .pointer("/subject/reference")
        .and_then(Value::as_str)
        .and_then(|r| parse_local(r, base))
        .filter(|(ty, _)| ty == "Patient");
    let patient = match &subject {
        Some((_, pid)) => match tx.read("Patient", pid, None)? {
            crate::store::Lookup::Found(v) => {
                v.body.as_deref().and_then(|b| serde_json::from_str(b).ok())
            }
            _ => None,
        },
        None => None,
    };
    Ok(Question {
        sr,
        sr_id: Some(id),
        patient,
        patient_ref: subject.map(|(_, pid)| format!("Patient/{pid}")),
    })
}

fn bundle_question(bundle: &Value) -> Result<Question, Failure<AppError>> {
    let entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let Some((i, sr)) = entries.iter().enumerate().find_map(|(i, e)| {
        let r = e.get("resource")?;
        (r.get("resourceType").and_then(Value::as_str) == Some("ServiceRequest")).then_some((i, r))
    }) else {
        return Err(invalid(
            "Bundle.entry",
            "The Bundle holds no ServiceRequest",
        ));
    };
    checked(sr, &format!("Bundle.entry[{i}].resource"))?;
    let subject = sr.pointer("/subject/reference").and_then(Value::as_str);
    let patient = entries
        .iter()
        .find(|e| subject.is_some() && e.get("fullUrl").and_then(Value::as_str) == subject)
        .and_then(|e| e.get("resource"))
        .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Patient"))
        .cloned();
    Ok(Question {
        sr: sr.clone(),
        sr_id: None,
        patient,
        patient_ref: None,
    })
}

/// The decision for a question and the Task routing would create; nothing is stored.
pub fn explain(
    tx: &mut Tx<'_>,
    q: &Question,
    now: i64,
) -> Result<(Decision, Value), Failure<AppError>> {
    let decision = decide(tx, &q.sr, q.patient.as_ref(), now)?;
    let focus = q.sr_id.as_ref().map(|id| format!("ServiceRequest/{id}"));
    let task = task_for(&decision, &q.sr, focus, q.patient_ref.clone(), now);
    Ok((decision, task))
}

/// The Task routing makes for the ServiceRequest `sr` (`focus`: its reference, once
/// stored) of the patient `patient` (a reference), decided at `at`: the requester and
/// the authoring date come from `sr` (the date of `at` when it has none).
pub fn task_for(
    decision: &Decision,
    sr: &Value,
    focus: Option<String>,
    patient: Option<String>,
    at: i64,
) -> Value {
    let links = TaskLinks {
        focus,
        patient,
        requester: sr.get("requester").cloned(),
        authored_on: sr
            .get("authoredOn")
            .and_then(Value::as_str)
            .map_or_else(|| format_instant(at), str::to_owned),
        now: format_instant(at),
    };
    build_task(decision, &links)
}
