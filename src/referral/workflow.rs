//! The Task workflow: who may move a referral's Task from which status to which,
//! which elements each party may change, and what follows for the ServiceRequest.
//!
//! Statuses follow the R4 state machine (task.html) and domain.md: `received` is
//! optional (the Gravity SDOH Clinical Care IG leaves it out), so the owner (welfare
//! organisation) moves `requested -> received | accepted | rejected`,
//! `received -> accepted | rejected`, `accepted -> in-progress`,
//! `in-progress <-> on-hold`, `in-progress -> completed | failed`; the requester
//! cancels, at once before `in-progress` and by request from then on (the owner then
//! confirms with `-> cancelled`). A coordinator assigns owners and may cancel.
//! Stricter than the spec: who may make which move, reasons for rejected, cancelled,
//! on-hold and failed, and which elements each party may change.

use serde_json::{json, Value};

use super::business_status::{self, BusinessStatus, BusinessStatusError};
use super::codes::{CS_TASK_FLAG, CS_UNROUTABLE_REASON};

/// Task.status (R4 task-status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Draft,
    Requested,
    Received,
    Accepted,
    Rejected,
    Ready,
    Cancelled,
    InProgress,
    OnHold,
    Failed,
    Completed,
    EnteredInError,
}

impl TaskStatus {
    const ALL: [Self; 12] = [
        Self::Draft,
        Self::Requested,
        Self::Received,
        Self::Accepted,
        Self::Rejected,
        Self::Ready,
        Self::Cancelled,
        Self::InProgress,
        Self::OnHold,
        Self::Failed,
        Self::Completed,
        Self::EnteredInError,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Requested => "requested",
            Self::Received => "received",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Ready => "ready",
            Self::Cancelled => "cancelled",
            Self::InProgress => "in-progress",
            Self::OnHold => "on-hold",
            Self::Failed => "failed",
            Self::Completed => "completed",
            Self::EnteredInError => "entered-in-error",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    fn of(task: &Value) -> Option<Self> {
        task.get("status")
            .and_then(Value::as_str)
            .and_then(Self::from_code)
    }

    /// No change follows these.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Rejected
                | Self::Cancelled
                | Self::Failed
                | Self::Completed
                | Self::EnteredInError
        )
    }

    /// Before work started: the requester's cancellation takes effect at once.
    fn before_work(self) -> bool {
        matches!(
            self,
            Self::Draft | Self::Requested | Self::Received | Self::Accepted | Self::Ready
        )
    }

    fn needs_reason(self) -> bool {
        matches!(
            self,
            Self::Rejected | Self::Cancelled | Self::OnHold | Self::Failed
        )
    }

    /// Statuses in which the contact deadline applies. The deadline is about the coach
    /// reaching the patient, not about answering the hub: accepting (directly or after
    /// `received`) does not meet it; a business status that implies contact, work in
    /// progress or a closed Task does.
    fn awaits_contact(self) -> bool {
        matches!(self, Self::Requested | Self::Received | Self::Accepted)
    }
}

/// Who is acting on a Task, until client authentication exists: named in a request
/// header, or anyone (open mode on loopback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Party {
    /// May act as every party (open mode, loopback, no party named).
    Any,
    /// A regional coordinator: assigns owners, may cancel.
    Coordinator,
    /// A referrer or welfare organisation: `Type/id`.
    Reference(String),
}

/// The roles a party holds on one Task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles {
    pub owner: bool,
    pub requester: bool,
    pub coordinator: bool,
}

impl Roles {
    pub const ALL: Self = Self {
        owner: true,
        requester: true,
        coordinator: true,
    };

    pub fn is_empty(self) -> bool {
        !(self.owner || self.requester || self.coordinator)
    }

    fn names(self) -> String {
        let mut names = Vec::new();
        if self.owner {
            names.push("owner");
        }
        if self.requester {
            names.push("requester");
        }
        if self.coordinator {
            names.push("coordinator");
        }
        names.join(" and ")
    }
}

/// The elements each role may change (top-level Task members; `id` and `meta` are the
/// server's).
const OWNER_ELEMENTS: &[&str] = &[
    "status",
    "statusReason",
    "businessStatus",
    "output",
    "note",
    "executionPeriod",
    "lastModified",
];
const REQUESTER_ELEMENTS: &[&str] = &["status", "statusReason", "note", "lastModified"];
const COORDINATOR_ELEMENTS: &[&str] = &[
    "status",
    "statusReason",
    "businessStatus",
    "note",
    "lastModified",
    "owner",
];

/// What follows from an accepted Task change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    None,
    /// The referral (Task.focus) takes this ServiceRequest status.
    ServiceRequest(&'static str),
    /// The owner rejected: route the referral to the next eligible service.
    Reroute {
        reason: String,
    },
    /// The referrer asked to cancel work in progress; the owner decides.
    CancellationRequested,
}

/// A Task change the workflow allows: the body to store and what follows.
#[derive(Debug, Clone)]
pub struct Reviewed {
    pub task: Value,
    pub effect: Effect,
}

/// Why a Task change is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The status change is not allowed from this status for this party (422).
    Transition {
        from: TaskStatus,
        to: TaskStatus,
        why: String,
    },
    /// `statusReason` is required for the new status (422).
    ReasonRequired(TaskStatus),
    /// The party may not change this element (403).
    Element { element: String, roles: String },
    /// `businessStatus` is not from the project CodeSystem (422).
    BusinessStatus(BusinessStatusError),
    /// A hub-managed business status set by a client (422).
    HubManaged(BusinessStatus),
    /// The stored or sent status is not an R4 task status (422).
    UnknownStatus,
}

/// Checks a Task update by a party holding `roles`. `now` is a FHIR instant.
pub fn review(old: &Value, new: &Value, roles: Roles, now: &str) -> Result<Reviewed, Refusal> {
    let from = TaskStatus::of(old).ok_or(Refusal::UnknownStatus)?;
    let to = TaskStatus::of(new).ok_or(Refusal::UnknownStatus)?;
    check_elements(old, new, roles)?;
    let old_bs = business_status::read(old).ok().flatten();
    let new_bs = business_status::read(new).map_err(Refusal::BusinessStatus)?;
    if let Some(bs) = new_bs.filter(|bs| bs.hub_managed() && Some(*bs) != old_bs) {
        return Err(Refusal::HubManaged(bs));
    }
    let mut task = new.clone();
    if from != to && to.needs_reason() && !has_reason(new) {
        return Err(Refusal::ReasonRequired(to));
    }
    let effect = if from == to {
        Effect::None
    } else {
        transition(from, to, roles, old_bs, new, &mut task)?
    };
    if task.get("owner").is_some() && old.get("owner").is_none() {
        clear_unroutable(&mut task);
    }
    if task.get("lastModified").is_none() || task.get("lastModified") == old.get("lastModified") {
        task["lastModified"] = json!(now);
    }
    Ok(Reviewed { task, effect })
}

fn check_elements(old: &Value, new: &Value, roles: Roles) -> Result<(), Refusal> {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return Ok(());
    };
    let added = n.keys().filter(|k| !o.contains_key(*k));
    for key in o.keys().chain(added) {
        if matches!(key.as_str(), "resourceType" | "id" | "meta") || o.get(key) == n.get(key) {
            continue;
        }
        let allowed = (roles.owner && OWNER_ELEMENTS.contains(&key.as_str()))
            || (roles.requester && REQUESTER_ELEMENTS.contains(&key.as_str()))
            || (roles.coordinator && COORDINATOR_ELEMENTS.contains(&key.as_str()));
        if !allowed {
            return Err(Refusal::Element {
                element: format!("Task.{key}"),
                roles: roles.names(),
            });
        }
    }
    Ok(())
}

fn has_reason(task: &Value) -> bool {
    task.get("statusReason").is_some_and(|r| {
        r.get("text")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.trim().is_empty())
            || r.get("coding")
                .and_then(Value::as_array)
                .is_some_and(|c| !c.is_empty())
    })
}

/// The reason as one line: the text, else the first coding's display or code.
pub fn reason_text(task: &Value) -> String {
    let r = task.get("statusReason");
    r.and_then(|r| r.get("text"))
        .and_then(Value::as_str)
        .or_else(|| {
            r.and_then(|r| r.pointer("/coding/0/display"))
                .and_then(Value::as_str)
        })
        .or_else(|| {
            r.and_then(|r| r.pointer("/coding/0/code"))
                .and_then(Value::as_str)
        })
        .unwrap_or("no reason given")
        .to_owned()
}

fn transition(
    from: TaskStatus,
    to: TaskStatus,
    roles: Roles,
    old_bs: Option<BusinessStatus>,
    new: &Value,
    task: &mut Value,
) -> Result<Effect, Refusal> {
    use TaskStatus as S;
    let refuse = |why: String| Refusal::Transition { from, to, why };
    if from.is_final() {
        return Err(refuse(format!(
            "a {} Task is closed; nothing follows it",
            from.code()
        )));
    }
    if to == S::Cancelled {
        if from.before_work() {
            if roles.requester || roles.coordinator {
                return Ok(Effect::ServiceRequest("revoked"));
            }
            return Err(refuse(
                "only the requester or a coordinator cancels; the owner rejects instead".into(),
            ));
        }
        // In progress or on hold.
        if roles.owner && old_bs == Some(BusinessStatus::CancellationRequested) {
            return Ok(Effect::ServiceRequest("revoked"));
        }
        if roles.requester || roles.coordinator {
            // The work has started: the cancellation becomes a request the owner
            // confirms (-> cancelled) or declines (a new business status).
            *task = cancellation_request(new, from);
            return Ok(Effect::CancellationRequested);
        }
        return Err(refuse(
            "the owner cancels only after the referrer asked to (business status cancellation-requested); otherwise use failed or completed".into(),
        ));
    }
    let owner_move = matches!(
        (from, to),
        (S::Requested, S::Received | S::Accepted | S::Rejected)
            | (S::Received, S::Accepted | S::Rejected)
            | (S::Accepted, S::InProgress)
            | (S::InProgress, S::OnHold | S::Completed | S::Failed)
            | (S::OnHold, S::InProgress)
    );
    if !owner_move {
        return Err(refuse(format!(
            "allowed from {} are: {}",
            from.code(),
            next_statuses(from).join(", ")
        )));
    }
    if !roles.owner {
        return Err(refuse(format!(
            "only the owner moves a Task to {}; you act as {}",
            to.code(),
            roles.names()
        )));
    }
    Ok(match to {
        S::Completed => Effect::ServiceRequest("completed"),
        S::Failed => Effect::ServiceRequest("revoked"),
        S::Rejected => Effect::Reroute {
            reason: reason_text(new),
        },
        _ => Effect::None,
    })
}

/// The statuses a Task may move to from `from` (for messages).
pub fn next_statuses(from: TaskStatus) -> Vec<&'static str> {
    use TaskStatus as S;
    let list: &[TaskStatus] = match from {
        S::Requested => &[S::Received, S::Accepted, S::Rejected, S::Cancelled],
        S::Received => &[S::Accepted, S::Rejected, S::Cancelled],
        S::Accepted => &[S::InProgress, S::Cancelled],
        S::InProgress => &[S::OnHold, S::Completed, S::Failed, S::Cancelled],
        S::OnHold => &[S::InProgress, S::Cancelled],
        S::Draft | S::Ready => &[S::Cancelled],
        _ => &[],
    };
    list.iter().map(|s| s.code()).collect()
}

/// The Task as stored when the referrer asks to cancel work in progress: the status
/// stays, the business status says a cancellation was requested, and a note carries
/// the reason.
fn cancellation_request(new: &Value, from: TaskStatus) -> Value {
    let mut task = new.clone();
    let reason = reason_text(new);
    task["status"] = json!(from.code());
    if let Some(obj) = task.as_object_mut() {
        obj.remove("statusReason");
    }
    task["businessStatus"] = BusinessStatus::CancellationRequested.codeable_concept();
    let note = json!({"text": format!("The referrer asked to cancel: {reason}")});
    match task.get_mut("note").and_then(Value::as_array_mut) {
        Some(notes) => notes.push(note),
        None => task["note"] = json!([note]),
    }
    task
}

/// Once a Task has an owner, its `unroutable` marks go.
fn clear_unroutable(task: &mut Value) {
    let Some(obj) = task.as_object_mut() else {
        return;
    };
    if business_status::read(&Value::Object(obj.clone())) == Ok(Some(BusinessStatus::Unroutable)) {
        obj.remove("businessStatus");
    }
    let unroutable_reason = obj
        .get("statusReason")
        .and_then(|r| r.get("coding"))
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.get("system").and_then(Value::as_str) == Some(CS_UNROUTABLE_REASON))
        });
    if unroutable_reason {
        obj.remove("statusReason");
    }
}

/// Whether the contact deadline has passed for this Task: it still awaits contact
/// (requested, received or accepted, with no business status that implies contact)
/// and `deadline` (`authoredOn` plus the configured period) lies before `now`.
/// Both instants are microseconds since the epoch.
pub fn is_overdue(task: &Value, authored_micros: Option<i64>, now: i64, period: i64) -> bool {
    let awaiting = TaskStatus::of(task).is_some_and(TaskStatus::awaits_contact);
    let contacted = business_status::read(task)
        .ok()
        .flatten()
        .is_some_and(BusinessStatus::implies_contact);
    awaiting && !contacted && authored_micros.is_some_and(|a| a.saturating_add(period) < now)
}

/// Sets or removes the `overdue` tag in `meta.tag`; returns whether anything changed.
pub fn set_overdue_tag(task: &mut Value, overdue: bool) -> bool {
    let is_flag = |t: &Value| {
        t.get("system").and_then(Value::as_str) == Some(CS_TASK_FLAG)
            && t.get("code").and_then(Value::as_str) == Some("overdue")
    };
    let has = task
        .pointer("/meta/tag")
        .and_then(Value::as_array)
        .is_some_and(|tags| tags.iter().any(is_flag));
    if has == overdue {
        return false;
    }
    if overdue {
        if task.get("meta").and_then(Value::as_object).is_none() {
            task["meta"] = json!({});
        }
        let tag = json!({"system": CS_TASK_FLAG, "code": "overdue", "display": "Contact deadline passed"});
        match task["meta"].get_mut("tag").and_then(Value::as_array_mut) {
            Some(tags) => tags.push(tag),
            None => task["meta"]["tag"] = json!([tag]),
        }
    } else if let Some(tags) = task
        .get_mut("meta")
        .and_then(|m| m.get_mut("tag"))
        .and_then(Value::as_array_mut)
    {
        tags.retain(|t| !is_flag(t));
        if tags.is_empty() {
            if let Some(meta) = task.get_mut("meta").and_then(Value::as_object_mut) {
                meta.remove("tag");
            }
        }
    }
    true
}

#[cfg(test)]
#[path = "workflow_tests.rs"]
mod tests;
