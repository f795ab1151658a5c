//! The Task the hub creates for a routed (or unroutable) referral, and the routing
//! decision as FHIR: the `routing-decision` extension and `$route` Parameters.

use serde_json::{json, Map, Value};

use super::codes::{
    CS_AGE_GROUP, CS_CBS_MUNICIPALITY, CS_MUNICIPALITY_SOURCE, CS_TASK_BUSINESS_STATUS,
    CS_UNROUTABLE_REASON, EXT_ROUTING_DECISION, TASK_CODE_SYSTEM,
};
use super::route::Decision;

/// What the Task points at, besides the decision.
#[derive(Debug, Clone)]
pub struct TaskLinks {
    /// `ServiceRequest/<id>`; None when explaining a referral that is not stored.
    pub focus: Option<String>,
    /// `Patient/<id>`, when the subject is a stored Patient.
    pub patient: Option<String>,
    /// The referral's `requester`, copied as is.
    pub requester: Option<Value>,
    /// When the referral was authored (its `authoredOn`), else when the hub received it.
    pub authored_on: String,
    /// Now, as a FHIR instant.
    pub now: String,
}

/// The Task for a referral: intent `order`, code `fulfill`, status `requested`, owned
/// by the chosen organisation, or without owner and with businessStatus `unroutable`.
pub fn build_task(decision: &Decision, links: &TaskLinks) -> Value {
    let mut task = Map::new();
    task.insert("resourceType".into(), json!("Task"));
    task.insert("extension".into(), json!([decision_extension(decision)]));
    task.insert("status".into(), json!("requested"));
    if let Some(reason) = decision.unroutable {
        task.insert(
            "statusReason".into(),
            json!({
                "coding": [{"system": CS_UNROUTABLE_REASON, "code": reason.code()}],
                "text": reason.display(),
            }),
        );
        task.insert(
            "businessStatus".into(),
            json!({
                "coding": [{"system": CS_TASK_BUSINESS_STATUS, "code": "unroutable", "display": "Unroutable"}],
                "text": "No welfare organisation could be chosen: a coordinator must assign an owner",
            }),
        );
    }
    task.insert("intent".into(), json!("order"));
    task.insert(
        "code".into(),
        json!({"coding": [{"system": TASK_CODE_SYSTEM, "code": "fulfill"}]}),
    );
    if let Some(focus) = &links.focus {
        task.insert("focus".into(), json!({"reference": focus}));
    }
    if let Some(patient) = &links.patient {
        task.insert("for".into(), json!({"reference": patient}));
    }
    task.insert("authoredOn".into(), json!(links.authored_on));
    task.insert("lastModified".into(), json!(links.now));
    if let Some(requester) = &links.requester {
        task.insert("requester".into(), requester.clone());
    }
    if let Some(choice) = &decision.chosen {
        let mut owner = json!({"reference": format!("Organization/{}", choice.organization)});
        if let Some(name) = &choice.organization_name {
            owner["display"] = json!(name);
        }
        task.insert("owner".into(), owner);
    }
    task.insert(
        "note".into(),
        json!([{"time": links.now, "text": summary(decision)}]),
    );
    Value::Object(task)
}

/// One line for people: who, and why.
pub fn summary(decision: &Decision) -> String {
    let mut facts = Vec::new();
    if let Some(m) = decision.municipality {
        facts.push(format!(
            "municipality {} {} ({})",
            m.code,
            m.name,
            decision.municipality_source.code()
        ));
    }
    if let Some(g) = decision.age_group {
        facts.push(format!(
            "age group {} on {}",
            g.code(),
            decision.reference_date
        ));
    }
    let facts = facts.join(", ");
    match (&decision.chosen, decision.unroutable) {
        (Some(c), _) => format!(
            "Routed to {} by HealthcareService/{}: {facts}; rule: {}",
            c.organization_name.as_deref().unwrap_or(&c.organization),
            c.service,
            decision.rule.as_deref().unwrap_or_default()
        ),
        (None, Some(reason)) => format!("Unroutable: {}. {facts}", reason.display()),
        (None, None) => format!("Not routed. {facts}"),
    }
}

/// The `routing-decision` extension (profiles/StructureDefinition-routing-decision.json).
pub fn decision_extension(decision: &Decision) -> Value {
    let mut parts = vec![
        json!({"url": "outcome", "valueCode": if decision.chosen.is_some() { "routed" } else { "unroutable" }}),
        json!({"url": "referenceDate", "valueDate": decision.reference_date.to_string()}),
    ];
    if let Some(g) = decision.age_group {
        parts.push(json!({"url": "ageGroup", "valueCode": g.code()}));
    }
    if let Some(m) = decision.municipality {
        parts.push(json!({"url": "municipality", "valueCoding": municipality_coding(m)}));
    }
    parts.push(
        json!({"url": "municipalitySource", "valueCode": decision.municipality_source.code()}),
    );
    parts.extend(
        decision
            .steps
            .iter()
            .map(|s| json!({"url": "step", "valueString": s})),
    );
    parts.extend(decision.candidates.iter().map(|(id, name)| {
        json!({"url": "candidate", "valueReference": service_reference(id, name.as_deref())})
    }));
    if let Some(c) = &decision.chosen {
        parts.push(json!({"url": "chosen", "valueReference": service_reference(&c.service, c.service_name.as_deref())}));
    }
    if let Some(rule) = &decision.rule {
        parts.push(json!({"url": "rule", "valueString": rule}));
    }
    json!({"url": EXT_ROUTING_DECISION, "extension": parts})
}

fn municipality_coding(m: &super::municipality::Municipality) -> Value {
    json!({"system": CS_CBS_MUNICIPALITY, "code": m.code, "display": m.name})
}

fn service_reference(id: &str, name: Option<&str>) -> Value {
    let mut r = json!({"reference": format!("HealthcareService/{id}")});
    if let Some(name) = name {
        r["display"] = json!(name);
    }
    r
}

/// The answer of `$route`: the decision as Parameters, with the Task that would be
/// created.
pub fn decision_parameters(decision: &Decision, task: Value) -> Value {
    let mut parameter = vec![json!({
        "name": "outcome",
        "valueCode": if decision.chosen.is_some() { "routed" } else { "unroutable" },
    })];
    if let Some(c) = &decision.chosen {
        let mut org = json!({"reference": format!("Organization/{}", c.organization)});
        if let Some(name) = &c.organization_name {
            org["display"] = json!(name);
        }
        parameter.push(json!({"name": "organization", "valueReference": org}));
        parameter.push(json!({"name": "healthcareService", "valueReference": service_reference(&c.service, c.service_name.as_deref())}));
    }
    if let Some(reason) = decision.unroutable {
        parameter.push(json!({
            "name": "reason",
            "valueCoding": {"system": CS_UNROUTABLE_REASON, "code": reason.code(), "display": reason.display()},
        }));
    }
    parameter
        .push(json!({"name": "referenceDate", "valueDate": decision.reference_date.to_string()}));
    if let Some(g) = decision.age_group {
        parameter.push(
            json!({"name": "ageGroup", "valueCoding": {"system": CS_AGE_GROUP, "code": g.code()}}),
        );
    }
    if let Some(m) = decision.municipality {
        parameter.push(json!({"name": "municipality", "valueCoding": municipality_coding(m)}));
    }
    parameter.push(json!({
        "name": "municipalitySource",
        "valueCoding": {"system": CS_MUNICIPALITY_SOURCE, "code": decision.municipality_source.code()},
    }));
    parameter.extend(decision.candidates.iter().map(|(id, name)| {
        json!({"name": "candidate", "valueReference": service_reference(id, name.as_deref())})
    }));
    if let Some(rule) = &decision.rule {
        parameter.push(json!({"name": "rule", "valueString": rule}));
    }
    parameter.extend(
        decision
            .steps
            .iter()
            .map(|s| json!({"name": "step", "valueString": s})),
    );
    parameter.push(json!({"name": "summary", "valueString": summary(decision)}));
    parameter.push(json!({"name": "task", "resource": task}));
    json!({"resourceType": "Parameters", "parameter": parameter})
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use time::macros::datetime;

    use super::*;
    use crate::fhir::validate::validate_resource;
    use crate::referral::route::{route, Directory, PostcodeHit};

    fn decision(patient: Value) -> Decision {
        let sr = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                        "subject": {"reference": "Patient/p"}});
        let result = route(
            &sr,
            Some(&patient),
            datetime!(2026-11-20 10:00 UTC),
            &Directory::default(),
            |_| Ok::<_, std::convert::Infallible>(PostcodeHit::default()),
        );
        match result {
            Ok(d) => d,
            Err(never) => match never {},
        }
    }

    #[test]
    fn the_task_is_valid_r4_and_records_the_decision() {
        let links = TaskLinks {
            focus: Some("ServiceRequest/s".into()),
            patient: Some("Patient/p".into()),
            requester: Some(json!({"reference": "Practitioner/d"})),
            authored_on: "2026-11-20T10:00:00+01:00".into(),
            now: "2026-11-20T09:00:01.000000Z".into(),
        };
        let d = decision(json!({"resourceType": "Patient", "birthDate": "1958-04-17",
                                "address": [{"district": "Alphen aan den Rijn"}]}));
        let task = build_task(&d, &links);
        let errors: Vec<_> = validate_resource("Task", &task)
            .into_iter()
            .filter(|i| i.is_error())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(task["statusReason"]["coding"][0]["code"], "no-service");
        assert_eq!(task["businessStatus"]["coding"][0]["code"], "unroutable");
        assert!(task.get("owner").is_none());
        let ext = &task["extension"][0];
        assert_eq!(ext["url"], EXT_ROUTING_DECISION);
        assert_eq!(
            ext["extension"][0],
            json!({"url": "outcome", "valueCode": "unroutable"})
        );
        let params = decision_parameters(&d, task);
        let errors: Vec<_> = validate_resource("Parameters", &params)
            .into_iter()
            .filter(|i| i.is_error())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    }
}
