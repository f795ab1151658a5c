//! Dutch identifier conventions (nl-core): URI naming systems for BSN, AGB-Z and URA,
//! their legacy `urn:oid:` forms, and the BSN 11-test.

use serde_json::Value;

use crate::fhir::outcome::{Issue, IssueCode};

pub const BSN: &str = "http://fhir.nl/fhir/NamingSystem/bsn";
pub const AGB_Z: &str = "http://fhir.nl/fhir/NamingSystem/agb-z";
pub const URA: &str = "http://fhir.nl/fhir/NamingSystem/ura";

const OID_FORMS: [(&str, &str); 3] = [
    ("urn:oid:2.16.840.1.113883.2.4.6.3", BSN),
    ("urn:oid:2.16.840.1.113883.2.4.6.1", AGB_Z),
    ("urn:oid:2.16.528.1.1007.3.3", URA),
];

/// The URI naming system for a legacy OID form; any other system unchanged. The index
/// and search use this, so `urn:oid:...` and URI forms find each other.
pub fn normalize_system(system: &str) -> &str {
    OID_FORMS
        .iter()
        .find(|(oid, _)| *oid == system)
        .map_or(system, |(_, uri)| uri)
}

/// The 11-test ("elfproef") for a BSN: nine digits d1..d9 with
/// 9*d1 + 8*d2 + ... + 2*d8 - d9 divisible by 11. Eight-digit BSNs have a leading zero.
pub fn is_valid_bsn(value: &str) -> bool {
    let digits: Vec<u32> = value.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != 9 || value.len() != 9 || digits.iter().all(|d| *d == 0) {
        return false;
    }
    let sum: i64 = digits
        .iter()
        .zip([9, 8, 7, 6, 5, 4, 3, 2, -1])
        .map(|(d, w)| i64::from(*d) * w)
        .sum();
    sum % 11 == 0
}

/// Checks every Identifier in the resource (also inside references and contained
/// resources) whose system is the BSN naming system, in either form. The value is never
/// echoed: a BSN must not appear in diagnostics that may end up in logs.
pub fn check_identifiers(resource_type: &str, resource: &Value) -> Vec<Issue> {
    let mut issues = Vec::new();
    walk(resource, resource_type, &mut issues);
    issues
}

fn walk(value: &Value, path: &str, issues: &mut Vec<Issue>) {
    match value {
        Value::Object(map) => {
            let system = map.get("system").and_then(Value::as_str);
            if system.map(normalize_system) == Some(BSN) {
                let ok = map
                    .get("value")
                    .and_then(Value::as_str)
                    .is_some_and(is_valid_bsn);
                if !ok {
                    issues.push(
                        Issue::error(
                            IssueCode::Value,
                            "The BSN is not valid: nine digits that pass the 11-test are required",
                        )
                        .at(format!("{path}.value")),
                    );
                }
            }
            for (key, child) in map {
                let key = key.strip_prefix('_').unwrap_or(key);
                walk(child, &format!("{path}.{key}"), issues);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), issues);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn eleven_test() {
        for ok in ["999999011", "999990627", "111222333", "123456782"] {
            assert!(is_valid_bsn(ok), "{ok}");
        }
        for bad in [
            "999999012",
            "12345678",
            "1234567890",
            "abcdefghi",
            "000000000",
            "99999901 ",
        ] {
            assert!(!is_valid_bsn(bad), "{bad}");
        }
    }

    #[test]
    fn oid_forms_normalise() {
        assert_eq!(normalize_system("urn:oid:2.16.840.1.113883.2.4.6.3"), BSN);
        assert_eq!(normalize_system("urn:oid:2.16.840.1.113883.2.4.6.1"), AGB_Z);
        assert_eq!(normalize_system("urn:oid:2.16.528.1.1007.3.3"), URA);
        assert_eq!(normalize_system("http://example.org"), "http://example.org");
    }

    #[test]
    fn bsn_checked_everywhere_without_echo() {
        let patient = json!({
            "resourceType": "Patient",
            "identifier": [
                {"system": "urn:oid:2.16.840.1.113883.2.4.6.3", "value": "999999012"},
                {"system": BSN, "value": "999999011"}
            ],
            "generalPractitioner": [{"identifier": {"system": BSN, "value": "123"}}]
        });
        let issues = check_identifiers("Patient", &patient);
        assert_eq!(issues.len(), 2);
        assert_eq!(
            issues[0].expression.as_deref(),
            Some("Patient.identifier[0].value")
        );
        assert_eq!(
            issues[1].expression.as_deref(),
            Some("Patient.generalPractitioner[0].identifier.value")
        );
        assert!(issues.iter().all(|i| !i.diagnostics.contains("9999")));
    }
}
