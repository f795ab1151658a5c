//! Which patient a resource concerns, for the audit trail (NEN 7513 names the patient
//! of every access): a Patient is its own patient; other resources name theirs in
//! `subject`, `for` (Task), `patient` (Consent, ...), `beneficiary` (Coverage) or
//! `source` (QuestionnaireResponse), when that reference points to a Patient. Only the
//! few elements read are deserialised; the rest of the body is skipped.

use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    reference: Option<String>,
}

/// The elements that may name a resource's patient.
#[derive(Deserialize)]
struct Holders {
    subject: Option<Reference>,
    #[serde(rename = "for")]
    for_: Option<Reference>,
    patient: Option<Reference>,
    beneficiary: Option<Reference>,
    source: Option<Reference>,
}

/// `Patient/<id>` of a reference to a Patient: relative (`Patient/x`,
/// `Patient/x/_history/2`) or absolute (`https://host/fhir/Patient/x`). Contained
/// (`#p`), logical (identifier only) and `urn:uuid:` references name no stored Patient.
pub fn patient_reference(reference: &str) -> Option<String> {
    let path = reference
        .split_once("/_history/")
        .map_or(reference, |(p, _)| p);
    let mut segments = path.rsplit('/');
    let id = segments.next()?;
    let ty = segments.next()?;
    let valid_id = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    (ty == "Patient" && valid_id).then(|| format!("Patient/{id}"))
}

/// The patients (`Patient/<id>`, sorted, without repeats) that a version of
/// `resource_type`/`id` with `body` (none: a deletion) concerns.
pub fn patients_of(resource_type: &str, id: Option<&str>, body: Option<&str>) -> Vec<String> {
    if resource_type == "Patient" {
        return id
            .and_then(|id| patient_reference(&format!("Patient/{id}")))
            .into_iter()
            .collect();
    }
    let Some(holders) = body.and_then(|b| serde_json::from_str::<Holders>(b).ok()) else {
        return Vec::new();
    };
    let mut out: Vec<String> = [
        holders.subject,
        holders.for_,
        holders.patient,
        holders.beneficiary,
        holders.source,
    ]
    .into_iter()
    .flatten()
    .filter_map(|r| r.reference.as_deref().and_then(patient_reference))
    .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patient_is_its_own_patient_even_without_a_body() {
        assert_eq!(patients_of("Patient", Some("p1"), None), ["Patient/p1"]);
        assert_eq!(
            patients_of("Patient", Some("p1"), Some(r#"{"resourceType":"Patient"}"#)),
            ["Patient/p1"]
        );
        assert!(patients_of("Patient", None, None).is_empty());
    }

    #[test]
    fn the_referral_resources_name_their_patient() {
        let cases = [
            (
                "ServiceRequest",
                r#"{"resourceType":"ServiceRequest","subject":{"reference":"Patient/a"}}"#,
            ),
            (
                "Task",
                r#"{"resourceType":"Task","for":{"reference":"Patient/a"},"focus":{"reference":"ServiceRequest/s"}}"#,
            ),
            (
                "Consent",
                r#"{"resourceType":"Consent","patient":{"reference":"Patient/a"}}"#,
            ),
            (
                "Observation",
                r#"{"resourceType":"Observation","subject":{"reference":"http://h/fhir/Patient/a"}}"#,
            ),
            (
                "QuestionnaireResponse",
                r#"{"resourceType":"QuestionnaireResponse","source":{"reference":"Patient/a/_history/3"}}"#,
            ),
            (
                "Coverage",
                r#"{"resourceType":"Coverage","beneficiary":{"reference":"Patient/a"}}"#,
            ),
        ];
        for (ty, body) in cases {
            assert_eq!(
                patients_of(ty, Some("x"), Some(body)),
                ["Patient/a"],
                "{ty}"
            );
        }
    }

    #[test]
    fn several_elements_give_each_patient_once_sorted() {
        let body = r#"{"resourceType":"QuestionnaireResponse",
            "subject":{"reference":"Patient/b"},"source":{"reference":"Patient/a"},
            "author":{"reference":"Patient/c"}}"#;
        assert_eq!(
            patients_of("QuestionnaireResponse", Some("q"), Some(body)),
            ["Patient/a", "Patient/b"]
        );
        let same = r#"{"subject":{"reference":"Patient/a"},"source":{"reference":"Patient/a"}}"#;
        assert_eq!(
            patients_of("QuestionnaireResponse", None, Some(same)),
            ["Patient/a"]
        );
    }

    #[test]
    fn references_to_other_things_name_no_patient() {
        let cases = [
            r#"{"subject":{"reference":"Group/g"}}"#,
            r##"{"for":{"reference":"#contained"}}"##,
            r#"{"subject":{"reference":"urn:uuid:00000000-0000-4000-8000-000000000001"}}"#,
            r#"{"subject":{"identifier":{"system":"http://fhir.nl/fhir/NamingSystem/bsn","value":"999999990"}}}"#,
            r#"{"source":{"reference":"Practitioner/p"}}"#,
            r#"{"subject":{"reference":"Patient/"}}"#,
            r#"{"subject":{"reference":"Patient/has space"}}"#,
            r#"{"resourceType":"Organization","name":"x"}"#,
            "not json",
        ];
        for body in cases {
            assert!(
                patients_of("Observation", Some("o"), Some(body)).is_empty(),
                "{body}"
            );
        }
        assert!(
            patients_of("Task", Some("t"), None).is_empty(),
            "a deletion has no body"
        );
    }
}
