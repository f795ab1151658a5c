//! The `wor-hub` binary itself: start-up errors, `migrate`, durability across a hard
//! kill, and no patient data in log lines.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_wor-hub");

pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
    log: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `wor-hub serve` on a free port and waits for its "listening" log line.
    pub(crate) fn start(db: &std::path::Path) -> Self {
        Self::start_with(db, &[])
    }

    /// [`Server::start`] with more flags.
    pub(crate) fn start_with(db: &std::path::Path, flags: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
            .arg(db)
            .args(flags)
            .env_remove("WOR_HUB_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wor-hub");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let port = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("server logs a listening line");
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if event["message"] == "wor-hub listening" {
                break event["port"].as_u64().expect("port");
            }
        };
        Self {
            child,
            base: format!("http://127.0.0.1:{port}/fhir"),
            log: rx,
        }
    }

    pub(crate) fn kill(mut self) -> Vec<String> {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
        self.log.try_iter().collect()
    }
}

#[tokio::test]
async fn accepted_writes_survive_a_hard_kill_and_logs_hold_no_patient_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let server = Server::start(&db);
    let client = reqwest::Client::new();
    let patient = json!({
        "resourceType": "Patient",
        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999999011"}],
        "name": [{"family": "Zwanenburg", "given": ["Noor"]}],
        "address": [{"line": ["Laag Boskoop 12"], "postalCode": "2771 AB"}]
    });
    let res = client
        .post(format!("{}/Patient", server.base))
        .header("Content-Type", "application/fhir+json")
        .header(
            "If-None-Exist",
            "identifier=http://fhir.nl/fhir/NamingSystem/bsn|999999011",
        )
        .body(patient.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = client
        .get(format!(
            "{}/Patient?identifier=http://fhir.nl/fhir/NamingSystem/bsn|999999011",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A refused body that carries the same data.
    let res = client
        .post(format!("{}/Patient", server.base))
        .header("Content-Type", "application/fhir+json")
        .body(r#"{"resourceType":"Patient","name":[{"family":"Zwanenburg"}],"bsn":"999999011"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // Let the request log lines flush before the kill.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // SIGKILL: no graceful shutdown, no chance to flush anything.
    let log = server.kill();
    assert!(
        log.iter().any(|l| l.contains("request completed")),
        "request lines are logged"
    );
    // Whole values only: a bare "2771" also turns up in timestamps and request ids.
    for secret in [
        "999999011",
        "Zwanenburg",
        "Noor",
        "Laag Boskoop",
        "2771 AB",
        "2771AB",
    ] {
        assert!(
            log.iter().all(|l| !l.contains(secret)),
            "log contains patient data '{secret}'"
        );
    }

    let server = Server::start(&db);
    let res = client
        .get(format!("{}/Patient/{id}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the accepted Patient survived the kill");
    server.kill();
}

#[test]
fn configuration_errors_are_named_and_migrate_works() {
    let out = Command::new(BIN)
        .args(["serve", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listen"), "{stderr}");

    let out = Command::new(BIN)
        .args(["serve", "--database-url", "mysql://localhost/hub"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("database_url"));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, "max_body_bytes = \"big\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["migrate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hub.toml"));

    let db = dir.path().join("hub.db");
    let out = Command::new(BIN)
        .args(["migrate", "--database-url"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists());
}

/// Runs `wor-hub ARGS --database-url DB` (no configuration file) to its end.
fn on_database(args: &[&str], db: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg("--database-url")
        .arg(db)
        .env_remove("WOR_HUB_CONFIG")
        .output()
        .unwrap()
}

/// `wor-hub reindex` rebuilds the search index from stored bodies (data stored before
/// a search parameter existed): searches that found nothing find the resources again.
#[tokio::test]
async fn reindex_rebuilds_the_search_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let server = Server::start(&db);
    let client = reqwest::Client::new();
    for family in ["Jansen", "Bakker"] {
        let res = client
            .post(format!("{}/Patient", server.base))
            .header("Content-Type", "application/fhir+json")
            .body(json!({"resourceType": "Patient", "name": [{"family": family}], "birthDate": "1958-04-17"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    server.kill();
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut conn = diesel::SqliteConnection::establish(db.to_str().unwrap()).unwrap();
    conn.batch_execute(
        "DELETE FROM search_string; DELETE FROM search_date; DELETE FROM search_token; \
         DELETE FROM search_reference;",
    )
    .unwrap();
    drop(conn);
    let total = |base: String| {
        let client = client.clone();
        async move {
            let b: Value = client
                .get(format!("{base}/Patient?family=jansen&birthdate=1958"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            b["total"].as_u64().unwrap()
        }
    };
    let server = Server::start(&db);
    assert_eq!(total(server.base.clone()).await, 0);
    server.kill();

    let out = on_database(&["reindex"], &db);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Server::start(&db);
    assert_eq!(total(server.base.clone()).await, 1);
    server.kill();
}

/// `wor-hub reports rebuild` recomputes the statistics projection from the stored
/// versions: rows lost from it come back, and the command says how many referrals.
#[tokio::test]
async fn reports_rebuild_recomputes_the_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let flags = ["--report-minimum-cell", "1"];
    let server = Server::start_with(&db, &flags);
    let client = reqwest::Client::new();
    let fixture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/referral-transaction.json"),
    )
    .unwrap();
    let res = client
        .post(&server.base)
        .header("Content-Type", "application/fhir+json")
        .body(fixture)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let received = |base: String| {
        let client = client.clone();
        async move {
            let url = format!(
                "{}/reports/referrals?from=2000-01-01&to=2099-12-31&by=",
                base.trim_end_matches("/fhir")
            );
            let b: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            b["total"]["received"].as_u64().unwrap()
        }
    };
    assert_eq!(received(server.base.clone()).await, 1);
    server.kill();
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut conn = diesel::SqliteConnection::establish(db.to_str().unwrap()).unwrap();
    conn.batch_execute("DELETE FROM referral_facts;").unwrap();
    drop(conn);
    let server = Server::start_with(&db, &flags);
    assert_eq!(received(server.base.clone()).await, 0);
    // Refused while a server uses the database.
    let refused = on_database(&["reports", "rebuild"], &db);
    assert!(!refused.status.success());
    server.kill();

    let out = on_database(&["reports", "rebuild"], &db);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "statistics rebuilt: 1 referrals\n"
    );
    let server = Server::start_with(&db, &flags);
    assert_eq!(received(server.base.clone()).await, 1);
    server.kill();
}
