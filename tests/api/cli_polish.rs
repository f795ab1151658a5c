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
