//! No request may produce a 5xx at the HTTP edge (issue 11, items 17-19, 21, 22): request
//! ids, Host headers, slow clients, errors the framework answers, and a referral that is
//! safe to resubmit without `X-Request-Id`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use reqwest::Method;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::hardening::{expect_400_at, post_search, FORM};
use crate::helpers::{expect_outcome, has_issue, spawn, Backend, TestApp, FHIR_JSON};

backend_tests!(
    invalid_request_ids_are_refused,
    host_header_is_checked_without_base_url,
    framework_errors_are_outcomes,
    referral_sample_is_safe_to_resubmit,
);

const FIXTURE: &str = include_str!("../fixtures/referral-transaction.json");

async fn invalid_request_ids_are_refused(app: TestApp) {
    let post = |rid: HeaderValue| {
        app.request(Method::POST, "Patient")
            .header("Content-Type", FHIR_JSON)
            .header("X-Request-Id", rid)
            .body(json!({"resourceType": "Patient"}).to_string())
    };
    let too_long = "r".repeat(129);
    for rid in [
        "his 2026".as_bytes(),
        b"a/b",
        b"<script>",
        too_long.as_bytes(),
        b"caf\xe9",
        b"",
    ] {
        let res = post(HeaderValue::from_bytes(rid).unwrap())
            .send()
            .await
            .unwrap();
        // The refused id is not echoed; a generated one is.
        assert_ne!(res.headers()["x-request-id"].as_bytes(), rid);
        expect_400_at(res, "X-Request-Id").await;
    }
    let two = app
        .request(Method::GET, "metadata")
        .header("X-Request-Id", "one")
        .header("X-Request-Id", "two")
        .send()
        .await
        .unwrap();
    expect_400_at(two, "X-Request-Id").await;
    assert_eq!(app.version_count("Patient").await, 0);
    // The documented syntax, at its longest, is accepted and echoed.
    let ok = format!("his-1.2:3_{}", "x".repeat(118));
    let res = post(HeaderValue::from_str(&ok).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["x-request-id"], ok.as_str());
}

async fn host_header_is_checked_without_base_url(app: TestApp) {
    let create = |headers: &[(&str, &str)]| {
        let mut req = app
            .request(Method::POST, "Patient")
            .header("Content-Type", FHIR_JSON)
            .body(json!({"resourceType": "Patient"}).to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    for (headers, named) in [
        (vec![("Host", "a\"b<script>")], "Host"),
        (vec![("Host", "hub.example:99999")], "Host"),
        (vec![("Host", "user@hub.example")], "Host"),
        (
            vec![("X-Forwarded-Host", "evil.example/x")],
            "X-Forwarded-Host",
        ),
        (vec![("Forwarded", "host=\"a b\";proto=https")], "Forwarded"),
        (
            vec![("X-Forwarded-Proto", "javascript")],
            "X-Forwarded-Proto",
        ),
    ] {
        let res = create(&headers).await.unwrap();
        expect_400_at(res, named).await;
        // Searches build links from the base too.
        let mut req = app.request(Method::GET, "Patient");
        for (k, v) in &headers {
            req = req.header(*k, *v);
        }
        expect_400_at(req.send().await.unwrap(), named).await;
    }
    assert_eq!(app.version_count("Patient").await, 0);
    // A valid Host (and a proxy's forwarded one) is used as is.
    let res = create(&[("Host", "hub.example:8443")]).await.unwrap();
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("http://hub.example:8443/fhir/Patient/"),
        "{location}"
    );
    let res = create(&[
        ("X-Forwarded-Host", "[::1]:8080"),
        ("X-Forwarded-Proto", "https"),
    ])
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("https://[::1]:8080/fhir/"),
        "{location}"
    );
}

async fn configured_base_url_ignores_the_host(backend: Backend) {
    let Some(app) = spawn(backend, |s| {
        s.base_url = Some("https://hub.example.nl/fhir".into());
    })
    .await
    else {
        return;
    };
    let res = app
        .request(Method::POST, "Patient")
        .header("Content-Type", FHIR_JSON)
        .header("Host", "a\"b<script>")
        .body(json!({"resourceType": "Patient"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://hub.example.nl/fhir/Patient/"),
        "{location}"
    );
}

#[tokio::test]
async fn configured_base_url_ignores_the_host_on_sqlite() {
    configured_base_url_ignores_the_host(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn configured_base_url_ignores_the_host_on_postgres() {
    configured_base_url_ignores_the_host(Backend::Postgres).await;
}

/// Sends `head` (and `body`) on a fresh connection, waits for the whole answer (the
/// server closes the connection) and returns it with the time it took.
async fn raw_exchange(app: &TestApp, bytes: Vec<u8>) -> (String, Duration) {
    let addr = app
        .base
        .trim_start_matches("http://")
        .trim_end_matches("/fhir")
        .to_owned();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.write_all(&bytes).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        (
            String::from_utf8_lossy(&out).into_owned(),
            started.elapsed(),
        )
    })
    .await
    .unwrap()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

fn body_of(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

async fn framework_errors_are_outcomes(app: TestApp) {
    // A body declared over the limit: 413 with an OperationOutcome, for a resource and
    // for a form (actix's own form-body reader used to answer in plain text).
    for (path, content_type) in [
        ("/fhir/Patient", FHIR_JSON),
        ("/fhir/Patient/_search", FORM),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: h\r\nContent-Type: {content_type}\r\n\
             Content-Length: 2000000\r\n\r\n"
        );
        let (answer, _) = raw_exchange(&app, head.into_bytes()).await;
        assert_eq!(status_of(&answer), 413, "{answer}");
        assert!(body_of(&answer).contains("\"too-long\""), "{answer}");
    }
    // A chunked body that breaks off: 400 with an OperationOutcome.
    let (answer, _) = raw_exchange(
        &app,
        b"POST /fhir/Patient HTTP/1.1\r\nHost: h\r\nContent-Type: application/fhir+json\r\n\
          Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
            .to_vec(),
    )
    .await;
    assert_eq!(status_of(&answer), 400, "{answer}");
    assert!(body_of(&answer).contains("OperationOutcome"), "{answer}");
    // What actix-http answers itself, before the application runs, has no body and
    // cannot be given one (README "Bad input"): a request line it cannot parse (400),
    // a head over its buffer (431). The connection is answered and closed.
    let (answer, _) = raw_exchange(&app, b"NOT HTTP AT ALL\r\n\r\n".to_vec()).await;
    assert_eq!(status_of(&answer), 400, "{answer}");
    let mut huge = b"GET /fhir/metadata HTTP/1.1\r\nHost: h\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 200_000));
    huge.extend_from_slice(b"\r\n\r\n");
    let (answer, _) = raw_exchange(&app, huge).await;
    assert_eq!(status_of(&answer), 431, "{answer}");
    assert_eq!(app.version_count("Patient").await, 0);
}

/// `POST _search` bodies obey `--max-body-bytes` like every other body.
async fn search_bodies_obey_the_body_limit(backend: Backend) {
    let Some(app) = spawn(backend, |s| s.max_body_bytes = 4096).await else {
        return;
    };
    let body = format!("name={}", "a".repeat(8000));
    let issues = expect_outcome(post_search(&app, "Patient", body).await, 413).await;
    assert!(has_issue(&issues, "too-long", None), "{issues:?}");
}

#[tokio::test]
async fn search_bodies_obey_the_body_limit_on_sqlite() {
    search_bodies_obey_the_body_limit(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn search_bodies_obey_the_body_limit_on_postgres() {
    search_bodies_obey_the_body_limit(Backend::Postgres).await;
}

/// A client that sends its head and then only part of its body gets 408 with an
/// OperationOutcome once `--body-timeout` has passed; a client that never finishes its
/// head gets actix's own 408 after `--head-timeout`.
async fn slow_clients_get_408(backend: Backend) {
    let Some(app) = spawn(backend, |s| {
        s.body_timeout = Duration::from_secs(1);
        s.head_timeout = Duration::from_secs(1);
    })
    .await
    else {
        return;
    };
    for (path, content_type, partial) in [
        ("/fhir/Patient", FHIR_JSON, "{\"resourceType\": \"Pat"),
        ("/fhir/Patient/_search", FORM, "name=Jan"),
        ("/fhir", FHIR_JSON, "{\"resourceType\": \"Bundle\""),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: h\r\nContent-Type: {content_type}\r\n\
             Content-Length: 1000\r\n\r\n{partial}"
        );
        let (answer, took) = raw_exchange(&app, head.into_bytes()).await;
        assert_eq!(status_of(&answer), 408, "{path}: {answer}");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("content-type: application/fhir+json"),
            "{answer}"
        );
        let outcome: Value = serde_json::from_str(body_of(&answer)).unwrap();
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(10),
            "{path}: {took:?}"
        );
    }
    let (answer, took) =
        raw_exchange(&app, b"GET /fhir/metadata HTTP/1.1\r\nHost: h\r\n".to_vec()).await;
    assert_eq!(status_of(&answer), 408, "{answer}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(app.version_count("Patient").await, 0);
}

#[tokio::test]
async fn slow_clients_get_408_on_sqlite() {
    slow_clients_get_408(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn slow_clients_get_408_on_postgres() {
    slow_clients_get_408(Backend::Postgres).await;
}

fn entry_statuses(response: &Value) -> Vec<String> {
    response["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap().to_owned())
        .collect()
}

/// The README's sample referral, resubmitted without `X-Request-Id` (a GP system that
/// lost the answer): every entry is conditional, so nothing is created twice.
async fn referral_sample_is_safe_to_resubmit(app: TestApp) {
    let res = app.post_text("", FIXTURE).await;
    assert_eq!(res.status(), 200);
    let first: Value = res.json().await.unwrap();
    assert_eq!(entry_statuses(&first), ["201 Created"; 5]);
    let res = app.post_text("", FIXTURE).await;
    assert_eq!(res.status(), 200);
    let second: Value = res.json().await.unwrap();
    assert_eq!(entry_statuses(&second), ["200 OK"; 5]);
    for (a, b) in first["entry"]
        .as_array()
        .unwrap()
        .iter()
        .zip(second["entry"].as_array().unwrap())
    {
        assert_eq!(a["response"]["location"], b["response"]["location"]);
    }
    for ty in [
        "Patient",
        "Organization",
        "Practitioner",
        "Consent",
        "ServiceRequest",
        "Task",
    ] {
        assert_eq!(app.version_count(ty).await, 1, "{ty}");
    }
}
