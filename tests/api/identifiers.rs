//! Dutch identifiers: OID forms searchable under the URI systems; BSN 11-test.

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{expect_outcome, has_issue, TestApp};

backend_tests!(oid_forms_are_found_by_uri_and_bad_bsn_is_refused);

async fn oid_forms_are_found_by_uri_and_bad_bsn_is_refused(app: TestApp) {
    let created = app
        .create(&json!({"resourceType": "Patient", "identifier": [
            {"system": "urn:oid:2.16.840.1.113883.2.4.6.3", "value": "999999011"}]}))
        .await;
    // Stored as sent.
    assert_eq!(
        created["identifier"][0]["system"],
        "urn:oid:2.16.840.1.113883.2.4.6.3"
    );
    for q in [
        "identifier=http://fhir.nl/fhir/NamingSystem/bsn|999999011",
        "identifier=urn:oid:2.16.840.1.113883.2.4.6.3|999999011",
    ] {
        let bundle: Value = app.get(&format!("Patient?{q}")).await.json().await.unwrap();
        assert_eq!(bundle["total"], 1, "{q}");
    }
    app.create(&json!({"resourceType": "Organization", "identifier": [
        {"system": "urn:oid:2.16.528.1.1007.3.3", "value": "12345678"}]}))
        .await;
    let bundle: Value = app
        .get("Organization?identifier=http://fhir.nl/fhir/NamingSystem/ura|12345678")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bundle["total"], 1);

    let res = app
        .post(
            "Patient",
            &json!({"resourceType": "Patient", "identifier": [
            {"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999999012"}]}),
        )
        .await;
    let issues = expect_outcome(res, 422).await;
    assert!(
        has_issue(&issues, "value", Some("Patient.identifier[0].value")),
        "{issues:?}"
    );
    assert!(!issues[0]["diagnostics"]
        .as_str()
        .unwrap()
        .contains("999999012"));
    assert_eq!(app.version_count("Patient").await, 1);
}
