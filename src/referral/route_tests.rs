//! Routing decisions on a directory built in memory, with a postcode table closure.

use std::collections::HashMap;
use std::convert::Infallible;

use serde_json::{json, Value};
use time::macros::datetime;

use super::*;
use crate::referral::codes::{EXT_AGE_GROUP, EXT_POSTAL_CODE_RANGE, EXT_ROUTING_PRIORITY};
use crate::referral::directory::read_service;

fn service(id: &str, org: &str, extensions: Value) -> Service {
    let (s, issues) = read_service(
        id,
        &json!({
            "resourceType": "HealthcareService",
            "name": id,
            "providedBy": {"reference": format!("Organization/{org}")},
            "category": [{"coding": [{"system": CS_SERVICE_CATEGORY, "code": WOR}]}],
            "extension": extensions,
        }),
    );
    assert!(issues.is_empty(), "{issues:?}");
    s
}

fn municipality_ext(code: &str) -> Value {
    json!({"url": EXT_MUNICIPALITY, "valueCoding": {"system": CS_CBS_MUNICIPALITY, "code": code}})
}

fn directory(services: Vec<Service>) -> Directory {
    let organizations: HashMap<String, Organization> = services
        .iter()
        .filter_map(|s| s.organization.clone())
        .map(|o| {
            (
                o.clone(),
                Organization {
                    name: Some(o.to_uppercase()),
                    active: true,
                },
            )
        })
        .collect();
    Directory {
        services,
        organizations,
        rejected_by: HashMap::new(),
    }
}

fn sr() -> Value {
    json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
           "subject": {"reference": "Patient/p"}, "authoredOn": "2026-11-20T10:00:00+01:00"})
}

fn patient(address: Value) -> Value {
    json!({"resourceType": "Patient", "birthDate": "1980-05-05", "address": [address]})
}

/// Routes with a postcode table holding `table` (pc -> code); None: no table loaded.
fn decide(dir: &Directory, patient: &Value, table: Option<&[(&str, &str)]>) -> Decision {
    let lookup = |pc: &Postcode| -> Result<PostcodeHit, Infallible> {
        let Some(rows) = table else {
            return Ok(PostcodeHit::default());
        };
        let pc4 = pc.pc4().to_string();
        let mut codes: Vec<String> = rows
            .iter()
            .filter(|(k, _)| k.starts_with(&pc4))
            .map(|(_, c)| (*c).to_owned())
            .collect();
        codes.sort();
        codes.dedup();
        Ok(PostcodeHit {
            loaded: true,
            pc6: pc
                .pc6()
                .and_then(|p6| rows.iter().find(|(k, _)| *k == p6))
                .map(|(_, c)| (*c).to_owned()),
            pc4: codes,
        })
    };
    match route(
        &sr(),
        Some(patient),
        datetime!(2026-11-21 12:00 UTC),
        dir,
        lookup,
    ) {
        Ok(d) => d,
        Err(never) => match never {},
    }
}

#[test]
fn the_postcode_table_is_step_three() {
    let dir = directory(vec![service(
        "hengelo",
        "h",
        json!([municipality_ext("GM0164")]),
    )]);
    let p = patient(json!({"postalCode": "7551 AB", "city": "Hengelo"}));
    // PC4 in one municipality.
    let d = decide(&dir, &p, Some(&[("7551", "GM0164")]));
    assert_eq!(d.municipality_source, MunicipalitySource::PostcodeTable);
    assert_eq!(d.chosen.map(|c| c.organization), Some("h".to_owned()));
    // A PC4 shared by two municipalities: the exact PC6 decides; without it, unknown.
    let shared = [("7551AB", "GM0164"), ("7551AC", "GM0147")];
    let d = decide(&dir, &p, Some(&shared));
    assert_eq!(d.municipality.map(|m| m.code.as_str()), Some("GM0164"));
    let other = patient(json!({"postalCode": "7551 ZZ"}));
    let d = decide(&dir, &other, Some(&shared));
    assert_eq!(d.unroutable, Some(Unroutable::NoMunicipality));
    assert!(
        d.steps.iter().any(|s| s.contains("several municipalities")),
        "{:?}",
        d.steps
    );
    // No table loaded: said so.
    let d = decide(&dir, &p, None);
    assert!(
        d.steps.iter().any(|s| s.contains("no table loaded")),
        "{:?}",
        d.steps
    );
}

#[test]
fn pc4_ranges_on_services_are_step_four() {
    let dir = directory(vec![service(
        "boskoop",
        "b",
        json!([{"url": EXT_POSTAL_CODE_RANGE, "valueString": "2770-2779"}]),
    )]);
    let d = decide(
        &dir,
        &patient(json!({"postalCode": "2771AB", "district": "Boskoop"})),
        None,
    );
    assert_eq!(d.municipality, None);
    assert_eq!(
        d.municipality_source,
        MunicipalitySource::ServicePostcodeRange
    );
    assert_eq!(d.chosen.map(|c| c.service), Some("boskoop".to_owned()));
    let d = decide(&dir, &patient(json!({"postalCode": "2780AB"})), None);
    assert_eq!(d.unroutable, Some(Unroutable::NoMunicipality));
}

#[test]
fn priority_then_municipality_over_range_then_age_specific_over_all() {
    let dir = directory(vec![
        service(
            "a-range",
            "r",
            json!([{"url": EXT_POSTAL_CODE_RANGE, "valueString": "2771"}]),
        ),
        service("b-all", "all", json!([municipality_ext("GM0484")])),
        service(
            "c-adult",
            "adult",
            json!([municipality_ext("GM0484"), {"url": EXT_AGE_GROUP, "valueCode": "18-plus"}]),
        ),
        service(
            "d-first",
            "first",
            json!([{"url": EXT_POSTAL_CODE_RANGE, "valueString": "2771"}, {"url": EXT_ROUTING_PRIORITY, "valuePositiveInt": 1}]),
        ),
    ]);
    let p = patient(json!({"postalCode": "2771AB", "district": "Alphen aan den Rijn"}));
    let d = decide(&dir, &p, None);
    let order: Vec<&str> = d.candidates.iter().map(|(id, _)| id.as_str()).collect();
    // All priority 1: municipality matches first (age-specific before all), then ranges.
    assert_eq!(order, ["c-adult", "b-all", "a-range", "d-first"]);
    assert_eq!(
        d.chosen.map(|c| c.organization_name),
        Some(Some("ADULT".to_owned()))
    );
}

#[test]
fn organisations_that_rejected_are_skipped_until_none_is_left() {
    let mut dir = directory(vec![
        service(
            "first",
            "one",
            json!([municipality_ext("GM0484"), {"url": EXT_ROUTING_PRIORITY, "valuePositiveInt": 1}]),
        ),
        service(
            "fallback",
            "two",
            json!([municipality_ext("GM0484"), {"url": EXT_ROUTING_PRIORITY, "valuePositiveInt": 2}]),
        ),
    ]);
    let p = patient(json!({"district": "Alphen aan den Rijn"}));
    assert_eq!(
        decide(&dir, &p, None).chosen.map(|c| c.service),
        Some("first".to_owned())
    );
    dir.rejected_by.insert("one".into(), "no capacity".into());
    let d = decide(&dir, &p, None);
    assert_eq!(d.chosen.map(|c| c.service), Some("fallback".to_owned()));
    assert!(d
        .steps
        .iter()
        .any(|s| s.contains("Organization/one rejected this referral (no capacity)")));
    dir.rejected_by.insert("two".into(), "full".into());
    let d = decide(&dir, &p, None);
    assert!(d.chosen.is_none());
    assert_eq!(d.unroutable, Some(Unroutable::AllRejected));
}

#[test]
fn missing_or_inactive_organisations_and_inactive_services_are_skipped() {
    let mut dir = directory(vec![
        service("a", "gone", json!([municipality_ext("GM0484")])),
        service("b", "asleep", json!([municipality_ext("GM0484")])),
        service("c", "ok", json!([municipality_ext("GM0484")])),
    ]);
    dir.organizations.remove("gone");
    if let Some(o) = dir.organizations.get_mut("asleep") {
        o.active = false;
    }
    let d = decide(
        &dir,
        &patient(json!({"district": "Alphen aan den Rijn"})),
        None,
    );
    assert_eq!(d.chosen.map(|c| c.service), Some("c".to_owned()));
    assert!(d
        .steps
        .iter()
        .any(|s| s.contains("Organization/gone does not exist")));
    assert!(d
        .steps
        .iter()
        .any(|s| s.contains("Organization/asleep is not active")));
}

#[test]
fn no_patient_and_old_addresses() {
    let dir = directory(vec![service("a", "o", json!([municipality_ext("GM0484")]))]);
    let d = match route(&sr(), None, datetime!(2026-11-21 12:00 UTC), &dir, |_| {
        Ok::<_, Infallible>(PostcodeHit::default())
    }) {
        Ok(d) => d,
        Err(never) => match never {},
    };
    assert_eq!(d.unroutable, Some(Unroutable::NoPatient));
    let p = json!({"resourceType": "Patient", "birthDate": "1980-05-05", "address": [
        {"use": "old", "district": "Enschede"},
        {"use": "work", "district": "Alphen aan den Rijn"}]});
    let d = decide(&dir, &p, None);
    assert_eq!(d.municipality.map(|m| m.code.as_str()), Some("GM0484"));
    assert!(d.steps.iter().any(|s| s == "address: Patient.address[1]"));
}
