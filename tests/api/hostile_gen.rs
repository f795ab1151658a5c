//! Generators of malformed and hostile requests for `hostile.rs`. Everything comes from
//! one seeded PRNG (`fastrand`), so a seed gives the same requests on every run.

use fastrand::Rng;
use reqwest::Method;
use serde_json::{json, Value};

/// One generated request.
pub struct Hostile {
    /// The generator that made it (for failure reports).
    pub kind: &'static str,
    pub method: Method,
    /// Path and query below the server root: `/fhir/Patient?name=x`.
    pub target: String,
    pub headers: Vec<(&'static str, Vec<u8>)>,
    pub body: Option<Vec<u8>>,
}

impl Hostile {
    fn new(kind: &'static str, method: Method, target: String) -> Self {
        Self {
            kind,
            method,
            target,
            headers: Vec::new(),
            body: None,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn json_body(self, body: impl Into<Vec<u8>>) -> Self {
        let mut s = self.header("Content-Type", "application/fhir+json");
        s.body = Some(body.into());
        s
    }
}

/// What the server says it serves (from its CapabilityStatement).
pub struct Catalog {
    pub types: Vec<String>,
    /// (type, parameter, parameter type)
    pub params: Vec<(String, String, String)>,
    /// `Type:param` values for `_include` / `_revinclude`.
    pub includes: Vec<String>,
}

impl Catalog {
    pub fn from_capability_statement(cs: &Value) -> Self {
        let mut out = Catalog {
            types: Vec::new(),
            params: Vec::new(),
            includes: Vec::new(),
        };
        for r in cs["rest"][0]["resource"].as_array().into_iter().flatten() {
            let ty = r["type"].as_str().unwrap_or_default().to_owned();
            for p in r["searchParam"].as_array().into_iter().flatten() {
                out.params.push((
                    ty.clone(),
                    p["name"].as_str().unwrap_or_default().to_owned(),
                    p["type"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            for key in ["searchInclude", "searchRevInclude"] {
                for i in r[key].as_array().into_iter().flatten() {
                    out.includes.push(i.as_str().unwrap_or_default().to_owned());
                }
            }
            out.types.push(ty);
        }
        out
    }
}

fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.usize(..items.len())]
}

fn one<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.usize(..items.len())]
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Values that have broken parsers, SQL builders and databases before.
const INJECTIONS: &[&str] = &[
    "' OR '1'='1",
    "'; DROP TABLE resources; --",
    "\" OR \"\"=\"",
    "1; SELECT pg_sleep(10)--",
    "') OR 1=1--",
    "x' UNION SELECT body FROM resource_versions--",
    "%",
    "_",
    "%%",
    "%_%",
    "\\",
    "\\\\",
    "\\,",
    "\\|",
    "\\$",
    "|",
    "||",
    "|||",
    "a|",
    "|b",
    "a|b|c",
    ",",
    ",,",
    "a,,b",
    "$",
    "*",
    "?",
    "&",
    "=",
    "#",
    "/",
    "//",
    "../../etc/passwd",
    "..",
    ".",
    "Patient/",
    "/Patient",
    "Patient//x",
    "Patient/x/_history/1",
    "Patient/x/_history/abc",
    "http://",
    "http://evil.example/fhir/Patient/1",
    "urn:uuid:",
    "urn:oid:",
    "urn:oid:2.16.840.1.113883.2.4.6.3|999999011",
    "http://fhir.nl/fhir/NamingSystem/bsn|999999011",
    "<script>alert(1)</script>",
    "${jndi:ldap://x/a}",
    "{{7*7}}",
    "\u{0}",
    "a\u{0}b",
    "\u{1}\u{1f}",
    "\u{7f}",
    "\u{feff}",
    "\u{202e}gnp.exe",
    "😀",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "Ångström",
    "ß",
    "İ",
    "\u{10ffff}",
    "\u{fffd}",
    "null",
    "true",
    "0",
    "-1",
    "1e309",
    "9223372036854775808",
    "-9223372036854775809",
    "NaN",
    "ge",
    "eq",
    "ap2020",
    "gt2020-13-45",
    "2020-02-30",
    "2020-02-29T25:61:61Z",
    "0000-01-01",
    "9999-12-31T23:59:59.999999999+14:00",
    "2020-01-01T00:00:00-24:00",
    "le-1",
    "sa",
    "eb9999",
    "ne2020",
    "  ",
    "\t",
    "\r\n",
    "missing",
    "true,false",
    "Patient",
    "Patient?x=1",
    "requested",
    "999999011",
];

const ALPHABETS: &[&str] = &[
    "abcxyz",
    "é Ü ß",
    "😀🙂",
    "\u{0}\u{1}a",
    "|,\\$",
    "0123456789",
];

fn long_string(rng: &mut Rng, len: usize) -> String {
    let alphabet: Vec<char> = pick(rng, ALPHABETS).chars().collect();
    (0..len).map(|_| *pick(rng, &alphabet)).collect()
}

fn random_text(rng: &mut Rng) -> String {
    let pool: Vec<char> = "aZ09 -_.:/|,\\$%&=?#'\"<>{}[]()\u{0}\u{7}\u{1b}éß😀\u{202e}\u{feff}"
        .chars()
        .collect();
    let n = rng.usize(1..20);
    (0..n).map(|_| *pick(rng, &pool)).collect()
}

/// A hostile search value; `in_url` keeps it short enough for a request line.
fn hostile_value(rng: &mut Rng, in_url: bool) -> String {
    match rng.u32(0..100) {
        0..=39 => (*pick(rng, INJECTIONS)).to_owned(),
        40..=49 => {
            let lens: &[usize] = if in_url {
                &[64, 300, 1200]
            } else {
                &[64, 300, 3000, 20_000]
            };
            let len = *pick(rng, lens);
            long_string(rng, len)
        }
        50..=59 => (0..rng.usize(2..50))
            .map(|_| *pick(rng, INJECTIONS))
            .collect::<Vec<_>>()
            .join(","),
        60..=63 => {
            let n = *pick(rng, &[999, 1000, 1001]);
            (0..n)
                .map(|i| format!("x{i}"))
                .collect::<Vec<_>>()
                .join(",")
        }
        64..=73 => format!("{}|{}", pick(rng, INJECTIONS), pick(rng, INJECTIONS)),
        74..=83 => format!(
            "{}{}-{:02}-{:02}{}",
            pick(
                rng,
                &["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap", "xx"]
            ),
            rng.i32(-1..10_000),
            rng.u32(0..14),
            rng.u32(0..33),
            pick(
                rng,
                &[
                    "",
                    "T10:00:00Z",
                    "T25:00",
                    "+01:00",
                    "T10:00:00.1234567890+99:99"
                ]
            )
        ),
        _ => random_text(rng),
    }
}

const MODIFIERS: &[&str] = &[
    ":missing",
    ":not",
    ":exact",
    ":contains",
    ":identifier",
    ":text",
    ":below",
    ":above",
    ":in",
    ":of-type",
    ":Patient",
    ":Organization",
    ":Bogus",
    ":",
    "::",
    ":missing:not",
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

const RESULT_PARAMS: &[&str] = &[
    "_sort",
    "_include",
    "_revinclude",
    "_include:iterate",
    "_revinclude:iterate",
    "_count",
    "_total",
    "_summary",
    "_elements",
    "_getpages",
    "_offset",
    "_format",
    "_pretty",
    "_since",
    "_at",
    "_list",
    "_has:Task:patient:status",
    "_type",
    "_content",
    "_text",
    "_filter",
    "_query",
    "_cursor",
    "_contained",
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

const ODD_TYPES: &[&str] = &[
    "patient",
    "PATIENT",
    "Foo",
    "Bundle",
    "OperationOutcome",
    "Binary",
    "%00",
    "..",
    "$meta",
    "_history",
    "Patient%2FX",
    "Patient%00",
    "😀",
    "a%20b",
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
fn unique_referral(fixture: &str, n: usize) -> Value {
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

const BAD_HEADERS: &[(&str, &[&str])] = &[
    (
        "Content-Type",
        &[
            "",
            "text/plain",
            "application/xml",
            "application/fhir+xml",
            "application/fhir+json; charset=latin1",
            "application/fhir+json; fhirVersion=3.0",
            "application/json;;;",
            "*/*",
            "multipart/form-data; boundary=x",
            "application/x-www-form-urlencoded",
            "application/fhir+json; charset=\"utf-8\"",
            "application/json-patch+json",
        ],
    ),
    (
        "Accept",
        &[
            "application/xml",
            "text/html",
            "*/*;q=0",
            "application/fhir+json; fhirVersion=5.0",
            "",
            ",,,",
            "application/*",
            "application/fhir+xml, application/xml;q=0.9",
            "image/png",
        ],
    ),
    (
        "X-Request-Id",
        &["a b", "", "<script>", "x/y", "ok-1", "ok.2:3", "é"],
    ),
    (
        "If-Match",
        &[
            "",
            "W/\"\"",
            "W/\"-1\"",
            "\"abc\"",
            "*",
            "W/\"99999999999999999999\"",
            "W/\"1\", W/\"2\"",
            "W/\"1\"",
        ],
    ),
    ("If-None-Match", &["*", "W/\"1\"", "garbage", ""]),
    (
        "If-None-Exist",
        &[
            "identifier=%00",
            "",
            "&&",
            "_sort=x",
            "unknown=1",
            "identifier=%7C",
            "identifier=a%7Cb%7Cc",
            "name=' OR 1=1",
            "_id=x,y",
            "subject.name=x",
            "identifier",
        ],
    ),
    (
        "If-Modified-Since",
        &["yesterday", "", "Tue, 32 Dec 2026 25:00:00 GMT"],
    ),
    (
        "Prefer",
        &[
            "return=",
            "return=minimal",
            "handling=lenient",
            "handling=strict",
            "respond-async",
            "return=OperationOutcome;handling=lenient",
            ";;;",
            "x=y=z",
        ],
    ),
    (
        "X-Acting-Party",
        &[
            "",
            "coordinator",
            "Organization/",
            "Organization/x y",
            "Foo/1",
            "Organization/..",
            "Practitioner/1",
            "COORDINATOR",
            "Organization/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ],
    ),
    (
        "Host",
        &[
            "a\"b<script>",
            "",
            "evil.example",
            "x:99999",
            "[::1]",
            "127.0.0.1:1",
            "h/x",
            "h?x",
            "h#x",
            "h@x",
            "[zz]",
        ],
    ),
    ("X-Forwarded-Host", &["evil.example", "a b", "x/../y", ""]),
    ("X-Forwarded-Proto", &["https", "javascript", "ftp", ""]),
    (
        "Forwarded",
        &[
            "host=evil.example;proto=https",
            "host=\"a b\"",
            "proto=gopher",
            "for=1.2.3.4",
            ";;;",
        ],
    ),
    ("Content-Encoding", &["gzip", "br", "deflate", "x"]),
    (
        "Accept-Encoding",
        &["br", "zstd", "x;q=abc", "identity;q=0"],
    ),
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
