//! POST /fhir with transaction and batch Bundles.

use reqwest::Method;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{expect_outcome, has_issue, TestApp, FHIR_JSON};

backend_tests!(
    fixture_posted_twice_yields_one_of_each,
    failing_transaction_leaves_no_trace,
    batch_entries_succeed_or_fail_alone,
    conditional_update_and_delete_and_replay,
);

const FIXTURE: &str = include_str!("../fixtures/referral-transaction.json");

async fn post_bundle(app: &TestApp, bundle: &Value) -> reqwest::Response {
    app.post_text("", &bundle.to_string()).await
}

fn statuses(response: &Value) -> Vec<String> {
    response["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap().to_owned())
        .collect()
}

fn location_id(entry: &Value) -> String {
    let loc = entry["response"]["location"].as_str().unwrap();
    loc.split('/').rev().nth(2).unwrap().to_owned()
}

async fn fixture_posted_twice_yields_one_of_each(app: TestApp) {
    let res = app.post_text("", FIXTURE).await;
    assert_eq!(res.status(), 200);
    let first: Value = res.json().await.unwrap();
    assert_eq!(first["type"], "transaction-response");
    assert_eq!(statuses(&first), ["201 Created"; 5]);
    let patient_id = location_id(&first["entry"][0]);
    let practitioner_id = location_id(&first["entry"][2]);
    // urn:uuid references were resolved to the new ids.
    let sr = &first["entry"][4]["resource"];
    assert_eq!(sr["subject"]["reference"], format!("Patient/{patient_id}"));
    assert_eq!(
        sr["requester"]["reference"],
        format!("Practitioner/{practitioner_id}")
    );
    let consent = &first["entry"][3]["resource"];
    assert_eq!(
        consent["patient"]["reference"],
        format!("Patient/{patient_id}")
    );

    let second: Value = app.post_text("", FIXTURE).await.json().await.unwrap();
    let s = statuses(&second);
    assert_eq!(s[0], "200 OK");
    assert_eq!(s[1], "200 OK");
    assert_eq!(s[2], "200 OK");
    assert_eq!(s[4], "200 OK");
    for i in [0, 1, 2, 4] {
        assert_eq!(
            location_id(&second["entry"][i]),
            location_id(&first["entry"][i])
        );
    }
    for ty in ["Patient", "Organization", "Practitioner", "ServiceRequest"] {
        assert_eq!(app.version_count(ty).await, 1, "{ty}");
    }
}

async fn failing_transaction_leaves_no_trace(app: TestApp) {
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
         "resource": {"resourceType": "Patient", "active": true},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Organization", "nickname": "x"},
         "request": {"method": "POST", "url": "Organization"}}
    ]});
    let issues = expect_outcome(post_bundle(&app, &bundle).await, 400).await;
    assert!(
        has_issue(
            &issues,
            "structure",
            Some("Bundle.entry[1].resource.nickname")
        ),
        "{issues:?}"
    );

    // A reference to a resource that does not exist: the Patient is rolled back too.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
         "resource": {"resourceType": "Patient", "active": true},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                      "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
                      "requester": {"reference": "Practitioner/nobody"}},
         "request": {"method": "POST", "url": "ServiceRequest"}}
    ]});
    let issues = expect_outcome(post_bundle(&app, &bundle).await, 422).await;
    assert!(
        has_issue(
            &issues,
            "not-found",
            Some("Bundle.entry[1].resource.requester.reference")
        ),
        "{issues:?}"
    );

    // A urn:uuid that names no entry.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                      "subject": {"reference": "urn:uuid:22222222-2222-4222-8222-222222222222"}},
         "request": {"method": "POST", "url": "ServiceRequest"}}
    ]});
    expect_outcome(post_bundle(&app, &bundle).await, 400).await;

    // Not a transaction or batch; bad entries.
    let issues = expect_outcome(
        post_bundle(
            &app,
            &json!({"resourceType": "Bundle", "type": "collection"}),
        )
        .await,
        400,
    )
    .await;
    assert!(has_issue(&issues, "not-supported", Some("Bundle.type")));
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "HEAD", "url": "Patient/1"}}]});
    let issues = expect_outcome(post_bundle(&app, &bundle).await, 400).await;
    assert!(has_issue(
        &issues,
        "not-supported",
        Some("Bundle.entry[0].request.method")
    ));
    let issues = expect_outcome(
        post_bundle(&app, &json!({"resourceType": "Patient"})).await,
        400,
    )
    .await;
    assert!(
        has_issue(&issues, "invalid", Some("resourceType")),
        "{issues:?}"
    );

    for ty in ["Patient", "Organization", "ServiceRequest"] {
        assert_eq!(app.version_count(ty).await, 0, "{ty}");
    }
}

async fn batch_entries_succeed_or_fail_alone(app: TestApp) {
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Patient", "active": true},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Organization", "nickname": "x"},
         "request": {"method": "POST", "url": "Organization"}},
        {"resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                      "subject": {"reference": "Patient/nobody"}},
         "request": {"method": "POST", "url": "ServiceRequest"}},
        {"request": {"method": "GET", "url": "Patient/nobody"}}
    ]});
    let res = post_bundle(&app, &bundle).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["type"], "batch-response");
    assert_eq!(
        statuses(&body),
        [
            "201 Created",
            "400 Bad Request",
            "422 Unprocessable Entity",
            "404 Not Found"
        ]
    );
    assert_eq!(
        body["entry"][1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert_eq!(app.version_count("Patient").await, 1);
    assert_eq!(app.version_count("Organization").await, 0);
    assert_eq!(app.version_count("ServiceRequest").await, 0);
}

async fn conditional_update_and_delete_and_replay(app: TestApp) {
    let put = |active: bool| {
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient", "active": active, "identifier": [
                {"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999999011"}]},
             "request": {"method": "PUT",
                         "url": "Patient?identifier=http://fhir.nl/fhir/NamingSystem/bsn|999999011"}}
        ]})
    };
    let first: Value = post_bundle(&app, &put(true)).await.json().await.unwrap();
    assert_eq!(statuses(&first), ["201 Created"]);
    let second: Value = post_bundle(&app, &put(false)).await.json().await.unwrap();
    assert_eq!(statuses(&second), ["200 OK"]);
    assert_eq!(
        location_id(&first["entry"][0]),
        location_id(&second["entry"][0])
    );
    assert_eq!(second["entry"][0]["resource"]["active"], false);
    assert_eq!(second["entry"][0]["response"]["etag"], "W/\"2\"");

    // The same transaction again under one X-Request-Id is replayed, not re-run.
    let delete = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE",
                     "url": "Patient?identifier=http://fhir.nl/fhir/NamingSystem/bsn|999999011"}}]});
    let mut replies = Vec::new();
    for _ in 0..2 {
        let res = app
            .request(Method::POST, "")
            .header("Content-Type", FHIR_JSON)
            .header("X-Request-Id", "his-tx-0001")
            .body(delete.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        replies.push(res.text().await.unwrap());
    }
    assert_eq!(replies[0], replies[1]);
    let id = location_id(&first["entry"][0]);
    expect_outcome(app.get(&format!("Patient/{id}")).await, 410).await;
    // Deleted once: versions 1, 2 and the deletion.
    assert_eq!(app.version_count("Patient").await, 3);
}
