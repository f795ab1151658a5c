//! The binary's surface: each subcommand's `--help`, one-line errors, closed pipes.

use std::io::Read;
use std::process::{Command, Output, Stdio};

use crate::cli::BIN;
use crate::helpers::{fresh_database, Backend};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/referral-transaction.json"
);

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("WOR_HUB_CONFIG")
        .env_remove("WOR_HUB_LISTEN")
        .output()
        .expect("run wor-hub")
}

/// Flags only `serve` uses.
const SERVE_ONLY: [&str; 8] = [
    "--listen",
    "--max-body-bytes",
    "--max-bundle-entries",
    "--db-pool-size",
    "--open-mode",
    "--contact-deadline",
    "--initial-directory",
    "--head-timeout",
];

#[test]
fn each_help_lists_its_own_flags_and_an_example() {
    let help = |args: &[&str]| {
        let mut all = args.to_vec();
        all.push("--help");
        let out = run(&all);
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let serve = help(&["serve"]);
    for flag in SERVE_ONLY.iter().chain(&["--database-url", "--base-url"]) {
        assert!(serve.contains(flag), "serve --help lacks {flag}:\n{serve}");
    }
    for args in [
        &["migrate"][..],
        &["reindex"],
        &["directory", "import"],
        &["route", "explain"],
        &["postcodes", "import"],
    ] {
        let text = help(args);
        assert!(text.contains("--database-url"), "{args:?}:\n{text}");
        assert!(text.contains("--config"), "{args:?}:\n{text}");
        for flag in SERVE_ONLY {
            assert!(
                !text.contains(flag),
                "{args:?} --help lists {flag}:\n{text}"
            );
        }
        assert!(
            text.contains("Example") && text.contains(&format!("wor-hub {}", args.join(" "))),
            "{args:?} --help has no example:\n{text}"
        );
    }
    for args in [&[][..], &["directory"], &["route"], &["postcodes"]] {
        let text = help(args);
        assert!(text.contains("Example"), "{args:?} --help:\n{text}");
    }
    assert!(help(&["route", "explain"]).contains("--json"));
}

/// The error is told once, on one plain last line `wor-hub: ...` containing `needle`
/// (no log line repeating it), and the exit code is `code`. Lines before it may only be
/// the log of what went well (`serve` opens its database before it binds).
fn assert_one_line(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("wor-hub: ") && last.contains(needle),
        "{stderr}"
    );
    let told = stderr.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(told, 1, "the error is told {told} times:\n{stderr}");
    assert!(
        !stderr.contains("\"level\":\"ERROR\""),
        "an error log line as well:\n{stderr}"
    );
}

#[test]
fn start_up_and_command_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let db = db.to_str().unwrap();

    // The port is taken: the server stops before serving.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["serve", "--listen", &addr, "--database-url", db]);
    assert_one_line(&out, 1, &format!("cannot listen on {addr}"));

    let out = run(&["route", "explain", "/nonexistent/referral.json"]);
    assert_one_line(&out, 1, "cannot read /nonexistent/referral.json");

    let out = run(&["migrate", "--database-url", "mysql://localhost/hub"]);
    assert_one_line(&out, 2, "database_url");

    // The database client's message spans lines, and the pool retries before giving up.
    let out = run(&[
        "migrate",
        "--database-url",
        "postgres://nobody@127.0.0.1:1/nothing",
    ]);
    assert_one_line(
        &out,
        1,
        "cannot open the database postgres://nobody@127.0.0.1:1",
    );
}

/// Runs wor-hub with its stdout closed before it writes (as `| head -1` closes it after
/// the first line) and returns its exit code and stderr.
fn with_stdout_closed(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("WOR_HUB_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wor-hub");
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap().code(), stderr)
}

fn output_into_a_closed_pipe(backend: Backend) {
    let (url, _dir) = fresh_database(backend).unwrap();
    let out = run(&["migrate", "--database-url", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &[
            "route",
            "explain",
            "--json",
            FIXTURE,
            "--database-url",
            &url,
        ],
        &["route", "explain", FIXTURE, "--database-url", &url],
    ] {
        let (code, stderr) = with_stdout_closed(args);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
    }
}

#[test]
fn output_into_a_closed_pipe_on_sqlite() {
    output_into_a_closed_pipe(Backend::Sqlite);
}

#[test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
fn output_into_a_closed_pipe_on_postgres() {
    output_into_a_closed_pipe(Backend::Postgres);
}

/// `reindex` while a server runs on the database: refused in one line, nothing done;
/// once the server has stopped it runs.
fn reindex_refuses_while_served(backend: Backend) {
    let (url, _dir) = fresh_database(backend).unwrap();
    let server = crate::cli::Server::start(std::path::Path::new(&url));
    let out = run(&["reindex", "--database-url", &url]);
    assert_one_line(&out, 1, "a server is using this database");
    // A second server shares the database with the first.
    let second = crate::cli::Server::start(std::path::Path::new(&url));
    second.kill();
    server.kill();
    let out = run(&["reindex", "--database-url", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn reindex_refuses_while_a_server_uses_the_database_on_sqlite() {
    reindex_refuses_while_served(Backend::Sqlite);
}

#[test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
fn reindex_refuses_while_a_server_uses_the_database_on_postgres() {
    reindex_refuses_while_served(Backend::Postgres);
}

async fn post(client: &reqwest::Client, url: String, body: &serde_json::Value) -> u16 {
    client
        .post(url)
        .header("Content-Type", "application/fhir+json")
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `route explain` on a transaction Bundle decides as `POST /fhir` would on the same
/// database: the fixture's conditional Patient create matches a stored Patient with the
/// same BSN and no address, so the referral is unroutable for want of a municipality
/// (it is "Tom in de buurt" on an empty database); with two such Patients the server
/// answers 412, and `route explain` refuses in the same way.
async fn route_explain_matches_the_server(backend: Backend) {
    let (url, _dir) = fresh_database(backend).unwrap();
    let db = std::path::Path::new(&url);
    let explain = || run(&["route", "explain", FIXTURE, "--database-url", &url]);
    let patient = serde_json::json!({
        "resourceType": "Patient",
        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999999011"}],
        "birthDate": "1980-01-01"
    });
    let client = reqwest::Client::new();

    let server = crate::cli::Server::start(db);
    server.kill();
    let text = String::from_utf8(explain().stdout).unwrap();
    assert!(text.contains("Tom in de buurt"), "{text}");

    let server = crate::cli::Server::start(db);
    assert_eq!(
        post(&client, format!("{}/Patient", server.base), &patient).await,
        201
    );
    server.kill();
    let out = explain();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("outcome:       unroutable"), "{text}");
    assert!(text.contains("(no-municipality)"), "{text}");
    assert!(text.contains("matched the stored Patient/"), "{text}");
    // Nothing was stored by the explanation: the server still has one Patient and no
    // ServiceRequest, and routes the real referral as explained.
    let server = crate::cli::Server::start(db);
    let count = |ty: &'static str| {
        let client = client.clone();
        let base = server.base.clone();
        async move {
            let bundle: serde_json::Value = client
                .get(format!("{base}/{ty}?_summary=count"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            bundle["total"].as_u64().unwrap()
        }
    };
    assert_eq!(count("Patient").await, 1);
    assert_eq!(count("ServiceRequest").await, 0);
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    let tasks: serde_json::Value = {
        assert_eq!(post(&client, server.base.clone(), &fixture).await, 200);
        client
            .get(format!("{}/Task", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let task = tasks["entry"][0]["resource"].to_string();
    assert!(task.contains("no-municipality"), "{task}");
    // A second Patient with the BSN: the server refuses the referral with 412.
    assert_eq!(
        post(&client, format!("{}/Patient", server.base), &patient).await,
        201
    );
    let mut again = fixture.clone();
    again["entry"][4]["request"]["ifNoneExist"] =
        "identifier=urn:oid:2.16.840.1.113883.2.4.3.11.999.1|HIS-2026-000124".into();
    again["entry"][4]["resource"]["identifier"][0]["value"] = "HIS-2026-000124".into();
    assert_eq!(post(&client, server.base.clone(), &again).await, 412);
    server.kill();
    let out = explain();
    assert_one_line(&out, 1, "The server would refuse this Bundle");
}

#[tokio::test]
async fn route_explain_matches_the_server_on_sqlite() {
    route_explain_matches_the_server(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn route_explain_matches_the_server_on_postgres() {
    route_explain_matches_the_server(Backend::Postgres).await;
}
