//! No search may produce a 5xx (issue 11, items 13-15 and 20): NUL characters in any
//! search value, values longer than a PostgreSQL btree entry, a thousand values, bare
//! `|` tokens. The HTTP edge's items are in `hardening_edge.rs`.

use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{expect_outcome, has_expression, has_issue, TestApp, FHIR_JSON};

backend_tests!(
    nul_in_any_search_value_is_refused,
    long_values_are_stored_and_found,
    a_thousand_values_and_a_hundred_parameters,
    bare_pipe_tokens_are_refused,
);

pub const FORM: &str = "application/x-www-form-urlencoded";

pub async fn expect_400_at(res: Response, expression: &str) {
    let issues = expect_outcome(res, 400).await;
    assert!(
        has_expression(&issues, expression),
        "expected an issue at {expression}: {issues:?}"
    );
}

async fn nul_in_any_search_value_is_refused(app: TestApp) {
    for (query, param) in [
        ("Patient?name=a%00b", "name"),
        ("Patient?_id=a%00b", "_id"),
        ("Patient?identifier=urn:sys%7Ca%00b", "identifier"),
        ("Patient?identifier=urn%00sys%7Cab", "identifier"),
        ("Patient?birthdate=2020%00", "birthdate"),
        ("Task?status=requested,a%00", "status"),
        ("Task?subject.name=a%00", "subject.name"),
        ("Task?owner:identifier=x%7Cy%00", "owner:identifier"),
        ("Task?focus=ServiceRequest/a%00", "focus"),
        ("Patient?_sort=a%00", "_sort"),
        ("Patient?name%00=x", "name\\0"),
        ("Patient/_history?_since=2020%00", "_since"),
    ] {
        let res = app.get(query).await;
        let status = res.status().as_u16();
        let issues = expect_outcome(res, 400).await;
        assert!(
            has_expression(&issues, param) || query.contains("_history"),
            "{query} ({status}): {issues:?}"
        );
    }
    // A POST _search body, and If-None-Exist on a create: nothing stored.
    let res = app
        .request(Method::POST, "Patient/_search")
        .header("Content-Type", FORM)
        .body("family=x%00y")
        .send()
        .await
        .unwrap();
    expect_400_at(res, "family").await;
    let res = app
        .request(Method::POST, "Patient")
        .header("Content-Type", FHIR_JSON)
        .header("If-None-Exist", "identifier=urn:sys|a%00b")
        .body(json!({"resourceType": "Patient"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "{}", res.text().await.unwrap());
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient"},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:sys|a%00b"}}
    ]});
    let res = app.post("", &bundle).await;
    assert_eq!(res.status(), 400, "{}", res.text().await.unwrap());
    assert_eq!(app.version_count("Patient").await, 0);
}

/// Ids (`_id` and `Type/id`) of a searchset's matches.
async fn match_ids(app: &TestApp, query: &str) -> Vec<String> {
    let res = app.get(query).await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{query}: {body}");
    body["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["search"]["mode"] == "match")
                .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `len` characters from `alphabet`, pseudo-random (PostgreSQL compresses index entries:
/// a repetitive value would fit its limit and prove nothing).
fn incompressible(len: usize, alphabet: &str, seed: u64) -> String {
    let chars: Vec<char> = alphabet.chars().collect();
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| chars[rng.usize(..chars.len())]).collect()
}

async fn long_values_are_stored_and_found(app: TestApp) {
    // 3,000 characters: over PostgreSQL's btree entry limit (about 2,700 bytes).
    const ALNUM: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let long = incompressible(3000, ALNUM, 1);
    let mut other = long.clone();
    other.replace_range(2990.., "zzzzzzzzzz");
    let system = format!("urn:sys:{}", incompressible(2000, ALNUM, 2));
    let family = format!("Jansen{}", incompressible(1500, "éèëêáàäâóòöôúùüû", 3));
    let patient = app
        .create(&json!({"resourceType": "Patient",
            "identifier": [{"system": system, "value": long}],
            "name": [{"family": family}]}))
        .await;
    let id = patient["id"].as_str().unwrap().to_owned();
    // A decoy that shares the first 2,990 characters of the identifier and the first
    // 206 characters of the name (more than the 128 the string index holds).
    let decoy = app
        .create(&json!({"resourceType": "Patient",
            "identifier": [{"system": system, "value": other}],
            "name": [{"family": format!("{}x", family.chars().take(206).collect::<String>())}]}))
        .await;
    let decoy_id = decoy["id"].as_str().unwrap().to_owned();

    let q = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    assert_eq!(
        match_ids(
            &app,
            &format!("Patient?identifier={}", q(&format!("{system}|{long}")))
        )
        .await,
        vec![id.clone()]
    );
    assert_eq!(
        match_ids(&app, &format!("Patient?identifier={}", q(&long))).await,
        vec![id.clone()]
    );
    assert_eq!(
        match_ids(&app, &format!("Patient?identifier={}", q(&other))).await,
        vec![decoy_id.clone()]
    );
    // Starts-with below and beyond the indexed prefix (128 characters), :exact, :contains.
    let start: String = family.chars().take(60).collect();
    let mut both = match_ids(&app, &format!("Patient?family={}", q(&start))).await;
    both.sort();
    let mut expected = vec![id.clone(), decoy_id.clone()];
    expected.sort();
    assert_eq!(both, expected);
    let beyond: String = family.chars().take(400).collect();
    assert_eq!(
        match_ids(&app, &format!("Patient?family={}", q(&beyond))).await,
        vec![id.clone()]
    );
    assert_eq!(
        match_ids(&app, &format!("Patient?family:exact={}", q(&family))).await,
        vec![id.clone()]
    );
    let middle: String = family.chars().skip(1000).take(300).collect();
    assert_eq!(
        match_ids(&app, &format!("Patient?family:contains={}", q(&middle))).await,
        vec![id.clone()]
    );
    // A conditional create on the long identifier finds the Patient.
    let res = app
        .request(Method::POST, "Patient")
        .header("Content-Type", FHIR_JSON)
        .header("If-None-Exist", format!("identifier={}", q(&long)))
        .body(json!({"resourceType": "Patient"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // References: a long absolute URL and a long logical identifier.
    let url = format!("https://elsewhere.example/fhir/Patient/{long}");
    let consent = json!({"resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": url, "identifier": {"system": system, "value": long}}});
    let consent_id = app.create(&consent).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        match_ids(&app, &format!("Consent?patient={}", q(&url))).await,
        vec![consent_id.clone()]
    );
    assert_eq!(
        match_ids(
            &app,
            &format!(
                "Consent?patient:identifier={}",
                q(&format!("{system}|{long}"))
            )
        )
        .await,
        [consent_id]
    );
    assert!(
        match_ids(&app, &format!("Consent?patient:identifier={}", q(&other)))
            .await
            .is_empty()
    );
}

/// `n` comma-separated values `x0,x1,...` with `extra` appended.
fn values(n: usize, extra: &str) -> String {
    let mut v: Vec<String> = (0..n).map(|i| format!("x{i}")).collect();
    if !extra.is_empty() {
        v.push(extra.to_owned());
    }
    v.join(",")
}

/// Search parameters per type, as the CapabilityStatement lists them.
pub async fn search_params(app: &TestApp) -> Vec<(String, String, String)> {
    let cs: Value = app.get("metadata").await.json().await.unwrap();
    let mut out = Vec::new();
    for r in cs["rest"][0]["resource"].as_array().unwrap() {
        let ty = r["type"].as_str().unwrap();
        for p in r["searchParam"].as_array().into_iter().flatten() {
            out.push((
                ty.to_owned(),
                p["name"].as_str().unwrap().to_owned(),
                p["type"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

pub async fn post_search(app: &TestApp, ty: &str, body: String) -> Response {
    app.request(Method::POST, &format!("{ty}/_search"))
        .header("Content-Type", FORM)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn a_thousand_values_and_a_hundred_parameters(app: TestApp) {
    let p = app
        .create(
            &json!({"resourceType": "Patient", "name": [{"family": "Duizend"}],
                         "identifier": [{"system": "urn:sys", "value": "x999"}]}),
        )
        .await;
    let id = p["id"].as_str().unwrap().to_owned();
    // At the bound (1,000 values): answered, and the one real value still matches.
    let res = post_search(&app, "Patient", format!("_id={}", values(999, &id))).await;
    assert_eq!(res.status(), 200);
    let ids = match_ids(&app, &format!("Patient?identifier={}", values(1000, ""))).await;
    assert_eq!(ids, vec![id.clone()]);
    // Every search parameter of every type, 1,000 values each (dates are dates).
    let mut wrong = Vec::new();
    for (ty, name, kind) in search_params(&app).await {
        let value = match kind.as_str() {
            "date" => (0..1000)
                .map(|i| format!("ge{}-01-01", 1000 + i))
                .collect::<Vec<_>>()
                .join(","),
            "reference" => (0..1000)
                .map(|i| format!("Patient/r{i}"))
                .collect::<Vec<_>>()
                .join(","),
            _ => values(1000, ""),
        };
        let res = post_search(&app, &ty, format!("{name}={value}")).await;
        if res.status() != 200 {
            wrong.push(format!("{ty}?{name}: {}", res.status()));
        }
    }
    // Modifiers and chains, 1,000 values each.
    for (ty, name) in [
        ("Patient", "name:contains"),
        ("Patient", "family:exact"),
        ("Task", "status:not"),
        ("Task", "owner:identifier"),
        ("Task", "subject:Patient.name"),
        ("Task", "patient.identifier"),
        ("ServiceRequest", "subject.birthdate"),
    ] {
        let value = if name.ends_with("birthdate") {
            (0..1000)
                .map(|i| format!("{}", 1000 + i))
                .collect::<Vec<_>>()
                .join(",")
        } else {
            values(1000, "")
        };
        let res = post_search(&app, ty, format!("{name}={value}")).await;
        if res.status() != 200 {
            wrong.push(format!("{ty}?{name}: {}", res.status()));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // 100 parameters: answered; the one that matches is found.
    let mut many: Vec<String> = (0..99)
        .map(|i| format!("name=Duizend{i}x,Duizend"))
        .collect();
    many.push(format!("_id={id}"));
    assert_eq!(
        match_ids(&app, &format!("Patient?{}", many.join("&"))).await,
        vec![id.clone()]
    );
    // Over the bounds: 400 too-costly.
    for body in [
        format!("_id={}", values(1001, "")),
        (0..101)
            .map(|i| format!("name=n{i}"))
            .collect::<Vec<_>>()
            .join("&"),
        (0..1000)
            .map(|i| format!("name=n{i}"))
            .collect::<Vec<_>>()
            .join("&"),
    ] {
        let issues = expect_outcome(post_search(&app, "Patient", body).await, 400).await;
        assert!(has_issue(&issues, "too-costly", None), "{issues:?}");
    }
}

async fn bare_pipe_tokens_are_refused(app: TestApp) {
    let org = app
        .create(
            &json!({"resourceType": "Organization", "active": true, "name": "Pipe",
                         "identifier": [{"system": "urn:pipe", "value": "p1"}]}),
        )
        .await;
    let id = org["id"].as_str().unwrap().to_owned();
    for query in [
        "Task?status=%7C",
        "Organization?active=%7C",
        "Organization?identifier=%7C",
        "Organization?identifier=a%7Cb%7Cc",
        "Task?owner:identifier=%7C",
        "Task?status=requested,%7C",
    ] {
        let name = query.split('?').nth(1).unwrap().split('=').next().unwrap();
        expect_400_at(app.get(query).await, name).await;
    }
    // The legal forms (search.html#token): |code (no system), system| (any code),
    // system|code, and an escaped \| inside a code.
    assert_eq!(
        match_ids(&app, "Organization?active=%7Ctrue").await,
        vec![id.clone()]
    );
    assert_eq!(
        match_ids(&app, "Organization?identifier=urn:pipe%7C").await,
        vec![id.clone()]
    );
    assert_eq!(
        match_ids(&app, "Organization?identifier=urn:pipe%7Cp1").await,
        vec![id.clone()]
    );
    assert!(match_ids(&app, "Organization?identifier=%7Cp1")
        .await
        .is_empty());
    assert!(match_ids(&app, "Organization?identifier=p%5C%7C1")
        .await
        .is_empty());
}
