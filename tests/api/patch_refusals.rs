//! PATCH refused: a stale or missing If-Match, the workflow and element rules as for
//! PUT, failing tests and malformed patches, missing and deleted resources; nothing changes.

use reqwest::Method;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{
    current, expect_outcome, has_expression, has_issue, TestApp, FHIR_JSON, OWNER,
};
use crate::patch::{
    fhirpath_patch, json_patch, ok, op, parameters, routed_task, send, JSON_PATCH, ROUTING,
};

backend_tests!(
    a_stale_or_missing_if_match_is_refused,
    workflow_and_element_rules_refuse_a_patch_as_they_refuse_a_put,
    failing_tests_and_malformed_patches_change_nothing,
    missing_and_deleted_resources_cannot_be_patched,
);

async fn a_stale_or_missing_if_match_is_refused(app: TestApp) {
    let (_, task) = routed_task(&app).await;
    let path = format!("Task/{}", task["id"].as_str().unwrap());
    let ops = json!([{"op": "replace", "path": "/status", "value": "received"}]);
    // Tasks need If-Match, for PATCH as for PUT.
    let res = send(&app, &path, JSON_PATCH, &ops, Some(OWNER), None).await;
    let issues = expect_outcome(res, 412).await;
    assert!(has_expression(&issues, "If-Match"), "{issues:?}");
    let received = ok(json_patch(&app, &task, ops.clone()).await).await;
    // The version the owner read is no longer current.
    let back = json!([{"op": "replace", "path": "/status", "value": "accepted"}]);
    let res = send(&app, &path, JSON_PATCH, &back, Some(OWNER), Some("1")).await;
    let issues = expect_outcome(res, 412).await;
    assert!(
        has_issue(&issues, "conflict", Some("If-Match")),
        "{issues:?}"
    );
    assert_eq!(current(&app, &path).await, received);
}

async fn workflow_and_element_rules_refuse_a_patch_as_they_refuse_a_put(app: TestApp) {
    let (_, task) = routed_task(&app).await;
    let path = format!("Task/{}", task["id"].as_str().unwrap());
    let received = ok(json_patch(
        &app,
        &task,
        json!([{"op": "replace", "path": "/status", "value": "received"}]),
    )
    .await)
    .await;
    // received -> completed is no legal move: PATCH answers what PUT answers.
    let mut completed = received.clone();
    completed["status"] = json!("completed");
    let put = app
        .request(Method::PUT, &path)
        .header("Content-Type", FHIR_JSON)
        .header("X-Acting-Party", OWNER)
        .header("If-Match", "W/\"2\"")
        .body(completed.to_string())
        .send()
        .await
        .unwrap();
    let put_status = put.status().as_u16();
    let put_issues = expect_outcome(put, put_status).await;
    assert!((400..500).contains(&put_status), "{put_status}");
    let res = json_patch(
        &app,
        &received,
        json!([{"op": "replace", "path": "/status", "value": "completed"}]),
    )
    .await;
    let issues = expect_outcome(res, put_status).await;
    assert!(has_expression(&issues, "Task.status"), "{issues:?}");
    assert_eq!(issues[0]["code"], put_issues[0]["code"]);
    let res = fhirpath_patch(
        &app,
        &received,
        vec![op(
            "replace",
            "Task.status",
            &[json!({"name": "value", "valueCode": "completed"})],
        )],
    )
    .await;
    expect_outcome(res, put_status).await;
    // The owner may not touch the referral it works for, nor drop the routing.
    let res = json_patch(
        &app,
        &received,
        json!([{"op": "replace", "path": "/focus/reference", "value": "ServiceRequest/other"}]),
    )
    .await;
    let issues = expect_outcome(res, 403).await;
    assert!(
        has_issue(&issues, "forbidden", Some("Task.focus")),
        "{issues:?}"
    );
    let res = fhirpath_patch(
        &app,
        &received,
        vec![op("delete", &format!("Task.extension('{ROUTING}')"), &[])],
    )
    .await;
    let issues = expect_outcome(res, 403).await;
    assert!(
        has_issue(&issues, "forbidden", Some("Task.extension")),
        "{issues:?}"
    );
    // A party that is neither owner nor requester.
    let res = send(
        &app,
        &path,
        JSON_PATCH,
        &json!([{"op": "add", "path": "/note/-", "value": {"text": "x"}}]),
        Some("Organization/someone-else"),
        Some("2"),
    )
    .await;
    expect_outcome(res, 403).await;
    // Nothing of the refused patches was stored.
    assert_eq!(current(&app, &path).await, received);
    let history = current(&app, &format!("{path}/_history")).await;
    assert_eq!(history["entry"].as_array().unwrap().len(), 2);
}

async fn failing_tests_and_malformed_patches_change_nothing(app: TestApp) {
    let (_, task) = routed_task(&app).await;
    let path = format!("Task/{}", task["id"].as_str().unwrap());
    let v = Some("1");
    let refuse = |content_type: &'static str, body: Value, status: u16| {
        let (app, path) = (&app, path.clone());
        async move {
            let res = send(app, &path, content_type, &body, Some(OWNER), v).await;
            expect_outcome(res, status).await
        }
    };
    // RFC 6902 test: the operation fails, so the whole patch does (RFC 5789: 422).
    let issues = refuse(
        JSON_PATCH,
        json!([
            {"op": "replace", "path": "/status", "value": "received"},
            {"op": "test", "path": "/intent", "value": "plan"}
        ]),
        422,
    )
    .await;
    assert!(
        has_issue(&issues, "conflict", Some("Task.intent")),
        "{issues:?}"
    );
    let issues = refuse(
        JSON_PATCH,
        json!([{"op": "remove", "path": "/statusReason"}]),
        422,
    )
    .await;
    assert!(has_expression(&issues, "Task.statusReason"), "{issues:?}");
    // Malformed JSON Patches: 400, naming what they can.
    let issues = refuse(JSON_PATCH, json!({"op": "replace"}), 400).await;
    assert!(issues[0]["diagnostics"].as_str().unwrap().contains("array"));
    let issues = refuse(
        JSON_PATCH,
        json!([{"op": "frobnicate", "path": "/status", "value": "x"}]),
        400,
    )
    .await;
    assert!(
        has_issue(&issues, "invalid", Some("Task.status")),
        "{issues:?}"
    );
    refuse(
        JSON_PATCH,
        json!([{"op": "replace", "path": "status", "value": "x"}]),
        400,
    )
    .await;
    refuse(
        JSON_PATCH,
        json!([{"op": "replace", "path": "/status"}]),
        400,
    )
    .await;
    // A patched resource that is not valid R4: 400 as for PUT.
    let issues = refuse(
        JSON_PATCH,
        json!([{"op": "replace", "path": "/status", "value": "banana"}]),
        400,
    )
    .await;
    assert!(has_expression(&issues, "Task.status"), "{issues:?}");
    // The identity of a resource is not patched.
    let issues = refuse(
        JSON_PATCH,
        json!([{"op": "replace", "path": "/id", "value": "x"}]),
        422,
    )
    .await;
    assert!(has_expression(&issues, "Task.id"), "{issues:?}");
    refuse(
        JSON_PATCH,
        json!([{"op": "remove", "path": "/resourceType"}]),
        422,
    )
    .await;
    // Malformed FHIRPath Patches name the part.
    let bad = [
        (
            op("delete", "Task.focus.resolve().status", &[]),
            "Parameters.parameter[0].part[1]",
        ),
        (
            op("delete", "Task.note.exists()", &[]),
            "Parameters.parameter[0].part[1]",
        ),
        (
            op("upsert", "Task.status", &[]),
            "Parameters.parameter[0].part[0]",
        ),
        (
            op("replace", "Task.status", &[]),
            "Parameters.parameter[0].part",
        ),
        (
            op(
                "add",
                "Task",
                &[
                    json!({"name": "name", "valueString": "colour"}),
                    json!({"name": "value", "valueCode": "x"}),
                ],
            ),
            "Parameters.parameter[0].part[2]",
        ),
    ];
    for (operation, at) in bad {
        let issues = refuse(FHIR_JSON, parameters(vec![operation]), 400).await;
        assert!(has_expression(&issues, at), "{at}: {issues:?}");
    }
    let issues = refuse(
        FHIR_JSON,
        parameters(vec![op(
            "replace",
            "Task.statusReason.text",
            &[json!({"name": "value", "valueString": "x"})],
        )]),
        422,
    )
    .await;
    assert!(
        has_expression(&issues, "Parameters.parameter[0].part[1]"),
        "{issues:?}"
    );
    // A JSON Patch sent as FHIR JSON or plain JSON: 400 pointing at the Content-Type.
    for content_type in [FHIR_JSON, "application/json"] {
        let issues = refuse(
            content_type,
            json!([{"op": "replace", "path": "/status", "value": "x"}]),
            400,
        )
        .await;
        assert!(has_expression(&issues, "Content-Type"), "{issues:?}");
    }
    refuse(
        FHIR_JSON,
        json!({"resourceType": "Task", "status": "received"}),
        400,
    )
    .await;
    // Media types PATCH does not take.
    for content_type in [
        "text/plain",
        "application/xml",
        "application/merge-patch+json",
    ] {
        let issues = refuse(content_type, json!([]), 415).await;
        assert!(has_expression(&issues, "Content-Type"), "{issues:?}");
    }
    assert_eq!(current(&app, &path).await, task);
    let history = current(&app, &format!("{path}/_history")).await;
    assert_eq!(history["entry"].as_array().unwrap().len(), 1);
}

async fn missing_and_deleted_resources_cannot_be_patched(app: TestApp) {
    let ops = json!([{"op": "replace", "path": "/active", "value": false}]);
    let res = send(&app, "Patient/nobody", JSON_PATCH, &ops, None, None).await;
    expect_outcome(res, 404).await;
    let res = send(&app, "Banana/1", JSON_PATCH, &ops, None, None).await;
    expect_outcome(res, 404).await;
    let patient = app
        .create(&json!({"resourceType": "Patient", "active": true}))
        .await;
    let path = format!("Patient/{}", patient["id"].as_str().unwrap());
    assert_eq!(
        app.request(Method::DELETE, &path)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let res = send(&app, &path, JSON_PATCH, &ops, None, None).await;
    let issues = expect_outcome(res, 410).await;
    assert!(has_issue(&issues, "deleted", None));
    let res = send(&app, &path, JSON_PATCH, &ops, None, Some("2")).await;
    expect_outcome(res, 410).await;
    let history = current(&app, &format!("{path}/_history")).await;
    assert_eq!(history["entry"].as_array().unwrap().len(), 2);
}
