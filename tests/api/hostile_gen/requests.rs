//! Searches, result parameters, odd methods and paths, bad headers.

use fastrand::Rng;
use reqwest::Method;
use serde_json::{json, Value};

use super::bodies::unique_referral;
use super::{enc, hostile_value, one, pick, random_text, Catalog, Hostile};

#[rustfmt::skip]
const MODIFIERS: &[&str] = &[
    ":missing", ":not", ":exact", ":contains", ":identifier", ":text", ":below", ":above",
    ":in", ":of-type", ":Patient", ":Organization", ":Bogus", ":", "::", ":missing:not",
];

/// Search on a registered parameter (with modifiers, chains and hostile values), by
/// GET or POST `_search`.
pub fn search(rng: &mut Rng, cat: &Catalog) -> Hostile {
    let ty = pick(rng, &cat.types).clone();
    let own: Vec<&(String, String, String)> = cat.params.iter().filter(|p| p.0 == ty).collect();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for _ in 0..rng.usize(1..=3) {
        let (_, name, kind) = if rng.u32(0..100) < 90 {
            (*pick(rng, &own)).clone()
        } else {
            pick(rng, &cat.params).clone()
        };
        let mut pname = name.clone();
        if rng.u32(0..100) < 25 {
            pname.push_str(one(rng, MODIFIERS));
        }
        if kind == "reference" && rng.u32(0..100) < 25 {
            let (_, inner, _) = pick(rng, &cat.params).clone();
            pname = format!("{pname}.{inner}");
            if rng.u32(0..100) < 25 {
                pname.push_str(one(rng, MODIFIERS));
            }
        }
        if rng.u32(0..100) < 5 {
            pname = random_text(rng);
        }
        pairs.push((pname, hostile_value(rng, false)));
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    if query.len() > 6000 || rng.u32(0..100) < 20 {
        let mut h = Hostile::new("search-post", Method::POST, format!("/fhir/{ty}/_search"));
        let content_type = if rng.u32(0..100) < 90 {
            "application/x-www-form-urlencoded"
        } else {
            pick(
                rng,
                &[
                    "application/fhir+json",
                    "text/plain",
                    "",
                    "multipart/form-data",
                ],
            )
        };
        h = h.header("Content-Type", content_type);
        h.body = Some(query.into_bytes());
        return h;
    }
    let target = if rng.u32(0..100) < 5 {
        // Broken percent-encoding and stray separators, as sent.
        format!(
            "/fhir/{ty}?{}",
            pick(
                rng,
                &[
                    "%ZZ",
                    "%",
                    "name=%FF%FE",
                    "a=%00",
                    "&&&",
                    "=",
                    "==",
                    "a==b",
                    "name=a%2",
                    "_id"
                ]
            )
        )
    } else {
        format!("/fhir/{ty}?{query}")
    };
    Hostile::new("search", Method::GET, target)
}

#[rustfmt::skip]
const RESULT_PARAMS: &[&str] = &[
    "_sort", "_include", "_revinclude", "_include:iterate", "_revinclude:iterate", "_count",
    "_total", "_summary", "_elements", "_getpages", "_offset", "_format", "_pretty", "_since",
    "_at", "_list", "_has:Task:patient:status", "_type", "_content", "_text", "_filter",
    "_query", "_cursor", "_contained",
];

/// Result and paging parameters, on searches and histories.
pub fn result_params(rng: &mut Rng, cat: &Catalog) -> Hostile {
    let ty = pick(rng, &cat.types).clone();
    let name = *pick(rng, RESULT_PARAMS);
    let value = match rng.u32(0..4) {
        0 => pick(rng, &cat.includes).clone(),
        1 => pick(
            rng,
            &[
                "0",
                "-1",
                "1",
                "1000",
                "1001",
                "18446744073709551616",
                "true",
                "count",
                "text",
                "data",
                "false",
                "accurate",
                "estimate",
                "none",
                "xml",
                "json",
                "application/fhir+xml",
                "00000000-0000-0000-0000-000000000000",
                "-_lastUpdated",
                "_id,-_id",
                "birthdate",
                "id,meta,name",
                "*",
                "Task:*",
                "2026-12-01T00:00:00Z",
            ],
        )
        .to_string(),
        _ => hostile_value(rng, true),
    };
    let base = match rng.u32(0..5) {
        0 => format!("/fhir/{ty}/_history"),
        1 => "/fhir/_history".to_owned(),
        _ => format!("/fhir/{ty}"),
    };
    let extra = if rng.bool() {
        format!(
            "&{}={}",
            enc(one(rng, RESULT_PARAMS)),
            enc(&hostile_value(rng, true))
        )
    } else {
        String::new()
    };
    Hostile::new(
        "result-param",
        Method::GET,
        format!("{base}?{}={}{extra}", enc(name), enc(&value)),
    )
}

#[rustfmt::skip]
const ODD_TYPES: &[&str] = &[
    "patient", "PATIENT", "Foo", "Bundle", "OperationOutcome", "Binary", "%00", "..", "$meta",
    "_history", "Patient%2FX", "Patient%00", "😀", "a%20b",
];

fn odd_id(rng: &mut Rng) -> String {
    match rng.u32(0..20) {
        0 => "a".repeat(64),
        1 => "a".repeat(65),
        2 => "a".repeat(5000),
        _ => (*pick(
            rng,
            &[
                "..",
                ".",
                "-",
                "a%00b",
                "%2e%2e",
                "%2F",
                "a%20b",
                "%ZZ",
                "%",
                "%C3%A9",
                "%F0%9F%98%80",
                "$validate",
                "_history",
                "_search",
                "0",
                "-1",
                "99999999999999999999",
                "x'--",
                "a;b",
                "a,b",
                "a%7Cb",
                "A.B-C",
                "abc",
                "%FF%FE",
                "metadata",
                "$route",
                "null",
            ],
        ))
        .to_owned(),
    }
}

#[rustfmt::skip]
const METHODS: &[&str] = &[
    "GET", "GET", "GET", "POST", "POST", "PUT", "PUT", "DELETE", "DELETE", "PATCH", "HEAD",
    "OPTIONS", "TRACE", "FOO", "PROPFIND",
];

/// Odd methods on odd paths with odd ids, some with bodies.
pub fn odd_path(rng: &mut Rng, cat: &Catalog, fixture: &Value) -> Hostile {
    let method = Method::from_bytes(pick(rng, METHODS).as_bytes()).expect("method");
    let ty = if rng.u32(0..4) == 0 {
        (*pick(rng, ODD_TYPES)).to_owned()
    } else {
        pick(rng, &cat.types).clone()
    };
    let id = odd_id(rng);
    let vid = *pick(
        rng,
        &[
            "1",
            "0",
            "-1",
            "abc",
            "99999999999999999999",
            "1.0",
            "01",
            "%00",
        ],
    );
    let path = match rng.u32(0..16) {
        0 => "/fhir".to_owned(),
        1 => "//fhir/".to_owned(),
        2 => format!("/fhir/{ty}"),
        3 | 4 => format!("/fhir/{ty}/{id}"),
        5 => format!("/fhir/{ty}/{id}/_history"),
        6 | 7 => format!("/fhir/{ty}/{id}/_history/{vid}"),
        8 => format!("/fhir/{ty}/$validate"),
        9 => format!("/fhir/{ty}/{id}/$validate"),
        10 => "/fhir/ServiceRequest/$route".to_owned(),
        11 => format!("/fhir/metadata/{id}"),
        12 => format!("/fhir/{ty}/_search/{id}"),
        13 => format!("/fhir/{ty}/{id}/{id}/{id}"),
        14 => (*pick(
            rng,
            &[
                "/",
                "/x",
                "/health/live",
                "/health/ready",
                "/health",
                "/fhir/_history/x",
                "/.env",
                "/fhir/%00",
            ],
        ))
        .to_owned(),
        _ => format!("/fhir/{ty}/{id}/_history/{vid}/x"),
    };
    let mut h = Hostile::new("odd-path", method.clone(), path);
    if matches!(method.as_str(), "POST" | "PUT" | "PATCH") || rng.u32(0..10) == 0 {
        let body = match rng.u32(0..8) {
            0 => b"{}".to_vec(),
            1 => b"[]".to_vec(),
            2 => b"null".to_vec(),
            3 => json!([{"op": "replace", "path": "/status", "value": "completed"}])
                .to_string()
                .into_bytes(),
            4 => json!({"resourceType": ty, "id": id}).to_string().into_bytes(),
            5 => {
                let entry = pick(rng, fixture["entry"].as_array().expect("entries"));
                entry["resource"].to_string().into_bytes()
            }
            6 => json!({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": {"resourceType": "Patient"}}, {"name": "mode", "valueCode": hostile_value(rng, false)}]}).to_string().into_bytes(),
            _ => random_text(rng).into_bytes(),
        };
        let ct = if rng.u32(0..5) == 0 {
            *pick(
                rng,
                &[
                    "application/json-patch+json",
                    "application/json",
                    "text/plain",
                    "application/fhir+xml",
                ],
            )
        } else {
            "application/fhir+json"
        };
        h = h.header("Content-Type", ct);
        h.body = Some(body);
    }
    h
}

/// Makes the referral's business identifiers unique to `n`, so that some mutated
/// referrals create resources instead of matching earlier ones.
#[rustfmt::skip]
const BAD_HEADERS: &[(&str, &[&str])] = &[
    ("Content-Type", &["", "text/plain", "application/xml", "application/fhir+xml",
        "application/fhir+json; charset=latin1", "application/fhir+json; fhirVersion=3.0",
        "application/json;;;", "*/*", "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded", "application/fhir+json; charset=\"utf-8\"",
        "application/json-patch+json"]),
    ("Accept", &["application/xml", "text/html", "*/*;q=0",
        "application/fhir+json; fhirVersion=5.0", "", ",,,", "application/*",
        "application/fhir+xml, application/xml;q=0.9", "image/png"]),
    ("X-Request-Id", &["a b", "", "<script>", "x/y", "ok-1", "ok.2:3", "é"]),
    ("If-Match", &["", "W/\"\"", "W/\"-1\"", "\"abc\"", "*", "W/\"99999999999999999999\"",
        "W/\"1\", W/\"2\"", "W/\"1\""]),
    ("If-None-Match", &["*", "W/\"1\"", "garbage", ""]),
    ("If-None-Exist", &["identifier=%00", "", "&&", "_sort=x", "unknown=1", "identifier=%7C",
        "identifier=a%7Cb%7Cc", "name=' OR 1=1", "_id=x,y", "subject.name=x", "identifier"]),
    ("If-Modified-Since", &["yesterday", "", "Tue, 32 Dec 2026 25:00:00 GMT"]),
    ("Prefer", &["return=", "return=minimal", "handling=lenient", "handling=strict",
        "respond-async", "return=OperationOutcome;handling=lenient", ";;;", "x=y=z"]),
    ("X-Acting-Party", &["", "coordinator", "Organization/", "Organization/x y", "Foo/1",
        "Organization/..", "Practitioner/1", "COORDINATOR",
        "Organization/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]),
    ("Host", &["a\"b<script>", "", "evil.example", "x:99999", "[::1]", "127.0.0.1:1", "h/x",
        "h?x", "h#x", "h@x", "[zz]"]),
    ("X-Forwarded-Host", &["evil.example", "a b", "x/../y", ""]),
    ("X-Forwarded-Proto", &["https", "javascript", "ftp", ""]),
    ("Forwarded", &["host=evil.example;proto=https", "host=\"a b\"", "proto=gopher",
        "for=1.2.3.4", ";;;"]),
    ("Content-Encoding", &["gzip", "br", "deflate", "x"]),
    ("Accept-Encoding", &["br", "zstd", "x;q=abc", "identity;q=0"]),
    ("Expect", &["100-continue"]),
    ("Range", &["bytes=0-1", "bytes=x"]),
];

/// A plain request with one (or two) hostile headers.
pub fn bad_header(rng: &mut Rng, fixture: &str, n: usize) -> Hostile {
    let mut h = match rng.u32(0..5) {
        0 => Hostile::new("header", Method::GET, "/fhir/Patient?name=Jansen".into()),
        1 => Hostile::new("header", Method::GET, "/fhir/metadata".into()),
        2 => Hostile::new("header", Method::POST, "/fhir/Patient".into())
            .json_body(json!({"resourceType": "Patient", "identifier": [{"system": "urn:hdr", "value": format!("h{n}")}]}).to_string()),
        3 => Hostile::new("header", Method::POST, "/fhir".into())
            .json_body(unique_referral(fixture, 1_000_000 + n).to_string()),
        _ => Hostile::new("header", Method::PUT, format!("/fhir/Patient/hdr{n}"))
            .json_body(json!({"resourceType": "Patient", "id": format!("hdr{n}")}).to_string()),
    };
    for _ in 0..rng.usize(1..=2) {
        let (name, values) = pick(rng, BAD_HEADERS);
        let value = match rng.u32(0..12) {
            0 => vec![0xff, 0xfe, b'a'],
            1 => "x".repeat(8000).into_bytes(),
            _ => pick(rng, values).as_bytes().to_vec(),
        };
        // One Content-Type; and one Host, since actix-http itself refuses a second
        // one (400 without a body, before the application runs: see hardening.rs).
        if *name == "Content-Type" || *name == "Host" {
            h.headers.retain(|(k, _)| k != name);
        }
        h = h.header(name, value);
    }
    h
}
