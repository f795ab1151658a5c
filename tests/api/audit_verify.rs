//! `wor-hub audit verify`: the hash chain of the audit trail holds on a fresh trail,
//! and a row edited or deleted with direct SQL is named (exit 1).

use std::process::{Command, Output};

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, SqliteConnection};
use reqwest::Method;
use serde_json::json;
use wor_hub::config::DatabaseUrl;

use crate::backend_tests;
use crate::cli::BIN;
use crate::helpers::TestApp;

backend_tests!(
    verify_names_an_edited_row_then_a_deleted_one,
    verify_notices_the_newest_row_deleted,
    concurrent_writers_and_readers_leave_one_intact_chain,
);

/// The test app's database, as `--database-url` takes it.
fn database_arg(app: &TestApp) -> String {
    match &app.database {
        DatabaseUrl::Sqlite(path) => path.to_string_lossy().into_owned(),
        DatabaseUrl::Postgres(url) => url.clone(),
    }
}

fn verify(app: &TestApp) -> Output {
    Command::new(BIN)
        .args(["audit", "verify", "--database-url", &database_arg(app)])
        .env_remove("WOR_HUB_CONFIG")
        .output()
        .expect("run wor-hub audit verify")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Direct SQL on the app's database, as an intruder with database access would.
enum Sql {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

#[derive(QueryableByName)]
struct One {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    outcome: String,
}

impl Sql {
    fn open(app: &TestApp) -> Self {
        match &app.database {
            DatabaseUrl::Sqlite(path) => {
                let mut c =
                    SqliteConnection::establish(&path.to_string_lossy()).expect("open SQLite");
                c.batch_execute("PRAGMA busy_timeout = 5000").unwrap();
                Self::Sqlite(c)
            }
            DatabaseUrl::Postgres(url) => {
                Self::Postgres(PgConnection::establish(url).expect("connect to PostgreSQL"))
            }
        }
    }

    fn run(&mut self, sql: &str) {
        match self {
            Self::Sqlite(c) => c.batch_execute(sql).expect(sql),
            Self::Postgres(c) => c.batch_execute(sql).expect(sql),
        }
    }

    /// The row at chain position `at` (the latest one when `at` is `None`).
    fn chained(&mut self, at: Option<i64>) -> One {
        let sql = match at {
            Some(at) => format!("SELECT seq, outcome FROM audit_events WHERE chain_pos = {at}"),
            None => "SELECT seq, outcome FROM audit_events WHERE chain_pos IS NOT NULL \
                     ORDER BY chain_pos DESC LIMIT 1"
                .to_owned(),
        };
        let mut rows: Vec<One> = match self {
            Self::Sqlite(c) => diesel::sql_query(sql).load(c).unwrap(),
            Self::Postgres(c) => diesel::sql_query(sql).load(c).unwrap(),
        };
        assert_eq!(rows.len(), 1, "one row at chain position {at:?}");
        rows.remove(0)
    }
}

impl Sql {
    /// The first chained row that names exactly one patient.
    fn with_patient(&mut self) -> i64 {
        let sql = "SELECT seq, outcome FROM audit_events WHERE chain_pos IS NOT NULL \
                   AND patients IS NOT NULL AND patients NOT LIKE '% %' ORDER BY seq LIMIT 1";
        let rows: Vec<One> = match self {
            Self::Sqlite(c) => diesel::sql_query(sql).load(c).unwrap(),
            Self::Postgres(c) => diesel::sql_query(sql).load(c).unwrap(),
        };
        rows.first().expect("a row with one patient").seq
    }
}

/// A patient created, read and searched: audit rows with and without patients.
async fn some_trail(app: &TestApp) {
    let created = app
        .create(&json!({"resourceType": "Patient", "gender": "female"}))
        .await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("Patient/{id}")).await.status(), 200);
    assert_eq!(app.get(&format!("Patient?_id={id}")).await.status(), 200);
    let res = app
        .request(Method::GET, "Task?status=requested")
        .header("X-Acting-Party", "coordinator")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.audit_moved();
}

fn intact(out: &Output) -> u64 {
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", text(&out.stderr));
    let rest = stdout
        .strip_prefix("audit trail intact: ")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        rest.ends_with("rows verified, 0 not yet sealed\n"),
        "{stdout}"
    );
    rest.split(' ').next().unwrap().parse().unwrap()
}

fn broken(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

async fn verify_names_an_edited_row_then_a_deleted_one(app: TestApp) {
    some_trail(&app).await;
    let rows = intact(&verify(&app));
    assert!(rows >= 4, "{rows}");

    let mut sql = Sql::open(&app);
    let second = sql.chained(Some(2));
    sql.run(&format!(
        "UPDATE audit_events SET outcome = 'forged' WHERE seq = {}",
        second.seq
    ));
    let stderr = broken(&verify(&app));
    assert!(
        stderr.contains(&format!("seq {}: hash mismatch (row edited)", second.seq)),
        "{stderr}"
    );
    // Put back as it was, the chain holds again (the hash covers the content only).
    sql.run(&format!(
        "UPDATE audit_events SET outcome = '{}' WHERE seq = {}",
        second.outcome, second.seq
    ));
    assert!(intact(&verify(&app)) >= rows);

    // Hiding a row from `AuditEvent?patient=` (its patient index row deleted) is named too.
    let patient_row = sql.with_patient();
    sql.run(&format!(
        "DELETE FROM audit_event_patients WHERE seq = {patient_row}"
    ));
    let stderr = broken(&verify(&app));
    assert!(
        stderr.contains(&format!(
            "seq {patient_row}: its patients differ from audit_event_patients (index edited)"
        )),
        "{stderr}"
    );
    sql.run(&format!(
        "INSERT INTO audit_event_patients (patient, seq) \
         SELECT patients, seq FROM audit_events WHERE seq = {patient_row}"
    ));
    assert!(intact(&verify(&app)) >= rows);

    // Deleting a row breaks the next row's link.
    let third = sql.chained(Some(3));
    sql.run(&format!(
        "DELETE FROM audit_events WHERE seq = {}",
        second.seq
    ));
    let stderr = broken(&verify(&app));
    assert!(
        stderr.contains(&format!(
            "seq {}: previous row missing (row deleted)",
            third.seq
        )),
        "{stderr}"
    );
}

async fn verify_notices_the_newest_row_deleted(app: TestApp) {
    some_trail(&app).await;
    intact(&verify(&app));
    let mut sql = Sql::open(&app);
    let last = sql.chained(None);
    sql.run(&format!(
        "DELETE FROM audit_events WHERE seq = {}",
        last.seq
    ));
    let stderr = broken(&verify(&app));
    assert!(
        stderr.contains("the last chained row is missing (row deleted)"),
        "{stderr}"
    );
}

/// Writers and readers at once (on SQLite some reads go through the journal while a
/// write holds the lock; on PostgreSQL a second instance writes into the same trail,
/// both sealing): every row ends up chained once, and the chain holds.
async fn concurrent_writers_and_readers_leave_one_intact_chain(app: TestApp) {
    let mut bases = vec![app.base.clone()];
    if let DatabaseUrl::Postgres(url) = &app.database {
        let mut settings =
            wor_hub::config::Settings::for_database(DatabaseUrl::Postgres(url.clone()));
        settings.db_pool_size = 4;
        let second = wor_hub::startup::Application::build(&settings)
            .await
            .expect("a second instance starts");
        bases.push(format!("http://127.0.0.1:{}/fhir", second.port()));
        tokio::spawn(second.run_until_stopped());
    }
    let created = app
        .create(&json!({"resourceType": "Patient", "gender": "male"}))
        .await;
    let patient = format!("Patient/{}", created["id"].as_str().unwrap());
    let mut workers = Vec::new();
    for w in 0..6 {
        let base = bases[w % bases.len()].clone();
        let client = app.client.clone();
        let patient = patient.clone();
        workers.push(tokio::spawn(async move {
            for n in 0..15 {
                let res = if (w + n) % 3 == 0 {
                    let body = json!({"resourceType": "QuestionnaireResponse",
                        "status": "in-progress", "authored": format!("2026-12-0{}", 1 + w % 3),
                        "subject": {"reference": patient}});
                    client
                        .post(format!("{base}/QuestionnaireResponse"))
                        .header("Content-Type", crate::helpers::FHIR_JSON)
                        .body(body.to_string())
                        .send()
                        .await
                } else {
                    client.get(format!("{base}/{patient}")).send().await
                };
                let res = res.unwrap();
                assert!(res.status().is_success(), "{}", res.text().await.unwrap());
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    // SQLite: reads journalled while a write held the lock reach the table within
    // moments (the journal mover); wait for them, then verify.
    let mut disclosed = 0;
    for _ in 0..50 {
        let res = app
            .request(
                Method::GET,
                &format!("AuditEvent?patient={patient}&_count=1000"),
            )
            .header("X-Acting-Party", "coordinator")
            .send()
            .await
            .unwrap();
        let bundle: serde_json::Value = res.json().await.unwrap();
        disclosed = bundle["entry"].as_array().map_or(0, Vec::len);
        if disclosed >= 91 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Every request left its row: the create and 90 requests, no more.
    assert_eq!(disclosed, 91);
    let verified = intact(&verify(&app));
    assert!(verified >= 91, "{verified}");
    assert!(Sql::open(&app).chained(None).seq >= 91);
}
