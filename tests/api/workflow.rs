//! The referral workflow: the Task state machine with roles, the ServiceRequest
//! following its Task, the owner's elements, If-Match and business statuses
//! (rerouting, cancellation, Bundles and the deadline: `task_lifecycle`).

use reqwest::Method;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{
    current, expect_outcome, has_issue, load_sample, moved, put_task, refer, refuse, step,
    the_task, TestApp, BUSINESS, FHIR_JSON, OWNER,
};
use crate::reports::positive_health;
use crate::search_results::entries_with_mode;

backend_tests!(
    a_referral_walks_to_completed_and_the_referrer_reads_the_outcome,
    illegal_transitions_are_refused_naming_both_statuses,
    reasons_are_required_for_rejected_cancelled_on_hold_and_failed,
    the_owner_may_change_only_its_elements,
    updates_need_if_match_and_a_known_party,
    business_status_comes_from_the_project_code_system,
);

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
    let intake = positive_health(&app, &patient, "2026-11-21", [4, 3, 5, 4, 2, 6]).await;
    let closing = positive_health(&app, &patient, "2026-12-01", [6, 6, 7, 7, 6, 7]).await;
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
