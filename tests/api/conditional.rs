//! Conditional update and delete at the REST endpoint (`PUT`/`DELETE /fhir/{type}?criteria`,
//! http.html#cond-update and #3.1.0.7.1), with the same rules as plain PUT and DELETE,
//! and the same decision for conditional entries of a transaction.

use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{expect_outcome, has_expression, has_issue, TestApp, FHIR_JSON};

backend_tests!(
    conditional_update_creates_updates_or_refuses,
    conditional_update_follows_the_rules_of_put,
    conditional_updates_in_parallel_create_one_resource,
    conditional_delete_deletes_one_or_nothing,
    conditional_writes_on_tasks_follow_the_workflow,
    bundle_entries_decide_like_the_endpoint,
    capability_statement_claims_conditional_update_and_delete,
);

const BSN: &str = "http://fhir.nl/fhir/NamingSystem/bsn";

fn patient(bsn: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "identifier": [{"system": BSN, "value": bsn}],
           "name": [{"family": family}]})
}

fn by_bsn(bsn: &str) -> String {
    format!("Patient?identifier={BSN}|{bsn}")
}

async fn put(app: &TestApp, path: &str, body: &Value, headers: &[(&str, &str)]) -> Response {
    let mut req = app
        .request(Method::PUT, path)
        .header("Content-Type", FHIR_JSON)
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn delete(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = app.request(Method::DELETE, path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// Conditional update of the Patient with this BSN to `patient(bsn, family)`.
async fn put_patient(app: &TestApp, bsn: &str, family: &str) -> Response {
    put(app, &by_bsn(bsn), &patient(bsn, family), &[]).await
}

/// Ids of the current resources a search finds.
async fn found(app: &TestApp, query: &str) -> Vec<String> {
    let res = app.get(query).await;
    assert_eq!(res.status(), 200, "{query}");
    let bundle: Value = res.json().await.unwrap();
    bundle["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn conditional_update_creates_updates_or_refuses(app: TestApp) {
    // No match, no id: created, 201 with Location.
    let res = put_patient(&app, "999999011", "Jansen").await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        location.ends_with(&format!("/Patient/{id}/_history/1")),
        "{location}"
    );

    // One match, no id in the body: that resource is updated.
    let res = put_patient(&app, "999999011", "Janssen").await;
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["id"], id.as_str());
    assert_eq!(updated["meta"]["versionId"], "2");
    assert_eq!(updated["name"][0]["family"], "Janssen");

    // One match, the match's id in the body: updated.
    let mut same = patient("999999011", "Jansen-de Vries");
    same["id"] = json!(id);
    let res = put(&app, &by_bsn("999999011"), &same, &[]).await;
    assert_eq!(res.status(), 200);

    // One match, another id in the body: 400 naming Patient.id, nothing stored.
    let mut other = patient("999999011", "Pietersen");
    other["id"] = json!("someone-else");
    let issues = expect_outcome(put(&app, &by_bsn("999999011"), &other, &[]).await, 400).await;
    assert!(
        has_issue(&issues, "invalid", Some("Patient.id")),
        "{issues:?}"
    );
    assert_eq!(app.version_count("Patient").await, 3);

    // No match, an id in the body: update as create with that id.
    let mut chosen = patient("999999023", "de Boer");
    chosen["id"] = json!("pat-de-boer");
    let res = put(&app, &by_bsn("999999023"), &chosen, &[]).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], "pat-de-boer");

    // No match, but the body's id names an existing resource the criteria did not
    // select: 409 (R5's rule), the existing resource untouched.
    let mut clash = patient("999999035", "Visser");
    clash["id"] = json!("pat-de-boer");
    let issues = expect_outcome(put(&app, &by_bsn("999999035"), &clash, &[]).await, 409).await;
    assert!(
        has_issue(&issues, "conflict", Some("Patient.id")),
        "{issues:?}"
    );
    let kept: Value = app.get("Patient/pat-de-boer").await.json().await.unwrap();
    assert_eq!(kept["name"][0]["family"], "de Boer");

    // Several matches: 412, nothing changed.
    app.create(&json!({"resourceType": "Patient", "name": [{"family": "Smit"}]}))
        .await;
    app.create(&json!({"resourceType": "Patient", "name": [{"family": "Smit"}]}))
        .await;
    let before = app.version_count("Patient").await;
    let smit = json!({"resourceType": "Patient", "name": [{"family": "Smit", "given": ["Kees"]}]});
    let issues = expect_outcome(put(&app, "Patient?family=Smit", &smit, &[]).await, 412).await;
    assert!(has_issue(&issues, "conflict", None), "{issues:?}");
    assert_eq!(app.version_count("Patient").await, before);

    // Criteria errors: 400 naming the parameter; no criteria at all: 400.
    let issues = expect_outcome(put(&app, "Patient?colour=blue", &smit, &[]).await, 400).await;
    assert!(
        has_issue(&issues, "not-supported", Some("colour")),
        "{issues:?}"
    );
    let issues = expect_outcome(put(&app, "Patient?_sort=family", &smit, &[]).await, 400).await;
    assert!(has_expression(&issues, "_sort"), "{issues:?}");
    let issues = expect_outcome(
        put(&app, "Patient?birthdate=yesterday", &smit, &[]).await,
        400,
    )
    .await;
    assert!(has_expression(&issues, "birthdate"), "{issues:?}");
    let issues = expect_outcome(put(&app, "Patient", &smit, &[]).await, 400).await;
    assert!(has_issue(&issues, "required", None), "{issues:?}");
    assert_eq!(app.version_count("Patient").await, before);
}

async fn conditional_update_follows_the_rules_of_put(app: TestApp) {
    let res = put_patient(&app, "999999011", "Jansen").await;
    assert_eq!(res.status(), 201);
    // Validation (400) and references (422), nothing stored.
    let mut bad = patient("999999011", "Jansen");
    bad["gender"] = json!("sometimes");
    let issues = expect_outcome(put(&app, &by_bsn("999999011"), &bad, &[]).await, 400).await;
    assert!(has_expression(&issues, "Patient.gender"), "{issues:?}");
    let mut dangling = patient("999999011", "Jansen");
    dangling["generalPractitioner"] = json!([{"reference": "Practitioner/nobody"}]);
    let issues = expect_outcome(put(&app, &by_bsn("999999011"), &dangling, &[]).await, 422).await;
    assert!(
        has_issue(
            &issues,
            "not-found",
            Some("Patient.generalPractitioner[0].reference")
        ),
        "{issues:?}"
    );
    // A BSN failing the 11-test: the business rules of every write.
    let issues = expect_outcome(put_patient(&app, "123456789", "X").await, 422).await;
    assert!(
        has_expression(&issues, "Patient.identifier[0].value"),
        "{issues:?}"
    );
    assert_eq!(app.version_count("Patient").await, 1);

    // If-Match on the match: stale 412, current 200.
    let stale = put(
        &app,
        &by_bsn("999999011"),
        &patient("999999011", "Jansen"),
        &[("If-Match", "W/\"7\"")],
    )
    .await;
    expect_outcome(stale, 412).await;
    let res = put(
        &app,
        &by_bsn("999999011"),
        &patient("999999011", "Janssen"),
        &[("If-Match", "W/\"1\"")],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "W/\"2\"");

    // Prefer: return=minimal.
    let res = put(
        &app,
        &by_bsn("999999011"),
        &patient("999999011", "Jansen"),
        &[("Prefer", "return=minimal")],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "W/\"3\"");
    assert!(res.text().await.unwrap().is_empty());

    // X-Request-Id: the same request again is answered from the record, not re-run.
    let headers = [("X-Request-Id", "his-cond-put-1")];
    let first = put(
        &app,
        &by_bsn("999999023"),
        &patient("999999023", "Bakker"),
        &headers,
    )
    .await;
    assert_eq!(first.status(), 201);
    let first_body = first.text().await.unwrap();
    let again = put(
        &app,
        &by_bsn("999999023"),
        &patient("999999023", "Bakker"),
        &headers,
    )
    .await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.text().await.unwrap(), first_body);
    assert_eq!(found(&app, &by_bsn("999999023")).await.len(), 1);
    // A different request under that id: 409 duplicate.
    let other = put(
        &app,
        &by_bsn("999999023"),
        &patient("999999023", "Smit"),
        &headers,
    )
    .await;
    let issues = expect_outcome(other, 409).await;
    assert!(has_issue(&issues, "duplicate", Some("X-Request-Id")));

    // A referral created by conditional update is routed like any other.
    let subject = found(&app, &by_bsn("999999011")).await.remove(0);
    let sr = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.2.4.6.99", "value": "ref-1"}],
        "subject": {"reference": format!("Patient/{subject}")},
        "code": {"text": "Welzijn op Recept"}});
    let res = put(
        &app,
        "ServiceRequest?identifier=urn:oid:2.16.840.1.113883.2.4.6.99|ref-1",
        &sr,
        &[],
    )
    .await;
    assert_eq!(res.status(), 201);
    let sr_id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        found(&app, &format!("Task?focus=ServiceRequest/{sr_id}"))
            .await
            .len(),
        1
    );
}

async fn conditional_updates_in_parallel_create_one_resource(app: TestApp) {
    let app = std::sync::Arc::new(app);
    let mut handles = Vec::new();
    for i in 0..12 {
        let app = app.clone();
        handles.push(tokio::spawn(async move {
            put(
                &app,
                &by_bsn("999999011"),
                &patient("999999011", &format!("Jansen{i}")),
                &[],
            )
            .await
            .status()
            .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for h in handles {
        statuses.push(h.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        11,
        "{statuses:?}"
    );
    assert_eq!(found(&app, &by_bsn("999999011")).await.len(), 1);
}

async fn conditional_delete_deletes_one_or_nothing(app: TestApp) {
    // No match: an ordinary delete of nothing, 204 (http.html#3.1.0.7.1).
    let res = delete(&app, &by_bsn("999999011"), &[]).await;
    assert_eq!(res.status(), 204);
    let res = delete(
        &app,
        &by_bsn("999999011"),
        &[("Prefer", "return=OperationOutcome")],
    )
    .await;
    let issues = expect_outcome(res, 200).await;
    assert_eq!(issues[0]["severity"], "information");

    let id = app.create(&patient("999999011", "Jansen")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // If-Match applies to the match.
    expect_outcome(
        delete(&app, &by_bsn("999999011"), &[("If-Match", "W/\"5\"")]).await,
        412,
    )
    .await;
    // One match: deleted; reads answer 410, the search no longer finds it.
    let res = delete(&app, &by_bsn("999999011"), &[("If-Match", "W/\"1\"")]).await;
    assert_eq!(res.status(), 204);
    expect_outcome(app.get(&format!("Patient/{id}")).await, 410).await;
    assert!(found(&app, &by_bsn("999999011")).await.is_empty());

    // Several matches: 412, nothing deleted (conditionalDelete = single).
    app.create(&json!({"resourceType": "Patient", "name": [{"family": "Smit"}]}))
        .await;
    app.create(&json!({"resourceType": "Patient", "name": [{"family": "Smit"}]}))
        .await;
    expect_outcome(delete(&app, "Patient?family=Smit", &[]).await, 412).await;
    assert_eq!(found(&app, "Patient?family=Smit").await.len(), 2);
    // Criteria errors: 400; no criteria: 400 (not a delete of every Patient).
    let issues = expect_outcome(delete(&app, "Patient?colour=blue", &[]).await, 400).await;
    assert!(
        has_issue(&issues, "not-supported", Some("colour")),
        "{issues:?}"
    );
    expect_outcome(delete(&app, "Patient", &[]).await, 400).await;
    assert_eq!(found(&app, "Patient?family=Smit").await.len(), 2);

    // X-Request-Id replay of a conditional delete.
    let headers = [("X-Request-Id", "his-cond-del-1")];
    app.create(&patient("999999023", "Bakker")).await;
    assert_eq!(
        delete(&app, &by_bsn("999999023"), &headers).await.status(),
        204
    );
    assert_eq!(
        delete(&app, &by_bsn("999999023"), &headers).await.status(),
        204
    );
    // Versions: create and one deletion.
    let res = app.get("Patient/_history?_count=1000").await;
    let history: Value = res.json().await.unwrap();
    let deletions = history["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["request"]["method"] == "DELETE")
        .count();
    assert_eq!(deletions, 2, "{history}");
}

const OWNER: &str = "Organization/tom-in-de-buurt";

async fn conditional_writes_on_tasks_follow_the_workflow(app: TestApp) {
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
    let query = format!("Task?focus=ServiceRequest/{}", sr["id"].as_str().unwrap());
    let res = app.get(&query).await;
    let bundle: Value = res.json().await.unwrap();
    let task = bundle["entry"][0]["resource"].clone();
    assert_eq!(task["owner"]["reference"], OWNER);
    let mut received = task.clone();
    received["status"] = json!("received");

    // Without If-Match: 412 naming the header, as PUT Task/{id}.
    let issues = expect_outcome(
        put(&app, &query, &received, &[("X-Acting-Party", OWNER)]).await,
        412,
    )
    .await;
    assert!(
        has_issue(&issues, "required", Some("If-Match")),
        "{issues:?}"
    );
    // A party that is neither owner nor requester: 403.
    let res = put(
        &app,
        &query,
        &received,
        &[
            ("X-Acting-Party", "Organization/someone"),
            ("If-Match", "W/\"1\""),
        ],
    )
    .await;
    expect_outcome(res, 403).await;
    // The owner with If-Match: the workflow accepts the move.
    let res = put(
        &app,
        &query,
        &received,
        &[("X-Acting-Party", OWNER), ("If-Match", "W/\"1\"")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let moved: Value = res.json().await.unwrap();
    assert_eq!(moved["status"], "received");
    assert_eq!(moved["meta"]["versionId"], "2");

    // Only a coordinator deletes a Task, by criteria too.
    let issues = expect_outcome(
        delete(&app, &query, &[("X-Acting-Party", OWNER)]).await,
        403,
    )
    .await;
    assert!(has_issue(&issues, "forbidden", Some("X-Acting-Party")));
    let res = delete(&app, &query, &[("X-Acting-Party", "coordinator")]).await;
    assert_eq!(res.status(), 204);
    assert!(found(&app, &query).await.is_empty());
}

async fn bundle_entries_decide_like_the_endpoint(app: TestApp) {
    let entry = |bsn: &str, body: Value| json!({"resource": body, "request": {"method": "PUT", "url": by_bsn(bsn)}});
    // No match with an id in the body: update as create with that id (was a 400).
    let mut chosen = patient("999999011", "Jansen");
    chosen["id"] = json!("pat-jansen");
    let bundle = json!({"resourceType": "Bundle", "type": "transaction",
        "entry": [entry("999999011", chosen)]});
    let res = app.post("", &bundle).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["entry"][0]["response"]["status"], "201 Created");
    assert!(body["entry"][0]["response"]["location"]
        .as_str()
        .unwrap()
        .contains("/Patient/pat-jansen/_history/1"));
    // One match with another id: 400 naming the entry's Patient.id.
    let mut other = patient("999999011", "Jansen");
    other["id"] = json!("someone-else");
    let bundle = json!({"resourceType": "Bundle", "type": "transaction",
        "entry": [entry("999999011", other)]});
    let issues = expect_outcome(app.post("", &bundle).await, 400).await;
    assert!(
        has_issue(&issues, "invalid", Some("Bundle.entry[0].resource.id")),
        "{issues:?}"
    );
    // A conditional delete matching nothing: 204 in the response Bundle.
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "DELETE", "url": by_bsn("999999023")}}]});
    let body: Value = app.post("", &bundle).await.json().await.unwrap();
    assert_eq!(body["entry"][0]["response"]["status"], "204 No Content");
}

async fn capability_statement_claims_conditional_update_and_delete(app: TestApp) {
    let cs: Value = app.get("metadata").await.json().await.unwrap();
    for r in cs["rest"][0]["resource"].as_array().unwrap() {
        if r["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["code"] == "update")
        {
            assert_eq!(r["conditionalUpdate"], true, "{}", r["type"]);
            assert_eq!(r["conditionalDelete"], "single", "{}", r["type"]);
        }
    }
    let patient = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Patient")
        .unwrap();
    assert_eq!(patient["conditionalUpdate"], true);
}
