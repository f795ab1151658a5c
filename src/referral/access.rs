//! Who may read a referral's resources (README "Security"). A referral is its
//! ServiceRequest, the Tasks that carry it out (`Task.focus`), its Patient, the
//! Consents of that Patient and what the Tasks report back (`Task.output`).
//!
//! - The **referrer** (the organisation whose client sent it, or the requester when
//!   that is an Organization or a PractitionerRole of one) reads all of it.
//! - A **performer** (the owner of one of its Tasks) reads its Task and the
//!   ServiceRequest; while its Task is not rejected (a rejected Task stays readable to
//!   its owner, nothing else does) also the Consents and what its Task reports, and the
//!   Patient only while an active Consent of the Patient permits it (WOR practice: the
//!   GP asks the patient's consent before contact details go to the welfare
//!   organisation). Without one the Patient is *withheld*: a read of it says why.
//!
//! Pure: the application gathers the facts and stores the rows.

use serde_json::Value;

use crate::fhir::dates::date_range;
use crate::store::{Grant, Relation};

/// What decides who reads a referral.
#[derive(Debug, Clone)]
pub struct Referral<'a> {
    /// The ServiceRequest's id and body.
    pub id: &'a str,
    pub service_request: &'a Value,
    /// Organisations whose clients sent the ServiceRequest.
    pub senders: &'a [String],
    /// The organisation of the requester when it is a PractitionerRole.
    pub requester_organization: Option<String>,
    /// The Tasks whose focus is the ServiceRequest: id and body.
    pub tasks: &'a [(String, Value)],
    /// The Consents of the referral: those it carries in `supportingInfo` and those
    /// of its Patient, id and body.
    pub consents: &'a [(String, Value)],
    /// Now, in microseconds (a Consent's provision period is checked against it).
    pub now: i64,
}

/// `Type/id` of a relative literal reference.
pub fn local_ref(reference: &str) -> Option<(&str, &str)> {
    let (ty, id) = reference.split_once('/')?;
    let type_ok = ty.starts_with(|c: char| c.is_ascii_uppercase())
        && ty.chars().all(|c| c.is_ascii_alphanumeric());
    let id_ok = !id.is_empty() && !id.contains('/');
    (type_ok && id_ok && !reference.contains(':')).then_some((ty, id))
}

fn reference_at<'v>(value: &'v Value, pointer: &str) -> Option<(&'v str, &'v str)> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .and_then(local_ref)
}

/// The organisations that referred: the senders, and the requester when it is (or,
/// as a PractitionerRole, works for) an Organization.
pub fn referrers(r: &Referral<'_>) -> Vec<String> {
    let mut out: Vec<String> = r.senders.to_vec();
    if let Some(("Organization", id)) = reference_at(r.service_request, "/requester/reference") {
        out.push(format!("Organization/{id}"));
    }
    out.extend(r.requester_organization.clone());
    out.sort();
    out.dedup();
    out
}

/// When a Consent lets the referral's performers read the Patient's details: `None`
/// when it never does (not active, of another Patient, a denial at its top level);
/// else its provision period as (from, until) in microseconds, `None` ends unbounded.
pub fn consent_window(consent: &Value, patient: &str) -> Option<(Option<i64>, Option<i64>)> {
    let active = consent.get("status").and_then(Value::as_str) == Some("active");
    let same_patient = reference_at(consent, "/patient/reference")
        .is_some_and(|(ty, id)| ty == "Patient" && id == patient);
    let provision = consent.get("provision");
    let denied = provision
        .and_then(|p| p.get("type"))
        .and_then(Value::as_str)
        == Some("deny");
    if !active || !same_patient || denied {
        return None;
    }
    let period = provision.and_then(|p| p.get("period"));
    let bound = |key: &str| -> Result<Option<(i64, i64)>, ()> {
        match period.and_then(|p| p.get(key)).and_then(Value::as_str) {
            None => Ok(None),
            Some(text) => date_range(text).map(Some).ok_or(()),
        }
    };
    // An unreadable bound permits nothing (the schema check refuses such dates).
    let from = bound("start").ok()?.map(|(low, _)| low);
    let until = bound("end").ok()?.map(|(_, high)| high);
    Some((from, until))
}

/// Whether a Consent lets the referral's performers read the Patient at `now`:
/// active, for this Patient, not a denial at its top level, and within its provision
/// period (if it has one).
pub fn consent_permits(consent: &Value, patient: &str, now: i64) -> bool {
    consent_window(consent, patient).is_some_and(|w| covers(w, now))
}

fn covers((from, until): (Option<i64>, Option<i64>), at: i64) -> bool {
    from.is_none_or(|f| f <= at) && until.is_none_or(|u| at <= u)
}

/// The window in which performers read the Patient: that of a Consent permitting
/// now (the one lasting longest), else of the next one to start; `None`: none.
fn patient_window(r: &Referral<'_>, patient: &str) -> Option<(Option<i64>, Option<i64>)> {
    let windows: Vec<_> = r
        .consents
        .iter()
        .filter_map(|(_, c)| consent_window(c, patient))
        .collect();
    let now_ = windows
        .iter()
        .filter(|w| covers(**w, r.now))
        .max_by_key(|(_, until)| until.unwrap_or(i64::MAX));
    let next = || {
        windows
            .iter()
            .filter(|(from, _)| from.is_some_and(|f| f > r.now))
            .min_by_key(|(from, _)| *from)
    };
    now_.or_else(next).copied()
}

/// Why a performer does not read the Patient, for the Task's note and the refusal.
pub const WITHHELD_REASON: &str = "no active Consent of the patient permits sharing the patient's details with the welfare organisation (the GP asks for it before contact details are shared)";

/// Every row the referral brings.
pub fn grants(r: &Referral<'_>) -> Vec<Grant> {
    let patient = reference_at(r.service_request, "/subject/reference")
        .filter(|(ty, _)| *ty == "Patient")
        .map(|(_, id)| id);
    let window = patient.and_then(|p| patient_window(r, p));
    let permitted = window.is_some_and(|w| covers(w, r.now));
    let mut out = Vec::new();
    let mut patient_rows = Vec::new();
    let mut grant = |org: &str, ty: &str, id: &str, relation: Relation| {
        out.push(row(org, ty, id, relation, (None, None)));
    };
    for org in referrers(r) {
        let rel = Relation::Referrer;
        grant(&org, "ServiceRequest", r.id, rel);
        if let Some(p) = patient {
            grant(&org, "Patient", p, rel);
        }
        for (id, _) in r.consents {
            grant(&org, "Consent", id, rel);
        }
        for (id, task) in r.tasks {
            grant(&org, "Task", id, rel);
            for (ty, out_id) in outputs(task) {
                grant(&org, ty, out_id, rel);
            }
        }
    }
    for (id, task) in r.tasks {
        let Some(("Organization", owner)) = reference_at(task, "/owner/reference") else {
            continue;
        };
        let org = format!("Organization/{owner}");
        let rel = Relation::Performer;
        grant(&org, "Task", id, rel);
        grant(&org, "ServiceRequest", r.id, rel);
        let status = task.get("status").and_then(Value::as_str);
        if matches!(status, Some("rejected" | "entered-in-error")) {
            continue;
        }
        for (consent_id, _) in r.consents {
            grant(&org, "Consent", consent_id, rel);
        }
        for (ty, out_id) in outputs(task) {
            grant(&org, ty, out_id, rel);
        }
        if let (Some(p), Some(window)) = (patient, window) {
            patient_rows.push(row(&org, "Patient", p, rel, window));
        }
        if let (Some(p), false) = (patient, permitted) {
            patient_rows.push(row(&org, "Patient", p, Relation::Withheld, (None, None)));
        }
    }
    out.extend(patient_rows);
    out.sort();
    out.dedup();
    out
}

fn row(
    org: &str,
    ty: &str,
    id: &str,
    relation: Relation,
    (valid_from, valid_until): (Option<i64>, Option<i64>),
) -> Grant {
    Grant {
        organization: org.to_owned(),
        resource_type: ty.to_owned(),
        resource_id: id.to_owned(),
        relation,
        valid_from,
        valid_until,
    }
}

/// What a Task reports back (`Task.output.valueReference`), as `(type, id)`.
fn outputs(task: &Value) -> Vec<(&str, &str)> {
    task.get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| reference_at(o, "/valueReference/reference"))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000_000_000; // 2027-01-15

    fn sr() -> Value {
        json!({"resourceType": "ServiceRequest", "status": "active",
               "subject": {"reference": "Patient/p"},
               "requester": {"reference": "Practitioner/dr"}})
    }

    fn task(id: &str, owner: &str, status: &str) -> (String, Value) {
        (
            id.to_owned(),
            json!({"resourceType": "Task", "status": status,
                   "owner": {"reference": owner},
                   "output": [{"type": {"text": "intake"},
                               "valueReference": {"reference": format!("QuestionnaireResponse/q-{id}")}}]}),
        )
    }

    fn consent(status: &str, patient: &str) -> (String, Value) {
        (
            "c".to_owned(),
            json!({"resourceType": "Consent", "status": status,
                   "patient": {"reference": patient}}),
        )
    }

    fn has(grants: &[Grant], org: &str, what: &str, relation: Relation) -> bool {
        grants.iter().any(|g| {
            g.organization == org
                && format!("{}/{}", g.resource_type, g.resource_id) == what
                && g.relation == relation
        })
    }

    /// Readable at [`NOW`]: a reading row whose window covers it.
    fn readable(grants: &[Grant], org: &str, what: &str) -> bool {
        grants.iter().any(|g| {
            g.organization == org
                && format!("{}/{}", g.resource_type, g.resource_id) == what
                && matches!(g.relation, Relation::Referrer | Relation::Performer)
                && covers((g.valid_from, g.valid_until), NOW)
        })
    }

    #[test]
    fn a_consent_period_bounds_the_performers_rows() {
        let sr = sr();
        let tasks = vec![task("t", "Organization/w", "accepted")];
        let consent = |period: Value| {
            vec![(
                "c".to_owned(),
                json!({"resourceType": "Consent", "status": "active",
                       "patient": {"reference": "Patient/p"},
                       "provision": {"period": period}}),
            )]
        };
        let referral = |consents: &[(String, Value)]| {
            grants(&Referral {
                id: "s",
                service_request: &sr,
                senders: &[],
                requester_organization: None,
                tasks: &tasks,
                consents,
                now: NOW,
            })
        };
        let patient_rows = |g: &[Grant]| -> Vec<(Relation, Option<i64>, Option<i64>)> {
            g.iter()
                .filter(|g| g.resource_type == "Patient")
                .map(|g| (g.relation, g.valid_from, g.valid_until))
                .collect()
        };
        // Until the end of 2027-06-30: readable now, bounded.
        let g = referral(&consent(json!({"end": "2027-06-30"})));
        assert!(readable(&g, "Organization/w", "Patient/p"));
        let rows = patient_rows(&g);
        assert_eq!(rows.len(), 1, "{rows:?}");
        let until = rows[0].2.unwrap();
        assert!(until > NOW && !covers((None, Some(until)), until + 1));
        // From 2027-03-01: not yet (withheld now), a row that starts then.
        let g = referral(&consent(json!({"start": "2027-03-01"})));
        assert!(!readable(&g, "Organization/w", "Patient/p"));
        assert!(has(&g, "Organization/w", "Patient/p", Relation::Withheld));
        let from = patient_rows(&g)
            .iter()
            .find(|r| r.0 == Relation::Performer)
            .and_then(|r| r.1)
            .unwrap();
        assert!(from > NOW);
    }

    #[test]
    fn the_referrer_reads_everything_of_its_referral() {
        let sr = sr();
        let senders = vec!["Organization/gp".to_owned()];
        let tasks = vec![
            task("t1", "Organization/w1", "rejected"),
            task("t2", "Organization/w2", "accepted"),
        ];
        let consents = vec![consent("active", "Patient/p")];
        let r = Referral {
            id: "s",
            service_request: &sr,
            senders: &senders,
            requester_organization: None,
            tasks: &tasks,
            consents: &consents,
            now: NOW,
        };
        let g = grants(&r);
        for what in [
            "ServiceRequest/s",
            "Patient/p",
            "Consent/c",
            "Task/t1",
            "Task/t2",
            "QuestionnaireResponse/q-t2",
        ] {
            assert!(
                has(&g, "Organization/gp", what, Relation::Referrer),
                "{what}"
            );
        }
    }

    #[test]
    fn a_performer_reads_its_task_and_with_consent_the_patient() {
        let sr = sr();
        let tasks = vec![
            task("t1", "Organization/w1", "rejected"),
            task("t2", "Organization/w2", "accepted"),
        ];
        let consents = vec![consent("active", "Patient/p")];
        let r = Referral {
            id: "s",
            service_request: &sr,
            senders: &[],
            requester_organization: None,
            tasks: &tasks,
            consents: &consents,
            now: NOW,
        };
        let g = grants(&r);
        let w2 = "Organization/w2";
        for what in [
            "Task/t2",
            "ServiceRequest/s",
            "Patient/p",
            "Consent/c",
            "QuestionnaireResponse/q-t2",
        ] {
            assert!(readable(&g, w2, what), "{what}");
        }
        assert!(!readable(&g, w2, "Task/t1"));
        // The rejecting organisation keeps its Task and the ServiceRequest, nothing else.
        let w1 = "Organization/w1";
        assert!(readable(&g, w1, "Task/t1"));
        assert!(readable(&g, w1, "ServiceRequest/s"));
        for what in [
            "Task/t2",
            "Patient/p",
            "Consent/c",
            "QuestionnaireResponse/q-t1",
        ] {
            assert!(!readable(&g, w1, what), "{what}");
        }
    }

    #[test]
    fn without_an_active_consent_the_patient_is_withheld() {
        let sr = sr();
        let tasks = vec![task("t", "Organization/w", "requested")];
        for consents in [
            vec![],
            vec![consent("inactive", "Patient/p")],
            vec![consent("active", "Patient/other")],
            vec![(
                "c".to_owned(),
                json!({"resourceType": "Consent", "status": "active",
                       "patient": {"reference": "Patient/p"},
                       "provision": {"type": "deny"}}),
            )],
            vec![(
                "c".to_owned(),
                json!({"resourceType": "Consent", "status": "active",
                       "patient": {"reference": "Patient/p"},
                       "provision": {"period": {"end": "2026-12-31"}}}),
            )],
        ] {
            let r = Referral {
                id: "s",
                service_request: &sr,
                senders: &[],
                requester_organization: None,
                tasks: &tasks,
                consents: &consents,
                now: NOW,
            };
            let g = grants(&r);
            assert!(!readable(&g, "Organization/w", "Patient/p"), "{consents:?}");
            assert!(has(&g, "Organization/w", "Patient/p", Relation::Withheld));
            assert!(readable(&g, "Organization/w", "Task/t"));
        }
    }

    #[test]
    fn the_requester_organization_refers() {
        let mut sr = sr();
        sr["requester"] = json!({"reference": "Organization/gp2"});
        let r = Referral {
            id: "s",
            service_request: &sr,
            senders: &["Organization/gp".to_owned()],
            requester_organization: Some("Organization/gp3".into()),
            tasks: &[],
            consents: &[],
            now: NOW,
        };
        assert_eq!(
            referrers(&r),
            ["Organization/gp", "Organization/gp2", "Organization/gp3"]
        );
    }

    #[test]
    fn only_relative_references_are_local() {
        assert_eq!(local_ref("Patient/1"), Some(("Patient", "1")));
        assert_eq!(local_ref("urn:uuid:1"), None);
        assert_eq!(local_ref("http://x/Patient/1"), None);
        assert_eq!(local_ref("Patient/1/_history/2"), None);
        assert_eq!(local_ref("patient/1"), None);
    }
}
