//! History (instance, type, system) and its paging.

use reqwest::Method;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{expect_outcome, TestApp};

backend_tests!(instance_type_and_system_history, history_paging_and_since);

async fn instance_type_and_system_history(app: TestApp) {
    let created = app
        .create(&json!({"resourceType": "HealthcareService", "name": "WOR Alphen"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let mut body = created.clone();
    body["name"] = json!("WOR Alphen aan den Rijn");
    assert_eq!(
        app.put(&format!("HealthcareService/{id}"), &body)
            .await
            .status(),
        200
    );
    let res = app
        .request(Method::DELETE, &format!("HealthcareService/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    app.create(&json!({"resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}]}))
        .await;

    let res = app.get(&format!("HealthcareService/{id}/_history")).await;
    assert_eq!(res.status(), 200);
    let bundle: Value = res.json().await.unwrap();
    assert_eq!(bundle["type"], "history");
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    // Newest first: delete, update, create.
    assert_eq!(entries[0]["request"]["method"], "DELETE");
    assert!(entries[0].get("resource").is_none());
    assert_eq!(entries[1]["request"]["method"], "PUT");
    assert_eq!(entries[1]["resource"]["name"], "WOR Alphen aan den Rijn");
    assert_eq!(entries[1]["response"]["etag"], "W/\"2\"");
    assert_eq!(entries[2]["request"]["method"], "POST");
    assert_eq!(entries[2]["request"]["url"], "HealthcareService");
    assert_eq!(entries[2]["resource"]["meta"]["versionId"], "1");

    let types: Value = app
        .get("HealthcareService/_history")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(types["entry"].as_array().unwrap().len(), 3);
    let system: Value = app.get("_history").await.json().await.unwrap();
    assert_eq!(system["entry"].as_array().unwrap().len(), 4);

    expect_outcome(app.get("HealthcareService/unknown/_history").await, 404).await;
    expect_outcome(app.get("HealthcareService/_history?_sort=x").await, 400).await;
    expect_outcome(
        app.get("HealthcareService/_history?_since=yesterday").await,
        400,
    )
    .await;
    expect_outcome(app.get("HealthcareService/_history?_count=-1").await, 400).await;
}

async fn history_paging_and_since(app: TestApp) {
    for i in 0..5 {
        app.create(&json!({"resourceType": "Organization", "name": format!("org {i}")}))
            .await;
    }
    let mut seen = Vec::new();
    let mut url = app.url("Organization/_history?_count=2");
    let mut pages = 0;
    loop {
        let page: Value = app
            .client
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pages += 1;
        for e in page["entry"].as_array().unwrap() {
            seen.push(e["resource"]["name"].as_str().unwrap().to_owned());
        }
        // A write while paging must not shift later pages.
        if pages == 1 {
            app.create(&json!({"resourceType": "Organization", "name": "late"}))
                .await;
        }
        let next = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_owned());
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["org 4", "org 3", "org 2", "org 1", "org 0"]);

    let future = "2999-01-01T00:00:00Z";
    let none: Value = app
        .get(&format!("Organization/_history?_since={future}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(none.get("entry").is_none(), "no empty arrays: {none}");
}
