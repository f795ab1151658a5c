//! An audit row as an R4 AuditEvent (http://hl7.org/fhir/R4/auditevent.html): type
//! `rest`, subtype the interaction, action C/R/U/D/E, recorded, outcome 0/4/8, the
//! client and its organisation as agents, this service as observer, the resource and
//! the patients as entities, the request id in the resource entity's detail.

use serde_json::{json, Value};

use crate::fhir::instant::format_instant;
use crate::store::AuditEntry;

pub const AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
pub const RESTFUL_INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
/// The hub's own interactions that are no REST interaction (notification, replay,
/// validate, `operation:<name>`, token).
pub const HUB_INTERACTION: &str = "https://wor-hub.nl/fhir/CodeSystem/audit-interaction";
/// `agent.who.identifier.system` of the actor as the audit trail names it
/// (`party:Organization/x`, `client:<id>`, `system:<job>`, `anonymous`).
pub const ACTOR_SYSTEM: &str = "https://wor-hub.nl/fhir/NamingSystem/audit-actor";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";

/// The codes of http://hl7.org/fhir/restful-interaction (R4).
const RESTFUL: &[&str] = &[
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history",
    "history-instance",
    "history-type",
    "history-system",
    "create",
    "search",
    "search-type",
    "search-system",
    "capabilities",
    "transaction",
    "batch",
    "operation",
];

/// AuditEvent.outcome: 0 success, 4 minor failure (nothing found), 8 serious failure.
pub fn outcome_code(outcome: &str) -> &'static str {
    match outcome {
        "success" | "matched-existing" | "valid" | "invalid" => "0",
        "not-found" | "gone" => "4",
        _ => "8",
    }
}

fn subtype(interaction: &str) -> Vec<Value> {
    if RESTFUL.contains(&interaction) {
        return vec![json!({ "system": RESTFUL_INTERACTION, "code": interaction })];
    }
    let rest = if interaction.starts_with("operation:") || interaction == "validate" {
        vec![json!({ "system": RESTFUL_INTERACTION, "code": "operation" })]
    } else {
        Vec::new()
    };
    rest.into_iter()
        .chain([json!({ "system": HUB_INTERACTION, "code": interaction })])
        .collect()
}

/// `agent.who` of an actor: its identifier, and a reference when it names a resource
/// (`party:Organization/x`).
fn who(actor: &str) -> Value {
    let mut who = json!({
        "identifier": { "system": ACTOR_SYSTEM, "value": actor },
        "display": actor,
    });
    if let Some(reference) = actor.strip_prefix("party:").filter(|r| r.contains('/')) {
        who["reference"] = json!(reference);
    }
    who
}

/// The AuditEvent of `e`, observed by `observer` (this service's base URL).
pub fn audit_event(e: &AuditEntry, observer: &str) -> Value {
    let recorded = format_instant(e.recorded);
    let mut agents = vec![json!({ "who": who(&e.actor), "requestor": true })];
    if let Some(org) = &e.organization {
        agents.push(json!({
            "type": { "text": "organization the actor acts for" },
            "who": { "reference": org },
            "requestor": false,
        }));
    }
    let what = match (&e.resource_id, e.version_id) {
        (Some(id), Some(v)) => {
            json!({ "reference": format!("{}/{id}/_history/{v}", e.resource_type) })
        }
        (Some(id), None) => json!({ "reference": format!("{}/{id}", e.resource_type) }),
        (None, _) => json!({ "display": e.resource_type }),
    };
    let mut entities = vec![json!({
        "what": what,
        "type": { "system": ENTITY_TYPE, "code": "2", "display": "System Object" },
        "detail": [{ "type": "request-id", "valueString": e.request_id }],
    })];
    entities.extend(e.patient_list().into_iter().map(|p| {
        json!({
            "what": { "reference": p },
            "type": { "system": ENTITY_TYPE, "code": "1", "display": "Person" },
            "role": { "system": OBJECT_ROLE, "code": "1", "display": "Patient" },
        })
    }));
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": e.seq.to_string(),
        "meta": { "lastUpdated": recorded },
        "type": { "system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation" },
        "subtype": subtype(&e.interaction),
        "action": e.action,
        "recorded": recorded,
        "outcome": outcome_code(&e.outcome),
        "outcomeDesc": e.outcome,
        "agent": agents,
        "source": {
            "site": observer,
            "observer": { "display": format!("wor-hub {observer}") },
            "type": [{
                "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                "code": "4",
                "display": "Application Server",
            }],
        },
        "entity": entities,
    });
    if let Some(hash) = &e.hash {
        // Where the row sits in the hash chain (`wor-hub audit verify`).
        event["extension"] = json!([{
            "url": "https://wor-hub.nl/fhir/StructureDefinition/audit-chain-hash",
            "valueString": hash,
        }]);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> AuditEntry {
        AuditEntry {
            seq: 12,
            recorded: 0,
            request_id: "req-9".into(),
            actor: "party:Organization/o".into(),
            action: "U".into(),
            interaction: "update".into(),
            resource_type: "Task".into(),
            resource_id: Some("t".into()),
            version_id: Some(3),
            outcome: "success".into(),
            organization: Some("Organization/o".into()),
            patients: Some("Patient/a Patient/b".into()),
            chain_pos: None,
            prev_hash: None,
            hash: None,
        }
    }

    #[test]
    fn a_write_renders_as_an_r4_audit_event() {
        let ev = audit_event(&entry(), "http://h/fhir");
        assert_eq!(ev["id"], "12");
        assert_eq!(ev["type"]["code"], "rest");
        assert_eq!(ev["subtype"][0]["system"], RESTFUL_INTERACTION);
        assert_eq!(ev["subtype"][0]["code"], "update");
        assert_eq!(ev["action"], "U");
        assert_eq!(ev["outcome"], "0");
        assert_eq!(ev["recorded"], "1970-01-01T00:00:00.000000Z");
        assert_eq!(ev["agent"][0]["who"]["reference"], "Organization/o");
        assert_eq!(
            ev["agent"][0]["who"]["identifier"]["value"],
            "party:Organization/o"
        );
        assert_eq!(ev["agent"][1]["who"]["reference"], "Organization/o");
        assert_eq!(ev["entity"][0]["what"]["reference"], "Task/t/_history/3");
        assert_eq!(ev["entity"][0]["detail"][0]["valueString"], "req-9");
        assert_eq!(ev["entity"][1]["what"]["reference"], "Patient/a");
        assert_eq!(ev["entity"][2]["what"]["reference"], "Patient/b");
        assert!(ev.get("extension").is_none(), "not sealed yet");
        let issues = crate::fhir::validate::validate_resource("AuditEvent", &ev);
        assert!(issues.is_empty(), "{issues:?}");
    }

    #[test]
    fn a_token_grant_without_resource_or_organisation_renders() {
        let mut e = entry();
        e.actor = "client:his-1".into();
        e.organization = None;
        e.action = "E".into();
        e.interaction = "token".into();
        e.resource_type = "token".into();
        e.resource_id = None;
        e.version_id = None;
        e.patients = None;
        e.outcome = "refused".into();
        e.hash = Some("ab".repeat(32));
        let ev = audit_event(&e, "http://h/fhir");
        assert_eq!(ev["outcome"], "8");
        assert_eq!(ev["subtype"][0]["system"], HUB_INTERACTION);
        assert!(ev["agent"][0]["who"].get("reference").is_none());
        assert_eq!(ev["agent"].as_array().unwrap().len(), 1);
        assert_eq!(ev["entity"].as_array().unwrap().len(), 1);
        assert_eq!(ev["entity"][0]["what"]["display"], "token");
        assert_eq!(ev["extension"][0]["valueString"], "ab".repeat(32));
        let issues = crate::fhir::validate::validate_resource("AuditEvent", &ev);
        assert!(issues.is_empty(), "{issues:?}");
    }

    #[test]
    fn outcomes_map_to_r4_codes() {
        assert_eq!(outcome_code("success"), "0");
        assert_eq!(outcome_code("not-found"), "4");
        assert_eq!(outcome_code("gone"), "4");
        assert_eq!(outcome_code("refused"), "8");
        assert_eq!(subtype("operation:route")[0]["code"], "operation");
        assert_eq!(subtype("operation:route")[1]["code"], "operation:route");
        assert_eq!(subtype("notification").len(), 1);
    }
}
