//! More than 10,000 generated malformed and hostile requests against each backend
//! (generators in `hostile_gen.rs`, fixed seed): mutated referrals, injection strings in
//! every search parameter of every type, odd ids, methods and paths, NUL bytes, huge
//! and long values, deep nesting, bad headers. Nothing may answer 5xx; every error is
//! an OperationOutcome (`application/fhir+json`); and every version the database holds
//! afterwards was written by a request that was answered 2xx (nothing refused is
//! stored), while every acknowledged write is there.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Method;
use serde_json::Value;
use wor_hub::config::InitialDirectory;

use crate::helpers::{link, spawn, Backend, TestApp};
use crate::hostile_gen::{self, Catalog, Hostile};

const SEED: u64 = 0x00C0_FFEE_2026_0011;
const REQUESTS: usize = 10_400;
/// Requests in flight at once.
const PARALLEL: usize = 8;
const FIXTURE: &str = include_str!("../fixtures/referral-transaction.json");

/// `(type, id, version)`
type VersionKey = (String, String, i64);

/// The generated requests, in a fixed mix.
fn generate(cat: &Catalog) -> Vec<Hostile> {
    let mut rng = fastrand::Rng::with_seed(SEED);
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    (0..REQUESTS)
        .map(|n| match rng.u32(0..100) {
            0..=37 => hostile_gen::search(&mut rng, cat),
            38..=45 => hostile_gen::result_params(&mut rng, cat),
            46..=60 => hostile_gen::odd_path(&mut rng, cat, &fixture),
            61..=83 => hostile_gen::referral(&mut rng, FIXTURE, n),
            84..=87 => hostile_gen::huge(&mut rng, n),
            _ => hostile_gen::bad_header(&mut rng, FIXTURE, n),
        })
        .collect()
}

/// What one response told us.
struct Answer {
    status: u16,
    /// Versions the response says were written (Location, Bundle entry locations).
    written: Vec<VersionKey>,
    /// (type, id) a 2xx DELETE named, whose new version carries no location.
    deleted: Vec<(String, String)>,
    /// Why this answer breaks the rules, if it does.
    problem: Option<String>,
}

/// `.../Type/id/_history/n` (absolute or relative) as a key.
fn version_key(location: &str) -> Option<VersionKey> {
    let parts: Vec<&str> = location.trim_end_matches('/').rsplit('/').take(4).collect();
    match parts.as_slice() {
        [vid, "_history", id, ty] => Some(((*ty).to_owned(), (*id).to_owned(), vid.parse().ok()?)),
        _ => None,
    }
}

fn build(client: &reqwest::Client, root: &str, h: &Hostile) -> reqwest::RequestBuilder {
    let mut req = client
        .request(h.method.clone(), format!("{root}{}", h.target))
        .timeout(Duration::from_secs(120));
    for (name, value) in &h.headers {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            req = req.header(HeaderName::from_static(name_lower(name)), value);
        }
    }
    if let Some(body) = &h.body {
        req = req.body(body.clone());
    }
    req
}

async fn send(client: &reqwest::Client, root: &str, h: &Hostile) -> Answer {
    // A kept-alive connection the server closed just as it was reused fails before
    // the request reached the server: try once more on a new connection.
    let res = match build(client, root, h).send().await {
        Ok(res) => Ok(res),
        Err(_) => build(client, root, h).send().await,
    };
    let res = match res {
        Ok(res) => res,
        Err(e) => {
            return Answer {
                status: 0,
                written: Vec::new(),
                deleted: Vec::new(),
                problem: Some(format!(
                    "{} {} [{}]: no answer: {e}",
                    h.kind,
                    h.method,
                    h.target.chars().take(160).collect::<String>()
                )),
            }
        }
    };
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let etag = res
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = res.bytes().await.unwrap_or_default();
    let mut answer = Answer {
        status,
        written: Vec::new(),
        deleted: Vec::new(),
        problem: None,
    };
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    if status >= 500 {
        answer.problem = Some("5xx".into());
    } else if status >= 400 && h.method != Method::HEAD {
        let outcome = body.as_ref().is_some_and(|b| {
            b["resourceType"] == "OperationOutcome"
                && b["issue"].as_array().is_some_and(|i| !i.is_empty())
        });
        if !content_type.starts_with("application/fhir+json") || !outcome {
            answer.problem = Some(format!(
                "error is not an OperationOutcome ({content_type:?})"
            ));
        }
    } else if (200..300).contains(&status) {
        if content_type.starts_with("application/fhir+json")
            && !bytes.is_empty()
            && body.is_none()
            && h.method != Method::HEAD
        {
            answer.problem = Some("2xx body is not JSON".into());
        }
        if let Some(key) = location.as_deref().and_then(version_key) {
            answer.written.push(key);
        }
        if h.method == Method::DELETE {
            let parts: Vec<&str> = h
                .target
                .split('?')
                .next()
                .unwrap_or_default()
                .split('/')
                .collect();
            if let [_, "fhir", ty, id] = parts.as_slice() {
                let vid = etag.as_deref().and_then(|e| {
                    e.trim_start_matches("W/")
                        .trim_matches('"')
                        .parse::<i64>()
                        .ok()
                });
                match vid {
                    Some(v) => answer.written.push(((*ty).to_owned(), (*id).to_owned(), v)),
                    None => answer.deleted.push(((*ty).to_owned(), (*id).to_owned())),
                }
            }
        }
        if let Some(b) = &body {
            if matches!(
                b["type"].as_str(),
                Some("transaction-response" | "batch-response")
            ) {
                bundle_writes(h, b, &mut answer);
            }
        }
    }
    if answer.problem.is_some() {
        let text = String::from_utf8_lossy(&bytes);
        let headers: Vec<String> = h
            .headers
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}: {}",
                    String::from_utf8_lossy(v)
                        .chars()
                        .take(60)
                        .collect::<String>()
                )
            })
            .collect();
        answer.problem = Some(format!(
            "{} {} [{}] {headers:?} {}: {} {}",
            h.kind,
            h.method,
            h.target.chars().take(160).collect::<String>(),
            status,
            answer.problem.take().unwrap_or_default(),
            text.chars().take(300).collect::<String>()
        ));
    }
    answer
}

fn name_lower(name: &'static str) -> &'static str {
    match name {
        "Content-Type" => "content-type",
        "Accept" => "accept",
        "X-Request-Id" => "x-request-id",
        "If-Match" => "if-match",
        "If-None-Match" => "if-none-match",
        "If-None-Exist" => "if-none-exist",
        "If-Modified-Since" => "if-modified-since",
        "Prefer" => "prefer",
        "X-Acting-Party" => "x-acting-party",
        "Host" => "host",
        "X-Forwarded-Host" => "x-forwarded-host",
        "X-Forwarded-Proto" => "x-forwarded-proto",
        "Forwarded" => "forwarded",
        "Content-Encoding" => "content-encoding",
        "Accept-Encoding" => "accept-encoding",
        "Expect" => "expect",
        "Range" => "range",
        other => panic!("header {other} missing from name_lower"),
    }
}

/// Versions a transaction or batch response reports written; DELETE entries (no
/// location) are matched with the request's entries by position.
fn bundle_writes(h: &Hostile, response: &Value, answer: &mut Answer) {
    let request: Option<Value> = h
        .body
        .as_deref()
        .and_then(|b| serde_json::from_slice(b).ok());
    for (i, entry) in response["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let r = &entry["response"];
        if !r["status"].as_str().is_some_and(|s| s.starts_with('2')) {
            continue;
        }
        match r["location"].as_str().and_then(version_key) {
            Some(key) => answer.written.push(key),
            None => {
                let req = request.as_ref().map(|b| &b["entry"][i]["request"]);
                if let Some(req) = req.filter(|r| r["method"] == "DELETE") {
                    let url = req["url"].as_str().unwrap_or_default();
                    let ty = url.split(['/', '?']).next().unwrap_or_default();
                    let id = url
                        .split('?')
                        .next()
                        .and_then(|p| p.split('/').nth(1))
                        .unwrap_or("*");
                    answer.deleted.push((ty.to_owned(), id.to_owned()));
                }
            }
        }
    }
}

/// Every version in the system history: key -> the stored body (None for a delete).
async fn all_versions(
    app: &TestApp,
    client: &reqwest::Client,
) -> HashMap<VersionKey, Option<Value>> {
    let mut out = HashMap::new();
    let mut url = app.url("_history?_count=1000");
    loop {
        let res = match client.get(&url).send().await {
            Ok(res) => res,
            Err(_) => client.get(&url).send().await.unwrap(),
        };
        assert_eq!(res.status(), 200);
        let page: Value = res.json().await.unwrap();
        for e in page["entry"].as_array().into_iter().flatten() {
            let full = e["fullUrl"].as_str().unwrap();
            let mut parts = full.rsplit('/');
            let id = parts.next().unwrap().to_owned();
            let ty = parts.next().unwrap().to_owned();
            let etag = e["response"]["etag"].as_str().unwrap();
            let vid = etag
                .trim_start_matches("W/")
                .trim_matches('"')
                .parse()
                .unwrap();
            let body = e.get("resource").cloned();
            out.insert((ty, id, vid), body);
        }
        match link(&page, "next") {
            Some(next) => url = next,
            None => return out,
        }
    }
}

async fn hostile_requests(backend: Backend) {
    let Some(app) = spawn(backend, |s| {
        // A directory, so that accepted referrals are routed (and create Tasks).
        s.initial_directory = InitialDirectory::Sample;
    })
    .await
    else {
        return;
    };
    let cs: Value = app.get("metadata").await.json().await.unwrap();
    let catalog = Catalog::from_capability_statement(&cs);
    assert!(
        catalog.params.len() > 50,
        "{} search parameters",
        catalog.params.len()
    );
    let requests = generate(&catalog);
    // Idle connections are dropped before the server's keep-alive (5 s) closes them.
    let client = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let root = app.base.trim_end_matches("/fhir").to_owned();
    let before = all_versions(&app, &client).await;

    let started = Instant::now();
    let answers: Vec<Answer> = futures_util::stream::iter(requests.iter())
        .map(|h| send(&client, &root, h))
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let elapsed = started.elapsed();

    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut written: BTreeSet<VersionKey> = BTreeSet::new();
    let mut deleted: BTreeSet<(String, String)> = BTreeSet::new();
    for a in answers {
        *statuses.entry(a.status).or_default() += 1;
        problems.extend(a.problem);
        written.extend(a.written);
        deleted.extend(a.deleted);
    }

    // Nothing refused is stored: each new version was reported by a 2xx answer, is
    // the deletion a 2xx DELETE named, or is what an accepted write does itself (the
    // Task routing creates for a new ServiceRequest, the ServiceRequest that follows a
    // Task). And each reported write is stored.
    let after = all_versions(&app, &client).await;
    let new: Vec<(&VersionKey, &Option<Value>)> = after
        .iter()
        .filter(|(k, _)| !before.contains_key(*k))
        .collect();
    let explained_ids: BTreeSet<(String, String)> = written
        .iter()
        .map(|(t, i, _)| (t.clone(), i.clone()))
        .collect();
    let mut unexplained = Vec::new();
    for ((ty, id, vid), body) in &new {
        let key = (ty.clone(), id.clone(), *vid);
        let focus_written = body
            .as_ref()
            .and_then(|b| b["focus"]["reference"].as_str())
            .and_then(|f| f.strip_prefix("ServiceRequest/"))
            .is_some_and(|sr| {
                explained_ids.contains(&("ServiceRequest".to_owned(), sr.to_owned()))
            });
        let routed_task = ty == "Task" && focus_written;
        let deletion = body.is_none()
            && (deleted.contains(&(ty.clone(), id.clone()))
                || deleted.contains(&(ty.clone(), "*".to_owned())));
        // A ServiceRequest follows a Task that an accepted request updated.
        let follows_task = ty == "ServiceRequest"
            && written.iter().any(|k| {
                k.0 == "Task"
                    && after
                        .get(k)
                        .and_then(|b| b.as_ref())
                        .and_then(|b| b["focus"]["reference"].as_str())
                        .is_some_and(|f| f == format!("ServiceRequest/{id}"))
            });
        if !(written.contains(&key) || routed_task || deletion || follows_task) {
            unexplained.push(key);
        }
    }
    let missing: Vec<&VersionKey> = written.iter().filter(|k| !after.contains_key(*k)).collect();

    let summary: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}={n}")).collect();
    println!(
        "hostile {backend:?}: {} requests (seed {SEED:#x}, {PARALLEL} in flight) in {elapsed:.1?}: {}; {} versions reported written, {} new versions stored",
        requests.len(),
        summary.join(" "),
        written.len(),
        new.len(),
    );
    assert!(
        problems.is_empty(),
        "{} of {} answers broke the rules; the first ones:\n{}",
        problems.len(),
        requests.len(),
        problems
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        unexplained.is_empty(),
        "stored without a 2xx answer: {:?}",
        &unexplained[..unexplained.len().min(20)]
    );
    assert!(
        missing.is_empty(),
        "answered 2xx but not stored: {:?}",
        &missing[..missing.len().min(20)]
    );
    assert!(
        statuses.keys().any(|s| (200..300).contains(s)),
        "nothing was accepted: {statuses:?}"
    );
}

#[tokio::test]
async fn hostile_requests_on_sqlite() {
    hostile_requests(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn hostile_requests_on_postgres() {
    hostile_requests(Backend::Postgres).await;
}
