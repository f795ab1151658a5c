//! Idempotent submission: X-Request-Id replay, concurrent identical submissions,
//! and referential integrity of writes.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{expect_outcome, has_issue, spawn, Backend, TestApp, FHIR_JSON};

backend_tests!(
    request_id_replays_the_original_response,
    parallel_identical_submissions_create_one,
    references_must_exist,
);

fn referral(patient_id: &str) -> Value {
    json!({
        "resourceType": "ServiceRequest",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.2.4.3.11.999.1", "value": "HIS-2026-000123"}],
        "status": "active",
        "intent": "order",
        "subject": {"reference": format!("Patient/{patient_id}")},
        "code": {"text": "Welzijn op Recept"}
    })
}

async fn post_with_id(
    app: &TestApp,
    path: &str,
    request_id: &str,
    body: &Value,
) -> reqwest::Response {
    app.request(Method::POST, path)
        .header("Content-Type", FHIR_JSON)
        .header("X-Request-Id", request_id)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn request_id_replays_the_original_response(app: TestApp) {
    let patient = app.create(&json!({"resourceType": "Patient"})).await;
    let body = referral(patient["id"].as_str().unwrap());
    let first = post_with_id(&app, "ServiceRequest", "his-retry-0001", &body).await;
    assert_eq!(first.status(), 201);
    let location = first.headers()["location"].clone();
    let first_body = first.text().await.unwrap();

    let again = post_with_id(&app, "ServiceRequest", "his-retry-0001", &body).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["location"], location);
    assert_eq!(again.headers()["x-request-id"], "his-retry-0001");
    assert_eq!(again.text().await.unwrap(), first_body);
    assert_eq!(app.version_count("ServiceRequest").await, 1);

    // Same id, different request: 409 duplicate, nothing written.
    let mut other = body.clone();
    other["priority"] = json!("urgent");
    let issues = expect_outcome(
        post_with_id(&app, "ServiceRequest", "his-retry-0001", &other).await,
        409,
    )
    .await;
    assert!(
        has_issue(&issues, "duplicate", Some("X-Request-Id")),
        "{issues:?}"
    );
    assert_eq!(app.version_count("ServiceRequest").await, 1);

    // A request that failed is not recorded: fixing it under the same id works.
    let bad = json!({"resourceType": "Patient", "gender": "robot"});
    expect_outcome(
        post_with_id(&app, "Patient", "his-retry-0002", &bad).await,
        400,
    )
    .await;
    let good = json!({"resourceType": "Patient", "gender": "female"});
    assert_eq!(
        post_with_id(&app, "Patient", "his-retry-0002", &good)
            .await
            .status(),
        201
    );

    // Deletes replay too.
    let id = patient["id"].as_str().unwrap();
    for _ in 0..2 {
        let res = app
            .request(Method::DELETE, &format!("Organization/{id}"))
            .header("X-Request-Id", "his-retry-0003")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
}

async fn parallel_identical_submissions_create_one(app: TestApp) {
    let patient = app.create(&json!({"resourceType": "Patient"})).await;
    let body = referral(patient["id"].as_str().unwrap());
    // 20 parallel conditional creates on the business identifier, each its own request.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let req = app
            .request(Method::POST, "ServiceRequest")
            .header("Content-Type", FHIR_JSON)
            .header(
                "If-None-Exist",
                "identifier=urn:oid:2.16.840.1.113883.2.4.3.11.999.1|HIS-2026-000123",
            )
            .body(body.to_string());
        tasks.push(tokio::spawn(async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let v: Value = res.json().await.unwrap();
            (status, v["id"].as_str().unwrap().to_owned())
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(
        results.iter().filter(|(s, _)| *s == 201).count(),
        1,
        "{results:?}"
    );
    assert!(results
        .iter()
        .all(|(s, id)| (*s == 201 || *s == 200) && *id == results[0].1));
    assert_eq!(app.version_count("ServiceRequest").await, 1);

    // 20 parallel retries of one request id, without If-None-Exist.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let req = app
            .request(Method::POST, "Patient")
            .header("Content-Type", FHIR_JSON)
            .header("X-Request-Id", "his-burst-0001")
            .body(json!({"resourceType": "Patient", "active": true}).to_string());
        tasks.push(tokio::spawn(async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert!(
        results.iter().all(|r| r == &results[0]),
        "all replies identical"
    );
    assert_eq!(results[0].0, 201);
    assert_eq!(app.version_count("Patient").await, 2);
}

async fn references_must_exist(app: TestApp) {
    let res = app.post("ServiceRequest", &referral("nobody")).await;
    let issues = expect_outcome(res, 422).await;
    assert!(
        has_issue(
            &issues,
            "not-found",
            Some("ServiceRequest.subject.reference")
        ),
        "{issues:?}"
    );
    assert_eq!(app.version_count("ServiceRequest").await, 0);

    let patient = app.create(&json!({"resourceType": "Patient"})).await;
    let id = patient["id"].as_str().unwrap();
    assert_eq!(
        app.post("ServiceRequest", &referral(id)).await.status(),
        201
    );
    // Absolute references to this server count as local; other servers' do not.
    let mut sr = referral(id);
    sr["subject"]["reference"] = json!(app.url(&format!("Patient/{id}")));
    sr["performer"] = json!([{"reference": "https://elsewhere.example/fhir/Organization/x"}]);
    assert_eq!(app.post("ServiceRequest", &sr).await.status(), 201);

    // A deleted target no longer counts.
    let res = app
        .request(Method::DELETE, &format!("Patient/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    expect_outcome(app.post("ServiceRequest", &referral(id)).await, 422).await;
}

#[tokio::test]
async fn request_records_expire_after_the_retention_time() {
    let app = spawn(Backend::Sqlite, |s| {
        s.request_retention = Duration::from_millis(500)
    })
    .await
    .unwrap();
    let body = json!({"resourceType": "Organization", "name": "x"});
    let first: Value = post_with_id(&app, "Organization", "his-old-1", &body)
        .await
        .json()
        .await
        .unwrap();
    let replay: Value = post_with_id(&app, "Organization", "his-old-1", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["id"], replay["id"]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let later: Value = post_with_id(&app, "Organization", "his-old-1", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(first["id"], later["id"], "expired records are not replayed");
}
