//! create, read, vread, update, delete; conditional create; Prefer; If-Match.

use reqwest::Method;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{expect_outcome, has_issue, TestApp, FHIR_JSON};

backend_tests!(
    create_then_read_is_byte_identical_apart_from_id_and_meta,
    update_with_if_match_and_stale_if_match,
    update_as_create_and_body_id_rules,
    delete_is_soft_and_read_answers_gone,
    conditional_create_zero_one_many,
    prefer_return_variants,
    unknown_and_invalid_ids,
);

/// Client JSON with elements fhir-sdk does not model, a primitive extension, a decimal
/// with a trailing zero, a big integer-like decimal and non-ASCII text.
const PATIENT: &str = r#"{"resourceType":"Patient","meta":{"profile":["http://example.org/StructureDefinition/p"],"versionId":"77","lastUpdated":"2001-01-01T00:00:00Z"},"extension":[{"url":"http://example.org/weight","valueDecimal":72.50},{"url":"http://example.org/big","valueDecimal":12345678901234567890.000}],"identifier":[{"system":"http://fhir.nl/fhir/NamingSystem/bsn","value":"999999011"}],"name":[{"family":"Ĳsselmeer-Ørsted","given":["Noor"]}],"birthDate":"1958-04-17","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1958-04-17T10:15:00+01:00"}]},"active":true}"#;

async fn create_then_read_is_byte_identical_apart_from_id_and_meta(app: TestApp) {
    let res = app.post_text("Patient", PATIENT).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["etag"], "W/\"1\"");
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with(FHIR_JSON));
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(location, app.url(&format!("Patient/{id}/_history/1")));
    assert_eq!(created["meta"]["versionId"], "1");

    let read = app.get(&format!("Patient/{id}")).await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["etag"], "W/\"1\"");
    assert!(read.headers().contains_key("last-modified"));
    let text = read.text().await.unwrap();
    let stored: Value = serde_json::from_str(&text).unwrap();
    let last_updated = stored["meta"]["lastUpdated"].as_str().unwrap();
    // The client's text with only meta.versionId/lastUpdated replaced and id added.
    let expected = PATIENT
        .replacen(
            r#""versionId":"77","lastUpdated":"2001-01-01T00:00:00Z""#,
            &format!(r#""versionId":"1","lastUpdated":"{last_updated}""#),
            1,
        )
        .replacen(
            r#"{"resourceType":"Patient","#,
            &format!(r#"{{"resourceType":"Patient","id":"{id}","#),
            1,
        );
    assert_eq!(text, expected);

    let vread = app.get(&format!("Patient/{id}/_history/1")).await;
    assert_eq!(vread.status(), 200);
    assert_eq!(vread.text().await.unwrap(), expected);
}

async fn update_with_if_match_and_stale_if_match(app: TestApp) {
    let created = app
        .create(&json!({"resourceType": "Organization", "name": "Tom in de buurt"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let mut body = created.clone();
    body["name"] = json!("Tom in de buurt (Alphen)");

    let res = app
        .request(Method::PUT, &format!("Organization/{id}"))
        .header("Content-Type", FHIR_JSON)
        .header("If-Match", "W/\"1\"")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "W/\"2\"");
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["meta"]["versionId"], "2");
    assert_eq!(updated["name"], "Tom in de buurt (Alphen)");

    // Stale version: 412 and nothing written.
    let res = app
        .request(Method::PUT, &format!("Organization/{id}"))
        .header("Content-Type", FHIR_JSON)
        .header("If-Match", "W/\"1\"")
        .body(json!({"resourceType": "Organization", "id": id, "name": "x"}).to_string())
        .send()
        .await
        .unwrap();
    let issues = expect_outcome(res, 412).await;
    assert!(has_issue(&issues, "conflict", None));
    let current: Value = app
        .get(&format!("Organization/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(current["meta"]["versionId"], "2");

    // Malformed If-Match.
    let res = app
        .request(Method::PUT, &format!("Organization/{id}"))
        .header("Content-Type", FHIR_JSON)
        .header("If-Match", "version-two")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    expect_outcome(res, 400).await;

    // The old version stays readable.
    let v1: Value = app
        .get(&format!("Organization/{id}/_history/1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v1["name"], "Tom in de buurt");
}

async fn update_as_create_and_body_id_rules(app: TestApp) {
    let res = app
        .put(
            "Location/loc-boskoop",
            &json!({"resourceType": "Location", "id": "loc-boskoop", "name": "Boskoop"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        app.url("Location/loc-boskoop/_history/1")
    );

    let res = app
        .put(
            "Location/loc-boskoop",
            &json!({"resourceType": "Location", "id": "other", "name": "Boskoop"}),
        )
        .await;
    let issues = expect_outcome(res, 400).await;
    assert!(
        has_issue(&issues, "invalid", Some("Location.id")),
        "{issues:?}"
    );

    let res = app
        .put(
            "Location/loc-boskoop",
            &json!({"resourceType": "Location", "name": "Boskoop"}),
        )
        .await;
    let issues = expect_outcome(res, 400).await;
    assert!(has_issue(&issues, "required", Some("Location.id")));

    // If-Match on a resource that does not exist.
    let res = app
        .request(Method::PUT, "Location/nope")
        .header("Content-Type", FHIR_JSON)
        .header("If-Match", "W/\"1\"")
        .body(json!({"resourceType": "Location", "id": "nope"}).to_string())
        .send()
        .await
        .unwrap();
    expect_outcome(res, 412).await;
    assert_eq!(app.version_count("Location").await, 1);
}

async fn delete_is_soft_and_read_answers_gone(app: TestApp) {
    let created = app
        .create(&json!({"resourceType": "Practitioner", "name": [{"family": "de Vries"}]}))
        .await;
    let id = created["id"].as_str().unwrap();

    let res = app
        .request(Method::DELETE, &format!("Practitioner/{id}"))
        .header("If-Match", "W/\"7\"")
        .send()
        .await
        .unwrap();
    expect_outcome(res, 412).await;

    let res = app
        .request(Method::DELETE, &format!("Practitioner/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let issues = expect_outcome(app.get(&format!("Practitioner/{id}")).await, 410).await;
    assert!(has_issue(&issues, "deleted", None));
    // Deleting again is idempotent; the first version is still in history.
    let res = app
        .request(Method::DELETE, &format!("Practitioner/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.get(&format!("Practitioner/{id}/_history/1"))
            .await
            .status(),
        200
    );
    expect_outcome(app.get(&format!("Practitioner/{id}/_history/2")).await, 410).await;
    // Deleted resources are not found by search.
    let bundle: Value = app
        .get(&format!("Practitioner?_id={id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bundle["total"], 0);

    let res = app
        .request(Method::DELETE, "Practitioner/never-existed")
        .send()
        .await
        .unwrap();
    expect_outcome(res, 404).await;
}

async fn conditional_create_zero_one_many(app: TestApp) {
    let bsn = json!({
        "resourceType": "Patient",
        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999999011"}]
    });
    let cond = |app: &TestApp, criteria: &str| {
        app.request(Method::POST, "Patient")
            .header("Content-Type", FHIR_JSON)
            .header("If-None-Exist", criteria.to_owned())
            .body(bsn.to_string())
            .send()
    };
    let criteria = "identifier=http://fhir.nl/fhir/NamingSystem/bsn|999999011";
    let first = cond(&app, criteria).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = cond(&app, criteria).await.unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(app.version_count("Patient").await, 1);

    // A second Patient with the same identifier (plain create) makes the criteria ambiguous.
    app.create(&bsn).await;
    let res = cond(&app, criteria).await.unwrap();
    expect_outcome(res, 412).await;
    assert_eq!(app.version_count("Patient").await, 2);

    // Unsupported criteria are refused, not ignored.
    let res = cond(&app, "nickname=Jansen").await.unwrap();
    let issues = expect_outcome(res, 400).await;
    assert!(has_issue(&issues, "not-supported", Some("If-None-Exist")));
    assert_eq!(app.version_count("Patient").await, 2);
}

async fn prefer_return_variants(app: TestApp) {
    let body = json!({"resourceType": "Organization", "name": "GO! voor Jeugd"});
    let minimal = app
        .request(Method::POST, "Organization")
        .header("Content-Type", FHIR_JSON)
        .header("Prefer", "return=minimal")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(minimal.status(), 201);
    assert!(minimal.headers().contains_key("location"));
    assert!(minimal.text().await.unwrap().is_empty());

    let outcome = app
        .request(Method::POST, "Organization")
        .header("Content-Type", FHIR_JSON)
        .header("Prefer", "return=OperationOutcome")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(outcome.status(), 201);
    let oo: Value = outcome.json().await.unwrap();
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert_eq!(oo["issue"][0]["severity"], "information");
}

async fn unknown_and_invalid_ids(app: TestApp) {
    let issues = expect_outcome(app.get("Patient/does-not-exist").await, 404).await;
    assert!(has_issue(&issues, "not-found", None));
    let long = "x".repeat(65);
    expect_outcome(app.get(&format!("Patient/{long}")).await, 400).await;
    expect_outcome(app.get("Patient/a_b").await, 400).await;
    expect_outcome(app.get("Patient/abc/_history/zero").await, 404).await;
}
