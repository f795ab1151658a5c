//! Test harness: the real server (production wiring via `Application::build`) on a
//! random loopback port, with a fresh database per test: a temp SQLite file, or a new
//! PostgreSQL database on the server named by `WOR_HUB_TEST_POSTGRES_URL`.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use reqwest::{Method, Response};
use serde_json::{json, Value};
use wor_hub::clock::Clock;
use wor_hub::config::{DatabaseUrl, Settings};
use wor_hub::startup::Application;

pub const FHIR_JSON: &str = "application/fhir+json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    /// `http://127.0.0.1:PORT/fhir`
    pub base: String,
    pub backend: Backend,
    pub client: reqwest::Client,
    /// Only for SQLite: the directory holding the database file.
    pub _dir: Option<tempfile::TempDir>,
    /// Only for PostgreSQL: the test database's name.
    pub pg_database: Option<String>,
    /// The database the server runs on, for tests that load operator tables directly.
    pub database: DatabaseUrl,
    /// Database transactions the server has committed (reads and writes).
    pub commits: wor_hub::store::CommitCounter,
}

/// The PostgreSQL database a test app runs on.
pub fn database_of(app: &TestApp) -> String {
    app.pg_database.clone().expect("a PostgreSQL test app")
}

/// The variable naming the test PostgreSQL server. Without it (and without `CI`, where a
/// missing PostgreSQL must fail) build.rs leaves `cfg(wor_hub_postgres_tests)` unset, and
/// every PostgreSQL test, marked
/// `#[cfg_attr(not(wor_hub_postgres_tests), ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL")]`,
/// is reported as ignored with that reason instead of passing without running.
pub const POSTGRES_URL_VAR: &str = "WOR_HUB_TEST_POSTGRES_URL";

/// The test PostgreSQL server's admin URL. Panics when it is not set: the PostgreSQL
/// tests are ignored then (see build.rs), so reaching this means the run asked for
/// them (`--include-ignored`, or CI) and must not pass without running them.
pub fn postgres_admin_url() -> String {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI must set {POSTGRES_URL_VAR} (see .ci/run)")
        }
        _ => panic!("set {POSTGRES_URL_VAR} to run the PostgreSQL variants"),
    }
}

/// Starts the app on `backend`. Always `Some`: a PostgreSQL variant without
/// PostgreSQL panics (see [`postgres_admin_url`]); the `Option` is kept so callers
/// written against the earlier skip-as-None contract still compile.
pub async fn spawn(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Option<TestApp> {
    // `WOR_HUB_TEST_LOG=warn` (an EnvFilter) shows the servers' logs, to diagnose a failure.
    if let Ok(filter) = std::env::var("WOR_HUB_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    let (database, dir, pg_database) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            (
                DatabaseUrl::Sqlite(dir.path().join("hub.db")),
                Some(dir),
                None,
            )
        }
        Backend::Postgres => {
            let (db_url, name) = fresh_pg_database(&postgres_admin_url());
            (DatabaseUrl::Postgres(db_url), None, Some(name))
        }
    };
    let mut settings = Settings::for_database(database);
    settings.db_pool_size = 4;
    tweak(&mut settings);
    let app = Application::build(&settings).await.expect("app starts");
    let database = settings.database.clone();
    let port = app.port();
    let commits = app.commits();
    tokio::spawn(app.run_until_stopped());
    Some(TestApp {
        base: format!("http://127.0.0.1:{port}/fhir"),
        backend,
        client: reqwest::Client::new(),
        _dir: dir,
        pg_database,
        database,
        commits,
    })
}

/// A fresh, empty database for tests that run the binary or open a `Store` themselves:
/// its `--database-url` and, for SQLite, the directory to keep alive. Always `Some`
/// (as [`spawn`]).
pub fn fresh_database(backend: Backend) -> Option<(String, Option<tempfile::TempDir>)> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("hub.db").to_string_lossy().into_owned();
            Some((path, Some(dir)))
        }
        Backend::Postgres => Some((fresh_pg_database(&postgres_admin_url()).0, None)),
    }
}

/// Creates an empty database and returns its URL (same server and credentials) and name.
fn fresh_pg_database(admin_url: &str) -> (String, String) {
    let name = format!("wor_hub_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::establish(admin_url).expect("connect to test PostgreSQL");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create test database");
    (
        wor_hub::config::postgres_database_url(admin_url, &name),
        name,
    )
}

impl TestApp {
    /// SQLite: waits until the reads' audit records are in `audit_events` (they are
    /// on disk in the journal when a read answers; the journal mover brings them in
    /// within 200 ms), for tests that read the table directly. PostgreSQL writes them
    /// with the read.
    pub fn audit_moved(&self) {
        let Some(dir) = self._dir.as_ref() else {
            return;
        };
        for _ in 0..300 {
            let journalled = std::fs::read_dir(dir.path())
                .expect("the test database's directory")
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().contains("-audit-journal."));
            if !journalled {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("journalled audit records were not moved within 3 s");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("GET")
    }

    /// POSTs raw text as FHIR JSON.
    pub async fn post_text(&self, path: &str, body: &str) -> Response {
        self.request(Method::POST, path)
            .header("Content-Type", FHIR_JSON)
            .body(body.to_owned())
            .send()
            .await
            .expect("POST")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.post_text(path, &body.to_string()).await
    }

    /// POSTs `body` as FHIR JSON, acting as `party` (`X-Acting-Party`).
    pub async fn post_as(&self, path: &str, party: &str, body: &Value) -> Response {
        self.request(Method::POST, path)
            .header("Content-Type", FHIR_JSON)
            .header("X-Acting-Party", party)
            .body(body.to_string())
            .send()
            .await
            .expect("POST")
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.request(Method::PUT, path)
            .header("Content-Type", FHIR_JSON)
            .body(body.to_string())
            .send()
            .await
            .expect("PUT")
    }

    /// Creates a resource and returns its stored JSON.
    pub async fn create(&self, body: &Value) -> Value {
        let ty = body["resourceType"].as_str().expect("resourceType");
        let res = self.post(ty, body).await;
        assert_eq!(res.status(), 201, "create {ty} on {:?}", self.backend);
        res.json().await.expect("json")
    }

    /// Number of stored versions of a type (type-level history), to prove a refused
    /// request changed nothing.
    pub async fn version_count(&self, resource_type: &str) -> usize {
        let res = self
            .get(&format!("{resource_type}/_history?_count=1000"))
            .await;
        assert_eq!(res.status(), 200);
        let bundle: Value = res.json().await.expect("json");
        bundle["entry"].as_array().map_or(0, Vec::len)
    }
}

/// Asserts status and content type, and returns the OperationOutcome's issues.
pub async fn expect_outcome(res: Response, status: u16) -> Vec<Value> {
    assert_eq!(res.status(), status, "unexpected status");
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with(FHIR_JSON), "content type {ct}");
    let body: Value = res.json().await.expect("OperationOutcome JSON");
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    body["issue"].as_array().cloned().unwrap_or_default()
}

/// True when some issue has this code and, if given, this expression.
pub fn has_issue(issues: &[Value], code: &str, expression: Option<&str>) -> bool {
    issues.iter().any(|i| {
        i["code"] == code
            && expression.is_none_or(|e| {
                i["expression"]
                    .as_array()
                    .is_some_and(|xs| xs.iter().any(|x| x == e))
            })
    })
}

/// Generates one `#[tokio::test]` per backend for each named `async fn(TestApp)`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let app = $crate::helpers::spawn($crate::helpers::Backend::Sqlite, |_| {})
                        .await
                        .expect("SQLite app");
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                #[cfg_attr(
                    not(wor_hub_postgres_tests),
                    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
                )]
                async fn $name() {
                    let app = $crate::helpers::spawn($crate::helpers::Backend::Postgres, |_| {})
                        .await
                        .expect("PostgreSQL app");
                    super::$name(app).await;
                }
            )*
        }
    };
}

/// True when some issue names this expression, whatever its code.
pub fn has_expression(issues: &[Value], expression: &str) -> bool {
    issues.iter().any(|i| {
        i["expression"]
            .as_array()
            .is_some_and(|xs| xs.iter().any(|x| x == expression))
    })
}

/// The url of a Bundle's link with this relation (`next`, `previous`, ...).
pub fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .and_then(|l| l["url"].as_str())
        .map(str::to_owned)
}

/// A transaction that creates a Task the way a client may (Task creation rules, README
/// "Referral workflow"): a new active referral for stored `Patient/<patient>` and the
/// `requested` Task that fulfils it, owned by stored `owner` (`Organization/<id>`),
/// authored today; `extra` members replace or add Task members. Routing adds no Task
/// of its own, since the referral has one.
pub fn task_transaction(patient: &str, owner: &str, extra: &Value) -> Value {
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let referral = "urn:uuid:7d4f0c2e-1b3a-4e5f-8a9b-0c1d2e3f4a5b";
    let mut task = serde_json::json!({
        "resourceType": "Task", "status": "requested", "intent": "order",
        "focus": {"reference": referral},
        "for": {"reference": format!("Patient/{patient}")},
        "owner": {"reference": owner},
        "authoredOn": today,
    });
    for (key, value) in extra.as_object().into_iter().flatten() {
        task[key] = value.clone();
    }
    serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": referral,
         "resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                      "subject": {"reference": format!("Patient/{patient}")}, "authoredOn": today},
         "request": {"method": "POST", "url": "ServiceRequest"}},
        {"resource": task, "request": {"method": "POST", "url": "Task"}},
    ]})
}

impl TestApp {
    /// Creates a Task with [`task_transaction`] (open mode: any party) and returns it
    /// as stored.
    pub async fn create_task(&self, patient: &str, owner: &str, extra: &Value) -> Value {
        let res = self
            .request(Method::POST, "")
            .header("Content-Type", FHIR_JSON)
            .header("Prefer", "return=representation")
            .body(task_transaction(patient, owner, extra).to_string())
            .send()
            .await
            .expect("POST");
        let status = res.status();
        let body: Value = res.json().await.expect("json");
        assert_eq!(status, 200, "create Task: {body}");
        body["entry"][1]["resource"].clone()
    }
}

/// A test app on a clock the test moves forward, checking deadlines every 100 ms.
pub async fn spawn_on_clock(backend: Backend) -> Option<(TestApp, Clock)> {
    let clock = Clock::default();
    let shared = clock.clone();
    let app = spawn(backend, move |s| {
        s.clock = shared;
        s.overdue_check_interval = Duration::from_millis(100);
    })
    .await?;
    Some((app, clock))
}

// The referral workflow: the sample directory, a GP's referral, moving its Task.

pub const OWNER: &str = "Organization/tom-in-de-buurt";
pub const FALLBACK: &str = "Organization/fallback-welzijn";
pub const BUSINESS: &str = "https://wor-hub.nl/fhir/CodeSystem/task-business-status";
pub const FLAG: &str = "https://wor-hub.nl/fhir/CodeSystem/task-flag";

/// A referral as a GP system sends it: Practitioner, Patient (67, Boskoop) and the
/// ServiceRequest in one transaction. Returns (ServiceRequest id, `Practitioner/<id>`).
pub async fn refer(app: &TestApp, authored_on: &str) -> (String, String) {
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000003",
             "resource": {"resourceType": "Practitioner", "name": [{"family": "de Vries"}]},
             "request": {"method": "POST", "url": "Practitioner"}},
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
             "resource": {"resourceType": "Patient", "birthDate": "1959-04-02",
                          "address": [{"use": "home", "district": "Alphen aan den Rijn", "postalCode": "2771 AB"}]},
             "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000002",
             "resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                          "code": {"text": "Welzijn op Recept"},
                          "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"},
                          "requester": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000003"},
                          "authoredOn": authored_on},
             "request": {"method": "POST", "url": "ServiceRequest"}},
        ],
    });
    let res = app.post("", &bundle).await;
    assert_eq!(res.status(), 200, "referral accepted");
    let body: Value = res.json().await.unwrap();
    let id_of = |i: usize| {
        let location = body["entry"][i]["response"]["location"].as_str().unwrap();
        location.split('/').nth_back(2).unwrap().to_owned()
    };
    (id_of(2), format!("Practitioner/{}", id_of(0)))
}

pub async fn load_sample(app: &TestApp) {
    let res = app
        .post_text("", wor_hub::api::directory::SAMPLE_DIRECTORY)
        .await;
    assert_eq!(res.status(), 200);
}

/// The Tasks for a referral, oldest first.
pub async fn tasks_for(app: &TestApp, sr: &str) -> Vec<Value> {
    let res = app
        .get(&format!(
            "Task?focus=ServiceRequest/{sr}&_sort=_lastUpdated"
        ))
        .await;
    assert_eq!(res.status(), 200);
    let bundle: Value = res.json().await.unwrap();
    let mut tasks: Vec<Value> = bundle["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e["resource"].clone())
        .collect();
    tasks.sort_by_key(|t| t["authoredOn"].as_str().unwrap_or_default().to_owned());
    tasks
}

pub async fn the_task(app: &TestApp, sr: &str) -> Value {
    let tasks = tasks_for(app, sr).await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    tasks[0].clone()
}

/// PUTs `task` with If-Match from its meta.versionId, acting as `party`.
pub async fn put_task(app: &TestApp, party: Option<&str>, task: &Value) -> Response {
    let id = task["id"].as_str().unwrap();
    let version = task["meta"]["versionId"].as_str().unwrap();
    let mut req = app
        .request(Method::PUT, &format!("Task/{id}"))
        .header("Content-Type", FHIR_JSON)
        .header("If-Match", format!("W/\"{version}\""));
    if let Some(p) = party {
        req = req.header("X-Acting-Party", p);
    }
    req.body(task.to_string()).send().await.unwrap()
}

/// The Task moved to `status` (with `business` and `reason` when given).
pub fn moved(task: &Value, status: &str, business: Option<&str>, reason: Option<&str>) -> Value {
    let mut t = task.clone();
    t["status"] = json!(status);
    if let Some(code) = business {
        t["businessStatus"] = json!({"coding": [{"system": BUSINESS, "code": code}]});
    }
    if let Some(text) = reason {
        t["statusReason"] = json!({"text": text});
    }
    t
}

/// Moves the Task as `party` and returns the stored result.
pub async fn step(
    app: &TestApp,
    party: &str,
    task: &Value,
    status: &str,
    business: Option<&str>,
    reason: Option<&str>,
) -> Value {
    let res = put_task(app, Some(party), &moved(task, status, business, reason)).await;
    assert_eq!(res.status(), 200, "{status}: {}", res.text().await.unwrap());
    res.json().await.unwrap()
}

pub async fn current(app: &TestApp, path: &str) -> Value {
    let res = app.get(path).await;
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

/// Asserts that `party` moving `from` to `to` gets 422 `business-rule` naming both
/// statuses (a business rule, not a version conflict: R4 keeps 409/412 for those).
pub async fn refuse(app: &TestApp, from: Value, to: &str, party: &str) {
    let res = put_task(app, Some(party), &moved(&from, to, None, Some("why"))).await;
    let issues = expect_outcome(res, 422).await;
    let text = issues[0]["diagnostics"].as_str().unwrap().to_owned();
    let from_status = from["status"].as_str().unwrap();
    assert!(
        text.contains(&format!("is {from_status}")) && text.contains(to),
        "{from_status} -> {to}: {text}"
    );
    assert!(has_issue(&issues, "business-rule", Some("Task.status")));
}

/// A second adult service in Alphen aan den Rijn, priority 2.
pub async fn add_fallback(app: &TestApp) {
    let org = json!({"resourceType": "Organization", "id": "fallback-welzijn", "active": true, "name": "Fallback Welzijn"});
    assert_eq!(
        app.put("Organization/fallback-welzijn", &org)
            .await
            .status(),
        201
    );
    let service = json!({
        "resourceType": "HealthcareService",
        "id": "wor-alphen-fallback",
        "extension": [
            {"url": "https://wor-hub.nl/fhir/StructureDefinition/municipality",
             "valueCoding": {"system": "https://wor-hub.nl/fhir/CodeSystem/cbs-municipality", "code": "GM0484"}},
            {"url": "https://wor-hub.nl/fhir/StructureDefinition/age-group", "valueCode": "18-plus"},
            {"url": "https://wor-hub.nl/fhir/StructureDefinition/routing-priority", "valuePositiveInt": 2}
        ],
        "active": true,
        "providedBy": {"reference": FALLBACK},
        "category": [{"coding": [{"system": "https://wor-hub.nl/fhir/CodeSystem/service-category", "code": "wor"}]}],
        "name": "Fallback WOR Alphen"
    });
    let res = app
        .put("HealthcareService/wor-alphen-fallback", &service)
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
}

pub fn is_overdue(task: &Value) -> bool {
    task["meta"]["tag"].as_array().is_some_and(|tags| {
        tags.iter()
            .any(|t| t["system"] == FLAG && t["code"] == "overdue")
    })
}
