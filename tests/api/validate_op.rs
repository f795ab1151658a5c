//! `$validate` at type and instance level (resource-operation-validate): the write's
//! own rules run and are rolled back, so `$validate` and the write agree; 200 with an
//! OperationOutcome, valid or not; 4xx only for a malformed request.

use diesel::prelude::*;
use reqwest::{Method, Response};
use serde_json::{json, Value};
use wor_hub::config::DatabaseUrl;

use crate::backend_tests;
use crate::helpers::{expect_outcome, has_expression, has_issue, TestApp, FHIR_JSON, OWNER};

backend_tests!(
    a_referral_whose_subject_does_not_exist_is_invalid_as_on_create,
    a_task_update_is_checked_against_the_workflow,
    deletion_and_the_stored_resource_can_be_checked,
    malformed_validation_requests_are_refused,
);

async fn validate(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Response {
    let mut req = app.request(method, path);
    if let Some(body) = body {
        req = req.header("Content-Type", FHIR_JSON).body(body.to_string());
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// The OperationOutcome of a $validate that ran: 200, whatever the verdict.
async fn verdict(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Vec<Value> {
    expect_outcome(validate(app, method, path, body, headers).await, 200).await
}

fn valid(issues: &[Value]) -> bool {
    !issues.iter().any(|i| i["severity"] == "error") && issues[0]["severity"] == "information"
}

diesel::table! {
    audit_events (seq) {
        seq -> BigInt,
        action -> Text,
        interaction -> Text,
        resource_type -> Text,
        resource_id -> Nullable<Text>,
        outcome -> Text,
    }
}

type AuditRow = (String, String, String, Option<String>, String);

/// (action, interaction, type, id, outcome) of every audit record, oldest first.
fn audit(app: &TestApp) -> Vec<AuditRow> {
    app.audit_moved();
    let query = audit_events::table.order(audit_events::seq.asc()).select((
        audit_events::action,
        audit_events::interaction,
        audit_events::resource_type,
        audit_events::resource_id,
        audit_events::outcome,
    ));
    match &app.database {
        DatabaseUrl::Sqlite(path) => {
            let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
            query.load(&mut conn).unwrap()
        }
        DatabaseUrl::Postgres(url) => {
            let mut conn = PgConnection::establish(url).unwrap();
            query.load(&mut conn).unwrap()
        }
    }
}

async fn a_referral_whose_subject_does_not_exist_is_invalid_as_on_create(app: TestApp) {
    let referral = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "code": {"text": "Welzijn op Recept"}, "subject": {"reference": "Patient/nobody"}});
    let issues = verdict(
        &app,
        Method::POST,
        "ServiceRequest/$validate",
        Some(&referral),
        &[],
    )
    .await;
    assert!(
        has_issue(
            &issues,
            "not-found",
            Some("ServiceRequest.subject.reference")
        ),
        "{issues:?}"
    );
    // The write refuses it for the same reason.
    let refused = expect_outcome(app.post("ServiceRequest", &referral).await, 422).await;
    assert!(has_issue(
        &refused,
        "not-found",
        Some("ServiceRequest.subject.reference")
    ));
    // mode=create, in a Parameters body: the same.
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "mode", "valueCode": "create"}, {"name": "resource", "resource": referral}]});
    let issues = verdict(
        &app,
        Method::POST,
        "ServiceRequest/$validate",
        Some(&params),
        &[],
    )
    .await;
    assert!(has_expression(&issues, "ServiceRequest.subject.reference"));

    // With its Patient stored, the referral is valid: the create ran (routing
    // included) and was rolled back, nothing stored, no Task.
    let patient = app
        .create(&json!({"resourceType": "Patient", "birthDate": "1959-04-02"}))
        .await;
    let mut referral = referral.clone();
    referral["subject"]["reference"] =
        json!(format!("Patient/{}", patient["id"].as_str().unwrap()));
    let issues = verdict(
        &app,
        Method::POST,
        "ServiceRequest/$validate?mode=create",
        Some(&referral),
        &[],
    )
    .await;
    assert!(valid(&issues), "{issues:?}");
    assert_eq!(app.version_count("ServiceRequest").await, 0);
    assert_eq!(app.version_count("Task").await, 0);
    // One audit record per validation, none of the rolled-back writes.
    let rows = audit(&app);
    let validations: Vec<&AuditRow> = rows.iter().filter(|r| r.1 == "validate").collect();
    assert_eq!(validations.len(), 3, "{rows:?}");
    assert_eq!(validations[0].0, "E");
    assert_eq!(validations[0].4, "invalid");
    assert_eq!(validations[2].4, "valid");
    assert!(!rows
        .iter()
        .any(|r| r.0 == "C" && (r.2 == "Task" || r.2 == "ServiceRequest")));
}

/// The Task the hub routed a new referral to (owner: tom-in-de-buurt).
async fn routed_task(app: &TestApp) -> Value {
    let res = app
        .post_text("", wor_hub::api::directory::SAMPLE_DIRECTORY)
        .await;
    assert_eq!(res.status(), 200);
    let patient = app
        .create(&json!({"resourceType": "Patient", "birthDate": "1959-04-02",
            "address": [{"use": "home", "district": "Alphen aan den Rijn", "postalCode": "2771 AB"}]}))
        .await;
    let sr = app
        .create(
            &json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "code": {"text": "Welzijn op Recept"},
            "subject": {"reference": format!("Patient/{}", patient["id"].as_str().unwrap())}}),
        )
        .await;
    let bundle: Value = app
        .get(&format!(
            "Task?focus=ServiceRequest/{}",
            sr["id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    bundle["entry"][0]["resource"].clone()
}

async fn a_task_update_is_checked_against_the_workflow(app: TestApp) {
    let task = routed_task(&app).await;
    let id = task["id"].as_str().unwrap().to_owned();
    let path = format!("Task/{id}/$validate");

    // requested -> completed breaks the workflow: the verdict names Task.status.
    let mut completed = task.clone();
    completed["status"] = json!("completed");
    let issues = verdict(
        &app,
        Method::POST,
        &format!("{path}?mode=update"),
        Some(&completed),
        &[("X-Acting-Party", OWNER)],
    )
    .await;
    assert!(
        issues
            .iter()
            .any(|i| i["severity"] == "error" && i["expression"][0] == "Task.status"),
        "{issues:?}"
    );
    // The same PUT is refused.
    let res = app
        .request(Method::PUT, &format!("Task/{id}"))
        .header("Content-Type", FHIR_JSON)
        .header("If-Match", "W/\"1\"")
        .header("X-Acting-Party", OWNER)
        .body(completed.to_string())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());

    // A party that is neither owner nor requester: forbidden, in the verdict.
    let mut received = task.clone();
    received["status"] = json!("received");
    let issues = verdict(
        &app,
        Method::POST,
        &path,
        Some(&received),
        &[("X-Acting-Party", "Organization/someone")],
    )
    .await;
    assert!(
        has_issue(&issues, "forbidden", Some("X-Acting-Party")),
        "{issues:?}"
    );
    // The owner's legal move is valid (without If-Match: checked against the current
    // version; with a stale If-Match: the verdict says so).
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": received}, {"name": "mode", "valueCode": "update"}]});
    let issues = verdict(
        &app,
        Method::POST,
        &path,
        Some(&params),
        &[("X-Acting-Party", OWNER)],
    )
    .await;
    assert!(valid(&issues), "{issues:?}");
    let issues = verdict(
        &app,
        Method::POST,
        &path,
        Some(&received),
        &[("X-Acting-Party", OWNER), ("If-Match", "W/\"9\"")],
    )
    .await;
    assert!(has_issue(&issues, "conflict", None), "{issues:?}");
    // An id in the body other than the URL's: the update's own 400 rule, as a verdict.
    let mut other = received.clone();
    other["id"] = json!("another-task");
    let issues = verdict(
        &app,
        Method::POST,
        &path,
        Some(&other),
        &[("X-Acting-Party", OWNER)],
    )
    .await;
    assert!(has_issue(&issues, "invalid", Some("Task.id")), "{issues:?}");

    // Nothing was written: the Task is still version 1, requested.
    let stored: Value = app.get(&format!("Task/{id}")).await.json().await.unwrap();
    assert_eq!(stored["meta"]["versionId"], "1");
    assert_eq!(stored["status"], "requested");
}

async fn deletion_and_the_stored_resource_can_be_checked(app: TestApp) {
    let patient = app
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Jansen"}]}))
        .await;
    let id = patient["id"].as_str().unwrap();
    // GET: the stored resource as it is.
    let issues = verdict(
        &app,
        Method::GET,
        &format!("Patient/{id}/$validate"),
        None,
        &[],
    )
    .await;
    assert!(valid(&issues), "{issues:?}");
    // mode=profile against the base profile: valid; a profile the server does not know: 400.
    let base_profile = "http://hl7.org/fhir/StructureDefinition/Patient";
    let path = format!("Patient/{id}/$validate?mode=profile&profile={base_profile}");
    let issues = verdict(&app, Method::GET, &path, None, &[]).await;
    assert!(valid(&issues), "{issues:?}");
    let issues = expect_outcome(
        validate(
            &app,
            Method::GET,
            &format!("Patient/{id}/$validate?profile=http://example.org/x"),
            None,
            &[],
        )
        .await,
        400,
    )
    .await;
    assert!(
        has_issue(&issues, "not-supported", Some("profile")),
        "{issues:?}"
    );

    // mode=delete, POST without a body or GET: would the delete be accepted?
    let issues = verdict(
        &app,
        Method::POST,
        &format!("Patient/{id}/$validate?mode=delete"),
        None,
        &[],
    )
    .await;
    assert!(valid(&issues), "{issues:?}");
    let issues = verdict(
        &app,
        Method::GET,
        "Patient/nobody/$validate?mode=delete",
        None,
        &[],
    )
    .await;
    assert!(has_issue(&issues, "not-found", None), "{issues:?}");
    // Nothing was deleted.
    assert_eq!(app.get(&format!("Patient/{id}")).await.status(), 200);

    // A Task is deleted only by a coordinator: the verdict of mode=delete follows the party.
    let task = routed_task(&app).await;
    let task_path = format!(
        "Task/{}/$validate?mode=delete",
        task["id"].as_str().unwrap()
    );
    let issues = verdict(
        &app,
        Method::GET,
        &task_path,
        None,
        &[("X-Acting-Party", OWNER)],
    )
    .await;
    assert!(
        has_issue(&issues, "forbidden", Some("X-Acting-Party")),
        "{issues:?}"
    );
    let issues = verdict(
        &app,
        Method::GET,
        &task_path,
        None,
        &[("X-Acting-Party", "coordinator")],
    )
    .await;
    assert!(valid(&issues), "{issues:?}");

    // The stored resource of an unknown id: 404; of a deleted one: 410.
    expect_outcome(
        validate(&app, Method::GET, "Patient/nobody/$validate", None, &[]).await,
        404,
    )
    .await;
    assert_eq!(
        app.request(Method::DELETE, &format!("Patient/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    expect_outcome(
        validate(
            &app,
            Method::GET,
            &format!("Patient/{id}/$validate"),
            None,
            &[],
        )
        .await,
        410,
    )
    .await;
}

async fn malformed_validation_requests_are_refused(app: TestApp) {
    let patient = json!({"resourceType": "Patient", "name": [{"family": "Jansen"}]});
    let cases: Vec<(Method, &str, Option<Value>, &str)> = vec![
        (
            Method::POST,
            "Patient/$validate?mode=delete",
            Some(patient.clone()),
            "mode",
        ),
        (
            Method::POST,
            "Patient/$validate?mode=sideways",
            Some(patient.clone()),
            "mode",
        ),
        (
            Method::POST,
            "Patient/$validate?colour=blue",
            Some(patient.clone()),
            "colour",
        ),
        (
            Method::POST,
            "Patient/p1/$validate?mode=create",
            Some(patient.clone()),
            "mode",
        ),
        (
            Method::GET,
            "Patient/p1/$validate?mode=update",
            None,
            "resource",
        ),
        (
            Method::POST,
            "Patient/p1/$validate?mode=delete",
            Some(patient.clone()),
            "resource",
        ),
        (
            Method::GET,
            "Patient/p1/$validate?mode=profile",
            None,
            "profile",
        ),
        (Method::POST, "Patient/$validate", None, "resource"),
        (
            Method::POST,
            "Patient/$validate?mode=update",
            Some(
                json!({"resourceType": "Parameters", "parameter": [{"name": "mode", "valueCode": "create"}]}),
            ),
            "Parameters.parameter[0].valueCode",
        ),
        (
            Method::POST,
            "Patient/$validate",
            Some(
                json!({"resourceType": "Parameters", "parameter": [{"name": "colour", "valueString": "x"}]}),
            ),
            "Parameters.parameter[0].name",
        ),
    ];
    for (method, path, body, at) in cases {
        let issues =
            expect_outcome(validate(&app, method, path, body.as_ref(), &[]).await, 400).await;
        assert!(has_expression(&issues, at), "{path}: {issues:?}");
    }
    expect_outcome(
        validate(&app, Method::POST, "Banana/$validate", Some(&patient), &[]).await,
        404,
    )
    .await;
    expect_outcome(
        validate(&app, Method::GET, "Patient/a%20b/$validate", None, &[]).await,
        400,
    )
    .await;
    // An update without an id at type level: the verdict says the id is required.
    let issues = verdict(
        &app,
        Method::POST,
        "Patient/$validate?mode=update",
        Some(&patient),
        &[],
    )
    .await;
    assert!(
        has_issue(&issues, "required", Some("Patient.id")),
        "{issues:?}"
    );
}
