//! PATCH (http.html#patch): JSON Patch and FHIRPath Patch of a routed Task by its
//! owner, through the same rules as PUT; refusals change nothing; PATCH entries in
//! transactions and batches (`patch_bundle`); refusals (`patch_refusals`).

use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{current, load_sample, refer, the_task, TestApp, BUSINESS, FHIR_JSON, OWNER};

backend_tests!(
    json_and_fhirpath_patch_move_a_routed_task_and_keep_its_routing,
    other_types_patch_without_if_match_and_keep_their_bytes,
    concurrent_patches_lose_no_update,
    a_retried_patch_gets_the_first_answer,
);

pub(crate) const JSON_PATCH: &str = "application/json-patch+json";
pub(crate) const ROUTING: &str = "https://wor-hub.nl/fhir/StructureDefinition/routing-decision";

/// A GP's referral (Practitioner, Patient, ServiceRequest in one transaction), routed
/// to the owner; returns (ServiceRequest id, its Task).
pub(crate) async fn routed_task(app: &TestApp) -> (String, Value) {
    load_sample(app).await;
    let (sr, _) = refer(app, "2026-11-20").await;
    let task = the_task(app, &sr).await;
    assert_eq!(task["owner"]["reference"], OWNER);
    assert_eq!(task["extension"][0]["url"], ROUTING, "{task}");
    (sr, task)
}

pub(crate) fn version(resource: &Value) -> &str {
    resource["meta"]["versionId"].as_str().unwrap()
}

/// PATCHes `path` with `body` as `content_type`, acting as `party`, with `If-Match` of
/// `version` when given.
pub(crate) async fn send(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: &Value,
    party: Option<&str>,
    version: Option<&str>,
) -> Response {
    let mut req = app
        .request(Method::PATCH, path)
        .header("Content-Type", content_type)
        .body(body.to_string());
    if let Some(p) = party {
        req = req.header("X-Acting-Party", p);
    }
    if let Some(v) = version {
        req = req.header("If-Match", format!("W/\"{v}\""));
    }
    req.send().await.unwrap()
}

/// JSON Patch of the Task as its owner, If-Match from `task`.
pub(crate) async fn json_patch(app: &TestApp, task: &Value, ops: Value) -> Response {
    let path = format!("Task/{}", task["id"].as_str().unwrap());
    send(
        app,
        &path,
        JSON_PATCH,
        &ops,
        Some(OWNER),
        Some(version(task)),
    )
    .await
}

/// FHIRPath Patch of the Task as its owner, If-Match from `task`.
pub(crate) async fn fhirpath_patch(app: &TestApp, task: &Value, ops: Vec<Value>) -> Response {
    let path = format!("Task/{}", task["id"].as_str().unwrap());
    send(
        app,
        &path,
        FHIR_JSON,
        &parameters(ops),
        Some(OWNER),
        Some(version(task)),
    )
    .await
}

pub(crate) fn parameters(ops: Vec<Value>) -> Value {
    json!({"resourceType": "Parameters", "parameter": ops})
}

pub(crate) fn op(kind: &str, path: &str, more: &[Value]) -> Value {
    let mut parts = vec![
        json!({"name": "type", "valueCode": kind}),
        json!({"name": "path", "valueString": path}),
    ];
    parts.extend_from_slice(more);
    json!({"name": "operation", "part": parts})
}

pub(crate) fn business(code: &str) -> Value {
    json!({"coding": [{"system": BUSINESS, "code": code}]})
}

pub(crate) async fn ok(res: Response) -> Value {
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn json_and_fhirpath_patch_move_a_routed_task_and_keep_its_routing(app: TestApp) {
    let (sr, task) = routed_task(&app).await;
    let routing = task["extension"].clone();
    // JSON Patch: requested -> received, without sending back the routing extension.
    let received = ok(json_patch(
        &app,
        &task,
        json!([
            {"op": "test", "path": "/status", "value": "requested"},
            {"op": "replace", "path": "/status", "value": "received"},
            {"op": "add", "path": "/businessStatus", "value": business("contact-made")}
        ]),
    )
    .await)
    .await;
    assert_eq!(received["status"], "received");
    assert_eq!(version(&received), "2");
    assert_eq!(received["extension"], routing);
    assert_eq!(
        received["businessStatus"]["coding"][0]["code"],
        "contact-made"
    );
    // FHIRPath Patch: received -> accepted, a new business status, an output.
    let res = fhirpath_patch(
        &app,
        &received,
        vec![
            op("replace", "Task.status", &[json!({"name": "value", "valueCode": "accepted"})]),
            op(
                "replace",
                "Task.businessStatus",
                &[json!({"name": "value", "valueCodeableConcept": business("intake-planned")})],
            ),
            op(
                "add",
                "Task",
                &[
                    json!({"name": "name", "valueString": "output"}),
                    json!({"name": "value", "part": [
                        {"name": "type", "valueCodeableConcept": {"coding": [{"system": "https://wor-hub.nl/fhir/CodeSystem/task-output-type", "code": "feedback"}]}},
                        {"name": "value", "valueString": "Intake gepland op 3 december."}
                    ]}),
                ],
            ),
        ],
    )
    .await;
    assert_eq!(res.headers()["etag"], "W/\"3\"");
    let accepted = ok(res).await;
    assert_eq!(accepted["status"], "accepted");
    assert_eq!(accepted["extension"], routing);
    assert_eq!(
        accepted["output"][0]["valueString"],
        "Intake gepland op 3 december."
    );
    assert_eq!(
        accepted["businessStatus"]["coding"][0]["code"],
        "intake-planned"
    );
    // The referral stays active while the work goes on ...
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(
        (referral["status"].as_str(), version(&referral)),
        (Some("active"), "1")
    );
    // ... and follows the Task when it completes, patch or PUT alike.
    let working = ok(json_patch(
        &app,
        &accepted,
        json!([{"op": "replace", "path": "/status", "value": "in-progress"}]),
    )
    .await)
    .await;
    let res = json_patch(
        &app,
        &working,
        json!([
            {"op": "replace", "path": "/status", "value": "completed"},
            {"op": "replace", "path": "/businessStatus", "value": business("closed-goal-reached")},
            {"op": "replace", "path": "/output/0/valueString", "value": "Doel bereikt."}
        ]),
    )
    .await;
    let done = ok(res).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["extension"], routing);
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(referral["status"], "completed");
    assert_eq!(version(&referral), "2");
    // Prefer: return=minimal answers with the ETag and no body.
    let res = app
        .request(
            Method::PATCH,
            &format!("Task/{}", done["id"].as_str().unwrap()),
        )
        .header("Content-Type", JSON_PATCH)
        .header("X-Acting-Party", OWNER)
        .header("If-Match", "W/\"5\"")
        .header("Prefer", "return=minimal")
        .body(json!([{"op": "add", "path": "/note/-", "value": {"text": "Afgerond."}}]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "W/\"6\"");
    assert!(res.text().await.unwrap().is_empty());
}

async fn other_types_patch_without_if_match_and_keep_their_bytes(app: TestApp) {
    let body = r#"{"resourceType":"Patient","extension":[{"url":"https://example.org/weight","valueDecimal":71.50}],"active":true,"name":[{"family":"Jansen"}]}"#;
    let res = app.post_text("Patient", body).await;
    assert_eq!(res.status(), 201);
    let patient: Value = res.json().await.unwrap();
    let path = format!("Patient/{}", patient["id"].as_str().unwrap());
    let res = send(
        &app,
        &path,
        FHIR_JSON,
        &parameters(vec![
            op(
                "replace",
                "Patient.active",
                &[json!({"name": "value", "valueBoolean": false})],
            ),
            op(
                "add",
                "Patient.name[0]",
                &[
                    json!({"name": "name", "valueString": "given"}),
                    json!({"name": "value", "valueString": "Anna"}),
                ],
            ),
        ]),
        None,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let text = app.get(&path).await.text().await.unwrap();
    assert!(text.contains(r#""valueDecimal":71.50"#), "{text}");
    let stored: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(stored["active"], false);
    assert_eq!(stored["name"][0]["given"], json!(["Anna"]));
    assert_eq!(version(&stored), "2");
}

async fn concurrent_patches_lose_no_update(app: TestApp) {
    let patient = app
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Start"}]}))
        .await;
    let path = format!("Patient/{}", patient["id"].as_str().unwrap());
    let mut handles = Vec::new();
    for i in 0..8 {
        let (client, url) = (app.client.clone(), app.url(&path));
        handles.push(tokio::spawn(async move {
            let ops =
                json!([{"op": "add", "path": "/name/-", "value": {"family": format!("N{i}")}}]);
            let res = client
                .patch(url)
                .header("Content-Type", JSON_PATCH)
                .body(ops.to_string())
                .send()
                .await
                .unwrap();
            res.status().as_u16()
        }));
    }
    let mut applied = 0;
    for h in handles {
        match h.await.unwrap() {
            200 => applied += 1,
            409 => {}
            other => panic!("status {other}"),
        }
    }
    assert!(applied > 0);
    let stored = current(&app, &path).await;
    // Every patch that answered 200 is in the resource: none overwrote another.
    assert_eq!(
        stored["name"].as_array().unwrap().len(),
        1 + applied,
        "{stored}"
    );
    assert_eq!(version(&stored), (1 + applied).to_string());
}

async fn a_retried_patch_gets_the_first_answer(app: TestApp) {
    let (_, task) = routed_task(&app).await;
    let path = format!("Task/{}", task["id"].as_str().unwrap());
    let ops = json!([
        {"op": "test", "path": "/status", "value": "requested"},
        {"op": "replace", "path": "/status", "value": "received"}
    ]);
    let attempt = || {
        app.request(Method::PATCH, &path)
            .header("Content-Type", JSON_PATCH)
            .header("X-Acting-Party", OWNER)
            .header("If-Match", "W/\"1\"")
            .header("X-Request-Id", "welfare-backend-patch-0001")
            .body(ops.to_string())
            .send()
    };
    let first = attempt().await.unwrap();
    assert_eq!(first.status(), 200);
    let first_body = first.text().await.unwrap();
    // The retry's If-Match and test no longer hold; it still gets the first answer.
    let again = attempt().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.text().await.unwrap(), first_body);
    let history = current(&app, &format!("{path}/_history")).await;
    assert_eq!(history["entry"].as_array().unwrap().len(), 2);
}
