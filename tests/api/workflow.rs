//! The referral workflow: the Task state machine with roles, the ServiceRequest
//! following its Task, re-routing after a rejection, cancellation by the referrer,
//! and the contact deadline.

use std::time::Duration;

use reqwest::{Method, Response};
use serde_json::{json, Value};
use wor_hub::clock::Clock;

use crate::backend_tests;
use crate::helpers::{expect_outcome, has_issue, spawn, Backend, TestApp, FHIR_JSON};
use crate::search_results::entries_with_mode;

pub(crate) const OWNER: &str = "Organization/tom-in-de-buurt";
pub(crate) const FALLBACK: &str = "Organization/fallback-welzijn";
pub(crate) const BUSINESS: &str = "https://wor-hub.nl/fhir/CodeSystem/task-business-status";
pub(crate) const FLAG: &str = "https://wor-hub.nl/fhir/CodeSystem/task-flag";

backend_tests!(
    a_referral_walks_to_completed_and_the_referrer_reads_the_outcome,
    illegal_transitions_are_refused_naming_both_statuses,
    reasons_are_required_for_rejected_cancelled_on_hold_and_failed,
    the_owner_may_change_only_its_elements,
    updates_need_if_match_and_a_known_party,
    business_status_comes_from_the_project_code_system,
    a_rejection_reroutes_to_the_fallback_then_to_the_coordinator,
    the_referrer_cancels_at_once_before_work_and_by_request_after,
    bundle_entries_follow_the_same_rules,
    only_a_coordinator_deletes_a_task,
);

/// A referral as a GP system sends it: Practitioner, Patient (67, Boskoop) and the
/// ServiceRequest in one transaction. Returns (ServiceRequest id, `Practitioner/<id>`).
pub(crate) async fn refer(app: &TestApp, authored_on: &str) -> (String, String) {
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000003",
             "resource": {"resourceType": "Practitioner", "name": [{"family": "de Vries"}]},
             "request": {"method": "POST", "url": "Practitioner"}},
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
             "resource": {"resourceType": "Patient", "birthDate": "1959-04-02",
                          "address": [{"use": "home", "district": "Alphen aan den Rijn", "postalCode": "2771 AB"}]},
             "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000002",
             "resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                          "code": {"text": "Welzijn op Recept"},
                          "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"},
                          "requester": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000003"},
                          "authoredOn": authored_on},
             "request": {"method": "POST", "url": "ServiceRequest"}},
        ],
    });
    let res = app.post("", &bundle).await;
    assert_eq!(res.status(), 200, "referral accepted");
    let body: Value = res.json().await.unwrap();
    let id_of = |i: usize| {
        let location = body["entry"][i]["response"]["location"].as_str().unwrap();
        location.split('/').nth_back(2).unwrap().to_owned()
    };
    (id_of(2), format!("Practitioner/{}", id_of(0)))
}

pub(crate) async fn load_sample(app: &TestApp) {
    let res = app
        .post_text("", wor_hub::api::directory::SAMPLE_DIRECTORY)
        .await;
    assert_eq!(res.status(), 200);
}

/// The Tasks for a referral, oldest first.
pub(crate) async fn tasks_for(app: &TestApp, sr: &str) -> Vec<Value> {
    let res = app
        .get(&format!(
            "Task?focus=ServiceRequest/{sr}&_sort=_lastUpdated"
        ))
        .await;
    assert_eq!(res.status(), 200);
    let bundle: Value = res.json().await.unwrap();
    let mut tasks: Vec<Value> = bundle["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e["resource"].clone())
        .collect();
    tasks.sort_by_key(|t| t["authoredOn"].as_str().unwrap_or_default().to_owned());
    tasks
}

pub(crate) async fn the_task(app: &TestApp, sr: &str) -> Value {
    let tasks = tasks_for(app, sr).await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    tasks[0].clone()
}

/// PUTs `task` with If-Match from its meta.versionId, acting as `party`.
pub(crate) async fn put_task(app: &TestApp, party: Option<&str>, task: &Value) -> Response {
    let id = task["id"].as_str().unwrap();
    let version = task["meta"]["versionId"].as_str().unwrap();
    let mut req = app
        .request(Method::PUT, &format!("Task/{id}"))
        .header("Content-Type", FHIR_JSON)
        .header("If-Match", format!("W/\"{version}\""));
    if let Some(p) = party {
        req = req.header("X-Acting-Party", p);
    }
    req.body(task.to_string()).send().await.unwrap()
}

/// The Task moved to `status` (with `business` and `reason` when given).
pub(crate) fn moved(
    task: &Value,
    status: &str,
    business: Option<&str>,
    reason: Option<&str>,
) -> Value {
    let mut t = task.clone();
    t["status"] = json!(status);
    if let Some(code) = business {
        t["businessStatus"] = json!({"coding": [{"system": BUSINESS, "code": code}]});
    }
    if let Some(text) = reason {
        t["statusReason"] = json!({"text": text});
    }
    t
}

/// Moves the Task as `party` and returns the stored result.
pub(crate) async fn step(
    app: &TestApp,
    party: &str,
    task: &Value,
    status: &str,
    business: Option<&str>,
    reason: Option<&str>,
) -> Value {
    let res = put_task(app, Some(party), &moved(task, status, business, reason)).await;
    assert_eq!(res.status(), 200, "{status}: {}", res.text().await.unwrap());
    res.json().await.unwrap()
}

pub(crate) async fn current(app: &TestApp, path: &str) -> Value {
    let res = app.get(path).await;
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

async fn a_referral_walks_to_completed_and_the_referrer_reads_the_outcome(app: TestApp) {
    load_sample(&app).await;
    let (sr, _requester) = refer(&app, "2026-11-20T10:00:00+01:00").await;
    let task = the_task(&app, &sr).await;
    assert_eq!(task["owner"]["reference"], OWNER);
    let task = step(&app, OWNER, &task, "received", Some("contact-made"), None).await;
    let task = step(&app, OWNER, &task, "accepted", Some("intake-planned"), None).await;
    let task = step(&app, OWNER, &task, "in-progress", Some("intake-held"), None).await;
    let task = step(
        &app,
        OWNER,
        &task,
        "on-hold",
        None,
        Some("patient on holiday"),
    )
    .await;
    let task = step(
        &app,
        OWNER,
        &task,
        "in-progress",
        Some("activity-started"),
        None,
    )
    .await;
    // Positive Health at intake and at closing, as QuestionnaireResponses.
    let patient = task["for"]["reference"].as_str().unwrap().to_owned();
    let intake = positive_health(&app, &patient, [4, 3, 5, 4, 2, 6]).await;
    let closing = positive_health(&app, &patient, [6, 6, 7, 7, 6, 7]).await;
    let mut done = moved(&task, "completed", Some("closed-goal-reached"), None);
    done["output"] = json!([
        {"type": output_type("feedback"),
         "valueString": "Mevrouw neemt wekelijks deel aan de wandelgroep; doel bereikt."},
        {"type": output_type("positive-health-intake"),
         "valueReference": {"reference": format!("QuestionnaireResponse/{intake}")}},
        {"type": output_type("positive-health-closing"),
         "valueReference": {"reference": format!("QuestionnaireResponse/{closing}")}}
    ]);
    done["executionPeriod"] = json!({"start": "2026-11-25", "end": "2027-02-10"});
    let res = put_task(&app, Some(OWNER), &done).await;
    assert_eq!(res.status(), 200);
    let done: Value = res.json().await.unwrap();
    assert_eq!(done["meta"]["versionId"], "7");

    // The referrer reads the completed referral and the outcome.
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(referral["status"], "completed");
    assert_eq!(referral["meta"]["versionId"], "2");
    let history = current(&app, &format!("ServiceRequest/{sr}/_history")).await;
    assert_eq!(history["entry"].as_array().unwrap().len(), 2, "{history}");
    let task = the_task(&app, &sr).await;
    assert_eq!(task["status"], "completed");
    assert_eq!(
        task["businessStatus"]["coding"][0]["code"],
        "closed-goal-reached"
    );
    assert_eq!(
        task["output"][0]["valueString"],
        "Mevrouw neemt wekelijks deel aan de wandelgroep; doel bereikt."
    );
    let history = current(
        &app,
        &format!("Task/{}/_history", task["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(history["entry"].as_array().unwrap().len(), 7);
    // The outcome with the Positive Health scores in one search.
    let outcome = current(
        &app,
        &format!("Task?focus=ServiceRequest/{sr}&_include=Task:output"),
    )
    .await;
    let included = entries_with_mode(&outcome, "include");
    assert_eq!(included.len(), 2, "{outcome}");
    assert!(included
        .iter()
        .all(|r| r.starts_with("QuestionnaireResponse/")));
    // Searchable by what the referrer and the organisation care about.
    let found = current(
        &app,
        "Task?business-status=closed-goal-reached&status=completed",
    )
    .await;
    assert_eq!(found["total"], 1);
}

fn output_type(code: &str) -> Value {
    json!({"coding": [{"system": "https://wor-hub.nl/fhir/CodeSystem/task-output-type", "code": code}]})
}

/// Stores a completed Positive Health response with these six scores; returns its id.
async fn positive_health(app: &TestApp, patient: &str, scores: [u8; 6]) -> String {
    let items: Vec<Value> = crate::outcome::DIMENSIONS
        .iter()
        .zip(scores)
        .map(|(l, v)| json!({"linkId": l, "answer": [{"valueInteger": v}]}))
        .collect();
    let qr = json!({
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "https://wor-hub.nl/fhir/Questionnaire/positive-health",
        "status": "completed",
        "subject": {"reference": patient},
        "item": items
    });
    app.create(&qr).await["id"].as_str().unwrap().to_owned()
}

async fn illegal_transitions_are_refused_naming_both_statuses(app: TestApp) {
    load_sample(&app).await;
    let (sr, requester) = refer(&app, "2026-11-20").await;
    let requested = the_task(&app, &sr).await;
    refuse(&app, requested.clone(), "in-progress", OWNER).await;
    refuse(&app, requested.clone(), "completed", OWNER).await;
    refuse(&app, requested.clone(), "cancelled", OWNER).await;
    // Only the owner moves the work forward.
    refuse(&app, requested.clone(), "received", &requester).await;
    refuse(&app, requested.clone(), "accepted", &requester).await;
    let received = step(&app, OWNER, &requested, "received", None, None).await;
    refuse(&app, received.clone(), "completed", OWNER).await;
    refuse(&app, received.clone(), "in-progress", OWNER).await;
    let accepted = step(&app, OWNER, &received, "accepted", None, None).await;
    refuse(&app, accepted.clone(), "completed", OWNER).await;
    refuse(&app, accepted.clone(), "on-hold", OWNER).await;
    let working = step(&app, OWNER, &accepted, "in-progress", None, None).await;
    refuse(&app, working.clone(), "accepted", OWNER).await;
    refuse(&app, working.clone(), "cancelled", OWNER).await;
    let held = step(&app, OWNER, &working, "on-hold", None, Some("ziek")).await;
    refuse(&app, held.clone(), "completed", OWNER).await;
    let working = step(&app, OWNER, &held, "in-progress", None, None).await;
    let failed = step(&app, OWNER, &working, "failed", None, Some("geen contact")).await;
    refuse(&app, failed.clone(), "in-progress", OWNER).await;
    refuse(&app, failed.clone(), "completed", OWNER).await;
    // A failed Task closes the referral without completing it.
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(referral["status"], "revoked");
    // The refusals changed nothing: six accepted moves, seven versions.
    let history = current(
        &app,
        &format!("Task/{}/_history", failed["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(history["entry"].as_array().unwrap().len(), 7);
}

/// Asserts that `party` moving `from` to `to` gets 422 `business-rule` naming both
/// statuses (a business rule, not a version conflict: R4 keeps 409/412 for those).
pub(crate) async fn refuse(app: &TestApp, from: Value, to: &str, party: &str) {
    let res = put_task(app, Some(party), &moved(&from, to, None, Some("why"))).await;
    let issues = expect_outcome(res, 422).await;
    let text = issues[0]["diagnostics"].as_str().unwrap().to_owned();
    let from_status = from["status"].as_str().unwrap();
    assert!(
        text.contains(&format!("is {from_status}")) && text.contains(to),
        "{from_status} -> {to}: {text}"
    );
    assert!(has_issue(&issues, "business-rule", Some("Task.status")));
}

async fn needs_reason(app: &TestApp, from: Value, to: &str, party: String) {
    let res = put_task(app, Some(&party), &moved(&from, to, None, None)).await;
    let issues = expect_outcome(res, 422).await;
    assert!(
        has_issue(&issues, "business-rule", Some("Task.statusReason")),
        "{to}: {issues:?}"
    );
}

async fn reasons_are_required_for_rejected_cancelled_on_hold_and_failed(app: TestApp) {
    load_sample(&app).await;
    let (sr, requester) = refer(&app, "2026-11-20").await;
    let task = the_task(&app, &sr).await;
    needs_reason(&app, task.clone(), "cancelled", requester.clone()).await;
    let received = step(&app, OWNER, &task, "received", None, None).await;
    needs_reason(&app, received.clone(), "rejected", OWNER.into()).await;
    let accepted = step(&app, OWNER, &received, "accepted", None, None).await;
    let working = step(&app, OWNER, &accepted, "in-progress", None, None).await;
    needs_reason(&app, working.clone(), "on-hold", OWNER.into()).await;
    needs_reason(&app, working.clone(), "failed", OWNER.into()).await;
    needs_reason(&app, working.clone(), "cancelled", requester).await;
    // A coded reason is enough.
    let mut held = moved(&working, "on-hold", None, None);
    held["statusReason"] =
        json!({"coding": [{"system": "http://example.org/reasons", "code": "ill"}]});
    assert_eq!(put_task(&app, Some(OWNER), &held).await.status(), 200);
}

async fn the_owner_may_change_only_its_elements(app: TestApp) {
    load_sample(&app).await;
    let (sr, _) = refer(&app, "2026-11-20").await;
    let task = the_task(&app, &sr).await;
    let changes: Vec<(&str, Value)> = vec![
        ("focus", json!({"reference": "ServiceRequest/other"})),
        ("for", json!({"reference": "Patient/other"})),
        ("requester", json!({"reference": "Practitioner/other"})),
        ("owner", json!({"reference": "Organization/go-voor-jeugd"})),
        ("intent", json!("plan")),
        ("code", json!({"text": "other"})),
        ("authoredOn", json!("2020-01-01")),
        ("priority", json!("urgent")),
        ("description", json!("changed")),
        (
            "extension",
            json!([{"url": "https://example.org/x", "valueString": "y"}]),
        ),
        (
            "input",
            json!([{"type": {"text": "x"}, "valueString": "y"}]),
        ),
        ("partOf", json!([{"reference": "Task/other"}])),
        ("basedOn", json!([{"reference": "ServiceRequest/other"}])),
    ];
    for (element, value) in changes {
        let mut changed = task.clone();
        changed[element] = value;
        let res = put_task(&app, Some(OWNER), &changed).await;
        let issues = expect_outcome(res, 403).await;
        let path = format!("Task.{element}");
        assert!(
            has_issue(&issues, "forbidden", Some(&path)),
            "{element}: {issues:?}"
        );
    }
    // Removing an element is a change too.
    let mut without = task.clone();
    without.as_object_mut().unwrap().remove("for");
    let issues = expect_outcome(put_task(&app, Some(OWNER), &without).await, 403).await;
    assert!(has_issue(&issues, "forbidden", Some("Task.for")));
    // Nothing changed.
    let history = current(
        &app,
        &format!("Task/{}/_history", task["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(history["entry"].as_array().unwrap().len(), 1);
    // Its own elements it may change, without a status change.
    let mut noted = task.clone();
    noted["note"] = json!([{"text": "Gebeld, voicemail ingesproken"}]);
    noted["businessStatus"] =
        json!({"coding": [{"system": BUSINESS, "code": "patient-unreachable"}]});
    noted["executionPeriod"] = json!({"start": "2026-11-24"});
    let res = put_task(&app, Some(OWNER), &noted).await;
    assert_eq!(res.status(), 200);
}

async fn updates_need_if_match_and_a_known_party(app: TestApp) {
    load_sample(&app).await;
    let (sr, _) = refer(&app, "2026-11-20").await;
    let task = the_task(&app, &sr).await;
    let id = task["id"].as_str().unwrap();
    // No If-Match: 412 naming the header (R4 http.html: a server that requires
    // version-aware updates answers 412).
    let res = app
        .request(Method::PUT, &format!("Task/{id}"))
        .header("Content-Type", FHIR_JSON)
        .header("X-Acting-Party", OWNER)
        .body(moved(&task, "received", None, None).to_string())
        .send()
        .await
        .unwrap();
    let issues = expect_outcome(res, 412).await;
    assert!(has_issue(&issues, "required", Some("If-Match")));
    // Stale: the first writer wins, the second gets 412.
    let received = step(&app, OWNER, &task, "received", None, None).await;
    assert_eq!(received["meta"]["versionId"], "2");
    let res = put_task(&app, Some(OWNER), &moved(&task, "received", None, None)).await;
    let issues = expect_outcome(res, 412).await;
    assert!(issues[0]["diagnostics"]
        .as_str()
        .unwrap()
        .contains("W/\"2\""));
    // A party that is neither owner nor requester.
    let res = put_task(
        &app,
        Some("Organization/go-voor-jeugd"),
        &moved(&received, "accepted", None, None),
    )
    .await;
    let issues = expect_outcome(res, 403).await;
    assert!(has_issue(&issues, "forbidden", Some("X-Acting-Party")));
    // A malformed party header.
    let res = put_task(
        &app,
        Some("tom in de buurt"),
        &moved(&received, "accepted", None, None),
    )
    .await;
    let issues = expect_outcome(res, 400).await;
    assert!(has_issue(&issues, "invalid", Some("X-Acting-Party")));
    // Open mode on loopback: no header acts as any party.
    let res = put_task(&app, None, &moved(&received, "accepted", None, None)).await;
    assert_eq!(res.status(), 200);
}

async fn business_status_comes_from_the_project_code_system(app: TestApp) {
    load_sample(&app).await;
    let (sr, _) = refer(&app, "2026-11-20").await;
    let task = the_task(&app, &sr).await;
    let res = put_task(
        &app,
        Some(OWNER),
        &moved(&task, "received", Some("bijna-klaar"), None),
    )
    .await;
    let issues = expect_outcome(res, 422).await;
    assert!(
        has_issue(
            &issues,
            "code-invalid",
            Some("Task.businessStatus.coding[0].code")
        ),
        "{issues:?}"
    );
    let mut text_only = task.clone();
    text_only["businessStatus"] = json!({"text": "gebeld"});
    let issues = expect_outcome(put_task(&app, Some(OWNER), &text_only).await, 422).await;
    assert!(has_issue(
        &issues,
        "code-invalid",
        Some("Task.businessStatus")
    ));
    // The hub's own codes are not for clients to set.
    let res = put_task(
        &app,
        Some(OWNER),
        &moved(&task, "requested", Some("cancellation-requested"), None),
    )
    .await;
    let issues = expect_outcome(res, 422).await;
    assert!(has_issue(
        &issues,
        "business-rule",
        Some("Task.businessStatus")
    ));
    // Also on create.
    let res = app
        .post("Task", &json!({"resourceType": "Task", "status": "requested", "intent": "order",
                               "businessStatus": {"coding": [{"system": BUSINESS, "code": "nope"}]}}))
        .await;
    expect_outcome(res, 422).await;
    let history = current(
        &app,
        &format!("Task/{}/_history", task["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(history["entry"].as_array().unwrap().len(), 1);
}

/// A second adult service in Alphen aan den Rijn, priority 2.
pub(crate) async fn add_fallback(app: &TestApp) {
    let org = json!({"resourceType": "Organization", "id": "fallback-welzijn", "active": true, "name": "Fallback Welzijn"});
    assert_eq!(
        app.put("Organization/fallback-welzijn", &org)
            .await
            .status(),
        201
    );
    let service = json!({
        "resourceType": "HealthcareService",
        "id": "wor-alphen-fallback",
        "extension": [
            {"url": "https://wor-hub.nl/fhir/StructureDefinition/municipality",
             "valueCoding": {"system": "https://wor-hub.nl/fhir/CodeSystem/cbs-municipality", "code": "GM0484"}},
            {"url": "https://wor-hub.nl/fhir/StructureDefinition/age-group", "valueCode": "18-plus"},
            {"url": "https://wor-hub.nl/fhir/StructureDefinition/routing-priority", "valuePositiveInt": 2}
        ],
        "active": true,
        "providedBy": {"reference": FALLBACK},
        "category": [{"coding": [{"system": "https://wor-hub.nl/fhir/CodeSystem/service-category", "code": "wor"}]}],
        "name": "Fallback WOR Alphen"
    });
    let res = app
        .put("HealthcareService/wor-alphen-fallback", &service)
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
}

async fn a_rejection_reroutes_to_the_fallback_then_to_the_coordinator(app: TestApp) {
    load_sample(&app).await;
    add_fallback(&app).await;
    let (sr, _) = refer(&app, "2026-11-20").await;
    let first = the_task(&app, &sr).await;
    assert_eq!(first["owner"]["reference"], OWNER);
    let received = step(&app, OWNER, &first, "received", None, None).await;
    step(
        &app,
        OWNER,
        &received,
        "rejected",
        None,
        Some("Geen capaciteit tot maart"),
    )
    .await;

    let tasks = tasks_for(&app, &sr).await;
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    let second = tasks.iter().find(|t| t["status"] == "requested").unwrap();
    assert_eq!(second["owner"]["reference"], FALLBACK);
    assert_eq!(
        second["partOf"][0]["reference"],
        format!("Task/{}", first["id"].as_str().unwrap())
    );
    let record = second.to_string();
    assert!(record.contains("Geen capaciteit tot maart"), "{record}");
    assert!(record.contains("Organization/tom-in-de-buurt rejected this referral"));
    // The referral stays active and unchanged.
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(referral["status"], "active");
    assert_eq!(referral["meta"]["versionId"], "1");

    // The fallback rejects too: nobody is left, the coordinator gets the referral.
    let received = step(&app, FALLBACK, second, "received", None, None).await;
    step(
        &app,
        FALLBACK,
        &received,
        "rejected",
        None,
        Some("Buiten ons werkgebied"),
    )
    .await;
    let tasks = tasks_for(&app, &sr).await;
    assert_eq!(tasks.len(), 3);
    let third = tasks.iter().find(|t| t["status"] == "requested").unwrap();
    assert!(third.get("owner").is_none(), "{third}");
    assert_eq!(third["businessStatus"]["coding"][0]["code"], "unroutable");
    assert_eq!(third["statusReason"]["coding"][0]["code"], "all-rejected");
    let unassigned = current(&app, "Task?owner:missing=true").await;
    assert_eq!(unassigned["total"], 1);
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(referral["status"], "active");
    // The coordinator assigns an owner.
    let mut assigned = third.clone();
    assigned["owner"] = json!({"reference": OWNER});
    let res = put_task(&app, Some("coordinator"), &assigned).await;
    assert_eq!(res.status(), 200);
    let assigned: Value = res.json().await.unwrap();
    assert!(assigned.get("businessStatus").is_none(), "{assigned}");
    // A coordinator does not do the organisation's work.
    let res = put_task(
        &app,
        Some("coordinator"),
        &moved(&assigned, "received", None, None),
    )
    .await;
    let issues = expect_outcome(res, 422).await;
    assert!(has_issue(&issues, "business-rule", Some("Task.status")));
}

async fn the_referrer_cancels_at_once_before_work_and_by_request_after(app: TestApp) {
    load_sample(&app).await;
    // Before in-progress: at once.
    let (sr, requester) = refer(&app, "2026-11-20").await;
    let task = the_task(&app, &sr).await;
    let accepted = step(
        &app,
        OWNER,
        &step(&app, OWNER, &task, "received", None, None).await,
        "accepted",
        None,
        None,
    )
    .await;
    let cancelled = step(
        &app,
        &requester,
        &accepted,
        "cancelled",
        None,
        Some("Patiënt verhuisd"),
    )
    .await;
    assert_eq!(cancelled["status"], "cancelled");
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(referral["status"], "revoked");

    // From in-progress: a request the organisation confirms.
    let (sr, requester) = refer(&app, "2026-11-21").await;
    let task = the_task(&app, &sr).await;
    let r = step(&app, OWNER, &task, "received", None, None).await;
    let a = step(&app, OWNER, &r, "accepted", None, None).await;
    let working = step(
        &app,
        OWNER,
        &a,
        "in-progress",
        Some("activity-started"),
        None,
    )
    .await;
    let asked = step(
        &app,
        &requester,
        &working,
        "cancelled",
        None,
        Some("Patiënt wil stoppen"),
    )
    .await;
    assert_eq!(asked["status"], "in-progress");
    assert_eq!(
        asked["businessStatus"]["coding"][0]["code"],
        "cancellation-requested"
    );
    assert!(asked.to_string().contains("Patiënt wil stoppen"));
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(referral["status"], "active");
    // The organisation confirms.
    let confirmed = step(
        &app,
        OWNER,
        &asked,
        "cancelled",
        None,
        Some("Op verzoek van de huisarts"),
    )
    .await;
    assert_eq!(confirmed["status"], "cancelled");
    let referral = current(&app, &format!("ServiceRequest/{sr}")).await;
    assert_eq!(referral["status"], "revoked");
    assert_eq!(referral["meta"]["versionId"], "2");
}

async fn bundle_entries_follow_the_same_rules(app: TestApp) {
    load_sample(&app).await;
    let (sr, _) = refer(&app, "2026-11-20").await;
    let task = the_task(&app, &sr).await;
    let id = task["id"].as_str().unwrap();
    let entry = |status: &str, if_match: Option<&str>| {
        let mut request = json!({"method": "PUT", "url": format!("Task/{id}")});
        if let Some(v) = if_match {
            request["ifMatch"] = json!(v);
        }
        json!({"resource": moved(&task, status, None, None), "request": request})
    };
    // A transaction with an illegal move fails as a whole.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction",
                        "entry": [entry("completed", Some("W/\"1\""))]});
    let res = app
        .request(Method::POST, "")
        .header("Content-Type", FHIR_JSON)
        .header("X-Acting-Party", OWNER)
        .body(bundle.to_string())
        .send()
        .await
        .unwrap();
    let issues = expect_outcome(res, 422).await;
    assert!(
        has_issue(
            &issues,
            "business-rule",
            Some("Bundle.entry[0].resource.status")
        ),
        "{issues:?}"
    );
    // A batch entry without ifMatch fails on its own; a legal one lands.
    let bundle = json!({"resourceType": "Bundle", "type": "batch",
                        "entry": [entry("received", None), entry("received", Some("W/\"1\""))]});
    let res = app
        .request(Method::POST, "")
        .header("Content-Type", FHIR_JSON)
        .header("X-Acting-Party", OWNER)
        .body(bundle.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["entry"][0]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("412"),
        "{body}"
    );
    assert!(
        body["entry"][1]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("200"),
        "{body}"
    );
    let task = current(&app, &format!("Task/{id}")).await;
    assert_eq!(task["status"], "received");
}

async fn only_a_coordinator_deletes_a_task(app: TestApp) {
    load_sample(&app).await;
    let (sr, requester) = refer(&app, "2026-11-20").await;
    let task = the_task(&app, &sr).await;
    let path = format!("Task/{}", task["id"].as_str().unwrap());
    for party in [OWNER, requester.as_str()] {
        let res = app
            .request(Method::DELETE, &path)
            .header("X-Acting-Party", party)
            .send()
            .await
            .unwrap();
        let issues = expect_outcome(res, 403).await;
        assert!(has_issue(&issues, "forbidden", Some("X-Acting-Party")));
    }
    assert_eq!(app.get(&path).await.status(), 200);
    let res = app
        .request(Method::DELETE, &path)
        .header("X-Acting-Party", "coordinator")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.get(&path).await.status(), 410);
}

/// Without open mode, a Task update must name its party even on loopback.
#[tokio::test]
async fn closed_mode_requires_the_party_header() {
    let app = spawn(Backend::Sqlite, |s| s.open_mode = false)
        .await
        .expect("app");
    load_sample(&app).await;
    let (sr, _) = refer(&app, "2026-11-20").await;
    let task = the_task(&app, &sr).await;
    let res = put_task(&app, None, &moved(&task, "received", None, None)).await;
    let issues = expect_outcome(res, 403).await;
    assert!(has_issue(&issues, "forbidden", Some("X-Acting-Party")));
    let res = put_task(&app, Some(OWNER), &moved(&task, "received", None, None)).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn overdue_marking_on_sqlite() {
    overdue_marking(Backend::Sqlite).await;
}

#[tokio::test]
async fn overdue_marking_on_postgres() {
    overdue_marking(Backend::Postgres).await;
}

pub(crate) fn is_overdue(task: &Value) -> bool {
    task["meta"]["tag"].as_array().is_some_and(|tags| {
        tags.iter()
            .any(|t| t["system"] == FLAG && t["code"] == "overdue")
    })
}

/// The contact deadline, measured on a clock the test moves forward.
async fn overdue_marking(backend: Backend) {
    let clock = Clock::default();
    let shared = clock.clone();
    let Some(app) = spawn(backend, move |s| {
        s.clock = shared;
        s.overdue_check_interval = Duration::from_millis(100);
    })
    .await
    else {
        return;
    };
    load_sample(&app).await;
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let (waiting_sr, _) = refer(&app, &today).await;
    let (contacted_sr, _) = refer(&app, &today).await;
    let contacted = the_task(&app, &contacted_sr).await;
    let contacted = step(
        &app,
        OWNER,
        &contacted,
        "received",
        Some("contact-made"),
        None,
    )
    .await;
    // Thirteen days on: nothing is overdue yet.
    clock.advance(Duration::from_secs(13 * 86_400));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!is_overdue(&the_task(&app, &waiting_sr).await));
    // Fifteen days on: the job tags the Task that still waits for contact.
    clock.advance(Duration::from_secs(2 * 86_400));
    let mut waited = 0;
    let waiting = loop {
        let t = the_task(&app, &waiting_sr).await;
        if is_overdue(&t) || waited > 100 {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    };
    assert!(is_overdue(&waiting), "{waiting}");
    assert_eq!(waiting["meta"]["versionId"], "2");
    assert!(!is_overdue(&the_task(&app, &contacted_sr).await));
    assert_eq!(
        the_task(&app, &contacted_sr).await["meta"]["versionId"],
        contacted["meta"]["versionId"]
    );
    // Searchable by the tag.
    let found = current(&app, &format!("Task?_tag={FLAG}|overdue")).await;
    assert_eq!(found["total"], 1);
    assert_eq!(found["entry"][0]["resource"]["id"], waiting["id"]);
    // Already tagged: later rounds leave it alone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(the_task(&app, &waiting_sr).await["meta"]["versionId"], "2");
    // Contact made: the tag goes with the organisation's update.
    let mut reached = moved(&waiting, "received", Some("contact-made"), None);
    reached["meta"] = waiting["meta"].clone();
    let res = put_task(&app, Some(OWNER), &reached).await;
    assert_eq!(res.status(), 200);
    let reached: Value = res.json().await.unwrap();
    assert!(!is_overdue(&reached), "{reached}");
}
