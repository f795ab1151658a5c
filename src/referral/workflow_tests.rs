use serde_json::{json, Value};

use super::*;
use crate::referral::codes::CS_TASK_BUSINESS_STATUS;

const NOW: &str = "2026-11-23T10:00:00Z";

fn task(status: &str) -> Value {
    json!({
        "resourceType": "Task",
        "id": "t1",
        "status": status,
        "intent": "order",
        "focus": {"reference": "ServiceRequest/sr1"},
        "owner": {"reference": "Organization/o1"},
        "requester": {"reference": "Practitioner/p1"},
        "lastModified": "2026-11-01T00:00:00Z"
    })
}

fn moved(old: &Value, status: &str) -> Value {
    let mut t = old.clone();
    t["status"] = json!(status);
    t
}

fn with_reason(mut t: Value) -> Value {
    t["statusReason"] = json!({"text": "no capacity"});
    t
}

const OWNER: Roles = Roles {
    owner: true,
    requester: false,
    coordinator: false,
};
const REQUESTER: Roles = Roles {
    owner: false,
    requester: true,
    coordinator: false,
};

#[test]
fn owner_walks_the_happy_path() {
    let mut t = task("requested");
    for (next, effect) in [
        ("received", Effect::None),
        ("accepted", Effect::None),
        ("in-progress", Effect::None),
        ("completed", Effect::ServiceRequest("completed")),
    ] {
        let r = review(&t, &moved(&t, next), OWNER, NOW).unwrap();
        assert_eq!(r.effect, effect, "{next}");
        assert_eq!(r.task["lastModified"], NOW);
        t = r.task;
    }
}

#[test]
fn illegal_transitions_name_both_statuses() {
    for (from, to) in [
        ("requested", "in-progress"),
        ("requested", "completed"),
        ("received", "requested"),
        ("received", "completed"),
        ("accepted", "completed"),
        ("on-hold", "completed"),
        ("completed", "in-progress"),
        ("rejected", "accepted"),
    ] {
        let old = task(from);
        let err = review(&old, &with_reason(moved(&old, to)), Roles::ALL, NOW).unwrap_err();
        match err {
            Refusal::Transition { from: f, to: t, .. } => {
                assert_eq!((f.code(), t.code()), (from, to));
            }
            other => panic!("{from}->{to}: {other:?}"),
        }
    }
}

#[test]
fn received_is_optional_as_in_r4() {
    // Gravity-style: the owner accepts or rejects straight from requested.
    let old = task("requested");
    let r = review(&old, &moved(&old, "accepted"), OWNER, NOW).unwrap();
    assert_eq!(r.effect, Effect::None);
    assert_eq!(r.task["status"], "accepted");
    assert_eq!(
        review(&old, &moved(&old, "rejected"), OWNER, NOW).unwrap_err(),
        Refusal::ReasonRequired(TaskStatus::Rejected)
    );
    let r = review(&old, &with_reason(moved(&old, "rejected")), OWNER, NOW).unwrap();
    assert_eq!(
        r.effect,
        Effect::Reroute {
            reason: "no capacity".into()
        }
    );
    // Still the owner's moves only.
    for to in ["accepted", "rejected"] {
        assert!(matches!(
            review(&old, &with_reason(moved(&old, to)), REQUESTER, NOW),
            Err(Refusal::Transition { .. })
        ));
    }
    assert_eq!(
        next_statuses(TaskStatus::Requested),
        ["received", "accepted", "rejected", "cancelled"]
    );
}

#[test]
fn reasons_are_required_where_the_spec_says() {
    let old = task("received");
    assert_eq!(
        review(&old, &moved(&old, "rejected"), OWNER, NOW).unwrap_err(),
        Refusal::ReasonRequired(TaskStatus::Rejected)
    );
    let r = review(&old, &with_reason(moved(&old, "rejected")), OWNER, NOW).unwrap();
    assert_eq!(
        r.effect,
        Effect::Reroute {
            reason: "no capacity".into()
        }
    );
}

#[test]
fn the_owner_may_not_touch_other_elements() {
    let old = task("received");
    let mut new = old.clone();
    new["focus"] = json!({"reference": "ServiceRequest/other"});
    assert_eq!(
        review(&old, &new, OWNER, NOW).unwrap_err(),
        Refusal::Element {
            element: "Task.focus".into(),
            roles: "owner".into()
        }
    );
    let mut new = old.clone();
    new["priority"] = json!("urgent");
    assert!(matches!(
        review(&old, &new, OWNER, NOW),
        Err(Refusal::Element { element, .. }) if element == "Task.priority"
    ));
}

#[test]
fn requester_cancels_at_once_before_work_and_by_request_after() {
    let old = task("accepted");
    let r = review(&old, &with_reason(moved(&old, "cancelled")), REQUESTER, NOW).unwrap();
    assert_eq!(r.effect, Effect::ServiceRequest("revoked"));
    assert_eq!(r.task["status"], "cancelled");

    let old = task("in-progress");
    let r = review(&old, &with_reason(moved(&old, "cancelled")), REQUESTER, NOW).unwrap();
    assert_eq!(r.effect, Effect::CancellationRequested);
    assert_eq!(r.task["status"], "in-progress");
    assert_eq!(
        r.task["businessStatus"]["coding"][0]["code"],
        "cancellation-requested"
    );
    assert!(r.task.get("statusReason").is_none());

    // The owner confirms.
    let requested = r.task;
    let confirm = with_reason(moved(&requested, "cancelled"));
    let r = review(&requested, &confirm, OWNER, NOW).unwrap();
    assert_eq!(r.effect, Effect::ServiceRequest("revoked"));
    // Without a request the owner cannot cancel.
    let old = task("in-progress");
    assert!(matches!(
        review(&old, &with_reason(moved(&old, "cancelled")), OWNER, NOW),
        Err(Refusal::Transition { .. })
    ));
}

#[test]
fn hub_managed_business_statuses_cannot_be_introduced() {
    let old = task("in-progress");
    let mut new = old.clone();
    new["businessStatus"] =
        json!({"coding": [{"system": CS_TASK_BUSINESS_STATUS, "code": "cancellation-requested"}]});
    assert_eq!(
        review(&old, &new, OWNER, NOW).unwrap_err(),
        Refusal::HubManaged(BusinessStatus::CancellationRequested)
    );
}

#[test]
fn overdue_needs_the_deadline_passed_and_no_contact() {
    let day = 86_400_000_000_i64;
    let t = task("received");
    assert!(!is_overdue(&t, Some(0), 14 * day, 14 * day));
    assert!(is_overdue(&t, Some(0), 14 * day + 1, 14 * day));
    let mut contacted = t.clone();
    contacted["businessStatus"] = BusinessStatus::ContactMade.codeable_concept();
    assert!(!is_overdue(&contacted, Some(0), 20 * day, 14 * day));
    assert!(!is_overdue(
        &task("in-progress"),
        Some(0),
        20 * day,
        14 * day
    ));

    // The path does not matter: accepted straight from requested still awaits
    // contact; a rejected Task (direct or not) is closed.
    assert!(is_overdue(&task("accepted"), Some(0), 20 * day, 14 * day));
    assert!(!is_overdue(&task("rejected"), Some(0), 20 * day, 14 * day));

    let mut t = task("received");
    assert!(set_overdue_tag(&mut t, true));
    assert!(!set_overdue_tag(&mut t, true));
    assert_eq!(t["meta"]["tag"][0]["code"], "overdue");
    assert!(set_overdue_tag(&mut t, false));
    assert!(t["meta"].get("tag").is_none());
}
