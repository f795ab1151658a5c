//! Bad input: every answer is a 4xx OperationOutcome and nothing is stored.

use reqwest::Method;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{expect_outcome, has_issue, spawn, Backend, TestApp, FHIR_JSON};

backend_tests!(
    not_json_and_not_an_object,
    content_types,
    invalid_utf8_duplicate_keys_and_deep_nesting,
    unknown_types_routes_and_methods,
    resource_type_and_unknown_elements,
    accept_other_than_json,
);

async fn post_raw(app: &TestApp, path: &str, ct: Option<&str>, body: Vec<u8>) -> reqwest::Response {
    let mut req = app.request(Method::POST, path).body(body);
    if let Some(ct) = ct {
        req = req.header("Content-Type", ct);
    }
    req.send().await.unwrap()
}

async fn not_json_and_not_an_object(app: TestApp) {
    for body in [
        "{not json",
        "",
        "[{\"resourceType\":\"Patient\"}]",
        "42",
        "{\"resourceType\":\"Patient\"} x",
    ] {
        let res = post_raw(&app, "Patient", Some(FHIR_JSON), body.into()).await;
        let issues = expect_outcome(res, 400).await;
        assert!(
            has_issue(&issues, "structure", None) || has_issue(&issues, "required", None),
            "{body}: {issues:?}"
        );
    }
    assert_eq!(app.version_count("Patient").await, 0);
}

async fn content_types(app: TestApp) {
    let body = json!({"resourceType": "Patient"}).to_string().into_bytes();
    for ct in ["application/fhir+xml", "application/xml", "text/plain"] {
        let issues =
            expect_outcome(post_raw(&app, "Patient", Some(ct), body.clone()).await, 415).await;
        assert!(
            has_issue(&issues, "not-supported", Some("Content-Type")),
            "{ct}"
        );
    }
    expect_outcome(post_raw(&app, "Patient", None, body.clone()).await, 415).await;
    expect_outcome(
        post_raw(
            &app,
            "Patient",
            Some("application/fhir+json; charset=latin1"),
            body.clone(),
        )
        .await,
        415,
    )
    .await;
    // Accepted forms.
    for ct in [
        "application/json",
        "application/fhir+json; charset=UTF-8",
        "application/json+fhir",
    ] {
        let res = post_raw(&app, "Patient", Some(ct), body.clone()).await;
        assert_eq!(res.status(), 201, "{ct}");
    }
    assert_eq!(app.version_count("Patient").await, 3);
}

async fn invalid_utf8_duplicate_keys_and_deep_nesting(app: TestApp) {
    let mut bad_utf8 = br#"{"resourceType":"Patient","name":[{"family":""#.to_vec();
    bad_utf8.extend_from_slice(&[0xC3, 0x28]);
    bad_utf8.extend_from_slice(br#""}]}"#);
    let issues = expect_outcome(
        post_raw(&app, "Patient", Some(FHIR_JSON), bad_utf8).await,
        400,
    )
    .await;
    assert!(issues[0]["diagnostics"].as_str().unwrap().contains("UTF-8"));

    let dup = r#"{"resourceType":"Patient","active":true,"active":false}"#;
    let issues = expect_outcome(
        post_raw(&app, "Patient", Some(FHIR_JSON), dup.into()).await,
        400,
    )
    .await;
    assert!(issues[0]["diagnostics"]
        .as_str()
        .unwrap()
        .contains("duplicate"));

    let deep = format!(
        "{{\"resourceType\":\"Patient\",\"extension\":{}1{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let issues = expect_outcome(
        post_raw(&app, "Patient", Some(FHIR_JSON), deep.into()).await,
        400,
    )
    .await;
    assert!(issues[0]["diagnostics"]
        .as_str()
        .unwrap()
        .contains("deeply"));
    assert_eq!(app.version_count("Patient").await, 0);
}

async fn unknown_types_routes_and_methods(app: TestApp) {
    let body = json!({"resourceType": "Banana"}).to_string().into_bytes();
    let issues = expect_outcome(post_raw(&app, "Banana", Some(FHIR_JSON), body).await, 404).await;
    assert!(has_issue(&issues, "not-supported", None));
    expect_outcome(app.get("Observation/1").await, 404).await;
    expect_outcome(app.get("Banana").await, 404).await;
    expect_outcome(
        app.client
            .get(app.base.replace("/fhir", "/nope"))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    let res = app
        .request(Method::POST, "Patient/abc")
        .send()
        .await
        .unwrap();
    expect_outcome(res, 405).await;
    let res = app
        .request(Method::DELETE, "metadata")
        .send()
        .await
        .unwrap();
    expect_outcome(res, 405).await;
}

async fn resource_type_and_unknown_elements(app: TestApp) {
    let res = app
        .post(
            "Patient",
            &json!({"resourceType": "Organization", "name": "x"}),
        )
        .await;
    let issues = expect_outcome(res, 400).await;
    assert!(
        has_issue(&issues, "invalid", Some("resourceType")),
        "{issues:?}"
    );

    let res = app
        .post("Patient", &json!({"name": [{"family": "x"}]}))
        .await;
    let issues = expect_outcome(res, 400).await;
    assert!(
        has_issue(&issues, "required", Some("resourceType")),
        "{issues:?}"
    );

    let res = app
        .post(
            "Patient",
            &json!({"resourceType": "Patient", "favouriteColour": "blue"}),
        )
        .await;
    let issues = expect_outcome(res, 400).await;
    assert!(
        has_issue(&issues, "structure", Some("Patient.favouriteColour")),
        "{issues:?}"
    );

    let res = app
        .post(
            "Patient",
            &json!({"resourceType": "Patient", "gender": "robot"}),
        )
        .await;
    let issues = expect_outcome(res, 400).await;
    assert!(
        has_issue(&issues, "value", Some("Patient.gender")),
        "{issues:?}"
    );

    let res = app
        .post(
            "ServiceRequest",
            &json!({"resourceType": "ServiceRequest", "subject": {"reference": "Patient/1"}}),
        )
        .await;
    let issues = expect_outcome(res, 400).await;
    assert!(
        has_issue(&issues, "required", Some("ServiceRequest.status")),
        "{issues:?}"
    );
    assert!(
        has_issue(&issues, "required", Some("ServiceRequest.intent")),
        "{issues:?}"
    );

    let res = app
        .post(
            "Task",
            &json!({"resourceType": "Task", "status": "requested", "intent": "wish"}),
        )
        .await;
    let issues = expect_outcome(res, 400).await;
    assert!(
        has_issue(&issues, "value", Some("Task.intent")),
        "{issues:?}"
    );

    for ty in ["Patient", "Organization", "ServiceRequest", "Task"] {
        assert_eq!(app.version_count(ty).await, 0, "{ty}");
    }
}

async fn accept_other_than_json(app: TestApp) {
    let res = app
        .request(Method::GET, "metadata")
        .header("Accept", "application/fhir+xml")
        .send()
        .await
        .unwrap();
    expect_outcome(res, 406).await;
    expect_outcome(app.get("metadata?_format=xml").await, 406).await;
    assert_eq!(app.get("metadata?_format=json").await.status(), 200);
    let res = app
        .request(Method::GET, "metadata")
        .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn body_over_the_configured_limit_is_413_on_sqlite() {
    body_over_the_configured_limit_is_413(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn body_over_the_configured_limit_is_413_on_postgres() {
    body_over_the_configured_limit_is_413(Backend::Postgres).await;
}

async fn body_over_the_configured_limit_is_413(backend: Backend) {
    let app = spawn(backend, |s| s.max_body_bytes = 4096)
        .await
        .expect("app");
    let big = json!({"resourceType": "Patient", "name": [{"family": "x".repeat(5000)}]});
    let issues = expect_outcome(app.post("Patient", &big).await, 413).await;
    assert!(has_issue(&issues, "too-long", None));
    // Chunked upload without Content-Length is cut off as well.
    let stream =
        futures_util::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1000])));
    let res = app
        .request(Method::POST, "Patient")
        .header("Content-Type", FHIR_JSON)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    expect_outcome(res, 413).await;
    assert_eq!(app.version_count("Patient").await, 0);
}
