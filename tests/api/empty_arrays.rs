//! JSON FHIR has no empty arrays, empty objects or nulls (json.html): responses never
//! carry them, and requests carrying them (or empty strings, or U+0000 in a string)
//! are refused with 400 naming the element. Resources stored before are served as
//! they are.

use reqwest::{Method, Response};
use serde_json::{json, Value};
use wor_hub::store::{AuditContext, Failure, IndexRows, Store};

use crate::backend_tests;
use crate::helpers::{expect_outcome, has_issue, TestApp};

backend_tests!(
    responses_have_no_empty_arrays_objects_or_nulls,
    empty_arrays_objects_nulls_blank_and_nul_strings_are_refused,
    resources_stored_before_are_served_as_stored,
);

/// Where `value` has an empty array, an empty object or a null (a null is fine inside
/// a primitive's value array or its `_x` array).
fn empties(value: &Value, at: &str, out: &mut Vec<String>) {
    match value {
        Value::Null => out.push(format!("{at}: null")),
        Value::Array(items) if items.is_empty() => out.push(format!("{at}: []")),
        Value::Object(o) if o.is_empty() => out.push(format!("{at}: {{}}")),
        Value::Object(o) => {
            for (k, v) in o {
                let placeholders = k.starts_with('_') || o.contains_key(&format!("_{k}"));
                match v {
                    Value::Array(items) if placeholders && !items.is_empty() => {
                        for (i, item) in items.iter().enumerate() {
                            if !item.is_null() {
                                empties(item, &format!("{at}.{k}[{i}]"), out);
                            }
                        }
                    }
                    other => empties(other, &format!("{at}.{k}"), out),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                empties(item, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The response body, after checking it has no empty arrays, objects or nulls.
async fn clean(what: &str, res: Response) -> Value {
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    let mut found = Vec::new();
    empties(&body, "", &mut found);
    assert!(found.is_empty(), "{what} ({status}): {found:?} in {body}");
    body
}

async fn responses_have_no_empty_arrays_objects_or_nulls(app: TestApp) {
    let metadata = clean("metadata", app.get("metadata").await).await;
    // A type without reference parameters (Location) has no searchInclude (it was `[]`).
    let resources = metadata["rest"][0]["resource"].as_array().unwrap();
    let location = resources.iter().find(|r| r["type"] == "Location").unwrap();
    assert!(location.get("searchInclude").is_none());
    // Empty searchset and history: no `entry`, no `link: []`.
    let empty = clean("empty search", app.get("Patient?name=nobody").await).await;
    assert_eq!(empty["total"], 0);
    assert!(empty.get("entry").is_none());
    let empty = clean("empty history", app.get("Consent/_history").await).await;
    assert!(empty.get("entry").is_none());
    clean("count", app.get("Patient?_summary=count").await).await;
    // The directory and a routed and an unroutable referral, as transaction responses.
    let directory = app
        .post_text("", wor_hub::api::directory::SAMPLE_DIRECTORY)
        .await;
    let response = clean("directory import", directory).await;
    assert!(response.get("link").is_none());
    let referral = std::fs::read_to_string("tests/fixtures/referral-transaction.json").unwrap();
    clean("referral", app.post_text("", &referral).await).await;
    let unroutable = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000011",
         "resource": {"resourceType": "Patient", "birthDate": "1959-04-02"},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000011"},
            "authoredOn": "2026-11-20"},
         "request": {"method": "POST", "url": "ServiceRequest"}}]});
    clean("unroutable referral", app.post("", &unroutable).await).await;
    // What the hub wrote itself (Tasks with their routing decisions), every way it is read.
    let tasks = clean(
        "tasks",
        app.get("Task?_include=Task:owner&_include=Task:focus&_revinclude=Task:part-of")
            .await,
    )
    .await;
    let entries = tasks["entry"].as_array().unwrap();
    assert!(entries.len() >= 4, "{tasks}");
    for e in entries {
        let url = e["fullUrl"].as_str().unwrap();
        let path = url.split("/fhir/").nth(1).unwrap();
        clean(path, app.get(path).await).await;
        clean("history", app.get(&format!("{path}/_history")).await).await;
        clean("summary", app.get(&format!("{path}?_summary=true")).await).await;
    }
    clean("system history", app.get("_history").await).await;
    // The explanation of a decision, a validation, a batch with a failure, errors.
    let explain = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "subject": {"reference": "#p"}, "authoredOn": "2026-11-20",
        "contained": [{"resourceType": "Patient", "id": "p", "birthDate": "2014-03-02",
                       "address": [{"city": "Boskoop", "district": "Alphen aan den Rijn"}]}]});
    clean("$route", app.post("ServiceRequest/$route", &explain).await).await;
    let ok = json!({"resourceType": "Patient", "birthDate": "1958-04-17"});
    clean("$validate", app.post("Patient/$validate", &ok).await).await;
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": ok, "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Patient/nope"}}]});
    clean("batch", app.post("", &batch).await).await;
    clean("404", app.get("Patient/nope").await).await;
    clean("400", app.get("Patient?foo=bar").await).await;
}

fn issue_at(issues: &[Value], expression: &str) -> bool {
    has_issue(issues, "structure", Some(expression)) || has_issue(issues, "value", Some(expression))
}

async fn empty_arrays_objects_nulls_blank_and_nul_strings_are_refused(app: TestApp) {
    let cases = [
        (json!({"name": []}), "Patient.name"),
        (json!({"telecom": [{}]}), "Patient.telecom[0]"),
        (json!({"maritalStatus": {}}), "Patient.maritalStatus"),
        (json!({"birthDate": null}), "Patient.birthDate"),
        (json!({"gender": ""}), "Patient.gender"),
        (
            json!({"name": [{"given": ["  "]}]}),
            "Patient.name[0].given[0]",
        ),
        (
            json!({"name": [{"family": "Jan\u{0}sen"}]}),
            "Patient.name[0].family",
        ),
        (
            json!({"birthDate": "1958-04-17", "_birthDate": {}}),
            "Patient.birthDate",
        ),
        (
            json!({"name": [{"given": ["A", null]}]}),
            "Patient.name[0].given[1]",
        ),
        (
            json!({"contained": [{"resourceType": "Organization", "id": "o", "alias": []}]}),
            "Patient.contained[0].alias",
        ),
    ];
    for (members, expression) in cases {
        let mut patient = json!({"resourceType": "Patient"});
        for (k, v) in members.as_object().unwrap() {
            patient[k] = v.clone();
        }
        let issues = expect_outcome(app.post("Patient", &patient).await, 400).await;
        assert!(issue_at(&issues, expression), "{patient}: {issues:?}");
        // Update-as-create and $validate say the same.
        patient["id"] = json!("p1");
        let issues = expect_outcome(app.put("Patient/p1", &patient).await, 400).await;
        assert!(issue_at(&issues, expression), "PUT {patient}: {issues:?}");
        let res = app.post("Patient/$validate", &patient).await;
        let issues = expect_outcome(res, 200).await;
        assert!(
            issue_at(&issues, expression),
            "$validate {patient}: {issues:?}"
        );
    }
    assert_eq!(app.version_count("Patient").await, 0, "nothing stored");
    // In a transaction the entry is named; the Bundle's own elements too.
    let transaction = |patient: Value, link: Option<Value>| {
        let mut bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Organization", "name": "X"},
             "request": {"method": "POST", "url": "Organization"}},
            {"resource": patient, "request": {"method": "POST", "url": "Patient"}}]});
        if let Some(link) = link {
            bundle["link"] = link;
        }
        bundle
    };
    let res = app
        .post(
            "",
            &transaction(json!({"resourceType": "Patient", "name": []}), None),
        )
        .await;
    let issues = expect_outcome(res, 400).await;
    assert!(
        issue_at(&issues, "Bundle.entry[1].resource.name"),
        "{issues:?}"
    );
    let res = app
        .post(
            "",
            &transaction(json!({"resourceType": "Patient"}), Some(json!([]))),
        )
        .await;
    let issues = expect_outcome(res, 400).await;
    assert!(issue_at(&issues, "Bundle.link"), "{issues:?}");
    assert_eq!(app.version_count("Organization").await, 0, "nothing stored");
    // Aligned null placeholders are JSON FHIR: stored and served as sent.
    let aligned = r#"{"resourceType":"Patient","name":[{"given":["Noor","Anna"],"_given":[null,{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier","valueCode":"CL"}]}]}]}"#;
    let res = app.post_text("Patient", aligned).await;
    assert_eq!(res.status(), 201);
    let text = res.text().await.unwrap();
    assert!(text.contains(r#""_given":[null,{"extension""#), "{text}");
}

async fn resources_stored_before_are_served_as_stored(app: TestApp) {
    // A body an older version accepted, written straight to the store.
    let store = Store::open(&app.database, 1).await.unwrap();
    let legacy = r#"{"resourceType":"Patient","id":"legacy","meta":{"versionId":"1"},"name":[],"gender":""}"#;
    store
        .transaction(
            AuditContext {
                request_id: "legacy-import".into(),
                actor: "test".into(),
            },
            move |tx| {
                tx.create(
                    "Patient",
                    "legacy",
                    &|_, _| legacy.to_owned(),
                    &IndexRows::default(),
                )?;
                Ok::<_, Failure<()>>(())
            },
        )
        .await
        .map_err(|_| "legacy write")
        .unwrap();
    let res = app.get("Patient/legacy").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), legacy);
    let bundle: Value = app.get("Patient?_id=legacy").await.json().await.unwrap();
    assert_eq!(bundle["entry"][0]["resource"]["gender"], "");
    let res = app
        .request(Method::GET, "Patient/legacy/_history")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A client updating it must send valid JSON FHIR.
    let fixed = json!({"resourceType": "Patient", "id": "legacy", "gender": "female"});
    assert_eq!(app.put("Patient/legacy", &fixed).await.status(), 200);
}
