//! The statistics facts of one referral (README "Statistics"): what the reports count,
//! derived from the referral's ServiceRequest, the stored versions of its Tasks and
//! the Positive Health responses they link. The same derivation keeps the projection
//! in step after every write and rebuilds it from the stored versions
//! (`wor-hub reports rebuild`), so both give the same row. A row holds codes,
//! references to directory resources, dates and numbers: never an identifier, name,
//! address or free text of a patient.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::business_status::{self, BusinessStatus};
use super::codes::{EXT_ROUTING_DECISION, WOR};
use super::positive_health::{is_positive_health, Dimension};
use super::route::requested_categories;

/// One version of a Task: when it was written (microseconds) and its body.
pub type TaskVersion = (i64, Value);

/// What the derivation reads.
pub struct Inputs<'a> {
    pub service_request: &'a Value,
    /// When the hub stored the ServiceRequest's first version (microseconds).
    pub received_at: i64,
    /// The GP practice: `Organization/<id>` (the requester, the requester's
    /// PractitionerRole's organisation, or the sending client's organisation), else
    /// the requesting `Practitioner/<id>`.
    pub practice: Option<String>,
    /// The referral's Tasks, each its versions oldest first, Tasks in creation order.
    pub tasks: &'a [Vec<TaskVersion>],
    /// The QuestionnaireResponses the Tasks' outputs name, by `QuestionnaireResponse/<id>`.
    pub responses: &'a dyn Fn(&str) -> Option<Value>,
}

/// The projection row of one referral.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Facts {
    /// The routing reference date (the referral date), `YYYY-MM-DD`.
    pub referral_date: String,
    pub received_at: i64,
    /// CBS code (`GM0484`) of the patient's municipality as routing found it.
    pub municipality: Option<String>,
    pub practice: Option<String>,
    /// `under-18` or `18-plus`, as routing decided it.
    pub age_group: Option<String>,
    /// `Organization/<id>` owning the referral's latest Task.
    pub organization: Option<String>,
    /// The first service category the referral asks for (`wor` when none).
    pub category: String,
    /// Some Task of the referral was owned by a welfare organisation.
    pub routed: bool,
    /// The latest Task is unroutable now: its `unroutable-reason` code.
    pub unroutable_reason: Option<String>,
    /// Some Task was accepted by its owner.
    pub accepted: bool,
    /// Some Task was rejected: the reason code of the latest rejection (`unspecified`
    /// when it carries none).
    pub rejection_reason: Option<String>,
    /// The referral got a second Task (re-routed after a rejection, or reassigned).
    pub rerouted: bool,
    /// The status of the referral's latest Task (`cancelled` when the ServiceRequest
    /// was revoked).
    pub status: String,
    /// When the owner first reported contact, intake held and completion
    /// (microseconds).
    pub contact_at: Option<i64>,
    pub intake_at: Option<i64>,
    pub completed_at: Option<i64>,
    /// Some Task has an output: the GP got feedback.
    pub feedback: bool,
    /// Positive Health scores of the first and the last linked response, per
    /// dimension in [`Dimension::ALL`] order.
    pub health_first: Option<Vec<Option<i64>>>,
    pub health_last: Option<Vec<Option<i64>>>,
}

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn local_id(reference: &str, ty: &str) -> Option<String> {
    let (t, id) = reference.rsplit_once('/')?;
    let t = t.rsplit('/').next()?;
    (t == ty && !id.is_empty()).then(|| format!("{ty}/{id}"))
}

/// The routing decision's part `name` (the first Task that carries one).
fn decision_part<'a>(tasks: &'a [Vec<TaskVersion>], name: &str) -> Option<&'a Value> {
    tasks
        .iter()
        .filter_map(|versions| versions.first())
        .filter_map(|(_, task)| task.get("extension").and_then(Value::as_array))
        .flatten()
        .filter(|e| text(e, "/url") == Some(EXT_ROUTING_DECISION))
        .filter_map(|e| e.get("extension").and_then(Value::as_array))
        .flatten()
        .find(|part| text(part, "/url") == Some(name))
}

fn status_of(task: &Value) -> &str {
    text(task, "/status").unwrap_or("requested")
}

fn first_code(task: &Value, element: &str) -> Option<String> {
    task.pointer(&format!("/{element}/coding/0/code"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Whether a version shows contact made with the patient.
fn shows_contact(task: &Value) -> bool {
    use BusinessStatus as B;
    matches!(
        business_status::read(task),
        Ok(Some(
            B::ContactMade
                | B::IntakePlanned
                | B::IntakeHeld
                | B::ActivityStarted
                | B::ClosedGoalReached
        ))
    ) || status_of(task) == "completed"
}

/// Whether a version shows the intake held.
fn shows_intake(task: &Value) -> bool {
    use BusinessStatus as B;
    matches!(
        business_status::read(task),
        Ok(Some(
            B::IntakeHeld | B::ActivityStarted | B::ClosedGoalReached
        ))
    )
}

fn earliest(current: Option<i64>, at: i64) -> Option<i64> {
    Some(current.map_or(at, |c| c.min(at)))
}

/// The facts of one referral.
pub fn derive(inputs: &Inputs<'_>) -> Facts {
    let sr = inputs.service_request;
    let tasks = inputs.tasks;
    let mut facts = Facts {
        received_at: inputs.received_at,
        practice: inputs.practice.clone(),
        ..Facts::default()
    };
    facts.referral_date = decision_part(tasks, "referenceDate")
        .and_then(|p| text(p, "/valueDate"))
        .or_else(|| text(sr, "/authoredOn").map(|a| a.get(..10).unwrap_or(a)))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            super::age::dutch_date(crate::fhir::instant::from_micros(inputs.received_at))
                .to_string()
        });
    facts.municipality = decision_part(tasks, "municipality")
        .and_then(|p| text(p, "/valueCoding/code").map(str::to_owned));
    facts.age_group =
        decision_part(tasks, "ageGroup").and_then(|p| text(p, "/valueCode").map(str::to_owned));
    facts.category = requested_categories(sr)
        .into_iter()
        .next()
        .map_or_else(|| WOR.to_owned(), |(_, code)| code);
    facts.rerouted = tasks.len() > 1;
    let mut outputs: Vec<String> = Vec::new();
    for versions in tasks {
        for (at, task) in versions {
            if text(task, "/owner/reference").is_some_and(|r| local_id(r, "Organization").is_some())
            {
                facts.routed = true;
            }
            let status = status_of(task);
            if matches!(status, "accepted" | "in-progress" | "on-hold" | "completed") {
                facts.accepted = true;
            }
            if status == "rejected" {
                facts.rejection_reason =
                    Some(first_code(task, "statusReason").unwrap_or_else(|| "unspecified".into()));
            }
            if shows_contact(task) {
                facts.contact_at = earliest(facts.contact_at, *at);
            }
            if shows_intake(task) {
                facts.intake_at = earliest(facts.intake_at, *at);
            }
            if status == "completed" {
                facts.completed_at = earliest(facts.completed_at, *at);
            }
        }
        if let Some((_, current)) = versions.last() {
            let refs = current
                .get("output")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .inspect(|_| facts.feedback = true)
                .filter_map(|o| text(o, "/valueReference/reference"))
                .filter_map(|r| local_id(r, "QuestionnaireResponse"));
            outputs.extend(refs);
        }
    }
    if let Some((_, latest)) = tasks.last().and_then(|v| v.last()) {
        facts.status = status_of(latest).to_owned();
        facts.organization =
            text(latest, "/owner/reference").and_then(|r| local_id(r, "Organization"));
        if facts.organization.is_none()
            && matches!(
                business_status::read(latest),
                Ok(Some(BusinessStatus::Unroutable))
            )
        {
            facts.unroutable_reason =
                Some(first_code(latest, "statusReason").unwrap_or_else(|| "unspecified".into()));
        }
    } else {
        facts.status = "no-task".into();
    }
    // A revoked referral whose Task was not closed otherwise (failed) was cancelled.
    let open = matches!(
        facts.status.as_str(),
        "requested" | "received" | "accepted" | "in-progress" | "on-hold" | "no-task"
    );
    if open && matches!(text(sr, "/status"), Some("revoked")) {
        facts.status = "cancelled".into();
    }
    let (first, last) = health(&outputs, inputs.responses);
    facts.health_first = first;
    facts.health_last = last;
    facts
}

/// The first and the last Positive Health response (by `authored`, then by order of
/// linking) among `outputs`: their scores per dimension. The last is none when only
/// one response exists.
#[allow(clippy::type_complexity)]
fn health(
    outputs: &[String],
    responses: &dyn Fn(&str) -> Option<Value>,
) -> (Option<Vec<Option<i64>>>, Option<Vec<Option<i64>>>) {
    let mut seen = Vec::new();
    let mut found: Vec<(String, Vec<Option<i64>>)> = Vec::new();
    for reference in outputs {
        if seen.contains(reference) {
            continue;
        }
        seen.push(reference.clone());
        let Some(response) = responses(reference) else {
            continue;
        };
        let questionnaire = text(&response, "/questionnaire").unwrap_or_default();
        if !is_positive_health(questionnaire) {
            continue;
        }
        let authored = text(&response, "/authored").unwrap_or_default().to_owned();
        found.push((authored, scores(&response)));
    }
    // A stable sort keeps the order of linking among equal dates.
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut it = found.into_iter().map(|(_, s)| s);
    let first = it.next();
    let last = it.next_back();
    (first, last)
}

/// A response's score per dimension.
pub fn scores(response: &Value) -> Vec<Option<i64>> {
    let items = response.get("item").and_then(Value::as_array);
    Dimension::ALL
        .iter()
        .map(|d| {
            items
                .into_iter()
                .flatten()
                .find(|i| text(i, "/linkId") == Some(d.link_id()))
                .and_then(|i| i.pointer("/answer/0/valueInteger"))
                .and_then(Value::as_i64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(status: &str, bs: Option<&str>, owner: Option<&str>) -> Value {
        let mut t = json!({
            "resourceType": "Task", "status": status, "intent": "order",
            "extension": [{"url": EXT_ROUTING_DECISION, "extension": [
                {"url": "referenceDate", "valueDate": "2026-03-02"},
                {"url": "ageGroup", "valueCode": "18-plus"},
                {"url": "municipality", "valueCoding": {"code": "GM0484"}}
            ]}]
        });
        if let Some(bs) = bs {
            t["businessStatus"] = json!({"coding": [{"system": super::super::codes::CS_TASK_BUSINESS_STATUS, "code": bs}]});
        }
        if let Some(o) = owner {
            t["owner"] = json!({"reference": o});
        }
        t
    }

    fn ph(authored: &str, score: i64) -> Value {
        json!({"resourceType": "QuestionnaireResponse", "status": "completed",
            "questionnaire": super::super::codes::QUESTIONNAIRE_POSITIVE_HEALTH,
            "authored": authored,
            "item": Dimension::ALL.iter().map(|d| json!({"linkId": d.link_id(), "answer": [{"valueInteger": score}]})).collect::<Vec<_>>()})
    }

    #[test]
    fn a_referral_followed_to_completion() {
        let sr = json!({"resourceType": "ServiceRequest", "status": "active", "authoredOn": "2026-03-01T10:00:00+01:00"});
        let owner = Some("Organization/tom");
        let mut done = task("completed", Some("closed-goal-reached"), owner);
        done["output"] = json!([
            {"type": {"text": "x"}, "valueReference": {"reference": "QuestionnaireResponse/b"}},
            {"type": {"text": "x"}, "valueReference": {"reference": "QuestionnaireResponse/a"}}
        ]);
        let tasks = vec![vec![
            (10, task("requested", None, owner)),
            (20, task("accepted", None, owner)),
            (30, task("in-progress", Some("contact-made"), owner)),
            (40, task("in-progress", Some("intake-held"), owner)),
            (50, task("in-progress", Some("contact-made"), owner)),
            (60, done),
        ]];
        let responses = |r: &str| match r {
            "QuestionnaireResponse/a" => Some(ph("2026-03-10", 4)),
            "QuestionnaireResponse/b" => Some(ph("2026-06-10", 7)),
            _ => None,
        };
        let f = derive(&Inputs {
            service_request: &sr,
            received_at: 5,
            practice: Some("Organization/p".into()),
            tasks: &tasks,
            responses: &responses,
        });
        assert_eq!(f.referral_date, "2026-03-02");
        assert_eq!(f.municipality.as_deref(), Some("GM0484"));
        assert_eq!(f.age_group.as_deref(), Some("18-plus"));
        assert_eq!(f.category, "wor");
        assert!(f.routed && f.accepted && f.feedback && !f.rerouted);
        assert_eq!(
            (f.contact_at, f.intake_at, f.completed_at),
            (Some(30), Some(40), Some(60))
        );
        assert_eq!(f.status, "completed");
        assert_eq!(f.organization.as_deref(), Some("Organization/tom"));
        assert_eq!(f.health_first, Some(vec![Some(4); 6]));
        assert_eq!(f.health_last, Some(vec![Some(7); 6]));
        assert_eq!(f.unroutable_reason, None);
    }

    #[test]
    fn rejected_then_unroutable() {
        let sr = json!({"resourceType": "ServiceRequest", "status": "active"});
        let mut rejected = task("rejected", None, Some("Organization/a"));
        rejected["statusReason"] = json!({"coding": [{"code": "capacity"}]});
        let mut unroutable = task("requested", Some("unroutable"), None);
        unroutable["statusReason"] = json!({"coding": [{"code": "all-rejected"}]});
        let tasks = vec![
            vec![
                (1, task("requested", None, Some("Organization/a"))),
                (2, rejected),
            ],
            vec![(3, unroutable)],
        ];
        let f = derive(&Inputs {
            service_request: &sr,
            received_at: 1,
            practice: None,
            tasks: &tasks,
            responses: &|_| None,
        });
        assert!(f.routed && f.rerouted && !f.accepted);
        assert_eq!(f.rejection_reason.as_deref(), Some("capacity"));
        assert_eq!(f.unroutable_reason.as_deref(), Some("all-rejected"));
        assert_eq!(f.status, "requested");
        assert_eq!(f.organization, None);
        assert_eq!(f.contact_at, None);
    }

    #[test]
    fn a_revoked_referral_counts_as_cancelled() {
        let sr = json!({"resourceType": "ServiceRequest", "status": "revoked"});
        let tasks = vec![vec![(1, task("requested", None, Some("Organization/a")))]];
        let f = derive(&Inputs {
            service_request: &sr,
            received_at: 1,
            practice: None,
            tasks: &tasks,
            responses: &|_| None,
        });
        assert_eq!(f.status, "cancelled");
    }
}
