//! Routing on intake, continued: requested performers, other categories, drafts, the
//! directory profile, `$route` and the operator's postcode table.

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{expect_outcome, has_issue, load_sample, TestApp};
use crate::routing::{
    boskoop, decision, den_haag_services, part, patient, refer, referral, routed, task_for, EXT,
};

backend_tests!(
    a_requested_performer_is_honoured_only_when_it_serves_the_patient,
    other_categories_are_refused_unless_the_directory_serves_them,
    drafts_are_not_routed_and_an_existing_open_task_is_kept,
    directory_entries_are_checked_against_the_profile,
    route_operation_explains_without_storing,
    the_operators_postcode_table_finds_the_municipality,
);

async fn a_requested_performer_is_honoured_only_when_it_serves_the_patient(app: TestApp) {
    load_sample(&app).await;
    den_haag_services(&app).await;
    // A second adult service in Alphen aan den Rijn, a fallback (priority 2).
    let fallback = json!({
        "resourceType": "HealthcareService", "id": "alphen-fallback", "active": true,
        "providedBy": {"reference": "Organization/new-provider"},
        "category": [{"coding": [{"system": "https://wor-hub.nl/fhir/CodeSystem/service-category", "code": "wor"}]}],
        "extension": [
            {"url": format!("{EXT}municipality"), "valueCoding": {"code": "GM0484"}},
            {"url": format!("{EXT}age-group"), "valueCode": "18-plus"},
            {"url": format!("{EXT}routing-priority"), "valuePositiveInt": 2},
        ],
    });
    assert_eq!(
        app.put("HealthcareService/alphen-fallback", &fallback)
            .await
            .status(),
        201
    );
    let sr = refer(
        &app,
        patient(Some("1970-01-01"), boskoop()),
        referral("2026-11-20"),
    )
    .await;
    assert_eq!(
        task_for(&app, &sr).await["owner"]["reference"],
        "Organization/tom-in-de-buurt"
    );
    // The referrer asks for the fallback organisation: honoured.
    let mut sr = referral("2026-11-20");
    sr["performer"] = json!([{"reference": "Organization/new-provider"}]);
    let id = refer(&app, patient(Some("1970-01-01"), boskoop()), sr).await;
    let task = task_for(&app, &id).await;
    assert_eq!(task["owner"]["reference"], "Organization/new-provider");
    assert!(part(&decision(&task), "rule")
        .unwrap()
        .as_str()
        .unwrap()
        .contains("requested performer"));
    // An organisation that does not serve the patient: routed normally, and said so.
    let mut sr = referral("2026-11-20");
    sr["performer"] = json!([{"reference": "Organization/old-provider"}]);
    let id = refer(
        &app,
        patient(Some("1970-01-01"), json!({"district": "Den Haag"})),
        sr,
    )
    .await;
    let task = task_for(&app, &id).await;
    assert_eq!(task["owner"]["reference"], "Organization/new-provider");
    let d = decision(&task);
    assert!(
        d.iter().any(|(n, v)| n == "step"
            && v.as_str()
                .unwrap()
                .contains("requested performer Organization/old-provider does not serve")),
        "{d:?}"
    );
}

async fn other_categories_are_refused_unless_the_directory_serves_them(app: TestApp) {
    load_sample(&app).await;
    let mut sr = referral("2026-11-20");
    sr["category"] = json!([{"coding": [{"system": "http://snomed.info/sct", "code": "409063005", "display": "Counseling"}]}]);
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001", "resource": patient(Some("1970-01-01"), boskoop()),
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": sr, "request": {"method": "POST", "url": "ServiceRequest"}},
    ]});
    let issues = expect_outcome(app.post("", &bundle).await, 422).await;
    assert!(
        has_issue(
            &issues,
            "business-rule",
            Some("Bundle.entry[1].resource.category")
        ),
        "{issues:?}"
    );
    assert_eq!(app.version_count("ServiceRequest").await, 0);
    assert_eq!(app.version_count("Patient").await, 0);
    assert_eq!(app.version_count("Task").await, 0);
    // The WOR category itself is routed like no category.
    let mut sr = referral("2026-11-20");
    sr["category"] = json!([{"coding": [{"system": "https://wor-hub.nl/fhir/CodeSystem/service-category", "code": "wor"}]}]);
    let id = refer(&app, patient(Some("1970-01-01"), boskoop()), sr).await;
    assert_eq!(
        task_for(&app, &id).await["owner"]["reference"],
        "Organization/tom-in-de-buurt"
    );
}

async fn drafts_are_not_routed_and_an_existing_open_task_is_kept(app: TestApp) {
    load_sample(&app).await;
    let mut sr = referral("2026-11-20");
    sr["status"] = json!("draft");
    let id = refer(&app, patient(Some("1970-01-01"), boskoop()), sr).await;
    let bundle: Value = app
        .get(&format!("Task?focus=ServiceRequest/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bundle["total"], 0);
    // A gateway that sends its own Task in the same transaction (as the Task creation
    // rules allow: for the referral's patient, authored): no second Task.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001", "resource": patient(Some("1970-01-01"), boskoop()),
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000002", "resource": referral("2026-11-20"),
         "request": {"method": "POST", "url": "ServiceRequest"}},
        {"resource": {"resourceType": "Task", "status": "requested", "intent": "order",
                      "focus": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000002"},
                      "for": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"},
                      "owner": {"reference": "Organization/go-voor-jeugd"},
                      "authoredOn": "2026-11-20"},
         "request": {"method": "POST", "url": "Task"}},
    ]});
    let res = app.post("", &bundle).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let id = body["entry"][1]["response"]["location"]
        .as_str()
        .unwrap()
        .split('/')
        .nth_back(2)
        .unwrap()
        .to_owned();
    assert_eq!(
        task_for(&app, &id).await["owner"]["reference"],
        "Organization/go-voor-jeugd"
    );
}

async fn directory_entries_are_checked_against_the_profile(app: TestApp) {
    let bad = json!({
        "resourceType": "HealthcareService",
        "providedBy": {"reference": "Organization/nobody"},
        "extension": [
            {"url": format!("{EXT}municipality"), "valueCoding": {"system": "https://wor-hub.nl/fhir/CodeSystem/cbs-municipality", "code": "GM9999"}},
            {"url": format!("{EXT}postal-code-range"), "valueString": "2779-2770"},
        ],
    });
    let issues = expect_outcome(app.post("HealthcareService", &bad).await, 422).await;
    assert!(
        has_issue(
            &issues,
            "code-invalid",
            Some("HealthcareService.extension[0].valueCoding.code")
        ),
        "{issues:?}"
    );
    assert!(
        has_issue(
            &issues,
            "value",
            Some("HealthcareService.extension[1].valueString")
        ),
        "{issues:?}"
    );
    assert_eq!(app.version_count("HealthcareService").await, 0);
    // The CapabilityStatement names the profile and the operation.
    let cs: Value = app.get("metadata").await.json().await.unwrap();
    let resources = cs["rest"][0]["resource"].as_array().unwrap();
    let hs = resources
        .iter()
        .find(|r| r["type"] == "HealthcareService")
        .unwrap();
    assert_eq!(
        hs["supportedProfile"][0],
        format!("{EXT}wor-healthcareservice")
    );
    let sr = resources
        .iter()
        .find(|r| r["type"] == "ServiceRequest")
        .unwrap();
    assert!(sr["operation"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["name"] == "route"));
}

async fn route_operation_explains_without_storing(app: TestApp) {
    load_sample(&app).await;
    let before = app.version_count("Task").await;
    let mut sr = referral("2026-11-20");
    sr["subject"] = json!({"reference": "#p"});
    let mut p = patient(Some("2014-03-02"), boskoop());
    p["id"] = json!("p");
    sr["contained"] = json!([p]);
    let params =
        json!({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": sr}]});
    let res = app.post("ServiceRequest/$route", &params).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    let param = |name: &str| {
        out["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
    };
    assert_eq!(param("outcome").unwrap()["valueCode"], "routed");
    assert_eq!(
        param("organization").unwrap()["valueReference"]["display"],
        "GO! voor Jeugd"
    );
    assert_eq!(
        param("task").unwrap()["resource"]["owner"]["reference"],
        "Organization/go-voor-jeugd"
    );
    assert_eq!(app.version_count("Task").await, before, "nothing stored");
    assert_eq!(
        app.version_count("ServiceRequest").await,
        0,
        "nothing stored"
    );

    // A stored referral, by reference.
    let id = refer(
        &app,
        patient(Some("1959-06-01"), boskoop()),
        referral("2026-11-20"),
    )
    .await;
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "serviceRequest", "valueReference": {"reference": format!("ServiceRequest/{id}")}}]});
    let out: Value = app
        .post("ServiceRequest/$route", &params)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        out["parameter"][1]["valueReference"]["reference"], "Organization/tom-in-de-buurt",
        "{out}"
    );

    // Malformed questions.
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "serviceRequest", "valueReference": {"reference": "ServiceRequest/nope"}}]});
    expect_outcome(app.post("ServiceRequest/$route", &params).await, 404).await;
    let mut sr = referral("2026-11-20");
    sr["subject"] = json!({"reference": "#missing"});
    let params =
        json!({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": sr}]});
    let issues = expect_outcome(app.post("ServiceRequest/$route", &params).await, 400).await;
    assert!(
        has_issue(
            &issues,
            "invalid",
            Some("Parameters.parameter[0].resource.contained")
        ),
        "{issues:?}"
    );
}

async fn the_operators_postcode_table_finds_the_municipality(app: TestApp) {
    load_sample(&app).await;
    let address = json!({"use": "home", "line": ["Hoofdstraat 1"], "postalCode": "7511 JJ"});
    let sr = refer(
        &app,
        patient(Some("1980-01-01"), address.clone()),
        referral("2026-11-20"),
    )
    .await;
    assert_eq!(
        task_for(&app, &sr).await["statusReason"]["coding"][0]["code"],
        "no-municipality"
    );
    let store = wor_hub::store::Store::open(&app.database, 1).await.unwrap();
    store
        .replace_postcodes(
            vec![
                ("7511".into(), "GM0153".into()),
                ("2771AB".into(), "GM0484".into()),
            ],
            "test".into(),
        )
        .await
        .unwrap();
    let task = routed(&app, Some("1980-01-01"), address, "2026-11-20").await;
    assert_eq!(
        task["owner"]["reference"],
        "Organization/example-welzijn-enschede"
    );
    assert_eq!(
        part(&decision(&task), "municipalitySource"),
        Some(&json!("postcode-table"))
    );
}
