//! The store's read door over HTTP: every read, search and history request commits
//! exactly one database transaction, and that transaction holds its one audit record
//! (both backends). A create commits exactly one too.

use std::time::Duration;

use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use wor_hub::config::DatabaseUrl;
use wor_hub::store::schema::audit_events;

use crate::backend_tests;
use crate::helpers::{database_of, link, TestApp, FHIR_JSON};

backend_tests!(
    a_read_or_search_commits_exactly_one_transaction,
    a_create_commits_exactly_one_transaction,
    a_replayed_write_is_audited,
    later_pages_are_for_the_principal_that_searched
);

/// `(request_id, interaction, resource_type, outcome)` of an audit record.
type AuditRow = (String, String, String, String);

/// A direct connection to the database the server runs on, to read `audit_events`.
enum AuditTable {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl AuditTable {
    fn open(app: &TestApp) -> Self {
        match &app.database {
            DatabaseUrl::Sqlite(path) => {
                let expected = app._dir.as_ref().unwrap().path().join("hub.db");
                assert_eq!(path, &expected, "the test app's SQLite file");
                Self::Sqlite(SqliteConnection::establish(path.to_str().unwrap()).unwrap())
            }
            DatabaseUrl::Postgres(url) => {
                assert!(
                    url.contains(&database_of(app)),
                    "the test app's PostgreSQL database"
                );
                Self::Postgres(PgConnection::establish(url).unwrap())
            }
        }
    }

    fn rows(&mut self) -> Vec<AuditRow> {
        let query = audit_events::table.order(audit_events::seq.asc()).select((
            audit_events::request_id,
            audit_events::interaction,
            audit_events::resource_type,
            audit_events::outcome,
        ));
        match self {
            Self::Sqlite(conn) => query.load(conn).unwrap(),
            Self::Postgres(conn) => query.load(conn).unwrap(),
        }
    }
}

/// Waits for the start-up jobs (the first overdue-marker round, housekeeping): ~300 ms,
/// then until the commit counter stays put.
async fn settle(app: &TestApp) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut last = app.commits.get();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = app.commits.get();
        if now == last {
            return;
        }
        last = now;
    }
    panic!("the commit counter never settled on {:?}", app.backend);
}

/// What one request cost: the transactions it committed and the audit records it left.
struct Cost {
    status: u16,
    body: Value,
    commits: u64,
    new_rows: Vec<AuditRow>,
    /// The request id the server answered with (`X-Request-Id`).
    request_id: String,
}

/// Sends `req` (with `X-Request-Id: request_id` when given) and measures it.
async fn measure(
    app: &TestApp,
    audit: &mut AuditTable,
    req: RequestBuilder,
    request_id: Option<&str>,
) -> Cost {
    app.audit_moved();
    let rows_before = audit.rows();
    let before = app.commits.get();
    let req = match request_id {
        Some(rid) => req.header("X-Request-Id", rid),
        None => req,
    };
    let res = req.send().await.unwrap();
    let commits = app.commits.get() - before;
    let status = res.status().as_u16();
    let answered = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Some(rid) = request_id {
        assert_eq!(answered, rid, "the server kept the client's request id");
    }
    let body = res.json().await.unwrap_or(Value::Null);
    app.audit_moved();
    let rows_after = audit.rows();
    assert!(
        rows_after.starts_with(&rows_before),
        "earlier audit records changed: {rows_before:?} -> {rows_after:?}"
    );
    Cost {
        status,
        body,
        commits,
        new_rows: rows_after[rows_before.len()..].to_vec(),
        request_id: answered,
    }
}

/// Asserts the request answered `status`, committed exactly one database transaction
/// and left exactly one audit record, its own, of `interaction` with `outcome`.
fn assert_one(
    app: &TestApp,
    what: &str,
    cost: &Cost,
    status: u16,
    interaction: &str,
    outcome: &str,
) {
    assert_audited(app, what, cost, status, interaction, outcome, 1);
}

/// As [`assert_one`], with `commits` database transactions.
fn assert_audited(
    app: &TestApp,
    what: &str,
    cost: &Cost,
    status: u16,
    interaction: &str,
    outcome: &str,
    commits: u64,
) {
    let backend = app.backend;
    assert_eq!(cost.status, status, "{what} on {backend:?}: {}", cost.body);
    assert_eq!(
        cost.commits, commits,
        "{what} on {backend:?}: database transactions committed"
    );
    assert_eq!(
        cost.new_rows.len(),
        1,
        "{what} on {backend:?}: audit records written: {:?}",
        cost.new_rows
    );
    let (rid, int, _, out) = &cost.new_rows[0];
    assert!(
        !cost.request_id.is_empty(),
        "{what}: no X-Request-Id answered"
    );
    assert_eq!(
        rid, &cost.request_id,
        "{what} on {backend:?}: audit request id"
    );
    assert_eq!(int, interaction, "{what} on {backend:?}: audit interaction");
    assert_eq!(out, outcome, "{what} on {backend:?}: audit outcome");
}

/// Nothing commits later on behalf of the requests measured (a journal move on SQLite,
/// say): the counter and the audit trail stay put for a while.
async fn assert_quiet(app: &TestApp, audit: &mut AuditTable) {
    let commits = app.commits.get();
    let rows = audit.rows().len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        app.commits.get(),
        commits,
        "commits after the last answer on {:?}",
        app.backend
    );
    assert_eq!(
        audit.rows().len(),
        rows,
        "audit records after the last answer on {:?}",
        app.backend
    );
}

async fn a_read_or_search_commits_exactly_one_transaction(app: TestApp) {
    let id = app
        .create(&json!({"resourceType": "Patient", "active": true}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.create(&json!({"resourceType": "Patient", "active": false}))
        .await;
    settle(&app).await;
    let mut audit = AuditTable::open(&app);

    let get = |path: &str| app.request(Method::GET, path);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("read", format!("Patient/{id}"), 200, "read"),
        ("vread", format!("Patient/{id}/_history/1"), 200, "vread"),
        (
            "read of an unknown id",
            "Patient/unknown".into(),
            404,
            "read",
        ),
        (
            "search by _id",
            format!("Patient?_id={id}"),
            200,
            "search-type",
        ),
        (
            "_summary=count",
            "Patient?_summary=count".into(),
            200,
            "search-type",
        ),
        (
            "instance history",
            format!("Patient/{id}/_history"),
            200,
            "history-instance",
        ),
        (
            "type history",
            "Patient/_history".into(),
            200,
            "history-type",
        ),
        ("system history", "_history".into(), 200, "history-system"),
    ];
    for (n, (what, path, status, interaction)) in cases.into_iter().enumerate() {
        let rid = format!("door-read-{n}");
        let cost = measure(&app, &mut audit, get(&path), Some(&rid)).await;
        let outcome = if status == 404 {
            "not-found"
        } else {
            "success"
        };
        assert_one(&app, what, &cost, status, interaction, outcome);
        match what {
            "search by _id" => assert_eq!(cost.body["entry"].as_array().map(Vec::len), Some(1)),
            "_summary=count" => assert_eq!(cost.body["total"], 2, "{}", cost.body),
            "type history" => assert_eq!(cost.body["entry"].as_array().map(Vec::len), Some(2)),
            _ => {}
        }
    }

    // A first page that stores its paging snapshot, then a later page from it.
    let before = app.commits.get();
    let mut first = measure(
        &app,
        &mut audit,
        get("Patient?_count=1"),
        Some("door-first-page"),
    )
    .await;
    // SQLite: the read's own (read-only) transaction, then the snapshot's unit of work
    // (queued for the group commit before the page answers, committed without the
    // page waiting for it); PostgreSQL stores the snapshot in the read's.
    let commits = if matches!(app.database, DatabaseUrl::Sqlite(_)) {
        2
    } else {
        1
    };
    for _ in 0..100 {
        if app.commits.get() - before >= commits {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.commits = app.commits.get() - before;
    assert_audited(
        &app,
        "first page",
        &first,
        200,
        "search-type",
        "success",
        commits,
    );
    assert_eq!(first.body["entry"].as_array().map(Vec::len), Some(1));
    let next = link(&first.body, "next").unwrap_or_else(|| panic!("a next link: {}", first.body));
    assert!(next.contains("_getpages="), "{next}");
    let later = measure(
        &app,
        &mut audit,
        app.client.get(&next),
        Some("door-later-page"),
    )
    .await;
    assert_one(&app, "later page", &later, 200, "search-type", "success");
    assert_eq!(later.body["entry"].as_array().map(Vec::len), Some(1));
    assert_ne!(
        later.body["entry"][0]["resource"]["id"], first.body["entry"][0]["resource"]["id"],
        "the later page holds the other Patient"
    );

    assert_quiet(&app, &mut audit).await;
}

async fn a_create_commits_exactly_one_transaction(app: TestApp) {
    settle(&app).await;
    let mut audit = AuditTable::open(&app);
    let post = || {
        app.request(Method::POST, "Patient")
            .header("Content-Type", FHIR_JSON)
            .body(json!({"resourceType": "Patient", "active": true}).to_string())
    };
    let cost = measure(&app, &mut audit, post(), None).await;
    assert_one(&app, "create", &cost, 201, "create", "success");
    // With a client request id, the reply is stored for replays in the same transaction.
    let cost = measure(&app, &mut audit, post(), Some("door-create-idempotent")).await;
    assert_one(&app, "idempotent create", &cost, 201, "create", "success");
    assert_quiet(&app, &mut audit).await;
}

/// The answer a replay hands out is an access too: it leaves a `replay` audit record
/// naming the resource.
async fn a_replayed_write_is_audited(app: TestApp) {
    settle(&app).await;
    let mut audit = AuditTable::open(&app);
    let body = json!({"resourceType": "Patient", "name": [{"family": "Replay"}]}).to_string();
    let send = || {
        app.request(Method::POST, "Patient")
            .header("Content-Type", FHIR_JSON)
            .body(body.clone())
    };
    let first = measure(&app, &mut audit, send(), Some("door-replay-1")).await;
    assert_eq!(first.status, 201);
    let again = measure(&app, &mut audit, send(), Some("door-replay-1")).await;
    assert_eq!(again.status, 201, "the stored answer");
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(
        again.new_rows,
        vec![(
            "door-replay-1".to_owned(),
            "replay".to_owned(),
            "Patient".to_owned(),
            "success".to_owned()
        )],
        "{:?}",
        app.backend
    );
}

/// A search's later pages are read by the principal that searched; another gets 410
/// (it would learn how many matches the first one saw).
async fn later_pages_are_for_the_principal_that_searched(app: TestApp) {
    for family in ["Page1", "Page2", "Page3"] {
        app.create(&json!({"resourceType": "Patient", "name": [{"family": family}]}))
            .await;
    }
    let first: Value = app
        .request(Method::GET, "Patient?_count=1")
        .header("X-Acting-Party", "coordinator")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let next = link(&first, "next").expect("a next link");
    let mine = app
        .client
        .get(&next)
        .header("X-Acting-Party", "coordinator")
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status(), 200);
    let theirs = app
        .client
        .get(&next)
        .header("X-Acting-Party", "Organization/someone-else")
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 410, "{:?}", app.backend);
}
