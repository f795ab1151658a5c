//! PATCH entries of transaction and batch Bundles (http.html#transaction): a Binary
//! with a JSON Patch or a Parameters with a FHIRPath Patch, run with the PUTs.

use base64::Engine;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{current, expect_outcome, has_expression, TestApp, OWNER};
use crate::patch::{ok, op, parameters, routed_task, version, JSON_PATCH};

backend_tests!(patch_entries_in_transactions_and_batches);

fn binary(ops: &Value) -> Value {
    json!({
        "resourceType": "Binary",
        "contentType": JSON_PATCH,
        "data": base64::engine::general_purpose::STANDARD.encode(ops.to_string())
    })
}

async fn patch_entries_in_transactions_and_batches(app: TestApp) {
    let (_, task) = routed_task(&app).await;
    let id = task["id"].as_str().unwrap().to_owned();
    let patient = task["for"]["reference"].as_str().unwrap().to_owned();
    // A transaction: a new QuestionnaireResponse and the Task patched to point at it.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-0000000000a1",
         "resource": {"resourceType": "QuestionnaireResponse", "status": "in-progress",
                      "subject": {"reference": patient}},
         "request": {"method": "POST", "url": "QuestionnaireResponse"}},
        {"resource": binary(&json!([
            {"op": "replace", "path": "/status", "value": "received"},
            {"op": "add", "path": "/output", "value": [{
                "type": {"text": "intake"},
                "valueReference": {"reference": "urn:uuid:00000000-0000-4000-8000-0000000000a1"}}]}
         ])),
         "request": {"method": "PATCH", "url": format!("Task/{id}"), "ifMatch": "W/\"1\""}},
    ]});
    let res = app.post_as("", OWNER, &bundle).await;
    let body = ok(res).await;
    assert_eq!(body["entry"][1]["response"]["status"], "200 OK", "{body}");
    assert_eq!(body["entry"][1]["response"]["etag"], "W/\"2\"");
    let stored = current(&app, &format!("Task/{id}")).await;
    assert_eq!(stored["status"], "received");
    assert_eq!(stored["extension"], task["extension"]);
    let qr = stored["output"][0]["valueReference"]["reference"]
        .as_str()
        .unwrap();
    assert!(
        qr.starts_with("QuestionnaireResponse/") && !qr.contains("urn:uuid"),
        "{qr}"
    );

    // A failing PATCH entry rolls the transaction back and is named.
    let failing = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "active": true},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": parameters(vec![op("replace", "Task.status", &[json!({"name": "value", "valueCode": "completed"})])]),
         "request": {"method": "PATCH", "url": format!("Task/{id}"), "ifMatch": "W/\"2\""}},
    ]});
    let patients = app.version_count("Patient").await;
    let res = app.post_as("", OWNER, &failing).await;
    let status = res.status().as_u16();
    assert!((400..500).contains(&status), "{status}");
    let issues = expect_outcome(res, status).await;
    assert!(
        has_expression(&issues, "Bundle.entry[1].resource.status"),
        "{issues:?}"
    );
    assert_eq!(app.version_count("Patient").await, patients);
    assert_eq!(current(&app, &format!("Task/{id}")).await, stored);

    // A batch: each PATCH entry succeeds or fails on its own.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": parameters(vec![op("replace", "Task.status", &[json!({"name": "value", "valueCode": "accepted"})])]),
         "request": {"method": "PATCH", "url": format!("Task/{id}"), "ifMatch": "W/\"2\""}},
        {"resource": binary(&json!([{"op": "test", "path": "/status", "value": "requested"}])),
         "request": {"method": "PATCH", "url": format!("Task/{id}"), "ifMatch": "W/\"3\""}},
        {"resource": binary(&json!([{"op": "add", "path": "/note/-", "value": {"text": "x"}}])),
         "request": {"method": "PATCH", "url": format!("Task/{id}"), "ifMatch": "W/\"1\""}},
        {"resource": binary(&json!([{"op": "replace", "path": "/active", "value": false}])),
         "request": {"method": "PATCH", "url": "Patient/nobody"}},
        {"resource": {"resourceType": "Patient", "active": true},
         "request": {"method": "PATCH", "url": format!("Task/{id}"), "ifMatch": "W/\"3\""}},
    ]});
    let res = app.post_as("", OWNER, &batch).await;
    let body = ok(res).await;
    let statuses: Vec<&str> = body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "200 OK",
            "422 Unprocessable Entity",
            "412 Precondition Failed",
            "404 Not Found",
            "400 Bad Request"
        ],
        "{body}"
    );
    let outcome = &body["entry"][4]["response"]["outcome"];
    assert!(
        has_expression(
            outcome["issue"].as_array().unwrap(),
            "Bundle.entry[4].resource.resourceType"
        ),
        "{outcome}"
    );
    let outcome = &body["entry"][2]["response"]["outcome"];
    assert!(
        has_expression(
            outcome["issue"].as_array().unwrap(),
            "Bundle.entry[2].request.ifMatch"
        ),
        "{outcome}"
    );
    let stored = current(&app, &format!("Task/{id}")).await;
    assert_eq!(
        (stored["status"].as_str(), version(&stored)),
        (Some("accepted"), "3")
    );
}
