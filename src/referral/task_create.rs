//! Tasks created by clients. The hub creates a referral's Task itself (routing on
//! intake, re-routing after a rejection); a client may create one only where the hub
//! did not, and only as the hub would have: a new `requested` order to fulfil an
//! active referral that has no open Task, for the referral's patient, from its
//! requester, owned by a stored Organization. Every client write that creates a Task
//! (POST, update-as-create, transaction and batch entries) passes these rules.
//!
//! Who may: a coordinator (manual routing) and the referral's own requester (a GP
//! system or gateway that sends its Task with the referral, Gravity style), and the
//! hub itself or any party in open mode. The welfare organisation may not: it works
//! on the Task it was given.

use serde_json::Value;

use super::business_status;
use super::codes::{CS_TASK_FLAG, TASK_CODE_SYSTEM};
use super::workflow::Party;
use crate::fhir::outcome::{Issue, IssueCode};

/// What the store holds about the resources a new Task names.
pub struct Context<'a> {
    /// `Task.focus` when it is a local `ServiceRequest/<id>`: the id and the stored
    /// body (`None`: not stored, or deleted).
    pub referral: Option<(&'a str, Option<&'a Value>)>,
    /// An open Task of that referral: its id and status.
    pub open_task: Option<(&'a str, &'a str)>,
    /// `Task.owner` when it is a local `Organization/<id>`: the id and the stored body.
    pub owner: Option<(&'a str, Option<&'a Value>)>,
    /// A reference as `Type/id` when it names a resource on this server.
    pub local: &'a dyn Fn(&str) -> Option<String>,
}

/// Whether `party` may create a Task for a referral whose requester is
/// `referral_requester` (as `Type/id`).
pub fn may_create(party: Option<&Party>, referral_requester: Option<&str>) -> bool {
    match party {
        Some(Party::Any | Party::Coordinator) => true,
        Some(Party::Reference(r)) => referral_requester == Some(r.as_str()),
        None => false,
    }
}

/// The rules a new Task breaks, as `business-rule` issues naming the element (empty:
/// it may be created).
pub fn check_new_task(task: &Value, ctx: &Context<'_>) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut refuse = |at: &str, diagnostics: String| {
        issues.push(Issue::error(IssueCode::BusinessRule, diagnostics).at(at));
    };
    let text = |name: &str| task.get(name).and_then(Value::as_str);
    match text("status") {
        Some("requested") => {}
        other => refuse(
            "Task.status",
            format!(
                "A new Task starts as requested, not {}: the owner moves it on from there",
                other.unwrap_or("without a status")
            ),
        ),
    }
    if text("intent") != Some("order") {
        refuse(
            "Task.intent",
            "A referral's Task has intent order (fulfil the ServiceRequest)".into(),
        );
    }
    if task.get("code").is_some() && !is_fulfill(task) {
        refuse(
            "Task.code",
            format!("A referral's Task has code {TASK_CODE_SYSTEM}|fulfill, or none"),
        );
    }
    if text("authoredOn").is_none() {
        refuse(
            "Task.authoredOn",
            "authoredOn is required: the contact deadline runs from it".into(),
        );
    }
    if let Ok(Some(bs)) = business_status::read(task) {
        if bs.hub_managed() {
            refuse(
                "Task.businessStatus",
                format!(
                    "Business status '{}' is set by the hub, not by clients",
                    bs.code()
                ),
            );
        }
    }
    if has_overdue_tag(task) {
        refuse(
            "Task.meta.tag",
            format!("The tag {CS_TASK_FLAG}|overdue is set by the hub, not by clients"),
        );
    }
    check_referral(task, ctx, &mut refuse);
    match ctx.owner {
        None => refuse(
            "Task.owner",
            "owner must reference the Organization/<id> on this server that is to do the work"
                .into(),
        ),
        Some((id, None)) => refuse("Task.owner", format!("Organization/{id} does not exist")),
        Some((id, Some(org))) if org.get("active").and_then(Value::as_bool) == Some(false) => {
            refuse(
                "Task.owner",
                format!("Organization/{id} is inactive: it takes no referrals"),
            );
        }
        Some(_) => {}
    }
    issues
}

/// The referral the Task fulfils: stored, active, without an open Task, and the
/// Task's patient and requester are the referral's.
fn check_referral(task: &Value, ctx: &Context<'_>, refuse: &mut impl FnMut(&str, String)) {
    let (id, sr) =
        match ctx.referral {
            None => return refuse(
                "Task.focus",
                "focus must reference the ServiceRequest/<id> on this server that the Task fulfils"
                    .into(),
            ),
            Some((id, None)) => {
                return refuse("Task.focus", format!("ServiceRequest/{id} does not exist"));
            }
            Some((id, Some(sr))) => (id, sr),
        };
    let status = sr.get("status").and_then(Value::as_str).unwrap_or("?");
    if status != "active" {
        refuse(
            "Task.focus",
            format!("ServiceRequest/{id} is {status}: only an active referral gets a Task"),
        );
    }
    if let Some((task_id, task_status)) = ctx.open_task {
        refuse(
            "Task.focus",
            format!(
                "ServiceRequest/{id} already has an open Task (Task/{task_id}, {task_status}): a referral has one open Task at a time; update that one (a coordinator may assign its owner)"
            ),
        );
    }
    for (element, of_referral) in [("for", "subject"), ("requester", "requester")] {
        let want = reference_key(sr.get(of_referral), ctx.local);
        if reference_key(task.get(element), ctx.local) != want {
            refuse(
                &format!("Task.{element}"),
                match want {
                    Some(r) => format!(
                        "Task.{element} must be the referral's {of_referral}, {r} (ServiceRequest/{id})"
                    ),
                    None => format!(
                        "ServiceRequest/{id} has no {of_referral}, so the Task has no {element}"
                    ),
                },
            );
        }
    }
}

/// A Reference to compare: `Type/id` for a local reference, else the reference as
/// written, else the whole element.
fn reference_key(value: Option<&Value>, local: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let value = value?;
    Some(match value.get("reference").and_then(Value::as_str) {
        Some(r) => local(r).unwrap_or_else(|| r.to_owned()),
        None => value.to_string(),
    })
}

fn is_fulfill(task: &Value) -> bool {
    task.pointer("/code/coding")
        .and_then(Value::as_array)
        .is_some_and(|codings| {
            codings.iter().any(|c| {
                c.get("system").and_then(Value::as_str) == Some(TASK_CODE_SYSTEM)
                    && c.get("code").and_then(Value::as_str) == Some("fulfill")
            })
        })
}

fn has_overdue_tag(task: &Value) -> bool {
    task.pointer("/meta/tag")
        .and_then(Value::as_array)
        .is_some_and(|tags| {
            tags.iter().any(|t| {
                t.get("system").and_then(Value::as_str) == Some(CS_TASK_FLAG)
                    && t.get("code").and_then(Value::as_str) == Some("overdue")
            })
        })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn local(r: &str) -> Option<String> {
        r.strip_prefix("http://hub/fhir/")
            .or(Some(r))
            .filter(|r| !r.contains(':'))
            .map(str::to_owned)
    }

    fn referral() -> Value {
        json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
               "subject": {"reference": "Patient/p"}, "requester": {"reference": "Practitioner/d"}})
    }

    fn task() -> Value {
        json!({"resourceType": "Task", "status": "requested", "intent": "order",
               "code": {"coding": [{"system": TASK_CODE_SYSTEM, "code": "fulfill"}]},
               "focus": {"reference": "ServiceRequest/s"},
               "for": {"reference": "http://hub/fhir/Patient/p"},
               "requester": {"reference": "Practitioner/d"},
               "owner": {"reference": "Organization/o"},
               "authoredOn": "2026-11-20"})
    }

    fn check(task: &Value, sr: Option<&Value>, open: Option<(&str, &str)>) -> Vec<String> {
        let org = json!({"resourceType": "Organization", "active": true});
        let ctx = Context {
            referral: Some(("s", sr)),
            open_task: open,
            owner: Some(("o", Some(&org))),
            local: &local,
        };
        check_new_task(task, &ctx)
            .into_iter()
            .map(|i| {
                assert_eq!(i.code, IssueCode::BusinessRule);
                i.expression.unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn a_task_as_the_hub_would_make_it_passes() {
        let sr = referral();
        assert!(check(&task(), Some(&sr), None).is_empty());
    }

    #[test]
    fn each_rule_names_its_element() {
        let sr = referral();
        let mut t = task();
        t["status"] = json!("completed");
        t["intent"] = json!("plan");
        t["code"] = json!({"text": "abort"});
        t["for"] = json!({"reference": "Patient/other"});
        t["requester"] = json!({"reference": "Organization/o"});
        t["meta"] = json!({"tag": [{"system": CS_TASK_FLAG, "code": "overdue"}]});
        t["businessStatus"] = business_status::BusinessStatus::Unroutable.codeable_concept();
        if let Some(o) = t.as_object_mut() {
            o.remove("authoredOn");
        }
        assert_eq!(
            check(&t, Some(&sr), None),
            [
                "Task.status",
                "Task.intent",
                "Task.code",
                "Task.authoredOn",
                "Task.businessStatus",
                "Task.meta.tag",
                "Task.for",
                "Task.requester"
            ]
        );
    }

    #[test]
    fn one_open_task_per_active_referral() {
        let mut sr = referral();
        assert_eq!(
            check(&task(), Some(&sr), Some(("t1", "requested"))),
            ["Task.focus"]
        );
        sr["status"] = json!("revoked");
        assert_eq!(check(&task(), Some(&sr), None), ["Task.focus"]);
        assert_eq!(check(&task(), None, None), ["Task.focus"]);
    }

    #[test]
    fn the_owner_is_a_stored_active_organization() {
        let sr = referral();
        let inactive = json!({"resourceType": "Organization", "active": false});
        for owner in [None, Some(("o", None)), Some(("o", Some(&inactive)))] {
            let ctx = Context {
                referral: Some(("s", Some(&sr))),
                open_task: None,
                owner,
                local: &local,
            };
            let issues = check_new_task(&task(), &ctx);
            assert_eq!(issues.len(), 1, "{issues:?}");
            assert_eq!(issues[0].expression.as_deref(), Some("Task.owner"));
        }
    }

    #[test]
    fn coordinators_and_the_referrals_requester_may_create() {
        assert!(may_create(Some(&Party::Coordinator), None));
        assert!(may_create(Some(&Party::Any), None));
        let gp = Party::Reference("Practitioner/d".into());
        assert!(may_create(Some(&gp), Some("Practitioner/d")));
        assert!(!may_create(Some(&gp), Some("Practitioner/x")));
        let owner = Party::Reference("Organization/o".into());
        assert!(!may_create(Some(&owner), Some("Practitioner/d")));
        assert!(!may_create(None, Some("Practitioner/d")));
    }
}
