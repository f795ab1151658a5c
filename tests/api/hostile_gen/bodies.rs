//! Mutated referral Bundles and resources; huge, deep and damaged bodies.

use fastrand::Rng;
use reqwest::Method;
use serde_json::{json, Value};

use super::{enc, hostile_value, long_string, pick, random_text, Hostile};

pub(super) fn unique_referral(fixture: &str, n: usize) -> Value {
    let text = fixture
        .replace("HIS-2026-000123", &format!("HIS-2026-000123-h{n}"))
        .replace(
            "6f1c2a44-0b7e-4c1d-9a53-1d2f0c6b7e0",
            &format!("6f1c2a44-0b7e-4c1d-9a53-{n:011}"),
        );
    serde_json::from_str(&text).expect("fixture JSON")
}

/// Paths to every node of a JSON value.
fn node_paths(value: &Value, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(path.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                path.push(Step::Key(k.clone()));
                node_paths(v, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(Step::Index(i));
                node_paths(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn node_mut<'a>(value: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    let mut cur = value;
    for step in path {
        cur = match step {
            Step::Key(k) => cur.get_mut(k)?,
            Step::Index(i) => cur.get_mut(*i)?,
        };
    }
    Some(cur)
}

fn nested(depth: usize) -> Value {
    let mut v = json!("deep");
    for i in 0..depth {
        v = if i % 2 == 0 {
            json!([v])
        } else {
            json!({"x": v})
        };
    }
    v
}

fn random_json(rng: &mut Rng) -> Value {
    match rng.u32(0..18) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(0),
        3 => json!(-1),
        4 => json!(1.5e300),
        5 => json!(""),
        6 => json!(hostile_value(rng, false)),
        7 => json!("a\u{0}b"),
        8 => json!(long_string(rng, 3000)),
        9 => json!([]),
        10 => json!({}),
        11 => nested(rng.usize(2..120)),
        12 => json!((0..rng.usize(2..300))
            .map(|i| format!("v{i}"))
            .collect::<Vec<_>>()),
        13 => {
            json!({"reference": pick(rng, &["Patient/does-not-exist", "urn:uuid:bogus", "http://evil.example/x", "#contained", "", "Patient/", "Patient/a%00", "Organization/../x"])})
        }
        14 => json!({"resourceType": pick(rng, &["Patient", "Task", "Bundle", "Foo", ""])}),
        15 => json!(u64::MAX),
        16 => json!({"extension": [{"url": "http://x", "valueString": "a\u{0}"}]}),
        _ => json!(random_text(rng)),
    }
}

/// One structural mutation somewhere in `value`.
fn mutate(rng: &mut Rng, value: &mut Value) {
    let mut paths = Vec::new();
    node_paths(value, &mut Vec::new(), &mut paths);
    let path = pick(rng, &paths).clone();
    let replacement = random_json(rng);
    let Some(node) = node_mut(value, &path) else {
        return;
    };
    match rng.u32(0..10) {
        // Remove a member or an element.
        0 | 1 => match node {
            Value::Object(map) if !map.is_empty() => {
                let keys: Vec<String> = map.keys().cloned().collect();
                map.remove(pick(rng, &keys));
            }
            Value::Array(items) if !items.is_empty() => {
                items.remove(rng.usize(..items.len()));
            }
            _ => *node = replacement,
        },
        // Add an unknown or duplicate-ish member, or repeat an element.
        2 => match node {
            Value::Object(map) => {
                let key = pick(
                    rng,
                    &[
                        "x",
                        "resourceType",
                        "id",
                        "meta",
                        "_status",
                        "extension",
                        "contained",
                        "modifierExtension",
                        "status",
                    ],
                );
                map.insert((*key).to_owned(), replacement);
            }
            Value::Array(items) if !items.is_empty() => {
                let copy = items[rng.usize(..items.len())].clone();
                items.push(copy);
            }
            _ => *node = replacement,
        },
        // Rename a member.
        3 => {
            if let Value::Object(map) = node {
                let keys: Vec<String> = map.keys().cloned().collect();
                if let Some(k) = keys.get(rng.usize(..keys.len().max(1))) {
                    if let Some(v) = map.remove(k) {
                        map.insert(format!("{k}{}", pick(rng, &["x", "_", "", "[0]"])), v);
                    }
                }
            }
        }
        // Request line of an entry.
        4 => {
            if let Value::Object(map) = node {
                if map.contains_key("method") || map.contains_key("url") {
                    map.insert(
                        "method".into(),
                        json!(pick(
                            rng,
                            &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "FOO", ""]
                        )),
                    );
                    map.insert(
                        "url".into(),
                        json!(pick(
                            rng,
                            &[
                                "Patient",
                                "Patient/x",
                                "Patient?identifier=|",
                                "Patient?name=a%00",
                                "Foo",
                                "",
                                "/",
                                "Patient/../x",
                                "Patient/a b",
                                "ServiceRequest?_sort=x",
                                "metadata",
                                "Task/1/_history/1"
                            ]
                        )),
                    );
                } else {
                    map.insert(
                        "ifNoneExist".into(),
                        json!(format!("identifier={}", enc(&hostile_value(rng, true)))),
                    );
                }
            } else {
                *node = replacement;
            }
        }
        _ => *node = replacement,
    }
}

/// Text-level damage to a serialised body.
fn damage(rng: &mut Rng, mut body: Vec<u8>) -> Vec<u8> {
    if body.is_empty() {
        return body;
    }
    match rng.u32(0..8) {
        0 => body.truncate(rng.usize(..body.len())),
        1 => {
            let at = rng.usize(..body.len());
            body[at] = *pick(rng, b"\"{}[],:\\\0\xff\xfe");
        }
        2 => {
            let at = rng.usize(..body.len());
            body.splice(
                at..at,
                pick(
                    rng,
                    &[
                        &b"\xc3\x28"[..],
                        b"\xed\xa0\x80",
                        b"\0",
                        b"\\u0000",
                        b"\\ud800",
                    ],
                )
                .iter()
                .copied(),
            );
        }
        3 => {
            let mut v = b"\xef\xbb\xbf".to_vec();
            v.extend(body);
            body = v;
        }
        4 => {
            // A duplicate member name.
            if let Some(at) = body.iter().position(|b| *b == b'{') {
                body.splice(
                    at + 1..at + 1,
                    b"\"resourceType\":\"Patient\",".iter().copied(),
                );
            }
        }
        5 => body.extend_from_slice(b" trailing garbage"),
        6 => body = body.iter().flat_map(|b| [*b, 0]).collect(), // UTF-16LE-ish
        _ => body.splice(0..0, b"   \n\t".iter().copied()).for_each(drop),
    }
    body
}

/// A mutated referral: a transaction or batch Bundle, or one of its resources alone.
pub fn referral(rng: &mut Rng, fixture: &str, n: usize) -> Hostile {
    let mut bundle = unique_referral(fixture, n);
    if rng.u32(0..100) < 70 {
        bundle["type"] = json!(*pick(
            rng,
            &[
                "transaction",
                "transaction",
                "transaction",
                "batch",
                "batch",
                "collection",
                "searchset",
                "x",
                ""
            ]
        ));
    }
    let mutations = if rng.u32(0..100) < 15 {
        0
    } else {
        rng.usize(1..=4)
    };
    let single = rng.u32(0..100) < 25;
    let mut value = if single {
        let entries = bundle["entry"].as_array().expect("entries");
        pick(rng, entries)["resource"].clone()
    } else {
        bundle
    };
    for _ in 0..mutations {
        mutate(rng, &mut value);
    }
    let mut body = value.to_string().into_bytes();
    if rng.u32(0..100) < 10 {
        body = damage(rng, body);
    }
    let (method, target) = if single {
        let ty = value["resourceType"]
            .as_str()
            .unwrap_or("Patient")
            .to_owned();
        if rng.bool() {
            (Method::POST, format!("/fhir/{}", enc(&ty)))
        } else {
            let id = value["id"]
                .as_str()
                .map_or_else(|| format!("h{n}"), str::to_owned);
            (Method::PUT, format!("/fhir/{}/{}", enc(&ty), enc(&id)))
        }
    } else {
        (Method::POST, "/fhir".to_owned())
    };
    let mut h = Hostile::new("referral", method, target).json_body(body);
    if rng.u32(0..100) < 20 {
        h = h.header("X-Request-Id", format!("hostile-{}", rng.u32(0..40)));
    }
    if rng.u32(0..100) < 10 {
        h = h.header(
            "Prefer",
            *pick(
                rng,
                &[
                    "return=minimal",
                    "return=OperationOutcome",
                    "return=representation",
                    "handling=lenient",
                ],
            ),
        );
    }
    h
}

/// Deep nesting, huge arrays and strings, odd numbers and encodings.
pub fn huge(rng: &mut Rng, n: usize) -> Hostile {
    let body: Vec<u8> = match rng.u32(0..12) {
        0 => {
            let depth = *pick(rng, &[63, 64, 65, 200, 1000, 10_000, 100_000]);
            let mut s = String::from("{\"resourceType\":\"Patient\",\"extension\":");
            s.push_str(&"[".repeat(depth));
            s.push_str(&"]".repeat(depth));
            s.push('}');
            s.into_bytes()
        }
        1 => {
            // Nested extensions, written as text (a Value this deep would overflow the
            // test's own stack when dropped).
            let depth = *pick(rng, &[30, 64, 500, 5_000]);
            let mut s = String::from("{\"resourceType\":\"Patient\",\"extension\":[");
            s.push_str(&"{\"url\":\"http://x\",\"extension\":[".repeat(depth));
            s.push_str("{\"url\":\"http://x\",\"valueString\":\"deep\"}");
            s.push_str(&"]}".repeat(depth));
            s.push_str("]}");
            s.into_bytes()
        }
        2 => {
            let k = *pick(rng, &[1000, 5000]);
            let names: Vec<Value> = (0..k).map(|i| json!({"family": format!("F{i}")})).collect();
            json!({"resourceType": "Patient", "name": names}).to_string().into_bytes()
        }
        3 => {
            let len = *pick(rng, &[2_700, 3_000, 100_000, 900_000]);
            json!({"resourceType": "Patient",
                   "identifier": [{"system": format!("urn:h:{n}"), "value": long_string(rng, len)}]})
            .to_string()
            .into_bytes()
        }
        4 => {
            let len = *pick(rng, &[3_000, 100_000]);
            json!({"resourceType": "Patient", "name": [{"family": long_string(rng, len), "given": [long_string(rng, 300)]}]})
                .to_string()
                .into_bytes()
        }
        5 => format!(
            "{{\"resourceType\":\"Patient\",\"multipleBirthInteger\":{}}}",
            pick(rng, &["99999999999999999999999", "1e999", "-0", "1.0e-400", "0x10", "01", "NaN", "Infinity", "2147483648"])
        )
        .into_bytes(),
        6 => vec![b' '; 1024 * 1024 + 1],
        7 => {
            let mut s = b"{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\",\"div\":\"".to_vec();
            s.extend(std::iter::repeat_n(b'x', 1024 * 1024));
            s.extend_from_slice(b"\"}}");
            s
        }
        8 => Vec::new(),
        9 => json!({"resourceType": "Bundle", "type": "transaction",
                    "entry": (0..*pick(rng, &[1000, 1001, 3000])).map(|i| json!({"resource": {"resourceType": "Patient", "id": format!("p{i}")}, "request": {"method": "PUT", "url": format!("Patient/p{i}")}})).collect::<Vec<_>>()})
            .to_string()
            .into_bytes(),
        10 => json!({"resourceType": "Consent", "status": "active",
                     "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
                     "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                     "patient": {"reference": format!("https://elsewhere.example/fhir/Patient/{}", long_string(rng, 4000)),
                                 "identifier": {"system": long_string(rng, 3000), "value": long_string(rng, 3000)}}})
            .to_string()
            .into_bytes(),
        _ => json!({"resourceType": "Patient", "name": [{"family": "a\u{0}b"}], "identifier": [{"system": "urn:nul", "value": "x\u{0}"}]})
            .to_string()
            .into_bytes(),
    };
    let target = match rng.u32(0..3) {
        0 => "/fhir".to_owned(),
        1 => "/fhir/Patient/$validate".to_owned(),
        _ => {
            let ty = body
                .get(..200)
                .map(|b| String::from_utf8_lossy(b).contains("Consent"))
                .unwrap_or(false);
            if ty {
                "/fhir/Consent".to_owned()
            } else {
                "/fhir/Patient".to_owned()
            }
        }
    };
    Hostile::new("huge", Method::POST, target).json_body(body)
}
