//! POST /fhir/Bundle with a referral as a FHIR document (README "Document intake",
//! profiles/README-document-intake.md).

use serde_json::{json, Value};

use crate::access_support::{found, status, world};
use crate::backend_tests;
use crate::helpers::{expect_outcome, has_issue, load_sample, the_task, TestApp};

backend_tests!(
    a_document_is_routed_as_the_same_transaction,
    the_same_document_twice_is_accepted_once,
    the_stored_document_reads_back_unchanged,
    bad_documents_are_refused_and_nothing_is_stored,
    only_the_sending_organisation_reads_its_document,
);

pub(crate) const FIXTURE: &str = include_str!("../fixtures/referral-transaction.json");
pub(crate) const SR_SYSTEM: &str = "urn:oid:2.16.840.1.113883.2.4.3.11.999.1";
pub(crate) const URN: &str = "urn:uuid:6f1c2a44-0b7e-4c1d-9a53-1d2f0c6b7e0";

/// The fixture's referral as a document: a Composition first (subject the Patient,
/// author the Practitioner, sections naming the ServiceRequest, Consent and practice),
/// then the fixture's resources with their fullUrls and without requests.
pub(crate) fn document(identifier: &str) -> Value {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let mut entries = vec![json!({
        "fullUrl": format!("{URN}0"),
        "resource": {
            "resourceType": "Composition",
            "status": "final",
            "type": {"coding": [{"system": "http://loinc.org", "code": "57133-1",
                                 "display": "Referral note"}]},
            "subject": {"reference": format!("{URN}1")},
            "date": "2026-11-20T10:00:00+01:00",
            "author": [{"reference": format!("{URN}3")}],
            "title": "Verwijzing Welzijn op Recept",
            "section": [
                {"title": "Verwijzing", "entry": [{"reference": format!("{URN}5")},
                                                 {"reference": format!("{URN}4")}]},
                {"title": "Verwijzer", "entry": [{"reference": format!("{URN}2")}]}
            ]
        }
    })];
    for e in fixture["entry"].as_array().unwrap() {
        entries.push(json!({"fullUrl": e["fullUrl"], "resource": e["resource"]}));
    }
    json!({
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": identifier},
        "type": "document",
        "timestamp": "2026-11-20T10:01:00+01:00",
        "entry": entries
    })
}

const DOC_ID: &str = "urn:uuid:0d0c0000-0000-4000-8000-000000000001";

fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// The ids of the current resources of a search.
pub(crate) async fn ids(app: &TestApp, query: &str) -> Vec<String> {
    let res = app.get(query).await;
    assert_eq!(res.status(), 200, "{query}");
    let bundle: Value = res.json().await.unwrap();
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The one ServiceRequest with the fixture's identifier `value`.
pub(crate) async fn referral(app: &TestApp, value: &str) -> String {
    let found = ids(
        app,
        &format!("ServiceRequest?identifier={SR_SYSTEM}|{value}"),
    )
    .await;
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

/// What the hub decided, without the ids and times that differ between two referrals.
pub(crate) fn decision(task: &Value) -> Value {
    let mut t = task.clone();
    for k in [
        "id",
        "meta",
        "focus",
        "for",
        "requester",
        "authoredOn",
        "lastModified",
    ] {
        t.as_object_mut().unwrap().remove(k);
    }
    for note in t["note"].as_array_mut().unwrap() {
        note.as_object_mut().unwrap().remove("time");
    }
    t
}

async fn counts(app: &TestApp) -> Vec<usize> {
    let mut out = Vec::new();
    for ty in [
        "Bundle",
        "Patient",
        "Organization",
        "Practitioner",
        "Consent",
        "ServiceRequest",
        "Task",
    ] {
        out.push(app.version_count(ty).await);
    }
    out
}

async fn a_document_is_routed_as_the_same_transaction(app: TestApp) {
    load_sample(&app).await;
    let res = app.post("Bundle", &document(DOC_ID)).await;
    assert_eq!(res.status(), 201);
    let loc = location(&res);
    assert!(
        loc.contains("/Bundle/") && loc.ends_with("/_history/1"),
        "{loc}"
    );
    let sr_id = referral(&app, "HIS-2026-000123").await;
    let from_document = the_task(&app, &sr_id).await;
    assert_eq!(
        from_document["focus"]["reference"],
        format!("ServiceRequest/{sr_id}")
    );

    // Element by element: the document's resources became the referral.
    let sr: Value = app
        .get(&format!("ServiceRequest/{sr_id}"))
        .await
        .json()
        .await
        .unwrap();
    let patient = ids(
        &app,
        "Patient?identifier=http://fhir.nl/fhir/NamingSystem/bsn|999999011",
    )
    .await;
    let gp = ids(
        &app,
        "Practitioner?identifier=http://fhir.nl/fhir/NamingSystem/agb-z|01123456",
    )
    .await;
    let practice = ids(
        &app,
        "Organization?identifier=http://fhir.nl/fhir/NamingSystem/agb-z|01056789",
    )
    .await;
    let consent = ids(&app, &format!("Consent?patient=Patient/{}", patient[0])).await;
    assert_eq!(
        (patient.len(), gp.len(), practice.len(), consent.len()),
        (1, 1, 1, 1)
    );
    assert_eq!(
        sr["subject"]["reference"],
        format!("Patient/{}", patient[0])
    );
    assert_eq!(
        sr["requester"]["reference"],
        format!("Practitioner/{}", gp[0])
    );
    assert_eq!(
        sr["supportingInfo"][0]["reference"],
        format!("Consent/{}", consent[0])
    );
    assert_eq!(
        sr["extension"][0]["valueReference"]["reference"],
        format!("Organization/{}", practice[0])
    );
    let sent = &document(DOC_ID)["entry"][5]["resource"];
    for k in [
        "identifier",
        "status",
        "intent",
        "code",
        "reasonCode",
        "note",
        "authoredOn",
    ] {
        assert_eq!(sr[k], sent[k], "ServiceRequest.{k}");
    }

    // The same referral as a transaction (another referral identifier): the same decision.
    let mut tx: Value = serde_json::from_str(FIXTURE).unwrap();
    tx["entry"][4]["resource"]["identifier"][0]["value"] = json!("HIS-2026-000124");
    tx["entry"][4]["request"]["ifNoneExist"] =
        json!(format!("identifier={SR_SYSTEM}|HIS-2026-000124"));
    assert_eq!(app.post("", &tx).await.status(), 200);
    let other = referral(&app, "HIS-2026-000124").await;
    let from_transaction = the_task(&app, &other).await;
    assert!(
        from_document["owner"]["reference"].is_string(),
        "{from_document}"
    );
    assert_eq!(from_document["owner"], from_transaction["owner"]);
    assert_eq!(decision(&from_document), decision(&from_transaction));
    // The directory resources were matched, not stored again.
    assert_eq!(app.version_count("Patient").await, 1);
    assert_eq!(app.version_count("Practitioner").await, 1);
}

async fn the_same_document_twice_is_accepted_once(app: TestApp) {
    load_sample(&app).await;
    let first = app.post("Bundle", &document(DOC_ID)).await;
    assert_eq!(first.status(), 201);
    let again = app.post("Bundle", &document(DOC_ID)).await;
    assert_eq!(again.status(), 200);
    assert_eq!(location(&again), location(&first));
    let sr = referral(&app, "HIS-2026-000123").await;
    the_task(&app, &sr).await;
    let before = counts(&app).await;
    assert_eq!(before[0], 1, "one document");
    assert_eq!(
        (before[5], before[6]),
        (1, 1),
        "one ServiceRequest, one Task"
    );

    // Another document under the same identifier: refused, nothing stored.
    let mut other = document(DOC_ID);
    other["entry"][5]["resource"]["note"][0]["text"] = json!("Liever 's middags.");
    let issues = expect_outcome(app.post("Bundle", &other).await, 409).await;
    assert!(
        has_issue(&issues, "duplicate", Some("Bundle.identifier")),
        "{issues:?}"
    );
    assert_eq!(counts(&app).await, before);

    // A new identifier is a new document; its Patient, practice, GP and referral are
    // matched (BSN, AGB, the referral's identifier): it adds itself and its Consent.
    let res = app
        .post(
            "Bundle",
            &document("urn:uuid:0d0c0000-0000-4000-8000-000000000002"),
        )
        .await;
    assert_eq!(res.status(), 201);
    let mut expected = before.clone();
    expected[0] += 1;
    expected[4] += 1;
    assert_eq!(counts(&app).await, expected);
    let found = ids(
        &app,
        "Bundle?identifier=urn:ietf:rfc:3986|urn:uuid:0d0c0000-0000-4000-8000-000000000002",
    )
    .await;
    assert_eq!(found.len(), 1);
}

async fn the_stored_document_reads_back_unchanged(app: TestApp) {
    load_sample(&app).await;
    let sent = document(DOC_ID);
    let res = app.post("Bundle", &sent).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let mut read: Value = app.get(&format!("Bundle/{id}")).await.json().await.unwrap();
    assert_eq!(read["meta"]["versionId"], "1");
    let obj = read.as_object_mut().unwrap();
    obj.remove("id");
    obj.remove("meta");
    assert_eq!(read, sent);
    // Found by its identifier; never changed or deleted.
    let found = ids(
        &app,
        &format!("Bundle?identifier=urn:ietf:rfc:3986|{DOC_ID}"),
    )
    .await;
    assert_eq!(found, std::slice::from_ref(&id));
    let put = app.put(&format!("Bundle/{id}"), &created).await;
    assert_eq!(put.status(), 405);
    let del = app
        .request(reqwest::Method::DELETE, &format!("Bundle/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 405);
}

async fn refused(app: &TestApp, doc: &Value, status: u16, code: &str, at: &str) {
    let issues = expect_outcome(app.post("Bundle", doc).await, status).await;
    assert!(has_issue(&issues, code, Some(at)), "{at}: {issues:?}");
}

async fn bad_documents_are_refused_and_nothing_is_stored(app: TestApp) {
    load_sample(&app).await;
    let before = counts(&app).await;
    let mut doc = document(DOC_ID);
    doc["entry"].as_array_mut().unwrap().swap(0, 1);
    refused(&app, &doc, 400, "structure", "Bundle.entry[0].resource").await;

    let mut doc = document(DOC_ID);
    doc.as_object_mut().unwrap().remove("identifier");
    refused(&app, &doc, 400, "required", "Bundle.identifier").await;

    let mut doc = document(DOC_ID);
    doc.as_object_mut().unwrap().remove("timestamp");
    refused(&app, &doc, 400, "required", "Bundle.timestamp").await;

    let outside = "urn:uuid:99999999-9999-4999-8999-999999999999";
    let mut doc = document(DOC_ID);
    doc["entry"][0]["resource"]["section"][1]["entry"][0]["reference"] = json!(outside);
    let at = "Bundle.entry[0].resource.section[1].entry[0].reference";
    refused(&app, &doc, 400, "not-found", at).await;

    let mut doc = document(DOC_ID);
    doc["entry"][0]["resource"]["subject"]["reference"] = json!(outside);
    refused(
        &app,
        &doc,
        400,
        "not-found",
        "Bundle.entry[0].resource.subject.reference",
    )
    .await;

    // A reference of an entry that names no entry: the document's own entry index.
    let mut doc = document(DOC_ID);
    doc["entry"][5]["resource"]["supportingInfo"][0]["reference"] = json!(outside);
    let at = "Bundle.entry[5].resource.supportingInfo[0].reference";
    refused(&app, &doc, 400, "not-found", at).await;

    let mut doc = document(DOC_ID);
    doc["entry"][2]["resource"] = json!({"resourceType": "Observation", "status": "final",
                                         "code": {"text": "x"}});
    refused(&app, &doc, 422, "not-supported", "Bundle.entry[2]").await;

    let mut doc = document(DOC_ID);
    doc["type"] = json!("transaction");
    refused(&app, &doc, 422, "not-supported", "Bundle.type").await;
    let tx: Value = serde_json::from_str(FIXTURE).unwrap();
    refused(&app, &tx, 422, "not-supported", "Bundle.type").await;

    // A document as a transaction entry is refused too: documents come in at /fhir/Bundle.
    let wrapped = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": document(DOC_ID), "request": {"method": "POST", "url": "Bundle"}}]});
    let issues = expect_outcome(app.post("", &wrapped).await, 400).await;
    assert!(
        has_issue(&issues, "not-supported", Some("Bundle.entry[0]")),
        "{issues:?}"
    );

    assert_eq!(counts(&app).await, before, "nothing stored");
}

async fn only_the_sending_organisation_reads_its_document(app: TestApp) {
    let w = world(app).await;
    let res = w
        .gp_a
        .send(
            &w.app,
            reqwest::Method::POST,
            "Bundle",
            Some(&document(DOC_ID)),
        )
        .await;
    assert_eq!(res.status(), 201);
    let loc = location(&res);
    let id = loc.split('/').rev().nth(2).unwrap().to_owned();
    let path = format!("Bundle/{id}");
    assert_eq!(status(&w.gp_a, &w.app, &path).await, 200);
    let query = format!("Bundle?identifier=urn:ietf:rfc:3986|{DOC_ID}");
    assert_eq!(
        found(&w.gp_a, &w.app, &query).await,
        std::slice::from_ref(&path)
    );
    assert!(found(&w.gp_b, &w.app, &query).await.is_empty());
    assert_eq!(status(&w.gp_b, &w.app, &path).await, 404);
    // A performer has no Bundle scope: it reads the referral, not the document.
    assert_eq!(status(&w.owner, &w.app, &path).await, 403);
    assert_eq!(status(&w.coordinator, &w.app, &path).await, 200);
}
