//! Clients registered with the real binary: `client add` takes effect on a running
//! server without a restart, `client remove` revokes its tokens, `client list` shows no
//! secret, and `serve` refuses to run open on a non-loopback address.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::cli::{Server, BIN};
use crate::helpers::{fresh_database, Backend};

const SECRET: &str = "cli-secret-of-thirty-two-chars!!";

fn client(db: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .arg("client")
        .args(args)
        .args(["--database-url", db])
        .env_remove("WOR_HUB_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wor-hub client");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn status_of(http: &reqwest::Client, url: &str, token: Option<&str>) -> u16 {
    let mut req = http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Polls until `url` answers `want` (the server re-reads "are clients registered"
/// at most a second later).
async fn eventually(http: &reqwest::Client, url: &str, token: Option<&str>, want: u16) {
    for _ in 0..50 {
        if status_of(http, url, token).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never answered {want}");
}

async fn registered_clients_take_effect_without_restart(backend: Backend) {
    let (db, _dir) = fresh_database(backend).expect("database");
    let server = Server::start_with(Path::new(&db), &[]);
    let http = reqwest::Client::new();
    let patients = format!("{}/Patient", server.base);
    let token_url = server.base.replace("/fhir", "/auth/token");
    assert_eq!(
        status_of(&http, &patients, None).await,
        200,
        "open at first"
    );

    // The organisation must be stored (the sample directory holds this one).
    let out = client(
        &db,
        &[
            "add",
            "--client-id",
            "x",
            "--role",
            "performer",
            "--organization",
            "Organization/nowhere",
            "--secret-stdin",
        ],
        Some(SECRET),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("Organization/nowhere")
            && err.lines().filter(|l| !l.starts_with('{')).count() == 1,
        "{err}"
    );

    let out = client(
        &db,
        &[
            "add",
            "--client-id",
            "tom-cli",
            "--role",
            "performer",
            "--organization",
            "Organization/tom-in-de-buurt",
            "--secret-stdin",
        ],
        Some(&format!("{SECRET}\n")),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    eventually(&http, &patients, None, 401).await;

    let res = http
        .post(&token_url)
        .basic_auth("tom-cli", Some(SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "system/Patient.rs"),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let token = body["access_token"].as_str().expect("a token").to_owned();
    assert_eq!(status_of(&http, &patients, Some(&token)).await, 200);

    let out = client(&db, &["list"], None);
    assert!(out.status.success());
    let listing = text(&out.stdout);
    let row: Value = serde_json::from_str(listing.lines().next().unwrap()).unwrap();
    assert_eq!(row["client_id"], "tom-cli");
    assert_eq!(row["role"], "performer");
    assert!(
        !listing.contains(SECRET) && !listing.contains("argon2"),
        "{listing}"
    );

    let out = client(&db, &["remove", "--client-id", "tom-cli"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        status_of(&http, &patients, Some(&token)).await,
        401,
        "the removed client's token is revoked at once"
    );
    let out = client(&db, &["remove", "--client-id", "tom-cli"], None);
    assert!(!out.status.success());

    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.kill();
    for secret in [SECRET, token.as_str()] {
        assert!(
            log.iter().all(|l| !l.contains(secret)),
            "a log line holds a secret"
        );
    }
}

#[tokio::test]
async fn registered_clients_take_effect_without_restart_on_sqlite() {
    registered_clients_take_effect_without_restart(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn registered_clients_take_effect_without_restart_on_postgres() {
    registered_clients_take_effect_without_restart(Backend::Postgres).await;
}

#[test]
fn serve_refuses_to_run_open_on_a_network_address() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            // TLS is terminated in front: only the open-mode rule is left to refuse.
            "--behind-proxy",
            "true",
            "--initial-directory",
            "none",
            "--database-url",
        ])
        .arg(&db)
        .env_remove("WOR_HUB_CONFIG")
        .env_remove("WOR_HUB_ALLOW_OPEN_NETWORK")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // One error line; the log lines before it are JSON.
    let stderr = text(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| !l.starts_with('{')).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    let err = errors[0];
    assert!(
        err.contains("refusing to serve 0.0.0.0:0 without client authentication")
            && err.contains("client add"),
        "{err}"
    );
}

/// Starts `serve` with these flags and returns its log lines up to "wor-hub listening"
/// (the server is killed then), or `None` when it exits first.
fn start_and_stop(db: &Path, listen: &str) -> Option<Vec<String>> {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--initial-directory",
            "none",
            "--behind-proxy",
            "true",
            "--listen",
            listen,
            "--database-url",
        ])
        .arg(db)
        .env_remove("WOR_HUB_CONFIG")
        .env_remove("WOR_HUB_ALLOW_OPEN_NETWORK")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let listening = line.contains("wor-hub listening");
        lines.push(line);
        if listening {
            child.kill().unwrap();
            child.wait().unwrap();
            return Some(lines);
        }
    }
    child.wait().unwrap();
    None
}

/// Open on loopback with a warning; on a network address only once a client exists.
#[test]
fn open_mode_is_warned_and_a_registered_client_allows_a_network_address() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let log = start_and_stop(&db, "127.0.0.1:0").expect("starts open on loopback");
    assert!(
        log.iter()
            .any(|l| l.contains("\"WARN\"") && l.contains("no client is registered")),
        "{log:?}"
    );
    assert!(
        start_and_stop(&db, "0.0.0.0:0").is_none(),
        "refused while open"
    );
    // A monitor may name an organisation that is not stored.
    let url = db.to_string_lossy().into_owned();
    let out = client(
        &url,
        &[
            "add",
            "--client-id",
            "ggd",
            "--role",
            "monitor",
            "--organization",
            "Organization/ggd",
            "--secret-stdin",
        ],
        Some(SECRET),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = start_and_stop(&db, "0.0.0.0:0").expect("starts with a client registered");
    assert!(
        !log.iter().any(|l| l.contains("no client is registered")),
        "{log:?}"
    );
}
