//! Operations (README "Metrics"): `GET /metrics` in the Prometheus text format, request
//! counts by route pattern, referral and outbox figures without any id; `/health/ready`
//! refusing while the schema is not this binary's.

use std::collections::BTreeMap;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, SqliteConnection};
use serde_json::Value;
use wor_hub::config::DatabaseUrl;

use crate::helpers::{is_overdue, load_sample, refer, spawn_on_clock, the_task, Backend, TestApp};
use crate::notifications::{subscription, wait_for_status};
use crate::receiver::{Mode, Receiver};

/// One scrape: the raw text and every sample, `name{labels}` -> value.
struct Scrape {
    text: String,
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    fn value(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in\n{}", self.text))
    }
}

async fn scrape(app: &TestApp) -> Scrape {
    let res = app
        .client
        .get(app.base.replace("/fhir", "/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "text/plain; version=0.0.4"
    );
    let text = res.text().await.unwrap();
    let samples = parse(&text);
    Scrape { text, samples }
}

/// Parses the text exposition format strictly enough to catch a malformed line:
/// `# HELP`/`# TYPE` comments, and `name{label="value",...} number` samples.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    let mut helped = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(!help.trim().is_empty(), "{line}");
            helped.push(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (_, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("not a number: {line}")),
        };
        let name = series.split('{').next().unwrap();
        assert!(
            name.starts_with("wor_hub_")
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| helped.iter().any(|h| h == f))
            .unwrap_or(name);
        assert!(helped.iter().any(|h| h == family), "no HELP for {line}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            }
        }
        samples.insert(series.to_owned(), value);
    }
    samples
}

fn requests(method: &str, route: &str, status: u16) -> String {
    format!(
        "wor_hub_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"
    )
}

fn id_of(resource: &Value) -> String {
    resource["id"].as_str().unwrap().to_owned()
}

async fn metrics_count_requests_referrals_and_the_outbox(app: TestApp) {
    load_sample(&app).await;
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let (sr, practitioner) = refer(&app, &today).await;
    let task = the_task(&app, &sr).await;
    let patient = task["for"]["reference"].as_str().unwrap().to_owned();
    // One Subscription whose receiver answers, one whose receiver fails the handshake.
    let good = Receiver::start().await;
    let bad = Receiver::start().await;
    bad.set_mode(Mode::Fail(500));
    let mut ids = vec![
        sr.clone(),
        id_of(&task),
        practitioner.clone(),
        patient.clone(),
    ];
    for (receiver, status) in [(&good, "active"), (&bad, "error")] {
        let res = app
            .post(
                "Subscription",
                &subscription(&receiver.url, None, "id-only"),
            )
            .await;
        assert_eq!(res.status(), 201);
        let id = id_of(&res.json().await.unwrap());
        wait_for_status(&app, &id, status).await;
        ids.push(id);
    }
    let first = scrape(&app).await;
    assert_eq!(first.value("wor_hub_tasks{status=\"requested\"}"), 1.0);
    assert_eq!(first.value("wor_hub_tasks{status=\"completed\"}"), 0.0);
    assert_eq!(
        first.value("wor_hub_service_requests{status=\"active\"}"),
        1.0
    );
    assert_eq!(first.value("wor_hub_tasks_unroutable"), 0.0);
    assert_eq!(first.value("wor_hub_tasks_overdue"), 0.0);
    assert_eq!(
        first.value("wor_hub_outbox_subscriptions{status=\"active\"}"),
        1.0
    );
    assert_eq!(
        first.value("wor_hub_outbox_subscriptions{status=\"error\"}"),
        1.0
    );
    assert_eq!(
        first.value("wor_hub_outbox_failing_subscriptions{status=\"error\"}"),
        1.0
    );
    assert!(first.value("wor_hub_outbox_backlog_events{status=\"active\"}") >= 0.0);
    assert!(first.value("wor_hub_notification_deliveries_total{outcome=\"delivered\"}") >= 1.0);
    assert!(first.value("wor_hub_notification_deliveries_total{outcome=\"failed\"}") >= 1.0);
    assert!(first.value("wor_hub_db_pool_max_connections") >= 1.0);
    assert!(first.value("wor_hub_db_pool_connections") >= 1.0);
    // SQLite writers wait for the write lock (if only a moment); PostgreSQL has none.
    let waits = first.value("wor_hub_db_write_lock_wait_seconds_count");
    match app.backend {
        Backend::Sqlite => assert!(waits >= 1.0),
        Backend::Postgres => assert_eq!(waits, 0.0),
    }

    // The transaction that referred the patient went to the FHIR base.
    assert!(first.value(&requests("POST", "/fhir", 200)) >= 1.0);

    // A read counts under its route pattern, never its path.
    let read = requests("GET", "/fhir/{type}/{id}", 200);
    let before = first.samples.get(&read).copied().unwrap_or(0.0);
    assert_eq!(app.get(&format!("ServiceRequest/{sr}")).await.status(), 200);
    // A conformance resource's route has a regular expression in its pattern: left out.
    assert_eq!(app.get("CodeSystem/task-flag").await.status(), 200);
    let missing = app.get("Patient/no-such-patient").await;
    assert_eq!(missing.status(), 404);
    let unknown = app
        .client
        .get(app.base.replace("/fhir", "/nowhere/999999011"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let second = scrape(&app).await;
    assert_eq!(second.value(&read), before + 2.0);
    assert!(!second.text.contains("{type:"), "{}", second.text);
    assert_eq!(
        second.value(&requests("GET", "/fhir/{type}/{id}", 404)),
        1.0
    );
    assert_eq!(second.value(&requests("GET", "unmatched", 404)), 1.0);
    assert!(second
        .text
        .contains("wor_hub_http_request_duration_seconds_bucket{"));
    assert!(second.value("wor_hub_http_request_duration_seconds_count{method=\"GET\",route=\"/fhir/{type}/{id}\",status=\"200\"}") >= 1.0);
    // No id, path or patient data in any label.
    ids.push("no-such-patient".into());
    ids.push("999999011".into());
    ids.push("nowhere".into());
    for text in [&first.text, &second.text] {
        for id in &ids {
            let bare = id.rsplit('/').next().unwrap();
            assert!(!text.contains(bare), "{bare} in\n{text}");
        }
        assert!(!text.contains("de Vries"));
    }
}

async fn an_unroutable_referral_is_counted(app: TestApp) {
    // No directory: no organisation serves the patient.
    let (sr, _) = refer(&app, "2026-11-20").await;
    let task = the_task(&app, &sr).await;
    assert_eq!(task["businessStatus"]["coding"][0]["code"], "unroutable");
    let s = scrape(&app).await;
    assert_eq!(s.value("wor_hub_tasks_unroutable"), 1.0);
    assert_eq!(s.value("wor_hub_tasks{status=\"requested\"}"), 1.0);
}

/// A Task past the contact deadline is counted once the job tagged it.
async fn overdue_tasks_are_counted(backend: Backend) {
    let (app, clock) = spawn_on_clock(backend).await.unwrap();
    load_sample(&app).await;
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let (sr, _) = refer(&app, &today).await;
    clock.advance(Duration::from_secs(15 * 86_400));
    for _ in 0..100 {
        if is_overdue(&the_task(&app, &sr).await) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(is_overdue(&the_task(&app, &sr).await));
    let s = scrape(&app).await;
    assert_eq!(s.value("wor_hub_tasks_overdue"), 1.0);
    assert_eq!(s.value("wor_hub_tasks_unroutable"), 0.0);
}

#[tokio::test]
async fn overdue_tasks_are_counted_on_sqlite() {
    overdue_tasks_are_counted(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn overdue_tasks_are_counted_on_postgres() {
    overdue_tasks_are_counted(Backend::Postgres).await;
}

/// `--metrics false`: 404, as any path the server does not serve.
#[tokio::test]
async fn metrics_can_be_turned_off() {
    let app = crate::helpers::spawn(Backend::Sqlite, |s| s.metrics = false)
        .await
        .unwrap();
    let res = app
        .client
        .get(app.base.replace("/fhir", "/metrics"))
        .send()
        .await
        .unwrap();
    crate::helpers::expect_outcome(res, 404).await;
}

/// Runs SQL on the test app's database, beside the server.
fn run_sql(app: &TestApp, sql: &str) {
    match &app.database {
        DatabaseUrl::Sqlite(path) => {
            let mut c = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
            c.batch_execute("PRAGMA busy_timeout = 5000").unwrap();
            c.batch_execute(sql).expect(sql);
        }
        DatabaseUrl::Postgres(url) => {
            let mut c = PgConnection::establish(url).unwrap();
            c.batch_execute(sql).expect(sql);
        }
    }
}

async fn ready(app: &TestApp) -> reqwest::Response {
    app.client
        .get(app.base.replace("/fhir", "/health/ready"))
        .send()
        .await
        .unwrap()
}

async fn ready_while_the_database_answers_with_this_schema(app: TestApp) {
    let res = ready(&app).await;
    assert_eq!(res.status(), 200);
    let live = app
        .client
        .get(app.base.replace("/fhir", "/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
}

async fn not_ready_while_migrations_are_pending_or_unknown(app: TestApp) {
    const TABLE: &str = "__diesel_schema_migrations";
    // This binary's newest migration as if it had not run.
    run_sql(
        &app,
        &format!(
            "CREATE TABLE newest_migration AS SELECT * FROM {TABLE} \
             WHERE version = (SELECT MAX(version) FROM {TABLE}); \
             DELETE FROM {TABLE} WHERE version = (SELECT MAX(version) FROM {TABLE})"
        ),
    );
    let res = ready(&app).await;
    assert_eq!(res.headers()["retry-after"], "2");
    let issues = crate::helpers::expect_outcome(res, 503).await;
    assert!(crate::helpers::has_issue(&issues, "transient", None));
    assert!(
        issues[0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("migrations are pending"),
        "{issues:?}"
    );
    // Applied again: ready.
    run_sql(
        &app,
        &format!("INSERT INTO {TABLE} SELECT * FROM newest_migration"),
    );
    assert_eq!(ready(&app).await.status(), 200);
    // A newer binary's migration this one does not know.
    run_sql(
        &app,
        &format!("INSERT INTO {TABLE} (version) VALUES ('99991231235959')"),
    );
    let issues = crate::helpers::expect_outcome(ready(&app).await, 503).await;
    assert!(
        issues[0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("does not know: 99991231235959"),
        "{issues:?}"
    );
}

crate::backend_tests!(
    metrics_count_requests_referrals_and_the_outbox,
    an_unroutable_referral_is_counted,
    ready_while_the_database_answers_with_this_schema,
    not_ready_while_migrations_are_pending_or_unknown,
);
