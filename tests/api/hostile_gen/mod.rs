//! Generators of malformed and hostile requests for `hostile.rs`. Everything comes from
//! one seeded PRNG (`fastrand`), so a seed gives the same requests on every run.
//! This file: the request type, the server's catalogue and hostile values; `requests`:
//! searches, result parameters, odd paths and headers; `bodies`: mutated referrals and
//! huge or deep bodies.

mod bodies;
mod requests;

pub use bodies::{huge, referral};
pub use requests::{bad_header, odd_path, result_params, search};

use fastrand::Rng;
use reqwest::Method;
use serde_json::Value;

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
#[rustfmt::skip]
const INJECTIONS: &[&str] = &[
    "' OR '1'='1", "'; DROP TABLE resources; --", "\" OR \"\"=\"", "1; SELECT pg_sleep(10)--",
    "') OR 1=1--", "x' UNION SELECT body FROM resource_versions--", "%", "_", "%%", "%_%", "\\",
    "\\\\", "\\,", "\\|", "\\$", "|", "||", "|||", "a|", "|b", "a|b|c", ",", ",,", "a,,b", "$",
    "*", "?", "&", "=", "#", "/", "//", "../../etc/passwd", "..", ".", "Patient/", "/Patient",
    "Patient//x", "Patient/x/_history/1", "Patient/x/_history/abc", "http://",
    "http://evil.example/fhir/Patient/1", "urn:uuid:", "urn:oid:",
    "urn:oid:2.16.840.1.113883.2.4.6.3|999999011",
    "http://fhir.nl/fhir/NamingSystem/bsn|999999011", "<script>alert(1)</script>",
    "${jndi:ldap://x/a}", "{{7*7}}", "\u{0}", "a\u{0}b", "\u{1}\u{1f}", "\u{7f}", "\u{feff}",
    "\u{202e}gnp.exe", "😀", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "Ångström", "ß", "İ", "\u{10ffff}", "\u{fffd}", "null",
    "true", "0", "-1", "1e309", "9223372036854775808", "-9223372036854775809", "NaN", "ge",
    "eq", "ap2020", "gt2020-13-45", "2020-02-30", "2020-02-29T25:61:61Z", "0000-01-01",
    "9999-12-31T23:59:59.999999999+14:00", "2020-01-01T00:00:00-24:00", "le-1", "sa", "eb9999",
    "ne2020", "  ", "\t", "\r\n", "missing", "true,false", "Patient", "Patient?x=1",
    "requested", "999999011",
];

#[rustfmt::skip]
const ALPHABETS: &[&str] = &[
    "abcxyz", "é Ü ß", "😀🙂", "\u{0}\u{1}a", "|,\\$", "0123456789",
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
