//! What generic FHIR clients send and receive: `_summary` and `_elements` on read and
//! search, `_pretty`, `_format`, HEAD, `_count=0`, history `_at`, and the `fhirVersion`
//! media-type parameter.

use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{expect_outcome, has_issue, link, TestApp, FHIR_JSON};

backend_tests!(
    summary_and_elements_cut_resources_down_keeping_mandatory_elements,
    pretty_and_format_forms,
    head_answers_like_get_without_a_body,
    count_zero_is_a_count_only_searchset,
    history_at_selects_the_versions_current_in_a_period,
    fhir_version_parameter_is_checked,
);

const SUBSETTED: &str =
    r#"{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED"}"#;

async fn json_of(res: Response) -> Value {
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// A draft ServiceRequest (drafts are not routed) with summary, non-summary and
/// mandatory elements, and its Patient.
async fn draft_referral(app: &TestApp) -> Value {
    let patient = app
        .create(&json!({"resourceType": "Patient", "birthDate": "1958-04-17"}))
        .await;
    // As text: the decimal 1.50 must reach the server as written.
    let body = format!(
        r#"{{"resourceType":"ServiceRequest",
        "text":{{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Verwijzing</div>"}},
        "status":"draft","intent":"order","code":{{"text":"Welzijn op Recept"}},
        "subject":{{"reference":"Patient/{}"}},"authoredOn":"2026-11-20",
        "note":[{{"text":"Eenzaam"}}],"quantityQuantity":{{"value":1.50}},
        "extension":[{{"url":"https://example.org/x","valueString":"y"}}]}}"#,
        patient["id"].as_str().unwrap()
    );
    let res = app.post_text("ServiceRequest", &body).await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

/// `stored` with only `keep` (in stored order) and the SUBSETTED tag in `meta`.
fn subset_of(stored: &Value, keep: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for (k, v) in stored.as_object().unwrap() {
        if k == "meta" {
            let mut meta = v.clone();
            meta["tag"] = json!([serde_json::from_str::<Value>(SUBSETTED).unwrap()]);
            out.insert(k.clone(), meta);
        } else if keep.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

async fn summary_and_elements_cut_resources_down_keeping_mandatory_elements(app: TestApp) {
    let sr = draft_referral(&app).await;
    let id = sr["id"].as_str().unwrap();
    let read = |q: &str| {
        app.request(Method::GET, &format!("ServiceRequest/{id}?{q}"))
            .send()
    };
    let base = ["resourceType", "id", "meta"];
    let summary = [
        &base[..],
        &[
            "status",
            "intent",
            "code",
            "subject",
            "authoredOn",
            "quantityQuantity",
        ],
    ]
    .concat();
    // _summary=true: the isSummary elements of R4 (note, text, extension are not).
    let body = json_of(read("_summary=true").await.unwrap()).await;
    assert_eq!(body, subset_of(&sr, &summary));
    // Stored bytes are kept: the decimal is still 1.50 in the text.
    let text = read("_summary=true").await.unwrap().text().await.unwrap();
    assert!(
        text.contains(r#""quantityQuantity":{"value":1.50}"#),
        "{text}"
    );
    // text: id, meta, text and the mandatory elements (status, intent, subject).
    let body = json_of(read("_summary=text").await.unwrap()).await;
    let text_keep = [&base[..], &["text", "status", "intent", "subject"]].concat();
    assert_eq!(body, subset_of(&sr, &text_keep));
    // data: everything but the narrative.
    let body = json_of(read("_summary=data").await.unwrap()).await;
    let all: Vec<&str> = sr.as_object().unwrap().keys().map(String::as_str).collect();
    let data_keep: Vec<&str> = all.iter().copied().filter(|k| *k != "text").collect();
    assert_eq!(body, subset_of(&sr, &data_keep));
    // false: the whole resource, untagged.
    assert_eq!(json_of(read("_summary=false").await.unwrap()).await, sr);
    // _elements keeps the mandatory elements too, and a vread does the same.
    let elements_keep = [&base[..], &["status", "intent", "subject", "note"]].concat();
    let body = json_of(read("_elements=note").await.unwrap()).await;
    assert_eq!(body, subset_of(&sr, &elements_keep));
    let vread = app
        .get(&format!("ServiceRequest/{id}/_history/1?_elements=note"))
        .await;
    assert_eq!(json_of(vread).await, subset_of(&sr, &elements_keep));
    // Refused: count on a read, both at once, unknown modes.
    let issues = expect_outcome(read("_summary=count").await.unwrap(), 400).await;
    assert!(has_issue(&issues, "value", Some("_summary")), "{issues:?}");
    let issues = expect_outcome(read("_summary=true&_elements=note").await.unwrap(), 400).await;
    assert!(
        has_issue(&issues, "invalid", Some("_elements")),
        "{issues:?}"
    );
    let issues = expect_outcome(read("_summary=short").await.unwrap(), 400).await;
    assert!(has_issue(&issues, "value", Some("_summary")), "{issues:?}");
    // Search: each entry cut down the same way (matches and includes).
    let bundle = json_of(
        app.get(&format!(
            "ServiceRequest?_id={id}&_summary=true&_include=ServiceRequest:subject"
        ))
        .await,
    )
    .await;
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{bundle}");
    assert_eq!(entries[0]["resource"], subset_of(&sr, &summary));
    assert_eq!(
        entries[1]["resource"]["meta"]["tag"][0]["code"], "SUBSETTED",
        "{bundle}"
    );
    assert_eq!(entries[1]["resource"]["birthDate"], "1958-04-17");
    let bundle = json_of(
        app.get(&format!("ServiceRequest?_id={id}&_elements=note"))
            .await,
    )
    .await;
    assert_eq!(
        bundle["entry"][0]["resource"],
        subset_of(&sr, &elements_keep)
    );
    let bundle = json_of(
        app.get(&format!("ServiceRequest?_id={id}&_summary=text"))
            .await,
    )
    .await;
    assert_eq!(bundle["entry"][0]["resource"], subset_of(&sr, &text_keep));
    let issues = expect_outcome(
        app.get("ServiceRequest?_summary=data&_elements=note").await,
        400,
    )
    .await;
    assert!(
        has_issue(&issues, "invalid", Some("_elements")),
        "{issues:?}"
    );
}

async fn pretty_and_format_forms(app: TestApp) {
    let res = app
        .post_text(
            "Patient",
            r#"{"resourceType":"Patient","extension":[{"url":"https://example.org/weight","valueDecimal":72.50}]}"#,
        )
        .await;
    assert_eq!(res.status(), 201);
    let patient: Value = res.json().await.unwrap();
    let path = format!("Patient/{}", patient["id"].as_str().unwrap());
    let compact = app.get(&path).await.text().await.unwrap();
    assert!(!compact.contains('\n'));
    let res = app.get(&format!("{path}?_pretty=true")).await;
    assert_eq!(res.status(), 200);
    let pretty = res.text().await.unwrap();
    assert!(
        pretty.starts_with("{\n  \"resourceType\": \"Patient\",\n  \"id\": "),
        "{pretty}"
    );
    // Indented, not re-serialised: the decimal keeps its digits.
    assert!(pretty.contains("\"valueDecimal\": 72.50"), "{pretty}");
    let same: Value = serde_json::from_str(&pretty).unwrap();
    assert_eq!(same, serde_json::from_str::<Value>(&compact).unwrap());
    assert_eq!(
        app.get(&format!("{path}?_pretty=false"))
            .await
            .text()
            .await
            .unwrap(),
        compact
    );
    // Errors and Bundles too.
    let res = app.get("Patient/nope?_pretty=true").await;
    assert_eq!(res.status(), 404);
    assert!(res
        .text()
        .await
        .unwrap()
        .starts_with("{\n  \"resourceType\": \"OperationOutcome\""));
    let bundle = app
        .get("Patient?_pretty=true&_format=json")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        bundle.starts_with("{\n  \"resourceType\": \"Bundle\""),
        "{bundle}"
    );
    let issues = expect_outcome(app.get(&format!("{path}?_pretty=yes")).await, 400).await;
    assert!(has_issue(&issues, "value", Some("_pretty")));
    // _format: the JSON forms are served; xml and turtle are not (406 naming _format).
    for format in [
        "json",
        "application/json",
        "application/fhir+json",
        "application/json+fhir",
    ] {
        let res = app
            .request(Method::GET, &path)
            .query(&[("_format", format)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{format}");
        assert_eq!(res.text().await.unwrap(), compact, "{format}");
    }
    for format in [
        "xml",
        "application/fhir+xml",
        "ttl",
        "application/fhir+turtle",
        "html",
    ] {
        let res = app
            .request(Method::GET, &path)
            .query(&[("_format", format)])
            .send()
            .await
            .unwrap();
        let issues = expect_outcome(res, 406).await;
        assert!(
            has_issue(&issues, "not-supported", Some("_format")),
            "{format}"
        );
    }
    // _format overrides Accept (http.html#parameters).
    let res = app
        .request(Method::GET, &format!("{path}?_format=json"))
        .header("Accept", "application/fhir+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .request(Method::GET, &path)
        .header("Accept", "application/fhir+xml")
        .send()
        .await
        .unwrap();
    let issues = expect_outcome(res, 406).await;
    assert!(has_issue(&issues, "not-supported", Some("Accept")));
}

fn header(res: &Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn head_answers_like_get_without_a_body(app: TestApp) {
    let patient = app
        .create(&json!({"resourceType": "Patient", "birthDate": "1958-04-17"}))
        .await;
    let id = patient["id"].as_str().unwrap();
    for path in [
        format!("Patient/{id}"),
        format!("Patient/{id}/_history/1"),
        format!("Patient?_id={id}"),
        "metadata".to_owned(),
    ] {
        let get = app.get(&path).await;
        let head = app.request(Method::HEAD, &path).send().await.unwrap();
        assert_eq!(head.status(), 200, "{path}");
        for name in ["content-type", "etag", "last-modified"] {
            assert_eq!(header(&head, name), header(&get, name), "{path}: {name}");
        }
        assert!(header(&head, "content-type")
            .unwrap()
            .starts_with(FHIR_JSON));
        let length = get.text().await.unwrap().len();
        if !path.contains('?') && path != "metadata" {
            // Same body length announced; Bundles and the statement carry fresh ids/dates.
            assert_eq!(
                header(&head, "content-length"),
                Some(length.to_string()),
                "{path}"
            );
        }
        assert!(head.bytes().await.unwrap().is_empty(), "{path}: no body");
    }
    let head = app
        .request(Method::HEAD, &format!("Patient/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&head, "etag").as_deref(), Some("W/\"1\""));
    let missing = app
        .request(Method::HEAD, "Patient/nope")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.bytes().await.unwrap().is_empty());
}

async fn count_zero_is_a_count_only_searchset(app: TestApp) {
    for i in 0..3 {
        app.create(&json!({"resourceType": "Organization", "name": format!("Welzijn {i}")}))
            .await;
    }
    let bundle = json_of(app.get("Organization?name=welzijn&_count=0").await).await;
    let self_url = link(&bundle, "self").unwrap();
    assert_eq!(
        bundle,
        json!({
            "resourceType": "Bundle",
            "id": bundle["id"],
            "meta": bundle["meta"],
            "type": "searchset",
            "total": 3,
            "link": [{"relation": "self", "url": self_url}],
        })
    );
    assert!(
        self_url.ends_with("/Organization?name=welzijn&_count=0"),
        "{self_url}"
    );
    let none = json_of(app.get("Organization?name=nobody&_count=0").await).await;
    assert_eq!(none["total"], 0);
    assert!(none.get("entry").is_none());
}

async fn history_at_selects_the_versions_current_in_a_period(app: TestApp) {
    let v1 = app
        .create(&json!({"resourceType": "Patient", "birthDate": "1958-04-17"}))
        .await;
    let id = v1["id"].as_str().unwrap().to_owned();
    let mut v2 = v1.clone();
    v2["birthDate"] = json!("1958-04-18");
    let v2: Value = json_of(app.put(&format!("Patient/{id}"), &v2).await).await;
    let mut v3 = v2.clone();
    v3["birthDate"] = json!("1958-04-19");
    let v3: Value = json_of(app.put(&format!("Patient/{id}"), &v3).await).await;
    let at = |v: &Value| v["meta"]["lastUpdated"].as_str().unwrap().to_owned();
    let versions = |bundle: Value| -> Vec<String> {
        bundle["entry"]
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|e| {
                        e["resource"]["meta"]["versionId"]
                            .as_str()
                            .unwrap()
                            .to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let history = |q: String| {
        let app = &app;
        let id = id.clone();
        async move {
            let res = app
                .request(Method::GET, &format!("Patient/{id}/_history"))
                .query(&[("_at", q)])
                .send()
                .await
                .unwrap();
            json_of(res).await
        }
    };
    // The moment v2 was written: v1 was replaced then, v3 came later.
    assert_eq!(versions(history(at(&v2)).await), ["2"]);
    assert_eq!(
        versions(history(format!("ge{}", at(&v2))).await),
        ["3", "2"]
    );
    assert_eq!(versions(history(format!("lt{}", at(&v2))).await), ["1"]);
    assert_eq!(
        versions(history(format!("le{}", at(&v2))).await),
        ["2", "1"]
    );
    assert_eq!(versions(history(format!("gt{}", at(&v3))).await), ["3"]);
    // The whole day: every version was current at some moment of it.
    let day = at(&v1)[..10].to_owned();
    assert_eq!(versions(history(day).await), ["3", "2", "1"]);
    assert_eq!(versions(history("1999".into()).await), Vec::<String>::new());
    // Type and system level, with paging links that keep _at.
    let bundle = json_of(
        app.request(Method::GET, "Patient/_history")
            .query(&[("_at", at(&v2)), ("_count", "1".into())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(versions(bundle.clone()), ["2"]);
    assert!(link(&bundle, "next").is_none());
    assert_eq!(
        versions(
            json_of(
                app.request(Method::GET, "_history")
                    .query(&[("_at", at(&v3))])
                    .send()
                    .await
                    .unwrap()
            )
            .await
        ),
        ["3"]
    );
    for bad in ["yesterday", "sa2026", "2026-13"] {
        let res = app
            .request(Method::GET, &format!("Patient/{id}/_history"))
            .query(&[("_at", bad)])
            .send()
            .await
            .unwrap();
        let issues = expect_outcome(res, 400).await;
        assert!(has_issue(&issues, "value", Some("_at")), "{bad}");
    }
}

async fn fhir_version_parameter_is_checked(app: TestApp) {
    let patient = app
        .create(&json!({"resourceType": "Patient", "birthDate": "1958-04-17"}))
        .await;
    let path = format!("Patient/{}", patient["id"].as_str().unwrap());
    let get_accept = |accept: &str| {
        app.request(Method::GET, &path)
            .header("Accept", accept.to_owned())
            .send()
    };
    for other in ["3.0", "5.0", "1.0", "4.3"] {
        let accept = format!("application/fhir+json; fhirVersion={other}");
        let issues = expect_outcome(get_accept(&accept).await.unwrap(), 406).await;
        assert!(
            has_issue(&issues, "not-supported", Some("Accept")),
            "{other}"
        );
    }
    // R4 is 4.0 (major.minor); the response says it back.
    for r4 in [
        "application/fhir+json; fhirVersion=4.0",
        "application/fhir+json;fhirVersion=4.0.1",
    ] {
        let res = get_accept(r4).await.unwrap();
        assert_eq!(res.status(), 200, "{r4}");
        assert_eq!(
            header(&res, "content-type").as_deref(),
            Some("application/fhir+json; fhirVersion=4.0; charset=utf-8")
        );
    }
    // One acceptable range is enough.
    let res = get_accept(
        "application/fhir+json; fhirVersion=3.0, application/fhir+json; fhirVersion=4.0",
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    // Without the parameter nothing changes.
    let res = app.get(&path).await;
    assert_eq!(
        header(&res, "content-type").as_deref(),
        Some("application/fhir+json; charset=utf-8")
    );
    let res = app
        .request(Method::GET, &path)
        .query(&[("_format", "application/fhir+json; fhirVersion=3.0")])
        .send()
        .await
        .unwrap();
    let issues = expect_outcome(res, 406).await;
    assert!(has_issue(&issues, "not-supported", Some("_format")));
    // A body of another version: 415, nothing stored.
    let post = |content_type: &'static str| {
        app.request(Method::POST, "Organization")
            .header("Content-Type", content_type)
            .body(json!({"resourceType": "Organization", "name": "X"}).to_string())
            .send()
    };
    let issues = expect_outcome(
        post("application/fhir+json; fhirVersion=3.0")
            .await
            .unwrap(),
        415,
    )
    .await;
    assert!(has_issue(&issues, "not-supported", Some("Content-Type")));
    assert_eq!(app.version_count("Organization").await, 0);
    let res = post("application/fhir+json; fhirVersion=4.0; charset=utf-8")
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}
