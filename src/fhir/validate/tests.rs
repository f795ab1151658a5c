//! Tests of the R4 schema validation and the rules on top of it.

use super::*;
use crate::fhir::outcome::Severity;

/// `code@expression` of every issue, after checking they are all errors.
fn issues(rt: &str, resource: Value) -> Vec<String> {
    let issues = validate_resource(rt, &resource);
    assert!(issues.iter().all(|i| i.severity == Severity::Error));
    let at = |i: &Issue| i.expression.clone().unwrap_or_default();
    issues
        .iter()
        .map(|i| format!("{}@{}", i.code.as_str(), at(i)))
        .collect()
}

#[test]
fn valid_resources_pass() {
    let patient = json!({
        "resourceType": "Patient", "id": "p-1.a",
        "meta": {"versionId": "3", "lastUpdated": "2024-01-01T00:00:00Z"},
        "extension": [{"url": "http://example.org/x", "valueDecimal": 72.5}],
        "name": [{"family": "Doe", "given": ["Jane"],
                  "_given": [{"extension": [{"url": "http://e.org/n", "valueCode": "x"}]}]}],
        "gender": "female", "birthDate": "1990-01-01",
        "_birthDate": {"extension": [{
            "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
            "valueDateTime": "1990-01-01T10:00:00+01:00"}]},
        "contained": [{"resourceType": "Organization", "id": "o", "name": "Org"}],
        "managingOrganization": {"reference": "#o"}
    });
    assert_eq!(issues("Patient", patient), Vec::<String>::new());
    let sr = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "priority": "urgent", "subject": {"reference": "Patient/1"}, "code": {"text": "x"}});
    assert_eq!(issues("ServiceRequest", sr), Vec::<String>::new());
    let task = json!({"resourceType": "Task", "status": "requested", "intent": "order",
        "for": {"reference": "Patient/1"}, "input": [{"type": {"text": "t"}, "valueString": "v"}]});
    assert_eq!(issues("Task", task), Vec::<String>::new());
}

#[test]
fn unknown_elements() {
    let found = validate_resource("Patient", &json!({"resourceType": "Patient", "foo": 1}));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].code, IssueCode::Structure);
    assert_eq!(found[0].expression.as_deref(), Some("Patient.foo"));
    assert!(found[0].diagnostics.contains("Unknown element 'foo'"));
    let nested = json!({"resourceType": "Patient", "name": [{"family": "X", "foo": 2}]});
    assert_eq!(issues("Patient", nested), ["structure@Patient.name[0].foo"]);
}

#[test]
fn wrong_types_and_values() {
    let wrong = json!({"resourceType": "Patient", "active": "yes", "name": {"family": "X"}});
    assert_eq!(
        issues("Patient", wrong),
        ["structure@Patient.active", "structure@Patient.name"]
    );
    let gender = json!({"resourceType": "Patient", "gender": "nope"});
    assert_eq!(issues("Patient", gender), ["value@Patient.gender"]);
    let date = json!({"resourceType": "Patient", "birthDate": "1990-13-45"});
    assert_eq!(issues("Patient", date), ["value@Patient.birthDate"]);
}

#[test]
fn service_request_and_task_rules() {
    let sr = json!({"resourceType": "ServiceRequest", "subject": {"reference": "Patient/1"}});
    let expected = [
        "required@ServiceRequest.status",
        "required@ServiceRequest.intent",
    ];
    assert_eq!(issues("ServiceRequest", sr), expected);
    let bad = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "wish",
                     "subject": {"reference": "Patient/1"}});
    let found = validate_resource("ServiceRequest", &bad);
    assert_eq!((found.len(), found[0].code), (1, IssueCode::Value));
    assert!(found[0]
        .diagnostics
        .starts_with("Invalid code 'wish' for ServiceRequest.intent"));
    let task = json!({"resourceType": "Task", "status": "requested"});
    assert_eq!(issues("Task", task), ["required@Task.intent"]);
    let bad = json!({"resourceType": "Task", "status": "bogus", "intent": "order"});
    assert_eq!(issues("Task", bad), ["value@Task.status"]); // not reported twice
}

#[test]
fn questionnaire_response_rules() {
    let qr = json!({"resourceType": "QuestionnaireResponse", "item": [
        {"answer": [{"valueInteger": 1, "valueString": "1"}]},
        {"linkId": "a", "item": [{"text": "no linkId"}]},
        {"linkId": "b", "answer": [{"item": [{"text": "no linkId"}]}]}
    ]});
    assert_eq!(
        issues("QuestionnaireResponse", qr),
        [
            "required@QuestionnaireResponse.status",
            "required@QuestionnaireResponse.item[0].linkId",
            "structure@QuestionnaireResponse.item[0].answer[0].value[x]",
            "required@QuestionnaireResponse.item[1].item[0].linkId",
            "required@QuestionnaireResponse.item[2].answer[0].item[0].linkId",
        ]
    );
    let ok = json!({"resourceType": "QuestionnaireResponse", "status": "in-progress",
        "questionnaire": "https://example.org/Questionnaire/q|2",
        "item": [{"linkId": "a", "answer": [{"valueCoding": {"code": "x"}}]}]});
    assert_eq!(issues("QuestionnaireResponse", ok), Vec::<String>::new());
}

#[test]
fn consent_and_location_rules() {
    let consent = json!({"resourceType": "Consent", "scope": {"text": "s"}, "category": []});
    assert_eq!(
        issues("Consent", consent),
        ["structure@Consent.category", "required@Consent.status"]
    );
    let location = json!({"resourceType": "Location", "position": {"latitude": 1.5},
                          "hoursOfOperation": [{"daysOfWeek": ["mon", "funday"]}]});
    let expected = [
        "required@Location.position.longitude",
        "value@Location.hoursOfOperation[0].daysOfWeek[1]",
    ];
    assert_eq!(issues("Location", location), expected);
}

#[test]
fn resource_type_and_body() {
    let mismatch = validate_resource("Patient", &json!({"resourceType": "Task", "foo": 1}));
    assert_eq!(mismatch.len(), 1);
    assert_eq!(mismatch[0].code, IssueCode::Invalid);
    assert!(
        mismatch[0].diagnostics.contains("'Task'") && mismatch[0].diagnostics.contains("'Patient'")
    );
    let absent = json!({"name": [{"family": "X"}]});
    assert_eq!(issues("Patient", absent), ["required@resourceType"]);
    assert_eq!(
        issues("Patient", json!({"resourceType": 7})),
        ["invalid@resourceType"]
    );
    assert_eq!(issues("Patient", json!([])), ["structure@"]);
    assert_eq!(
        validate_resource("Patient", &json!("x"))[0].expression,
        None
    );
}

#[test]
fn ids() {
    let bad = json!({"resourceType": "Patient", "id": "a b"});
    assert_eq!(issues("Patient", bad), ["value@Patient.id"]);
    let long = json!({"resourceType": "Patient", "id": "x".repeat(65)});
    assert_eq!(issues("Patient", long), ["value@Patient.id"]);
    assert!(is_valid_id("abc-1.2") && is_valid_id(&"A".repeat(64)));
    for bad in ["", "a/b", "a b", "é", &"A".repeat(65)] {
        assert!(!is_valid_id(bad), "{bad}");
    }
}

#[test]
fn contained_resources_are_checked_by_their_own_type() {
    let nope = json!({"resourceType": "Patient", "contained": [{"resourceType": "Nope"}]});
    assert_eq!(issues("Patient", nope), ["structure@Patient.contained[0]"]);
    let bad = json!({"resourceType": "Patient", "contained": [
        {"resourceType": "ServiceRequest", "subject": {"reference": "Patient/1"},
         "intent": "order", "bar": 1}, 7, {"id": "x"}]});
    let expected = [
        "structure@Patient.contained[1]",
        "required@Patient.contained[2].resourceType",
        "structure@Patient.contained[0].bar",
        "required@Patient.contained[0].status",
    ];
    assert_eq!(issues("Patient", bad), expected);
}

#[test]
fn issues_are_capped() {
    let mut resource = Map::new();
    resource.insert("resourceType".into(), json!("Patient"));
    for i in 0..500 {
        resource.insert(format!("x{i}"), json!(i));
    }
    let found = validate_resource("Patient", &Value::Object(resource));
    assert_eq!(found.len(), MAX_ISSUES);
}

#[test]
fn odd_input_never_panics() {
    let deep = (0..100).fold(json!({}), |inner, _| json!({"extension": [inner]}));
    let odd = [
        json!(null),
        json!(1.5),
        json!("Patient"),
        json!([{"resourceType": "Patient"}]),
        json!({"resourceType": "Patient", "name": [null, 1, "x", [], {}]}),
        json!({"resourceType": "Patient", "_birthDate": [1], "0": {}, "": null, "/~": 1}),
        json!({"resourceType": "Patient", "contained": {"resourceType": "Patient"}}),
        json!({"resourceType": "Patient", "extension": [deep]}),
        json!({"resourceType": "Bundle", "type": "batch", "entry": [{"resource": {
            "resourceType": "Bundle", "type": "collection", "entry": [{"resource": 1}]}}]}),
    ];
    for value in &odd {
        for rt in [
            "Patient",
            "Bundle",
            "Consent",
            "Task",
            "NotAType",
            "HumanName",
            "",
        ] {
            let _ = validate_resource(rt, value);
        }
    }
}
