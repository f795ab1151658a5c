//! Searches as GET entries of batches and transactions (http.html#transaction): a
//! searchset Bundle as the entry's resource; GET entries run after the writes.

use reqwest::Method;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{expect_outcome, has_expression, link, TestApp, FHIR_JSON};

backend_tests!(
    batch_get_entries_may_be_searches,
    transaction_gets_run_after_the_writes,
    a_failing_search_fails_the_transaction,
    search_entries_page_like_the_search_endpoint,
    search_entries_count_zero_gives_the_total_only,
);

const BSN: &str = "http://fhir.nl/fhir/NamingSystem/bsn";

fn get(url: &str) -> Value {
    json!({"request": {"method": "GET", "url": url}})
}

fn statuses(response: &Value) -> Vec<String> {
    response["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap().to_owned())
        .collect()
}

async fn batch_get_entries_may_be_searches(app: TestApp) {
    let patient = app
        .create(
            &json!({"resourceType": "Patient", "name": [{"family": "Jansen"}],
            "identifier": [{"system": BSN, "value": "999999011"}]}),
        )
        .await;
    app.create(&json!({"resourceType": "Patient", "name": [{"family": "Visser"}]}))
        .await;
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        get(&format!("Patient?identifier={BSN}|999999011")),
        get("Patient?identifier=nobody"),
        get("Patient?colour=blue"),
        get("Patient"),
        get("Patient?_summary=count"),
        get(&format!("Patient/{}", patient["id"].as_str().unwrap())),
    ]});
    let res = app
        .request(Method::POST, "")
        .header("Content-Type", FHIR_JSON)
        .header("Prefer", "return=minimal")
        .body(bundle.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        statuses(&body),
        [
            "200 OK",
            "200 OK",
            "400 Bad Request",
            "200 OK",
            "200 OK",
            "200 OK"
        ]
    );
    let found = &body["entry"][0]["resource"];
    assert_eq!(found["resourceType"], "Bundle");
    assert_eq!(found["type"], "searchset");
    assert_eq!(found["total"], 1);
    assert_eq!(found["entry"][0]["search"]["mode"], "match");
    assert_eq!(found["entry"][0]["resource"]["id"], patient["id"]);
    let self_link = link(found, "self").unwrap();
    assert!(
        self_link.ends_with(
            "/fhir/Patient?identifier=http%3A%2F%2Ffhir.nl%2Ffhir%2FNamingSystem%2Fbsn%7C999999011"
        ),
        "{self_link}"
    );
    assert_eq!(body["entry"][1]["resource"]["total"], 0);
    let outcome = &body["entry"][2]["response"]["outcome"];
    let issues = outcome["issue"].as_array().unwrap();
    assert!(
        has_expression(issues, "Bundle.entry[2].request.colour"),
        "{outcome}"
    );
    assert_eq!(body["entry"][3]["resource"]["total"], 2);
    assert_eq!(body["entry"][4]["resource"]["total"], 2);
    assert!(body["entry"][4]["resource"]
        .get("entry")
        .is_none_or(|e| e.as_array().unwrap().is_empty()));
    // A read answers with the resource whatever Prefer says about writes.
    assert_eq!(body["entry"][5]["resource"]["id"], patient["id"]);
    // Searches write nothing.
    assert_eq!(app.version_count("Patient").await, 2);
}

async fn transaction_gets_run_after_the_writes(app: TestApp) {
    let res = app
        .post_text("", wor_hub::api::directory::SAMPLE_DIRECTORY)
        .await;
    assert_eq!(res.status(), 200);
    // The GETs come first in the Bundle; the spec runs them after the writes.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        get("Task?focus=urn:uuid:00000000-0000-4000-8000-000000000002"),
        get(&format!("Patient?identifier={BSN}|999999011")),
        get("Patient/pat-1"),
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
         "resource": {"resourceType": "Patient", "id": "pat-1", "birthDate": "1959-04-02",
                      "identifier": [{"system": BSN, "value": "999999011"}],
                      "address": [{"use": "home", "district": "Alphen aan den Rijn", "postalCode": "2771 AB"}]},
         "request": {"method": "PUT", "url": "Patient/pat-1"}},
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000002",
         "resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                      "code": {"text": "Welzijn op Recept"},
                      "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"}},
         "request": {"method": "POST", "url": "ServiceRequest"}},
    ]});
    let res = app.post("", &bundle).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        statuses(&body),
        ["200 OK", "200 OK", "200 OK", "201 Created", "201 Created"]
    );
    // The routed Task of the referral created in this transaction, found through the
    // referral's fullUrl.
    let tasks = &body["entry"][0]["resource"];
    assert_eq!(tasks["type"], "searchset");
    assert_eq!(tasks["total"], 1, "{tasks}");
    let sr_location = body["entry"][4]["response"]["location"].as_str().unwrap();
    let sr_id = sr_location.split('/').nth_back(2).unwrap();
    assert_eq!(
        tasks["entry"][0]["resource"]["focus"]["reference"],
        format!("ServiceRequest/{sr_id}")
    );
    assert_eq!(
        tasks["entry"][0]["resource"]["owner"]["reference"],
        "Organization/tom-in-de-buurt"
    );
    assert_eq!(body["entry"][1]["resource"]["total"], 1);
    assert_eq!(body["entry"][2]["resource"]["id"], "pat-1");
}

async fn a_failing_search_fails_the_transaction(app: TestApp) {
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "name": [{"family": "Jansen"}]},
         "request": {"method": "POST", "url": "Patient"}},
        get("Patient?birthdate=yesterday"),
    ]});
    let issues = expect_outcome(app.post("", &bundle).await, 400).await;
    assert!(
        has_expression(&issues, "Bundle.entry[1].request.birthdate"),
        "{issues:?}"
    );
    // _sort on an unsupported parameter, _count that is not a number: refused too.
    for url in ["Patient?_sort=gender", "Patient?_count=many"] {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient", "name": [{"family": "Jansen"}]},
             "request": {"method": "POST", "url": "Patient"}},
            get(url),
        ]});
        expect_outcome(app.post("", &bundle).await, 400).await;
    }
    assert_eq!(app.version_count("Patient").await, 0);
}

async fn search_entries_page_like_the_search_endpoint(app: TestApp) {
    for family in ["Jansen", "Janssen", "Jansma"] {
        app.create(&json!({"resourceType": "Patient", "name": [{"family": family}]}))
            .await;
    }
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        get("Patient?family=Jans&_sort=_lastUpdated&_count=2&_elements=name"),
        get("Patient?family=Jans&_sort=_lastUpdated&_count=2&_total=accurate"),
    ]});
    let body: Value = app.post("", &bundle).await.json().await.unwrap();
    let page = &body["entry"][0]["resource"];
    // Sorted by `_lastUpdated` the first page reads only itself: a total only when asked.
    assert_eq!(page.get("total"), None, "{page}");
    assert_eq!(body["entry"][1]["resource"]["total"], 3);
    let families: Vec<&str> = page["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["name"][0]["family"].as_str().unwrap())
        .collect();
    assert_eq!(families, ["Jansen", "Janssen"]);
    assert!(page["entry"][0]["resource"].get("birthDate").is_none());
    // The next link is read by the search endpoint.
    let next = link(page, "next").expect("a next link");
    let res = app.client.get(&next).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let second: Value = res.json().await.unwrap();
    assert_eq!(
        second["entry"][0]["resource"]["name"][0]["family"],
        "Jansma"
    );
}

/// `_count=0` (search.html#count) and `_summary=count` answer as on the search endpoint:
/// the total, no entries.
async fn search_entries_count_zero_gives_the_total_only(app: TestApp) {
    for family in ["Jansen", "Janssen"] {
        app.create(&json!({"resourceType": "Patient", "name": [{"family": family}]}))
            .await;
    }
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        get("Patient?family=Jans&_count=0"),
        get("Patient?family=Jans&_summary=count"),
    ]});
    let res = app.post("", &bundle).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(statuses(&body), ["200 OK", "200 OK"]);
    for entry in body["entry"].as_array().unwrap() {
        let page = &entry["resource"];
        assert_eq!(page["type"], "searchset");
        assert_eq!(page["total"], 2, "{page}");
        assert!(page.get("entry").is_none(), "{page}");
        let endpoint: Value = app
            .client
            .get(link(page, "self").expect("a self link"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(endpoint["total"], 2, "{endpoint}");
        assert!(endpoint.get("entry").is_none(), "{endpoint}");
    }
}
