//! R4 element rules the official JSON schema does not enforce: min-1 elements and
//! required-binding value sets of the server's core types.

use serde_json::{Map, Value};

use super::{invalid_code, missing};
use crate::fhir::outcome::{Issue, IssueCode};

/// One R4 element constraint: (resource type, dotted path from the resource walking
/// through arrays, required?, space-separated required-binding codes or "" for none).
/// A last path segment ending in `[x]` is a choice element: exactly one variant.
struct Rule(&'static str, &'static str, bool, &'static str);

const REQUEST_STATUS: &str = "draft active on-hold revoked completed entered-in-error unknown";
const REQUEST_INTENT: &str =
    "proposal plan directive order original-order reflex-order filler-order instance-order option";
const REQUEST_PRIORITY: &str = "routine urgent asap stat";
const DAYS_OF_WEEK: &str = "mon tue wed thu fri sat sun";

/// R4 (4.0.1) min-1 elements and required bindings of the server's core types that
/// the schema misses. Value sets the schema already enumerates (Task.status/intent,
/// Consent.status, Location.status/mode, *.gender, Patient.link.type, HealthcareService
/// daysOfWeek, Consent.provision.type/data.meaning) and required complex elements
/// (ServiceRequest.subject, Consent.scope, Task.input.type, ...) are left to it.
const RULES: &[Rule] = &[
    Rule("ServiceRequest", "status", true, REQUEST_STATUS),
    Rule("ServiceRequest", "intent", true, REQUEST_INTENT),
    Rule("ServiceRequest", "priority", false, REQUEST_PRIORITY),
    Rule("Task", "status", true, ""),
    Rule("Task", "intent", true, ""),
    Rule("Task", "priority", false, REQUEST_PRIORITY),
    Rule("Task", "input.value[x]", true, ""),
    Rule("Task", "output.value[x]", true, ""),
    Rule("Patient", "link.type", true, ""),
    Rule(
        "PractitionerRole",
        "availableTime.daysOfWeek",
        false,
        DAYS_OF_WEEK,
    ),
    Rule("PractitionerRole", "notAvailable.description", true, ""),
    Rule("HealthcareService", "notAvailable.description", true, ""),
    Rule("Consent", "status", true, ""),
    Rule("Consent", "category", true, ""), // 1..*: the schema accepts []
    Rule("Consent", "verification.verified", true, ""),
    Rule("Consent", "provision.data.meaning", true, ""),
    Rule("QuestionnaireResponse", "status", true, ""),
    Rule("QuestionnaireResponse", "item.linkId", true, ""),
    Rule("QuestionnaireResponse", "item.answer.value[x]", false, ""),
    Rule("QuestionnaireResponse", "item.item.linkId", true, ""),
    Rule("QuestionnaireResponse", "item.answer.item.linkId", true, ""),
    Rule("Location", "position.longitude", true, ""),
    Rule("Location", "position.latitude", true, ""),
    Rule(
        "Location",
        "hoursOfOperation.daysOfWeek",
        false,
        DAYS_OF_WEEK,
    ),
];

pub(super) fn check_rules(rt: &str, at: &str, resource: &Map<String, Value>, out: &mut Vec<Issue>) {
    for rule in RULES.iter().filter(|r| r.0 == rt) {
        let segments: Vec<&str> = rule.1.split('.').collect();
        walk(resource, at, &segments, rule, out);
    }
}

/// Follows `segments` from `node` (through arrays) and checks the last one.
fn walk(node: &Map<String, Value>, at: &str, segments: &[&str], rule: &Rule, out: &mut Vec<Issue>) {
    let [name, rest @ ..] = segments else { return };
    if rest.is_empty() {
        return check_leaf(node, at, name, rule, out);
    }
    match node.get(*name) {
        Some(Value::Object(child)) => walk(child, &format!("{at}.{name}"), rest, rule, out),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if let Value::Object(child) = item {
                    walk(child, &format!("{at}.{name}[{i}]"), rest, rule, out);
                }
            }
        }
        _ => {} // absent, or a wrong type the schema reports
    }
}

fn check_leaf(node: &Map<String, Value>, at: &str, name: &str, rule: &Rule, out: &mut Vec<Issue>) {
    if let Some(stem) = name.strip_suffix("[x]") {
        let variants = node
            .keys()
            .filter_map(|k| k.strip_prefix(stem))
            .filter(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
            .count();
        if variants == 0 && rule.2 {
            out.push(missing(at, name));
        } else if variants > 1 {
            let msg = format!("Only one {name} is allowed, found {variants}");
            out.push(Issue::error(IssueCode::Structure, msg).at(format!("{at}.{name}")));
        }
        return;
    }
    let check_code = |at: String, code: &String, out: &mut Vec<Issue>| {
        let allowed: Vec<&str> = rule.3.split_whitespace().collect();
        if !allowed.is_empty() && !allowed.contains(&code.as_str()) {
            out.push(invalid_code(&at, &Value::String(code.clone()), &allowed));
        }
    };
    match node.get(name) {
        None if rule.2 => out.push(missing(at, name)),
        Some(Value::Array(items)) if items.is_empty() && rule.2 => {
            let msg = format!("Element '{name}' must not be empty");
            out.push(Issue::error(IssueCode::Required, msg).at(format!("{at}.{name}")));
        }
        Some(Value::String(code)) => check_code(format!("{at}.{name}"), code, out),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if let Value::String(code) = item {
                    check_code(format!("{at}.{name}[{i}]"), code, out);
                }
            }
        }
        _ => {} // absent and optional, or a wrong JSON type the schema reports
    }
}
