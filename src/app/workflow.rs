//! The Task workflow at the edge: an update of an existing Task goes through the
//! domain's rules (`referral::workflow`) and what follows it (the ServiceRequest's
//! status, re-routing after a rejection) is written in the same unit of work; a Task a
//! client creates passes the creation rules (`referral::task_create`). Every client
//! write of a Task comes here: `POST`/`PUT /fhir/Task`, Task entries of transaction
//! and batch Bundles (and PATCH, through the update use case).

use serde_json::{json, Value};

use crate::app::error::{AppError, ErrorKind};
use crate::app::principal::{ClientRole, Principal, Role};
use crate::app::reply;
use crate::app::routing::{decide_in, load_directory, open_tasks, patient_of, store_task};
use crate::app::App;
use crate::clock::Clock;
use crate::fhir::criteria::parse_criteria;
use crate::fhir::dates::date_range;
use crate::fhir::index::index_rows;
use crate::fhir::instant::format_instant;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::references::parse_local;
use crate::fhir::registry;
use crate::fhir::resource::IncomingResource;
use crate::referral::task::{build_task, TaskLinks};
use crate::referral::task_create::{check_new_task, may_create, Context};
use crate::referral::workflow::{
    is_overdue, reason_text, review, set_overdue_tag, Effect, Party, Refusal, Roles,
};
use crate::store::{Failure, Relation, StoredVersion, Tx, UpdateOutcome};

/// What a Task update needs besides the request body.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub party: Option<Party>,
    /// The organisation of an authenticated referrer client: it is the requester of
    /// the referrals its organisation sent (`access_grants`), whoever the
    /// ServiceRequest names as requester.
    pub referrer: Option<String>,
    pub clock: Clock,
    /// The contact deadline in microseconds.
    pub contact_deadline: i64,
}

impl Workflow {
    pub fn new(app: &App, principal: &Principal) -> Self {
        Self {
            party: principal.party(),
            referrer: match principal.role {
                Role::Client(ClientRole::Referrer) => principal.organization.clone(),
                _ => None,
            },
            clock: app.clock.clone(),
            contact_deadline: app.contact_deadline,
        }
    }
}

pub(super) fn body_of(v: &StoredVersion) -> Option<Value> {
    v.body.as_deref().and_then(|b| serde_json::from_str(b).ok())
}

pub(super) fn internal(e: &dyn std::fmt::Display) -> Failure<AppError> {
    Failure::Abort(AppError::internal(e))
}

fn abort(status: ErrorKind, issue: Issue) -> Failure<AppError> {
    Failure::Abort(AppError::one(status, issue))
}

/// Updates Task `id` under the workflow rules; `checks` (reference integrity) run
/// once the party is known to be allowed the change, so a refused party learns
/// nothing about other resources. `None` when no live Task has this id and the
/// creation rules ([`check_task_create`]) allow it: the caller then creates it as an
/// ordinary `PUT` (update-as-create).
#[allow(clippy::too_many_arguments)]
pub fn update_task(
    tx: &mut Tx<'_>,
    wf: &Workflow,
    id: &str,
    incoming: &IncomingResource,
    if_match: Option<i64>,
    base: &str,
    checks: impl FnOnce(&mut Tx<'_>) -> Result<(), Failure<AppError>>,
) -> Result<Option<StoredVersion>, Failure<AppError>> {
    let Some((current, old)) = tx
        .current("Task", id)?
        .and_then(|v| body_of(&v).map(|body| (v, body)))
    else {
        // None yet, or deleted: this write creates a Task.
        check_task_create(tx, wf, incoming, base)?;
        return Ok(None);
    };
    let version = current.version_id;
    let Some(expected) = if_match else {
        return Err(abort(
            ErrorKind::PreconditionFailed,
            Issue::error(
                IssueCode::Required,
                format!(
                    "Updating a Task requires If-Match with the version you read (now {}), so no status change is lost",
                    reply::etag(version)
                ),
            )
            .at("If-Match"),
        ));
    };
    if expected != version {
        return Err(Failure::Abort(AppError::precondition_failed(format!(
            "If-Match does not match the current version of Task/{id}, which is {}: read it again",
            reply::etag(version)
        ))));
    }
    let referrer = is_referrer(tx, wf, "Task", id)?;
    let roles = roles_of(wf.party.as_ref(), &old, base, id, referrer)?;
    let at = tx.stamp()?;
    let reviewed = review(&old, &incoming.value, roles, &format_instant(at))
        .map_err(|r| refused(&r, &old, id))?;
    checks(tx)?;
    let mut task = reviewed.task;
    flag_overdue(&mut task, wf.clock.now_micros(), wf.contact_deadline);
    let stored = if task == incoming.value {
        write_task(tx, id, incoming, version)?
    } else {
        let text = serde_json::to_vec(&task).map_err(|e| internal(&e))?;
        let adjusted = IncomingResource::parse(&text).map_err(|i| internal(&i.diagnostics))?;
        write_task(tx, id, &adjusted, version)?
    };
    match reviewed.effect {
        Effect::None | Effect::CancellationRequested => {}
        Effect::ServiceRequest(status) => follow(tx, &task, status, base)?,
        Effect::Reroute { reason } => reroute(tx, id, &task, &reason, base, at)?,
    }
    Ok(Some(stored))
}

/// The rules for a Task a client creates (`referral::task_create`): the acting party
/// must be a coordinator or the referral's requester (403 otherwise), and the Task a
/// new `requested` order for an active referral without an open Task (422
/// `business-rule` naming each element otherwise). Creation by POST, update-as-create
/// and Bundle entries all pass here; the hub's own Tasks (routing) do not.
pub fn check_task_create(
    tx: &mut Tx<'_>,
    wf: &Workflow,
    incoming: &IncomingResource,
    base: &str,
) -> Result<(), Failure<AppError>> {
    let task = &incoming.value;
    let local = |r: &str| parse_local(r, base).map(|(ty, id)| format!("{ty}/{id}"));
    let target = |element: &str, ty: &str| {
        task.pointer(&format!("/{element}/reference"))
            .and_then(Value::as_str)
            .and_then(|r| parse_local(r, base))
            .filter(|(t, _)| t == ty)
            .map(|(_, id)| id)
    };
    let sr_id = target("focus", "ServiceRequest");
    let sr = match &sr_id {
        Some(id) => tx.current("ServiceRequest", id)?.as_ref().and_then(body_of),
        None => None,
    };
    let requester = sr
        .as_ref()
        .and_then(|sr| sr.pointer("/requester/reference"))
        .and_then(Value::as_str)
        .and_then(local);
    let referrer = match &sr_id {
        Some(id) => is_referrer(tx, wf, "ServiceRequest", id)?,
        None => false,
    };
    if !referrer && !may_create(wf.party.as_ref(), requester.as_deref()) {
        return Err(abort(
            ErrorKind::Forbidden,
            Issue::error(
                IssueCode::Forbidden,
                "Only a coordinator (X-Acting-Party: coordinator) or the referral's requester creates a Task; routing creates the referral's Task itself, and its owner works on that one",
            )
            .at("X-Acting-Party"),
        ));
    }
    let mut open = None;
    if let (Some(id), Some(_)) = (&sr_id, &sr) {
        // Two clients creating a Task for one referral at once: one wins.
        tx.lock(&format!("referral-task:{id}"))?;
        if let Some(task_id) = open_tasks(tx, id)?.into_iter().next() {
            let status = tx
                .current("Task", &task_id)?
                .as_ref()
                .and_then(body_of)
                .and_then(|t| t.get("status").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            open = Some((task_id, status));
        }
    }
    let org_id = target("owner", "Organization");
    let org = match &org_id {
        Some(id) => tx.current("Organization", id)?.as_ref().and_then(body_of),
        None => None,
    };
    let ctx = Context {
        referral: sr_id.as_deref().map(|id| (id, sr.as_ref())),
        open_task: open.as_ref().map(|(id, st)| (id.as_str(), st.as_str())),
        owner: org_id.as_deref().map(|id| (id, org.as_ref())),
        local: &local,
    };
    let issues = check_new_task(task, &ctx);
    if issues.is_empty() {
        Ok(())
    } else {
        Err(Failure::Abort(AppError::unprocessable(issues)))
    }
}

/// A Task is the referral's workflow record: only a coordinator (or, in open mode,
/// any party) deletes one, e.g. one created in error.
pub fn check_task_delete(party: Option<&Party>) -> Result<(), AppError> {
    match party {
        Some(Party::Any | Party::Coordinator) => Ok(()),
        _ => Err(AppError::one(
            ErrorKind::Forbidden,
            Issue::error(
                IssueCode::Forbidden,
                "Only a coordinator deletes a Task (X-Acting-Party: coordinator); owners and requesters end it with a status",
            )
            .at("X-Acting-Party"),
        )),
    }
}

/// Sets or clears the `overdue` tag for `now`; whether anything changed.
pub(super) fn flag_overdue(task: &mut Value, now: i64, deadline: i64) -> bool {
    let authored = task
        .get("authoredOn")
        .and_then(Value::as_str)
        .and_then(date_range)
        .map(|(start, _)| start);
    let overdue = is_overdue(task, authored, now, deadline);
    set_overdue_tag(task, overdue)
}

fn write_task(
    tx: &mut Tx<'_>,
    id: &str,
    resource: &IncomingResource,
    version: i64,
) -> Result<StoredVersion, Failure<AppError>> {
    match new_version(tx, "Task", id, resource, version)? {
        UpdateOutcome::Updated(v) | UpdateOutcome::Created(v) => Ok(v),
        UpdateOutcome::NotFound => Err(Failure::Abort(AppError::not_found(format!(
            "Task/{id} does not exist"
        )))),
        UpdateOutcome::VersionMismatch { current } => {
            Err(Failure::Abort(AppError::precondition_failed(format!(
                "Task/{id} changed meanwhile; it is now {}",
                reply::etag(current)
            ))))
        }
    }
}

/// Stores `resource` as the next version of `ty/id` if `version` is still current.
pub(super) fn new_version(
    tx: &mut Tx<'_>,
    ty: &str,
    id: &str,
    resource: &IncomingResource,
    version: i64,
) -> Result<UpdateOutcome, Failure<AppError>> {
    let def = registry::resource(ty).ok_or_else(|| internal(&format!("no {ty} definition")))?;
    let rows = index_rows(def, &resource.value);
    let render = |v, at| resource.render(id, v, at);
    Ok(tx.update(ty, id, &render, &rows, Some(version), false)?)
}

/// Whether the workflow's authenticated referrer client sent the referral `ty/id`
/// belongs to.
fn is_referrer(
    tx: &mut Tx<'_>,
    wf: &Workflow,
    ty: &str,
    id: &str,
) -> Result<bool, Failure<AppError>> {
    Ok(match &wf.referrer {
        Some(org) => tx.relations(ty, id, org)?.contains(&Relation::Referrer),
        None => false,
    })
}

/// The roles the acting party holds on this Task (`referrer`: an authenticated
/// referrer client of the organisation that sent the referral, its requester).
fn roles_of(
    party: Option<&Party>,
    task: &Value,
    base: &str,
    id: &str,
    referrer: bool,
) -> Result<Roles, Failure<AppError>> {
    let forbidden = |msg: String| {
        abort(
            ErrorKind::Forbidden,
            Issue::error(IssueCode::Forbidden, msg).at("X-Acting-Party"),
        )
    };
    let Some(party) = party else {
        return Err(forbidden(
            "Name the acting party in X-Acting-Party (Organization/<id> of the owner, the requester's reference, or coordinator)".into(),
        ));
    };
    let named = |element: &str| {
        task.pointer(&format!("/{element}/reference"))
            .and_then(Value::as_str)
            .and_then(|r| parse_local(r, base))
            .map(|(ty, id)| format!("{ty}/{id}"))
    };
    let roles = match party {
        Party::Any => Roles::ALL,
        Party::Coordinator => Roles {
            coordinator: true,
            ..Roles::default()
        },
        Party::Reference(r) => Roles {
            owner: named("owner").as_deref() == Some(r.as_str()),
            requester: referrer || named("requester").as_deref() == Some(r.as_str()),
            coordinator: false,
        },
    };
    if roles.is_empty() {
        let who = match party {
            Party::Reference(r) => r.as_str(),
            _ => "the party",
        };
        return Err(forbidden(format!(
            "{who} is neither the owner nor the requester of Task/{id}"
        )));
    }
    Ok(roles)
}

/// A refused change as the client sees it.
fn refused(refusal: &Refusal, old: &Value, id: &str) -> Failure<AppError> {
    let current = old.get("status").and_then(Value::as_str).unwrap_or("?");
    match refusal {
        Refusal::Transition { from, to, why } => abort(
            ErrorKind::Unprocessable,
            Issue::error(
                IssueCode::BusinessRule,
                format!(
                    "Task/{id} is {}; it cannot move to {}: {why}",
                    from.code(),
                    to.code()
                ),
            )
            .at("Task.status"),
        ),
        Refusal::ReasonRequired(to) => abort(
            ErrorKind::Unprocessable,
            Issue::error(
                IssueCode::BusinessRule,
                format!(
                    "Task.statusReason is required when a Task moves from {current} to {}",
                    to.code()
                ),
            )
            .at("Task.statusReason"),
        ),
        Refusal::Element { element, roles } => abort(
            ErrorKind::Forbidden,
            Issue::error(
                IssueCode::Forbidden,
                format!(
                    "As {roles} of Task/{id} you may not change {element} (the owner may change status, statusReason, businessStatus, output, note, executionPeriod and lastModified; the requester status, statusReason, note and lastModified; a coordinator also owner)"
                ),
            )
            .at(element.clone()),
        ),
        Refusal::BusinessStatus(e) => {
            let (at, msg) = e.describe();
            abort(
                ErrorKind::Unprocessable,
                Issue::error(IssueCode::CodeInvalid, msg).at(at),
            )
        }
        Refusal::HubManaged(bs) => abort(
            ErrorKind::Unprocessable,
            Issue::error(
                IssueCode::BusinessRule,
                format!(
                    "Business status '{}' is set by the hub, not by clients",
                    bs.code()
                ),
            )
            .at("Task.businessStatus"),
        ),
        Refusal::UnknownStatus => abort(
            ErrorKind::Unprocessable,
            Issue::error(IssueCode::CodeInvalid, "Task.status is not an R4 task status")
                .at("Task.status"),
        ),
    }
}

/// The referral (`Task.focus`) this Task fulfils: its id and current version.
fn referral_of(
    tx: &mut Tx<'_>,
    task: &Value,
    base: &str,
) -> Result<Option<(String, StoredVersion)>, Failure<AppError>> {
    let Some(sr_id) = task
        .pointer("/focus/reference")
        .and_then(Value::as_str)
        .and_then(|r| parse_local(r, base))
        .filter(|(ty, _)| ty == "ServiceRequest")
        .map(|(_, id)| id)
    else {
        return Ok(None);
    };
    Ok(tx
        .current("ServiceRequest", &sr_id)?
        .filter(|v| v.body.is_some())
        .map(|v| (sr_id, v)))
}

/// The ServiceRequest follows its Task: a new version with `status`.
fn follow(
    tx: &mut Tx<'_>,
    task: &Value,
    status: &str,
    base: &str,
) -> Result<(), Failure<AppError>> {
    let Some((sr_id, current)) = referral_of(tx, task, base)? else {
        return Ok(());
    };
    let body = current.body.unwrap_or_default();
    let mut sr = IncomingResource::parse(body.as_bytes()).map_err(|i| internal(&i.diagnostics))?;
    if sr.value.get("status").and_then(Value::as_str) != Some("active") {
        // Only an active referral follows its Task; the referrer's own status stands.
        return Ok(());
    }
    sr.set_member("status", json!(status))
        .map_err(|e| internal(&e))?;
    match new_version(tx, "ServiceRequest", &sr_id, &sr, current.version_id)? {
        UpdateOutcome::Updated(_) | UpdateOutcome::Created(_) => Ok(()),
        // Not the client's If-Match (that was the Task's): a concurrent change.
        _ => Err(abort(
            ErrorKind::Conflict,
            Issue::error(
                IssueCode::Conflict,
                format!("ServiceRequest/{sr_id} changed meanwhile; read the Task again and retry"),
            ),
        )),
    }
}

/// After the owner rejected Task `rejected_id`: route the referral again, skipping
/// every organisation that rejected it, and create the next Task (`partOf` the
/// rejected one). With none left the new Task is unroutable, for a coordinator.
fn reroute(
    tx: &mut Tx<'_>,
    rejected_id: &str,
    rejected: &Value,
    reason: &str,
    base: &str,
    at: i64,
) -> Result<(), Failure<AppError>> {
    let Some((sr_id, current)) = referral_of(tx, rejected, base)? else {
        return Ok(());
    };
    let Some(sr) = body_of(&current) else {
        return Ok(());
    };
    if sr.get("status").and_then(Value::as_str) != Some("active")
        || !open_tasks(tx, &sr_id)?.is_empty()
    {
        return Ok(());
    }
    let task_def = registry::resource("Task").ok_or_else(|| internal(&"no Task definition"))?;
    let mut directory = load_directory(tx)?;
    let rejections = parse_criteria(
        task_def,
        &format!("focus=ServiceRequest/{sr_id}&status=rejected"),
        &[],
    )
    .map_err(|i| internal(&i.diagnostics))?;
    for task_id in tx.find_ids("Task", &rejections)? {
        let Some(task) = tx.current("Task", &task_id)?.as_ref().and_then(body_of) else {
            continue;
        };
        let owner = task
            .pointer("/owner/reference")
            .and_then(Value::as_str)
            .and_then(|r| parse_local(r, base))
            .filter(|(ty, _)| ty == "Organization");
        if let Some((_, org)) = owner {
            let said = if task_id == rejected_id {
                reason.to_owned()
            } else {
                reason_text(&task)
            };
            directory
                .rejected_by
                .insert(org, format!("Task/{task_id}: {said}"));
        }
    }
    let (patient_ref, patient) = patient_of(tx, &sr, base)?;
    let decision = decide_in(tx, &directory, &sr, patient.as_ref(), at)?;
    let links = TaskLinks {
        focus: Some(format!("ServiceRequest/{sr_id}")),
        patient: patient_ref,
        requester: sr.get("requester").cloned(),
        // The next organisation's contact deadline starts now.
        authored_on: format_instant(at),
        now: format_instant(at),
    };
    let mut task = build_task(&decision, &links);
    crate::app::access::note_withheld(tx, &sr, &mut task)?;
    task["partOf"] = json!([{"reference": format!("Task/{rejected_id}")}]);
    if let Some(notes) = task.get_mut("note").and_then(Value::as_array_mut) {
        notes.insert(
            0,
            json!({"time": format_instant(at), "text": format!("Re-routed after Task/{rejected_id} was rejected: {reason}")}),
        );
    }
    store_task(tx, &task)
}
