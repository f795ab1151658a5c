//! POST /fhir/$process-message with a referral as a FHIR message, and the
//! referral-status messages back to the sender's registered Endpoint (README "Message
//! intake", profiles/README-message-intake.md).

use reqwest::Method;
use serde_json::{json, Value};

use crate::access_support::{world, GP_A};
use crate::backend_tests;
use crate::document_intake::{decision, document, ids, referral, FIXTURE, SR_SYSTEM, URN};
use crate::helpers::{current, expect_outcome, has_issue, load_sample, the_task, TestApp};

backend_tests!(
    the_same_referral_as_transaction_document_and_message_routes_alike,
    a_message_delivered_twice_is_processed_once,
    an_update_message_replaces_the_referral,
    a_cancellation_message_cancels_the_task,
    bad_messages_are_refused_and_nothing_is_stored,
    with_authentication_only_the_referrer_of_the_endpoint_sends,
);

pub(crate) const EVENTS: &str = "https://wor-hub.nl/fhir/CodeSystem/message-event";
const HEADER: &str = "urn:uuid:6f1c2a44-0b7e-4c1d-9a53-1d2f0c6b7e9f";

/// The fixture's referral as a message: a MessageHeader first (event, the sender's
/// endpoint, focus the ServiceRequest), then the fixture's resources with their fullUrls.
/// The ServiceRequest is entry 5.
pub(crate) fn message(id: &str, event: &str, source: &str, referral_value: &str) -> Value {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let mut entries = vec![json!({
        "fullUrl": HEADER,
        "resource": {
            "resourceType": "MessageHeader",
            "id": id,
            "eventCoding": {"system": EVENTS, "code": event},
            "source": {"name": "HIS of the practice", "endpoint": source},
            "sender": {"reference": format!("{URN}2")},
            "focus": [{"reference": format!("{URN}5")}]
        }
    })];
    for e in fixture["entry"].as_array().unwrap() {
        entries.push(json!({"fullUrl": e["fullUrl"], "resource": e["resource"]}));
    }
    entries[5]["resource"]["identifier"][0]["value"] = json!(referral_value);
    json!({
        "resourceType": "Bundle",
        "type": "message",
        "timestamp": "2026-11-20T10:01:00+01:00",
        "entry": entries
    })
}

/// Registers the sender's messaging Endpoint (open mode: no authentication).
pub(crate) async fn register_endpoint(app: &TestApp, address: &str, headers: &[&str]) -> String {
    let res = app
        .post("Endpoint", &endpoint(address, headers, None))
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let body: Value = res.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

pub(crate) fn endpoint(address: &str, headers: &[&str], organization: Option<&str>) -> Value {
    let mut e = json!({
        "resourceType": "Endpoint",
        "status": "active",
        "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                           "code": "hl7-fhir-msg"},
        "name": "Responses to the practice's HIS",
        "payloadType": [{"text": "Welzijn op Recept referral messages"}],
        "payloadMimeType": ["application/fhir+json"],
        "address": address
    });
    if !headers.is_empty() {
        e["header"] = json!(headers);
    }
    if let Some(org) = organization {
        e["managingOrganization"] = json!({"reference": org});
    }
    e
}

pub(crate) async fn process(app: &TestApp, body: &Value) -> reqwest::Response {
    app.post("$process-message", body).await
}

/// The response message's header, after checking the answer is one.
async fn response_header(res: reqwest::Response, answered: &str) -> (Value, Value) {
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/fhir+json"));
    let bundle: Value = res.json().await.unwrap();
    assert_eq!(bundle["type"], "message");
    let header = bundle["entry"][0]["resource"].clone();
    assert_eq!(header["resourceType"], "MessageHeader");
    assert_eq!(header["response"]["identifier"], answered);
    assert_eq!(header["response"]["code"], "ok");
    (bundle, header)
}

async fn counts(app: &TestApp) -> Vec<usize> {
    let mut out = Vec::new();
    for ty in ["Bundle", "Patient", "Consent", "ServiceRequest", "Task"] {
        out.push(app.version_count(ty).await);
    }
    out
}

async fn the_same_referral_as_transaction_document_and_message_routes_alike(app: TestApp) {
    load_sample(&app).await;
    register_endpoint(&app, "https://his.example.nl/fhir/messages", &[]).await;
    let sent = message(
        "msg-1",
        "referral-new",
        "https://his.example.nl/fhir/messages",
        "HIS-2026-000300",
    );
    let res = process(&app, &sent).await;
    let (bundle, header) = response_header(res, "msg-1").await;
    assert_eq!(header["eventCoding"]["code"], "referral-new");
    assert_eq!(
        header["destination"][0]["endpoint"],
        "https://his.example.nl/fhir/messages"
    );
    let sr_id = referral(&app, "HIS-2026-000300").await;
    let from_message = the_task(&app, &sr_id).await;
    // The response carries the stored ServiceRequest and its routed Task, in full.
    let sr_entry = &bundle["entry"][1]["resource"];
    assert_eq!(sr_entry["resourceType"], "ServiceRequest");
    assert_eq!(sr_entry["id"], sr_id.as_str());
    assert_eq!(bundle["entry"][2]["resource"], from_message);
    let foci: Vec<&str> = header["focus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["reference"].as_str().unwrap())
        .collect();
    assert!(
        foci[0].ends_with(&format!("/ServiceRequest/{sr_id}")),
        "{foci:?}"
    );
    assert!(foci[1].ends_with(&format!("/Task/{}", from_message["id"].as_str().unwrap())));

    // Element by element, the message's ServiceRequest became the stored one.
    let stored = current(&app, &format!("ServiceRequest/{sr_id}")).await;
    let original = &sent["entry"][5]["resource"];
    for k in [
        "identifier",
        "status",
        "intent",
        "code",
        "reasonCode",
        "note",
        "authoredOn",
    ] {
        assert_eq!(stored[k], original[k], "ServiceRequest.{k}");
    }
    let patient = ids(
        &app,
        "Patient?identifier=http://fhir.nl/fhir/NamingSystem/bsn|999999011",
    )
    .await;
    assert_eq!(
        stored["subject"]["reference"],
        format!("Patient/{}", patient[0])
    );

    // The message itself and the response are stored as received / sent.
    let messages = ids(&app, "Bundle?type=message").await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    let mut request = None;
    for id in &messages {
        let b = current(&app, &format!("Bundle/{id}")).await;
        if b["entry"][0]["resource"]["id"] == "msg-1" {
            request = Some(b);
        }
    }
    let mut request = request.expect("the message is stored");
    for k in ["id", "meta"] {
        request.as_object_mut().unwrap().remove(k);
    }
    assert_eq!(request, sent);

    // As a transaction and as a document: the same decision.
    let mut tx: Value = serde_json::from_str(FIXTURE).unwrap();
    tx["entry"][4]["resource"]["identifier"][0]["value"] = json!("HIS-2026-000301");
    tx["entry"][4]["request"]["ifNoneExist"] =
        json!(format!("identifier={SR_SYSTEM}|HIS-2026-000301"));
    assert_eq!(app.post("", &tx).await.status(), 200);
    let from_transaction = the_task(&app, &referral(&app, "HIS-2026-000301").await).await;
    let mut doc = document("urn:uuid:0d0c0000-0000-4000-8000-000000000300");
    doc["entry"][5]["resource"]["identifier"][0]["value"] = json!("HIS-2026-000302");
    assert_eq!(app.post("Bundle", &doc).await.status(), 201);
    let from_document = the_task(&app, &referral(&app, "HIS-2026-000302").await).await;
    assert!(
        from_message["owner"]["reference"].is_string(),
        "{from_message}"
    );
    assert_eq!(decision(&from_message), decision(&from_transaction));
    assert_eq!(decision(&from_message), decision(&from_document));
}

async fn a_message_delivered_twice_is_processed_once(app: TestApp) {
    load_sample(&app).await;
    let source = "https://his.example.nl/fhir/messages";
    register_endpoint(&app, source, &[]).await;
    let sent = message("msg-twice", "referral-new", source, "HIS-2026-000310");
    let first = process(&app, &sent).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let before = counts(&app).await;
    let again = process(&app, &sent).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first, "the first response, again");
    assert_eq!(counts(&app).await, before, "nothing stored twice");

    // Another message under that id from that source: refused, nothing stored.
    let mut other = sent.clone();
    other["entry"][5]["resource"]["note"][0]["text"] = json!("Liever 's middags.");
    let issues = expect_outcome(process(&app, &other).await, 409).await;
    assert!(
        has_issue(&issues, "duplicate", Some("Bundle.entry[0].resource.id")),
        "{issues:?}"
    );
    assert_eq!(counts(&app).await, before);
}

async fn an_update_message_replaces_the_referral(app: TestApp) {
    load_sample(&app).await;
    let source = "https://his.example.nl/fhir/messages";
    register_endpoint(&app, source, &[]).await;
    let new = message("msg-u1", "referral-new", source, "HIS-2026-000320");
    assert_eq!(process(&app, &new).await.status(), 200);
    let sr_id = referral(&app, "HIS-2026-000320").await;
    let task = the_task(&app, &sr_id).await;

    let mut update = message("msg-u2", "referral-update", source, "HIS-2026-000320");
    update["entry"][5]["resource"]["note"] = json!([{"text": "Graag contact na 16:00."}]);
    let (bundle, header) = response_header(process(&app, &update).await, "msg-u2").await;
    assert_eq!(header["eventCoding"]["code"], "referral-update");
    let stored = current(&app, &format!("ServiceRequest/{sr_id}")).await;
    assert_eq!(stored["note"][0]["text"], "Graag contact na 16:00.");
    assert_eq!(stored["meta"]["versionId"], "2");
    assert_eq!(bundle["entry"][1]["resource"]["note"], stored["note"]);
    // Still one referral and its one Task.
    assert_eq!(the_task(&app, &sr_id).await["id"], task["id"]);
    assert_eq!(ids(&app, "ServiceRequest").await.len(), 1);

    // An update of a referral never received: 422, nothing stored.
    let before = counts(&app).await;
    let unknown = message("msg-u3", "referral-update", source, "HIS-2026-999999");
    let issues = expect_outcome(process(&app, &unknown).await, 422).await;
    assert!(
        has_issue(
            &issues,
            "business-rule",
            Some("Bundle.entry[5].resource.identifier")
        ),
        "{issues:?}"
    );
    assert_eq!(counts(&app).await, before);
}

async fn a_cancellation_message_cancels_the_task(app: TestApp) {
    load_sample(&app).await;
    let source = "https://his.example.nl/fhir/messages";
    register_endpoint(&app, source, &[]).await;
    assert_eq!(
        process(
            &app,
            &message("msg-c1", "referral-new", source, "HIS-2026-000330")
        )
        .await
        .status(),
        200
    );
    let sr_id = referral(&app, "HIS-2026-000330").await;
    let mut cancel = message("msg-c2", "referral-cancel", source, "HIS-2026-000330");
    cancel["entry"][0]["resource"]["reason"] = json!({"text": "Patiënt verhuisd"});
    let (bundle, header) = response_header(process(&app, &cancel).await, "msg-c2").await;
    assert_eq!(header["eventCoding"]["code"], "referral-cancel");
    let task = the_task(&app, &sr_id).await;
    assert_eq!(task["status"], "cancelled");
    assert_eq!(task["statusReason"]["text"], "Patiënt verhuisd");
    assert_eq!(bundle["entry"][2]["resource"]["status"], "cancelled");
    let sr = current(&app, &format!("ServiceRequest/{sr_id}")).await;
    assert_eq!(sr["status"], "revoked");

    // Nothing left to cancel: 422, and the sender is told it caused it.
    let again = message("msg-c3", "referral-cancel", source, "HIS-2026-000330");
    let issues = expect_outcome(process(&app, &again).await, 422).await;
    assert!(has_issue(&issues, "business-rule", None), "{issues:?}");
    assert_eq!(issues[0]["details"]["coding"][0]["code"], "fatal-error");
}

async fn bad_messages_are_refused_and_nothing_is_stored(app: TestApp) {
    load_sample(&app).await;
    let source = "https://his.example.nl/fhir/messages";
    register_endpoint(&app, source, &[]).await;
    let before = counts(&app).await;
    let good = message("msg-b", "referral-new", source, "HIS-2026-000350");
    let refused = |status: u16, code: &'static str, at: &'static str| (status, code, at);

    let mut no_header = good.clone();
    no_header["entry"].as_array_mut().unwrap().remove(0);
    let mut unknown_event = good.clone();
    unknown_event["entry"][0]["resource"]["eventCoding"]["code"] = json!("referral-transfer");
    let mut focus_elsewhere = good.clone();
    focus_elsewhere["entry"][0]["resource"]["focus"][0]["reference"] = json!("urn:uuid:nowhere");
    let mut no_id = good.clone();
    no_id["entry"][0]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("id");
    let unregistered = message(
        "msg-b",
        "referral-new",
        "https://elsewhere.example/msg",
        "HIS-2026-000350",
    );
    let mut a_document = good.clone();
    a_document["type"] = json!("document");
    let cases = [
        (
            no_header,
            refused(400, "structure", "Bundle.entry[0].resource"),
        ),
        (
            unknown_event,
            refused(422, "not-supported", "Bundle.entry[0].resource.eventCoding"),
        ),
        (
            focus_elsewhere,
            refused(
                400,
                "not-found",
                "Bundle.entry[0].resource.focus[0].reference",
            ),
        ),
        (
            no_id,
            refused(400, "required", "Bundle.entry[0].resource.id"),
        ),
        (
            unregistered,
            refused(
                422,
                "business-rule",
                "Bundle.entry[0].resource.source.endpoint",
            ),
        ),
        (a_document, refused(422, "not-supported", "Bundle.type")),
    ];
    for (body, (status, code, at)) in cases {
        let issues = expect_outcome(process(&app, &body).await, status).await;
        assert!(has_issue(&issues, code, Some(at)), "{at}: {issues:?}");
        assert_eq!(
            issues[0]["details"]["coding"][0]["system"],
            "http://hl7.org/fhir/response-code"
        );
        assert_eq!(
            issues[0]["details"]["coding"][0]["code"], "fatal-error",
            "{at}"
        );
    }
    // Asynchronous processing and response-url are not offered.
    let res = app
        .request(Method::POST, "$process-message?async=true")
        .header("Content-Type", "application/fhir+json")
        .body(good.to_string())
        .send()
        .await
        .unwrap();
    let issues = expect_outcome(res, 422).await;
    assert!(
        has_issue(&issues, "not-supported", Some("http.async")),
        "{issues:?}"
    );
    assert_eq!(counts(&app).await, before);
    // The good message still goes through.
    assert_eq!(process(&app, &good).await.status(), 200);
}

async fn with_authentication_only_the_referrer_of_the_endpoint_sends(app: TestApp) {
    let w = world(app).await;
    let source = "https://gp-a.example.nl/his/messages";
    let res = w
        .gp_a
        .send(
            &w.app,
            Method::POST,
            "Endpoint",
            Some(&endpoint(source, &[], Some(GP_A))),
        )
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let sent = message("msg-a1", "referral-new", source, "HIS-2026-000360");
    // A welfare organisation does not send referrals; another practice may not use
    // practice A's endpoint.
    let res = w
        .owner
        .send(&w.app, Method::POST, "$process-message", Some(&sent))
        .await;
    assert_eq!(res.status(), 403);
    let res = w
        .gp_b
        .send(&w.app, Method::POST, "$process-message", Some(&sent))
        .await;
    let issues = expect_outcome(res, 422).await;
    assert!(has_issue(
        &issues,
        "business-rule",
        Some("Bundle.entry[0].resource.source.endpoint")
    ));
    let res = w
        .gp_a
        .send(&w.app, Method::POST, "$process-message", Some(&sent))
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    // Practice B, with an Endpoint of its own, cannot take over practice A's referral
    // by sending its identifier, nor cancel it.
    let b_source = "https://gp-b.example.nl/his/messages";
    let res = w
        .gp_b
        .send(
            &w.app,
            Method::POST,
            "Endpoint",
            Some(&endpoint(b_source, &[], Some(crate::access_support::GP_B))),
        )
        .await;
    assert_eq!(res.status(), 201);
    let b_sent = message("msg-b1", "referral-new", b_source, "HIS-2026-000360");
    let res = w
        .gp_b
        .send(&w.app, Method::POST, "$process-message", Some(&b_sent))
        .await;
    let issues = expect_outcome(res, 409).await;
    assert!(has_issue(&issues, "duplicate", None), "{issues:?}");
    let b_cancel = message("msg-b2", "referral-cancel", b_source, "HIS-2026-000360");
    let res = w
        .gp_b
        .send(&w.app, Method::POST, "$process-message", Some(&b_cancel))
        .await;
    let issues = expect_outcome(res, 422).await;
    assert!(has_issue(&issues, "business-rule", None), "{issues:?}");
    // The Endpoint is practice A's: practice B does not see it.
    let res = w.gp_b.send(&w.app, Method::GET, "Endpoint", None).await;
    let bundle: Value = res.json().await.unwrap();
    let mine: Vec<&str> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["resource"]["address"].as_str().unwrap())
        .collect();
    assert_eq!(mine, [b_source], "{bundle}");
}
