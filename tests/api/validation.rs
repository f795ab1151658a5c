//! POST /fhir/{type}/$validate: the same checks as create, nothing stored (see also
//! validate_op.rs).

use serde_json::json;

use crate::backend_tests;
use crate::helpers::{expect_outcome, has_issue, TestApp};

backend_tests!(validate_reports_without_storing);

async fn validate_reports_without_storing(app: TestApp) {
    // References are checked as on create: the subject must exist.
    let res = app
        .put(
            "Patient/p1",
            &json!({"resourceType": "Patient", "id": "p1"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let sr = json!({
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "code": {"text": "Welzijn op Recept"}
    });
    let issues = expect_outcome(app.post("ServiceRequest/$validate", &sr).await, 200).await;
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0]["severity"], "information");

    let mut bad = sr.clone();
    bad["intent"] = json!("wish");
    bad["unknownThing"] = json!(1);
    let issues = expect_outcome(app.post("ServiceRequest/$validate", &bad).await, 200).await;
    assert!(
        has_issue(&issues, "value", Some("ServiceRequest.intent")),
        "{issues:?}"
    );
    assert!(
        has_issue(&issues, "structure", Some("ServiceRequest.unknownThing")),
        "{issues:?}"
    );

    // As the `resource` parameter of a Parameters, with mode=update requiring an id.
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": sr},
        {"name": "mode", "valueCode": "update"}
    ]});
    let issues = expect_outcome(app.post("ServiceRequest/$validate", &params).await, 200).await;
    assert!(
        has_issue(&issues, "required", Some("ServiceRequest.id")),
        "{issues:?}"
    );

    let params =
        json!({"resourceType": "Parameters", "parameter": [{"name": "profile", "valueUri": "x"}]});
    expect_outcome(app.post("ServiceRequest/$validate", &params).await, 400).await;
    let empty = json!({"resourceType": "Parameters"});
    expect_outcome(app.post("ServiceRequest/$validate", &empty).await, 400).await;

    let res = app.post("Patient/$validate", &sr).await;
    let issues = expect_outcome(res, 200).await;
    assert!(
        has_issue(&issues, "invalid", Some("resourceType")),
        "{issues:?}"
    );

    // The business rules of writes apply too: a Task business status outside the
    // project CodeSystem, a Positive Health score out of range.
    let task = json!({"resourceType": "Task", "status": "requested", "intent": "order",
        "businessStatus": {"coding": [{"system": "https://wor-hub.nl/fhir/CodeSystem/task-business-status", "code": "bijna"}]}});
    let issues = expect_outcome(app.post("Task/$validate", &task).await, 200).await;
    assert!(
        has_issue(
            &issues,
            "code-invalid",
            Some("Task.businessStatus.coding[0].code")
        ),
        "{issues:?}"
    );
    let qr = json!({"resourceType": "QuestionnaireResponse", "status": "in-progress",
        "questionnaire": "https://wor-hub.nl/fhir/Questionnaire/positive-health",
        "item": [{"linkId": "meaningfulness", "answer": [{"valueInteger": 11}]}]});
    let issues = expect_outcome(app.post("QuestionnaireResponse/$validate", &qr).await, 200).await;
    assert!(
        issues.iter().any(|i| i["severity"] == "error"
            && i["expression"][0] == "QuestionnaireResponse.item[0].answer[0].valueInteger"),
        "{issues:?}"
    );

    assert_eq!(app.version_count("ServiceRequest").await, 0);
}
