//! Search parameters: token, string, reference (incl. :identifier and chains), date
//! prefixes with partial dates, :missing, :not; and conditional create using them.

use reqwest::Method;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{expect_outcome, has_issue, TestApp, FHIR_JSON};

backend_tests!(
    token_forms,
    string_matching,
    references_identifiers_and_chains,
    date_prefixes_and_partial_dates,
    missing_and_not,
    index_follows_updates_and_deletes,
    conditional_create_uses_the_search_engine,
);

pub const BSN: &str = "http://fhir.nl/fhir/NamingSystem/bsn";
pub const URA: &str = "http://fhir.nl/fhir/NamingSystem/ura";

/// GET `{type}?{query}`, expecting 200 and a searchset.
pub async fn search(app: &TestApp, query: &str) -> Value {
    let res = app.get(query).await;
    assert_eq!(res.status(), 200, "GET {query}");
    let bundle: Value = res.json().await.unwrap();
    assert_eq!(bundle["type"], "searchset", "{bundle}");
    bundle
}

/// Ids of the `match` entries, in order.
pub fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|es| {
            es.iter()
                .filter(|e| e["search"]["mode"] == "match")
                .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Sorted ids of matches, for set comparisons.
pub async fn found(app: &TestApp, query: &str) -> Vec<String> {
    let mut v = ids(&search(app, query).await);
    v.sort();
    v
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

pub fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn token_forms(app: TestApp) {
    let mut orgs = Vec::new();
    for (i, system) in [
        "http://fhir.nl/fhir/NamingSystem/agb-z",
        URA,
        "http://fhir.nl/fhir/NamingSystem/agb-z",
    ]
    .iter()
    .enumerate()
    {
        let org = app
            .create(&json!({"resourceType": "Organization", "active": i != 1,
                "identifier": [{"system": system, "value": format!("0105678{i}")}, {"value": "shared"}]}))
            .await;
        orgs.push(id_of(&org));
    }
    let agb = "http://fhir.nl/fhir/NamingSystem/agb-z";
    assert_eq!(
        found(&app, &format!("Organization?identifier={agb}|01056780")).await,
        [orgs[0].as_str()]
    );
    assert_eq!(
        found(&app, &format!("Organization?identifier={agb}|")).await,
        sorted(vec![orgs[0].clone(), orgs[2].clone()])
    );
    assert_eq!(
        found(&app, "Organization?identifier=01056781").await,
        [orgs[1].as_str()]
    );
    assert_eq!(
        found(&app, "Organization?identifier=|shared").await.len(),
        3
    );
    assert!(found(&app, "Organization?identifier=|01056781")
        .await
        .is_empty());
    assert_eq!(
        found(&app, "Organization?identifier=01056780,01056782")
            .await
            .len(),
        2
    );
    // Repeated parameters AND; escaped commas are not separators.
    assert_eq!(
        found(&app, "Organization?identifier=shared&identifier=01056782").await,
        [orgs[2].as_str()]
    );
    assert!(found(&app, "Organization?identifier=0105678\\,0")
        .await
        .is_empty());
    // boolean
    assert_eq!(
        found(&app, "Organization?active=false").await,
        [orgs[1].as_str()]
    );
    assert_eq!(found(&app, "Organization?active=true").await.len(), 2);
    // _id
    assert_eq!(
        found(&app, &format!("Organization?_id={},{}", orgs[0], orgs[1])).await,
        sorted(orgs[..2].to_vec())
    );

    // OID form stored, URI searched (and the reverse).
    let p = app
        .create(&json!({"resourceType": "Patient", "identifier": [
            {"system": "urn:oid:2.16.840.1.113883.2.4.6.3", "value": "999999011"}]}))
        .await;
    for q in [
        format!("Patient?identifier={BSN}|999999011"),
        "Patient?identifier=urn:oid:2.16.840.1.113883.2.4.6.3|999999011".into(),
    ] {
        assert_eq!(found(&app, &q).await, [id_of(&p)], "{q}");
    }

    // CodeableConcept and code
    let hs = app
        .create(&json!({"resourceType": "HealthcareService", "active": true,
            "category": [{"coding": [{"system": "http://example.org/wor", "code": "welzijn"}], "text": "Welzijn"}]}))
        .await;
    for q in [
        "service-category=welzijn",
        "service-category=http://example.org/wor|welzijn",
        "service-category=http://example.org/wor|",
    ] {
        assert_eq!(
            found(&app, &format!("HealthcareService?{q}")).await,
            [id_of(&hs)],
            "{q}"
        );
    }
    for q in [
        "service-category=|welzijn",
        "service-category=http://other|welzijn",
        "service-category=Welzijn",
    ] {
        assert!(
            found(&app, &format!("HealthcareService?{q}"))
                .await
                .is_empty(),
            "{q}"
        );
    }
}

async fn string_matching(app: TestApp) {
    let muller = app
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Müller", "given": ["Anna-Lena"]}],
            "address": [{"postalCode": "2405 AB"}]}))
        .await;
    let mulder = app
        .create(
            &json!({"resourceType": "Patient", "name": [{"family": "Mulder", "given": ["Éva"]}]}),
        )
        .await;
    let (muller, mulder) = (id_of(&muller), id_of(&mulder));
    // Default: starts with, case- and accent-insensitive.
    assert_eq!(
        found(&app, "Patient?family=mul").await,
        sorted(vec![muller.clone(), mulder.clone()])
    );
    assert_eq!(found(&app, "Patient?family=MULL").await, [muller.as_str()]);
    assert_eq!(
        found(&app, "Patient?family=müller").await,
        [muller.as_str()]
    );
    assert!(found(&app, "Patient?family=uller").await.is_empty());
    assert_eq!(found(&app, "Patient?given=eva").await, [mulder.as_str()]);
    // :exact is case- and accent-sensitive, whole value.
    assert_eq!(
        found(&app, "Patient?family:exact=Müller").await,
        [muller.as_str()]
    );
    assert!(found(&app, "Patient?family:exact=Muller").await.is_empty());
    assert!(found(&app, "Patient?family:exact=Mül").await.is_empty());
    // :contains
    assert_eq!(
        found(&app, "Patient?family:contains=ULL").await,
        [muller.as_str()]
    );
    assert_eq!(
        found(&app, "Patient?given:contains=na-le").await,
        [muller.as_str()]
    );
    assert!(found(&app, "Patient?family:contains=%25").await.is_empty());
    // name covers every part; address-postalcode
    assert_eq!(found(&app, "Patient?name=anna").await, [muller.as_str()]);
    assert_eq!(
        found(&app, "Patient?name=mul&given=ev").await,
        [mulder.as_str()]
    );
    assert_eq!(
        found(&app, "Patient?address-postalcode=2405").await,
        [muller.as_str()]
    );
    // Organization name or alias
    let org = app
        .create(&json!({"resourceType": "Organization", "name": "Tom in de buurt", "alias": ["Kwadraad"]}))
        .await;
    assert_eq!(found(&app, "Organization?name=kwad").await, [id_of(&org)]);
    assert_eq!(
        found(&app, "Organization?name=tom%20in").await,
        [id_of(&org)]
    );
    let issues = expect_outcome(app.get("Patient?family:below=x").await, 400).await;
    assert!(
        has_issue(&issues, "not-supported", Some("family:below")),
        "{issues:?}"
    );
}

async fn references_identifiers_and_chains(app: TestApp) {
    let patient = app
        .create(&json!({"resourceType": "Patient", "identifier": [{"system": BSN, "value": "999999011"}]}))
        .await;
    let other = app
        .create(&json!({"resourceType": "Patient", "identifier": [{"system": BSN, "value": "999990627"}]}))
        .await;
    let org = app
        .create(
            &json!({"resourceType": "Organization", "name": "GO! voor Jeugd",
            "identifier": [{"system": URA, "value": "87654321"}]}),
        )
        .await;
    let (pid, oid) = (id_of(&patient), id_of(&org));
    let sr = |subject: Value| {
        // draft: not routed, so the only Tasks are the ones this test creates
        json!({"resourceType": "ServiceRequest", "status": "draft", "intent": "order", "subject": subject,
            "requester": {"reference": format!("Organization/{oid}")}})
    };
    let by_ref = id_of(
        &app.create(&sr(json!({"reference": format!("Patient/{pid}")})))
            .await,
    );
    let by_url = id_of(
        &app.create(&sr(
            json!({"reference": app.url(&format!("Patient/{pid}"))}),
        ))
        .await,
    );
    let by_ident = id_of(
        &app.create(&sr(json!({"type": "Patient", "identifier": {"system": "urn:oid:2.16.840.1.113883.2.4.6.3", "value": "999999011"}})))
            .await,
    );
    let for_other = id_of(
        &app.create(&sr(
            json!({"reference": format!("Patient/{}", id_of(&other))}),
        ))
        .await,
    );

    let literal = sorted(vec![by_ref.clone(), by_url.clone()]);
    assert_eq!(
        found(&app, &format!("ServiceRequest?patient={pid}")).await,
        [by_ref.as_str()]
    );
    assert_eq!(
        found(&app, &format!("ServiceRequest?subject=Patient/{pid}")).await,
        literal
    );
    assert_eq!(
        found(
            &app,
            &format!(
                "ServiceRequest?patient={}",
                app.url(&format!("Patient/{pid}"))
            )
        )
        .await,
        literal
    );
    assert_eq!(
        found(&app, &format!("ServiceRequest?subject:Patient={pid}")).await,
        [by_ref.as_str()]
    );
    assert!(found(&app, &format!("ServiceRequest?subject=Group/{pid}"))
        .await
        .is_empty());
    // :identifier: the reference's own identifier AND references to a Patient with it.
    assert_eq!(
        found(
            &app,
            &format!("ServiceRequest?patient:identifier={BSN}|999999011")
        )
        .await,
        sorted(vec![by_ref.clone(), by_ident.clone()])
    );
    // Chains: one level, with and without :Type.
    for q in [
        format!("ServiceRequest?subject:Patient.identifier={BSN}|999999011"),
        format!("ServiceRequest?patient.identifier={BSN}|999999011"),
    ] {
        assert_eq!(found(&app, &q).await, [by_ref.as_str()], "{q}");
    }
    assert_eq!(
        found(&app, "ServiceRequest?patient.identifier=999990627").await,
        [for_other.as_str()]
    );
    assert_eq!(
        found(&app, "ServiceRequest?requester:Organization.name=go!")
            .await
            .len(),
        4
    );
    assert_eq!(
        found(
            &app,
            &format!("ServiceRequest?requester.identifier={URA}|87654321")
        )
        .await
        .len(),
        4
    );
    assert!(found(&app, "ServiceRequest?requester.identifier=0")
        .await
        .is_empty());

    // Task references, owner by identifier of the Organization. A client creates a
    // Task only for an active referral (updating one to active does not route it).
    let mut active = sr(json!({"reference": format!("Patient/{pid}")}));
    active["id"] = json!(by_ref);
    active["status"] = json!("active");
    let res = app.put(&format!("ServiceRequest/{by_ref}"), &active).await;
    assert_eq!(res.status(), 200);
    let task = app
        .create(
            &json!({"resourceType": "Task", "status": "requested", "intent": "order",
            "focus": {"reference": format!("ServiceRequest/{by_ref}")},
            "for": {"reference": format!("Patient/{pid}")},
            "requester": {"reference": format!("Organization/{oid}")},
            "owner": {"reference": format!("Organization/{oid}")},
            "authoredOn": "2026-11-20"}),
        )
        .await;
    let tid = id_of(&task);
    assert_eq!(
        found(&app, &format!("Task?owner:identifier={URA}|87654321")).await,
        [tid.as_str()]
    );
    assert_eq!(
        found(&app, &format!("Task?owner=Organization/{oid}")).await,
        [tid.as_str()]
    );
    assert_eq!(
        found(&app, &format!("Task?focus={by_ref}")).await,
        [tid.as_str()]
    );
    assert_eq!(
        found(&app, &format!("Task?patient:identifier={BSN}|999999011")).await,
        [tid.as_str()]
    );
    assert_eq!(
        found(&app, &format!("Task?subject={pid}")).await,
        [tid.as_str()]
    );

    for bad in [
        "Task?owner:Consent=x".to_owned(),
        "Task?patient.identifier.value=x".into(),
        "Task?status.code=x".into(),
        "Task?patient.unknown=x".into(),
    ] {
        let issues = expect_outcome(app.get(&bad).await, 400).await;
        assert!(
            has_issue(&issues, "not-supported", None),
            "{bad}: {issues:?}"
        );
    }
}

async fn date_prefixes_and_partial_dates(app: TestApp) {
    let born = |d: &str| json!({"resourceType": "Patient", "birthDate": d});
    let a = id_of(&app.create(&born("1958-04-17")).await);
    let b = id_of(&app.create(&born("1958-04-18")).await);
    let c = id_of(&app.create(&born("1960")).await);
    let q = |s: &str| format!("Patient?birthdate={s}");
    let cases: &[(&str, Vec<&String>)] = &[
        ("1958-04-17", vec![&a]),
        ("eq1958-04", vec![&a, &b]),
        ("1958", vec![&a, &b]),
        ("ne1958-04-17", vec![&b, &c]),
        ("lt1958-04-17", vec![]),
        ("le1958-04-17", vec![&a]),
        ("gt1958-04-17", vec![&b, &c]),
        ("ge1958-04-17", vec![&a, &b, &c]),
        ("eb1958-04-18", vec![&a]),
        ("sa1958-04-17", vec![&b, &c]),
        // A year-precision birth date overlaps 1960-06: ge/le match, eq does not.
        ("eq1960-06", vec![]),
        ("ge1960-06", vec![&c]),
        ("le1960-06", vec![&a, &b, &c]),
        ("lt1960", vec![&a, &b]),
        ("1958-04-17T00:00Z", vec![]),
        // The day of birth extends past noon: the range above noon overlaps it.
        ("gt1958-04-17T12:00:00Z", vec![&a, &b, &c]),
        ("1958-04-17,1960", vec![&a, &c]),
    ];
    for (value, expected) in cases {
        let expected = sorted(expected.iter().map(|s| (*s).clone()).collect());
        assert_eq!(found(&app, &q(value)).await, expected, "birthdate={value}");
    }
    // Two criteria: a range.
    assert_eq!(
        found(&app, "Patient?birthdate=ge1958-04-18&birthdate=lt1960").await,
        [b.as_str()]
    );

    // dateTime with zone on Task; _lastUpdated.
    let patient = id_of(&app.create(&json!({"resourceType": "Patient"})).await);
    let org = id_of(&app.create(&json!({"resourceType": "Organization"})).await);
    let task = |authored: &str| json!({"authoredOn": authored, "lastModified": authored});
    let owner = format!("Organization/{org}");
    let t1 = id_of(
        &app.create_task(&patient, &owner, &task("2026-11-20T10:00:00+01:00"))
            .await,
    );
    let t2 = id_of(
        &app.create_task(&patient, &owner, &task("2026-11-21T09:30:00Z"))
            .await,
    );
    assert_eq!(
        found(&app, "Task?authored-on=2026-11-20").await,
        [t1.as_str()]
    );
    assert_eq!(
        found(&app, "Task?authored-on=2026-11-20T09:00:00Z").await,
        [t1.as_str()]
    );
    assert_eq!(
        found(&app, "Task?modified=gt2026-11-20T09:00:00Z").await,
        [t2.as_str()]
    );
    assert_eq!(found(&app, "Task?authored-on=2026-11").await.len(), 2);
    assert_eq!(found(&app, "Task?_lastUpdated=gt2020-01-01").await.len(), 2);
    assert!(found(&app, "Task?_lastUpdated=lt2020-01-01")
        .await
        .is_empty());
    assert!(found(&app, "Task?_lastUpdated=gt2999").await.is_empty());

    for bad in [
        "Patient?birthdate=17-04-1958",
        "Patient?birthdate=1958-04-17T10:00:00",
        "Patient?birthdate=ge",
    ] {
        let issues = expect_outcome(app.get(bad).await, 400).await;
        assert!(
            has_issue(&issues, "value", Some("birthdate")),
            "{bad}: {issues:?}"
        );
    }
    let issues = expect_outcome(app.get("Patient?birthdate=ap1958").await, 400).await;
    assert!(
        has_issue(&issues, "not-supported", Some("birthdate")),
        "{issues:?}"
    );
}

async fn missing_and_not(app: TestApp) {
    for o in ["o1", "o2"] {
        let org = json!({"resourceType": "Organization", "id": o, "name": o});
        assert_eq!(
            app.put(&format!("Organization/{o}"), &org).await.status(),
            201
        );
    }
    let patient = id_of(&app.create(&json!({"resourceType": "Patient"})).await);
    // Tasks start requested; the workflow moves them on (open mode: any party).
    let none = json!({});
    let t = |owner: &'static str| app.create_task(&patient, owner, &none);
    let owned = id_of(&t("Organization/o1").await);
    let mut unowned = t("Organization/o1").await;
    unowned["status"] = json!("accepted");
    unowned.as_object_mut().unwrap().remove("owner");
    let unowned = id_of(&moved_to(&app, &unowned).await);
    let mut done = t("Organization/o2").await;
    for status in ["accepted", "in-progress", "completed"] {
        done["status"] = json!(status);
        done = moved_to(&app, &done).await;
    }
    let done = id_of(&done);
    assert_eq!(
        found(&app, "Task?owner:missing=true").await,
        [unowned.as_str()]
    );
    assert_eq!(
        found(&app, "Task?owner:missing=false").await,
        sorted(vec![owned.clone(), done.clone()])
    );
    assert_eq!(found(&app, "Task?authored-on:missing=false").await.len(), 3);
    assert!(found(&app, "Task?authored-on:missing=true")
        .await
        .is_empty());
    assert!(found(&app, "Task?business-status:missing=false")
        .await
        .is_empty());
    assert_eq!(
        found(&app, "Task?status:not=completed").await,
        sorted(vec![owned.clone(), unowned.clone()])
    );
    assert_eq!(
        found(&app, "Task?status:not=completed,accepted").await,
        [owned.as_str()]
    );
    assert_eq!(
        found(&app, "Task?status:not=completed&owner:missing=false").await,
        [owned.as_str()]
    );
    let issues = expect_outcome(app.get("Task?owner:missing=yes").await, 400).await;
    assert!(
        has_issue(&issues, "value", Some("owner:missing")),
        "{issues:?}"
    );
}

/// PUTs a Task with If-Match from its `meta.versionId`; returns the stored version.
async fn moved_to(app: &TestApp, task: &Value) -> Value {
    let res = crate::helpers::put_task(app, None, task).await;
    assert_eq!(res.status(), 200, "{}", task["status"]);
    res.json().await.unwrap()
}

async fn index_follows_updates_and_deletes(app: TestApp) {
    let org = app
        .create(&json!({"resourceType": "Organization", "name": "Participe"}))
        .await;
    let id = id_of(&org);
    let mut body = org.clone();
    body["name"] = json!("Plicare");
    assert_eq!(
        app.put(&format!("Organization/{id}"), &body).await.status(),
        200
    );
    assert!(found(&app, "Organization?name=participe").await.is_empty());
    assert_eq!(
        found(&app, "Organization?name=plicare").await,
        [id.as_str()]
    );
    let res = app
        .request(Method::DELETE, &format!("Organization/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(found(&app, "Organization?name=plicare").await.is_empty());
    assert!(found(&app, &format!("Organization?_id={id}"))
        .await
        .is_empty());
    assert!(found(&app, "Organization").await.is_empty());
}

async fn conditional_create_uses_the_search_engine(app: TestApp) {
    let body = json!({"resourceType": "Patient", "birthDate": "1958-04-17",
        "identifier": [{"system": BSN, "value": "999999011"}]});
    let cond = |criteria: &'static str| {
        app.request(Method::POST, "Patient")
            .header("Content-Type", FHIR_JSON)
            .header("If-None-Exist", criteria)
            .body(body.to_string())
            .send()
    };
    let criteria = "identifier=http://fhir.nl/fhir/NamingSystem/bsn|999999011&birthdate=1958-04-17";
    assert_eq!(cond(criteria).await.unwrap().status(), 201);
    assert_eq!(cond(criteria).await.unwrap().status(), 200);
    // Same BSN, other birth date: no match, so a create.
    assert_eq!(
        cond("identifier=http://fhir.nl/fhir/NamingSystem/bsn|999999011&birthdate=1960")
            .await
            .unwrap()
            .status(),
        201
    );
    let issues = expect_outcome(cond("identifier=x&_sort=birthdate").await.unwrap(), 400).await;
    assert!(
        has_issue(&issues, "not-supported", Some("If-None-Exist")),
        "{issues:?}"
    );
}
