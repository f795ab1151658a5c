//! Routing on intake: age group x municipality -> welfare organisation, from the
//! directory; unroutable referrals (requested performers, categories, drafts, the
//! directory profile, `$route` and the postcode table: `routing_directory`).

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{load_sample, TestApp, FHIR_JSON};

pub(crate) const EXT: &str = "https://wor-hub.nl/fhir/StructureDefinition/";

pub(crate) fn patient(birth_date: Option<&str>, address: Value) -> Value {
    let mut p = json!({
        "resourceType": "Patient",
        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999999011"}],
        "name": [{"family": "Jansen", "given": ["Noor"]}],
        "address": [address],
    });
    if let Some(b) = birth_date {
        p["birthDate"] = json!(b);
    }
    p
}

pub(crate) fn boskoop() -> Value {
    json!({"use": "home", "line": ["Laag Boskoop 12"], "city": "Boskoop",
           "district": "Alphen aan den Rijn", "postalCode": "2771 AB"})
}

pub(crate) fn referral(authored_on: &str) -> Value {
    json!({
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "code": {"text": "Welzijn op Recept"},
        "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"},
        "authoredOn": authored_on,
    })
}

/// Posts Patient + ServiceRequest as one transaction; returns the ServiceRequest id.
pub(crate) async fn refer(app: &TestApp, patient: Value, sr: Value) -> String {
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            // The referral first: routing must still see the Patient written later.
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000002", "resource": sr,
             "request": {"method": "POST", "url": "ServiceRequest"}},
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001", "resource": patient,
             "request": {"method": "POST", "url": "Patient"}},
        ],
    });
    let res = app.post("", &bundle).await;
    assert_eq!(res.status(), 200, "transaction accepted");
    let body: Value = res.json().await.unwrap();
    let location = body["entry"][0]["response"]["location"].as_str().unwrap();
    location.split('/').nth_back(2).unwrap().to_owned()
}

/// Refers a patient born on `birth` living at `address`; returns the Task the hub made.
pub(crate) async fn routed(
    app: &TestApp,
    birth: Option<&str>,
    address: Value,
    authored_on: &str,
) -> Value {
    let sr = refer(app, patient(birth, address), referral(authored_on)).await;
    task_for(app, &sr).await
}

/// The one Task whose focus is the ServiceRequest.
pub(crate) async fn task_for(app: &TestApp, sr_id: &str) -> Value {
    let res = app.get(&format!("Task?focus=ServiceRequest/{sr_id}")).await;
    assert_eq!(res.status(), 200);
    let bundle: Value = res.json().await.unwrap();
    let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        entries.len(),
        1,
        "exactly one Task for the referral: {bundle}"
    );
    entries[0]["resource"].clone()
}

pub(crate) fn decision(task: &Value) -> Vec<(String, Value)> {
    let ext = task["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == format!("{EXT}routing-decision"))
        .expect("routing-decision extension");
    ext["extension"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let (k, v) = e
                .as_object()
                .unwrap()
                .iter()
                .find(|(k, _)| *k != "url")
                .unwrap();
            let _ = k;
            (e["url"].as_str().unwrap().to_owned(), v.clone())
        })
        .collect()
}

pub(crate) fn part<'d>(d: &'d [(String, Value)], name: &str) -> Option<&'d Value> {
    d.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

async fn twelve_year_old_in_boskoop_goes_to_youth_organisation(app: TestApp) {
    load_sample(&app).await;
    let sr = refer(
        &app,
        patient(Some("2014-03-02"), boskoop()),
        referral("2026-11-20T10:00:00+01:00"),
    )
    .await;
    let task = task_for(&app, &sr).await;
    assert_eq!(task["owner"]["reference"], "Organization/go-voor-jeugd");
    assert_eq!(task["owner"]["display"], "GO! voor Jeugd");
    assert_eq!(task["status"], "requested");
    assert_eq!(task["intent"], "order");
    assert_eq!(task["code"]["coding"][0]["code"], "fulfill");
    assert_eq!(task["focus"]["reference"], format!("ServiceRequest/{sr}"));
    assert!(task["for"]["reference"]
        .as_str()
        .unwrap()
        .starts_with("Patient/"));
    let d = decision(&task);
    assert_eq!(part(&d, "outcome"), Some(&json!("routed")));
    assert_eq!(part(&d, "ageGroup"), Some(&json!("under-18")));
    assert_eq!(part(&d, "municipality").unwrap()["code"], "GM0484");
    assert_eq!(
        part(&d, "municipalitySource"),
        Some(&json!("district-name"))
    );
    assert_eq!(
        part(&d, "chosen").unwrap()["reference"],
        "HealthcareService/wor-alphen-aan-den-rijn-under-18"
    );
    assert!(part(&d, "rule").is_some());
}

async fn sixty_seven_year_old_in_boskoop_goes_to_tom_in_de_buurt(app: TestApp) {
    load_sample(&app).await;
    // Directly created, not in a transaction.
    let p = app.create(&patient(Some("1959-06-01"), boskoop())).await;
    let mut sr = referral("2026-11-20T10:00:00+01:00");
    sr["subject"]["reference"] = json!(format!("Patient/{}", p["id"].as_str().unwrap()));
    sr["requester"] = json!({"display": "dr. E. de Vries"});
    let created = app.create(&sr).await;
    let task = task_for(&app, created["id"].as_str().unwrap()).await;
    assert_eq!(task["owner"]["reference"], "Organization/tom-in-de-buurt");
    assert_eq!(task["owner"]["display"], "Tom in de buurt");
    assert_eq!(task["requester"]["display"], "dr. E. de Vries");
    assert_eq!(task["authoredOn"], "2026-11-20T10:00:00+01:00");
}

async fn eighteenth_birthday_on_the_referral_date_is_adult(app: TestApp) {
    load_sample(&app).await;
    let task = routed(
        &app,
        Some("2008-11-20"),
        boskoop(),
        "2026-11-20T09:00:00+01:00",
    )
    .await;
    assert_eq!(task["owner"]["reference"], "Organization/tom-in-de-buurt");
    // One day before the birthday: still youth.
    let task = routed(
        &app,
        Some("2008-11-20"),
        boskoop(),
        "2026-11-19T09:00:00+01:00",
    )
    .await;
    assert_eq!(task["owner"]["reference"], "Organization/go-voor-jeugd");
}

async fn a_patient_in_enschede_goes_to_the_enschede_example(app: TestApp) {
    load_sample(&app).await;
    let address =
        json!({"use": "home", "city": "Enschede", "district": "Enschede", "postalCode": "7511 AA"});
    let task = routed(&app, Some("1980-01-01"), address, "2026-11-20").await;
    assert_eq!(
        task["owner"]["reference"],
        "Organization/example-welzijn-enschede"
    );
    // A CBS code on the address wins over the district name.
    let address = json!({"district": "Den Haag", "extension": [{
        "url": format!("{EXT}municipality"),
        "valueCoding": {"system": "https://wor-hub.nl/fhir/CodeSystem/cbs-municipality", "code": "GM0153"}}]});
    let task = routed(&app, Some("1980-01-01"), address, "2026-11-20").await;
    assert_eq!(
        task["owner"]["reference"],
        "Organization/example-welzijn-enschede"
    );
    assert_eq!(
        part(&decision(&task), "municipalitySource"),
        Some(&json!("address-code"))
    );
}

/// A service for Den Haag whose contract ended, and its successor at a lower priority.
pub(crate) async fn den_haag_services(app: &TestApp) {
    for (id, name) in [
        ("old-provider", "Oude Welzijn"),
        ("new-provider", "Nieuwe Welzijn"),
    ] {
        let res = app
            .put(
                &format!("Organization/{id}"),
                &json!({"resourceType": "Organization", "id": id, "name": name}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    let service = |id: &str, org: &str, period: Value, priority: u32| {
        json!({
            "resourceType": "HealthcareService",
            "id": id,
            "active": true,
            "providedBy": {"reference": format!("Organization/{org}")},
            "category": [{"coding": [{"system": "https://wor-hub.nl/fhir/CodeSystem/service-category", "code": "wor"}]}],
            "extension": [
                {"url": format!("{EXT}municipality"), "valueCoding": {"system": "https://wor-hub.nl/fhir/CodeSystem/cbs-municipality", "code": "GM0518"}},
                {"url": format!("{EXT}validity-period"), "valuePeriod": period},
                {"url": format!("{EXT}routing-priority"), "valuePositiveInt": priority},
            ],
        })
    };
    let res = app
        .put(
            "HealthcareService/wor-den-haag-old",
            &service(
                "wor-den-haag-old",
                "old-provider",
                json!({"start": "2022-01-01", "end": "2025-12-31"}),
                1,
            ),
        )
        .await;
    assert_eq!(res.status(), 201);
    let res = app
        .put(
            "HealthcareService/wor-den-haag-new",
            &service(
                "wor-den-haag-new",
                "new-provider",
                json!({"start": "2026-01-01"}),
                2,
            ),
        )
        .await;
    assert_eq!(res.status(), 201);
}

async fn an_expired_service_period_is_skipped(app: TestApp) {
    den_haag_services(&app).await;
    let address = json!({"district": "'s-Gravenhage"});
    let task = routed(&app, Some("1970-01-01"), address.clone(), "2026-11-20").await;
    assert_eq!(task["owner"]["reference"], "Organization/new-provider");
    let d = decision(&task);
    assert!(
        d.iter().any(|(n, v)| n == "step"
            && v.as_str().unwrap().contains("wor-den-haag-old")
            && v.as_str().unwrap().contains("contract period")),
        "the skip is recorded: {d:?}"
    );
    // Inside the old contract, the old provider (priority 1) wins.
    let sr = refer(
        &app,
        patient(Some("1970-01-01"), address),
        referral("2025-06-01"),
    )
    .await;
    assert_eq!(
        task_for(&app, &sr).await["owner"]["reference"],
        "Organization/old-provider"
    );
}

async fn an_unknown_municipality_gives_an_unroutable_task_and_nothing_is_lost(app: TestApp) {
    load_sample(&app).await;
    let address = json!({"use": "home", "city": "Nergenshuizen", "district": "Nergenshuizen"});
    let sr = refer(
        &app,
        patient(Some("1970-01-01"), address),
        referral("2026-11-20"),
    )
    .await;
    // The referral is stored.
    assert_eq!(app.get(&format!("ServiceRequest/{sr}")).await.status(), 200);
    let task = task_for(&app, &sr).await;
    assert!(task.get("owner").is_none(), "{task}");
    assert_eq!(task["status"], "requested");
    assert_eq!(task["businessStatus"]["coding"][0]["code"], "unroutable");
    assert_eq!(task["statusReason"]["coding"][0]["code"], "no-municipality");
    // Findable by a coordinator.
    let res = app.get("Task?owner:missing=true").await;
    let bundle: Value = res.json().await.unwrap();
    let ids: Vec<&str> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [task["id"].as_str().unwrap()]);
    // The coordinator assigns an owner by updating the Task; the unroutable marks go.
    let mut assigned = task.clone();
    assigned["owner"] = json!({"reference": "Organization/tom-in-de-buurt"});
    let res = app
        .request(
            reqwest::Method::PUT,
            &format!("Task/{}", task["id"].as_str().unwrap()),
        )
        .header("Content-Type", FHIR_JSON)
        .header("If-Match", "W/\"1\"")
        .header("X-Acting-Party", "coordinator")
        .body(assigned.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let stored: Value = res.json().await.unwrap();
    assert!(stored.get("businessStatus").is_none(), "{stored}");
    assert!(stored.get("statusReason").is_none(), "{stored}");
    let bundle: Value = app
        .get("Task?owner:missing=true")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bundle["total"], 0, "{bundle}");
}

async fn a_year_only_birth_date_that_cannot_decide_is_unroutable(app: TestApp) {
    load_sample(&app).await;
    let task = routed(&app, Some("2008"), boskoop(), "2026-11-20").await;
    assert!(task.get("owner").is_none());
    assert_eq!(
        task["statusReason"]["coding"][0]["code"],
        "birth-date-imprecise"
    );
    // The services that would apply are listed for the coordinator.
    assert!(decision(&task).iter().any(|(n, _)| n == "candidate"));
    // A year that decides: routed.
    let sr = refer(
        &app,
        patient(Some("1958"), boskoop()),
        referral("2026-11-20"),
    )
    .await;
    assert_eq!(
        task_for(&app, &sr).await["owner"]["reference"],
        "Organization/tom-in-de-buurt"
    );
    let sr = refer(&app, patient(None, boskoop()), referral("2026-11-20")).await;
    assert_eq!(
        task_for(&app, &sr).await["statusReason"]["coding"][0]["code"],
        "no-birth-date"
    );
}

backend_tests!(
    twelve_year_old_in_boskoop_goes_to_youth_organisation,
    sixty_seven_year_old_in_boskoop_goes_to_tom_in_de_buurt,
    eighteenth_birthday_on_the_referral_date_is_adult,
    a_patient_in_enschede_goes_to_the_enschede_example,
    an_expired_service_period_is_skipped,
    an_unknown_municipality_gives_an_unroutable_task_and_nothing_is_lost,
    a_year_only_birth_date_that_cannot_decide_is_unroutable,
);
