//! The audit trail through the API (NEN 7513): a referral's lifecycle leaves
//! AuditEvents naming who, which organisation, what, which patient, when, the outcome
//! and the request id; coordinators search them by patient, date, agent and entity;
//! nobody changes them through the API.

use reqwest::Method;
use serde_json::Value;

use crate::backend_tests;
use crate::helpers::{expect_outcome, link, load_sample, moved, TestApp, FHIR_JSON, OWNER};

backend_tests!(
    a_referral_lifecycle_leaves_its_audit_events,
    coordinators_search_by_date_agent_entity_and_page,
    only_coordinators_read_the_trail_and_nobody_changes_it,
    the_capability_statement_lists_audit_event_read_only,
);

const FIXTURE: &str = include_str!("../fixtures/referral-transaction.json");
const COORDINATOR: &str = "coordinator";

/// `GET path` with a request id, acting as `party` when given.
pub(crate) async fn get_as(app: &TestApp, path: &str, party: Option<&str>, rid: &str) -> Value {
    let mut req = app.request(Method::GET, path).header("X-Request-Id", rid);
    if let Some(p) = party {
        req = req.header("X-Acting-Party", p);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200, "{path}");
    unsealed(res.json().await.unwrap())
}

/// `resource` without the chain hash extension, which a row gains once sealed (within
/// a second): two reads of the same row then compare equal.
fn unsealed(mut resource: Value) -> Value {
    if resource["resourceType"] == "AuditEvent" {
        if let Some(object) = resource.as_object_mut() {
            object.remove("extension");
        }
    }
    resource
}

/// The AuditEvents of a search (every page), as a coordinator.
pub(crate) async fn audit_events(app: &TestApp, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next = Some(app.url(&format!("AuditEvent?{query}")));
    let mut page = 0;
    while let Some(url) = next {
        page += 1;
        let res = app
            .client
            .get(&url)
            .header("X-Acting-Party", COORDINATOR)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{url}");
        let bundle: Value = res.json().await.unwrap();
        assert_eq!(bundle["type"], "searchset");
        for e in bundle["entry"].as_array().cloned().unwrap_or_default() {
            assert_eq!(e["search"]["mode"], "match");
            out.push(unsealed(e["resource"].clone()));
        }
        next = link(&bundle, "next");
        assert!(page < 100, "paging ends");
    }
    out
}

fn request_id(ev: &Value) -> &str {
    ev["entity"][0]["detail"][0]["valueString"]
        .as_str()
        .unwrap()
}

fn what(ev: &Value) -> &str {
    ev["entity"][0]["what"]["reference"]
        .as_str()
        .or_else(|| ev["entity"][0]["what"]["display"].as_str())
        .unwrap()
}

fn patients(ev: &Value) -> Vec<String> {
    ev["entity"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["role"]["code"] == "1")
        .map(|e| e["what"]["reference"].as_str().unwrap().to_owned())
        .collect()
}

fn interaction(ev: &Value) -> &str {
    ev["subtype"][0]["code"].as_str().unwrap()
}

/// The one event with request id `rid` about `what_prefix` (`Task/`, `ServiceRequest/x`).
fn the_event<'a>(events: &'a [Value], rid: &str, what_prefix: &str) -> &'a Value {
    let found: Vec<&Value> = events
        .iter()
        .filter(|e| request_id(e) == rid && what(e).starts_with(what_prefix))
        .collect();
    assert_eq!(found.len(), 1, "{rid} {what_prefix}: {found:#?}");
    found[0]
}

/// Posts the fixture referral with request id `rid`: (`Patient/<id>`, ServiceRequest id).
pub(crate) async fn refer_fixture(app: &TestApp, rid: &str) -> (String, String) {
    let res = app
        .request(Method::POST, "")
        .header("Content-Type", FHIR_JSON)
        .header("X-Request-Id", rid)
        .body(FIXTURE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let located = |ty: &str| {
        body["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["response"]["location"].as_str())
            .find_map(|l| {
                // `[base/]Type/id/_history/n`
                let mut back = l.rsplit('/').skip(2);
                let id = back.next()?;
                (back.next()? == ty).then(|| id.to_owned())
            })
            .unwrap()
    };
    (
        format!("Patient/{}", located("Patient")),
        located("ServiceRequest"),
    )
}

async fn a_referral_lifecycle_leaves_its_audit_events(app: TestApp) {
    load_sample(&app).await;
    let (patient, sr) = refer_fixture(&app, "audit-refer-1").await;
    let referral = get_as(&app, &format!("ServiceRequest/{sr}"), None, "audit-read-1").await;
    assert_eq!(referral["id"], sr.as_str());
    let tasks = get_as(
        &app,
        &format!("Task?focus=ServiceRequest/{sr}"),
        Some(OWNER),
        "audit-search-1",
    )
    .await;
    let task = tasks["entry"][0]["resource"].clone();
    let task_id = task["id"].as_str().unwrap().to_owned();
    assert_eq!(task["for"]["reference"], patient.as_str());
    let version = task["meta"]["versionId"].as_str().unwrap();
    let res = app
        .request(Method::PUT, &format!("Task/{task_id}"))
        .header("Content-Type", FHIR_JSON)
        .header("If-Match", format!("W/\"{version}\""))
        .header("X-Acting-Party", OWNER)
        .header("X-Request-Id", "audit-accept-1")
        .body(moved(&task, "accepted", None, None).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A read of something that does not exist: a minor failure, no patient.
    let res = app
        .request(Method::GET, "ServiceRequest/no-such-referral")
        .header("X-Request-Id", "audit-missing-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    let events = audit_events(&app, &format!("patient={patient}")).await;
    for ev in &events {
        assert_eq!(ev["resourceType"], "AuditEvent");
        assert_eq!(ev["type"]["code"], "rest");
        assert!(patients(ev).contains(&patient), "{ev:#}");
        assert_eq!(ev["recorded"], ev["meta"]["lastUpdated"]);
    }
    // The referral's writes: Patient, Consent, ServiceRequest and the routed Task.
    for (prefix, action) in [
        (patient.as_str(), "C"),
        ("Consent/", "C"),
        ("ServiceRequest/", "C"),
        ("Task/", "C"),
    ] {
        let ev = the_event(&events, "audit-refer-1", prefix);
        assert_eq!(ev["action"], action, "{ev:#}");
        assert_eq!(interaction(ev), "create");
        assert_eq!(ev["outcome"], "0");
        assert_eq!(patients(ev), std::slice::from_ref(&patient));
    }
    // The referrer's read, the owner's search, the owner's update.
    let read = the_event(&events, "audit-read-1", &format!("ServiceRequest/{sr}"));
    assert_eq!(
        (read["action"].as_str(), interaction(read)),
        (Some("R"), "read")
    );
    assert_eq!(what(read), format!("ServiceRequest/{sr}/_history/1"));
    let search = the_event(&events, "audit-search-1", "Task");
    assert_eq!(
        (search["action"].as_str(), interaction(search)),
        (Some("R"), "search-type")
    );
    assert_eq!(search["agent"][0]["who"]["reference"], OWNER);
    assert_eq!(
        search["agent"][1]["who"]["reference"], OWNER,
        "the organisation"
    );
    let update = the_event(&events, "audit-accept-1", &format!("Task/{task_id}"));
    assert_eq!(
        (update["action"].as_str(), interaction(update)),
        (Some("U"), "update")
    );
    assert_eq!(update["outcome"], "0");
    assert_eq!(
        update["agent"][0]["who"]["identifier"]["value"],
        format!("party:{OWNER}")
    );
    assert!(events.iter().all(|e| request_id(e) != "audit-missing-1"));

    // The failed read is recorded too (entity), with outcome 4.
    let missing = audit_events(&app, "entity=ServiceRequest/no-such-referral").await;
    assert_eq!(missing.len(), 1, "{missing:#?}");
    assert_eq!(missing[0]["outcome"], "4");
    assert_eq!(request_id(&missing[0]), "audit-missing-1");
    assert!(patients(&missing[0]).is_empty());

    // A bare id names the same patient; another patient has none of these.
    let bare = patient.trim_start_matches("Patient/");
    assert_eq!(
        audit_events(&app, &format!("patient={bare}")).await.len(),
        events.len()
    );
    assert!(audit_events(&app, "patient=Patient/somebody-else")
        .await
        .is_empty());
}

async fn coordinators_search_by_date_agent_entity_and_page(app: TestApp) {
    load_sample(&app).await;
    let (patient, sr) = refer_fixture(&app, "audit-refer-2").await;
    for n in 0..3 {
        get_as(
            &app,
            &format!("ServiceRequest/{sr}"),
            Some(OWNER),
            &format!("audit-r-{n}"),
        )
        .await;
    }
    let all = audit_events(&app, &format!("patient={patient}")).await;
    assert!(all.len() >= 7, "{}", all.len());

    // agent: the owner's three reads only.
    let owners = audit_events(&app, &format!("patient={patient}&agent={OWNER}")).await;
    assert_eq!(owners.len(), 3, "{owners:#?}");
    assert!(owners.iter().all(|e| interaction(e) == "read"));
    let anonymous = audit_events(&app, &format!("patient={patient}&agent=anonymous")).await;
    assert!(
        anonymous.len() >= 4,
        "the referral's creates: {anonymous:#?}"
    );
    assert!(anonymous
        .iter()
        .all(|e| e["agent"][0]["who"]["identifier"]["value"] == "anonymous" && all.contains(e)));

    // date: nothing before 2000; everything since; after the last event nothing.
    assert!(
        audit_events(&app, &format!("patient={patient}&date=lt2000-01-01"))
            .await
            .is_empty()
    );
    assert_eq!(
        audit_events(&app, &format!("patient={patient}&date=ge2000-01-01"))
            .await
            .len(),
        all.len()
    );
    let first_read = owners[0]["recorded"].as_str().unwrap();
    let since = audit_events(
        &app,
        &format!(
            "patient={patient}&date=ge{}",
            first_read.replace('+', "%2B")
        ),
    )
    .await;
    let expected: Vec<Value> = all
        .iter()
        .filter(|e| e["recorded"].as_str().unwrap() >= first_read)
        .cloned()
        .collect();
    assert!(expected.len() >= 3 && expected.len() < all.len());
    assert_eq!(since, expected);

    // entity: the ServiceRequest's events (its create and the reads), nothing else.
    let about = audit_events(&app, &format!("entity=ServiceRequest/{sr}")).await;
    assert_eq!(about.iter().filter(|e| interaction(e) == "read").count(), 3);
    assert!(about.iter().any(|e| interaction(e) == "create"));
    assert!(about
        .iter()
        .all(|e| what(e).starts_with(&format!("ServiceRequest/{sr}/"))));

    // Paging: _count=2 pages in seq order with next links, every row once.
    let res = app
        .request(
            Method::GET,
            &format!("AuditEvent?patient={patient}&_count=2"),
        )
        .header("X-Acting-Party", COORDINATOR)
        .send()
        .await
        .unwrap();
    let first: Value = res.json().await.unwrap();
    assert_eq!(first["entry"].as_array().unwrap().len(), 2);
    assert!(link(&first, "next").unwrap().contains("_count=2"));
    let paged = audit_events(&app, &format!("patient={patient}&_count=2")).await;
    let ids: Vec<i64> = paged
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(paged, all);

    // Reading one by id gives the same resource.
    let id = all[0]["id"].as_str().unwrap();
    let one = get_as(
        &app,
        &format!("AuditEvent/{id}"),
        Some(COORDINATOR),
        "audit-one",
    )
    .await;
    assert_eq!(one, all[0]);
    // Looking at the trail is recorded, without patients.
    let looked = audit_events(&app, "entity=AuditEvent&agent=party:coordinator").await;
    assert!(looked
        .iter()
        .any(|e| request_id(e) == "audit-one" && what(e) == format!("AuditEvent/{id}")));
    assert!(looked.iter().all(|e| patients(e).is_empty()));
}

async fn only_coordinators_read_the_trail_and_nobody_changes_it(app: TestApp) {
    let created = app
        .create(&serde_json::json!({"resourceType": "Patient", "gender": "other"}))
        .await;
    let patient = format!("Patient/{}", created["id"].as_str().unwrap());
    let events = audit_events(&app, &format!("patient={patient}")).await;
    assert_eq!(events.len(), 1);
    let id = events[0]["id"].as_str().unwrap().to_owned();

    for path in [
        format!("AuditEvent?patient={patient}"),
        format!("AuditEvent/{id}"),
    ] {
        let res = app
            .request(Method::GET, &path)
            .header("X-Acting-Party", "Organization/tom-in-de-buurt")
            .send()
            .await
            .unwrap();
        let issues = expect_outcome(res, 403).await;
        assert_eq!(issues[0]["code"], "forbidden", "{issues:?}");
        // Open mode (an unnamed loopback request) reads, as every party may there.
        assert_eq!(app.get(&path).await.status(), 200);
    }
    let body = events[0].to_string();
    for (method, path) in [
        (Method::PUT, format!("AuditEvent/{id}")),
        (Method::DELETE, format!("AuditEvent/{id}")),
        (Method::PATCH, format!("AuditEvent/{id}")),
        (Method::POST, "AuditEvent".to_owned()),
        (Method::DELETE, format!("AuditEvent?_id={id}")),
        (Method::PUT, format!("AuditEvent?_id={id}")),
    ] {
        let res = app
            .request(method.clone(), &path)
            .header("Content-Type", FHIR_JSON)
            .header("X-Acting-Party", COORDINATOR)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let issues = expect_outcome(res, 405).await;
        assert_eq!(issues[0]["code"], "not-supported", "{method} {path}");
    }
    // Nor in a transaction.
    let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE", "url": format!("AuditEvent/{id}")}}]});
    let res = app.post_as("", COORDINATOR, &bundle).await;
    assert!(res.status().is_client_error(), "{}", res.status());
    assert_eq!(audit_events(&app, &format!("_id={id}")).await[0], events[0]);
    let res = app
        .request(Method::GET, "AuditEvent/999999")
        .header("X-Acting-Party", COORDINATOR)
        .send()
        .await
        .unwrap();
    expect_outcome(res, 404).await;
    let res = app
        .request(Method::GET, "AuditEvent?subtype=read")
        .header("X-Acting-Party", COORDINATOR)
        .send()
        .await
        .unwrap();
    expect_outcome(res, 400).await;
}

async fn the_capability_statement_lists_audit_event_read_only(app: TestApp) {
    let statement: Value = app.get("metadata").await.json().await.unwrap();
    let resources = statement["rest"][0]["resource"].as_array().unwrap();
    let audit: Vec<&Value> = resources
        .iter()
        .filter(|r| r["type"] == "AuditEvent")
        .collect();
    assert_eq!(audit.len(), 1);
    let interactions: Vec<&str> = audit[0]["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert_eq!(interactions, ["read", "search-type"]);
    let params: Vec<&str> = audit[0]["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["_id", "patient", "date", "agent", "entity"]);
}
