//! `wor-hub-bench`: the benchmark program of issue 16 ("Performance", item 1).
//!
//! Starts the real server in this process (`Application::build`, as the API tests do)
//! on a fresh database (SQLite in a temporary directory; PostgreSQL with `--postgres
//! ADMIN_URL`, where a fresh database is created), loads the sample directory, and
//! measures:
//!
//! - referral ingest: the transaction Bundle of `tests/fixtures/referral-transaction.json`
//!   with a unique (11-proof) BSN and unique ServiceRequest/Consent identifiers per
//!   request, the same practice (Organization, Practitioner) every time, at each
//!   `--concurrency` level for `--seconds`; every 2xx answer is counted back at the end
//!   (`ServiceRequest?_summary=count`), and a mismatch exits with 1;
//! - read by id (`GET Task/{id}`) and the polling search
//!   (`Task?owner=..&status=requested&_lastUpdated=gt..`, first page of 10);
//! - the storage ceiling on a second fresh database with the same durability settings
//!   and no HTTP: single-row durable commits, and units of work of the store API that
//!   create a referral's five resources (no index rows, routing, Task or validation);
//! - start-up (`Application::build`) and peak RSS of this process (server and client);
//! - with `--preload N`: the same server measurements on a second fresh database first
//!   filled with N referrals through the store API (`preload.rs`), start-up
//!   on it, and ingest there as a ratio of the empty-database figure;
//! - notification latency: a local rest-hook receiver, an active Subscription, and
//!   referrals at `--notification-rate`, from each POST's answer to the receipt of the
//!   notification about its Task (`notify.rs`);
//! - with `--repeat N`: all of it N times (fresh databases each time), then the median
//!   of every figure with the per-run figures.
//!
//! ```sh
//! cargo run --release --bin wor-hub-bench -- --seconds 10
//! cargo run --release --bin wor-hub-bench -- --seconds 5 --preload 1000000 --repeat 3
//! source .ci/postgres.sh
//! cargo run --release --bin wor-hub-bench -- --postgres "$WOR_HUB_TEST_POSTGRES_URL"
//! cargo run --bin wor-hub-bench -- --smoke    # CI: a few seconds, debug build
//! ```
//! The client runs in the same process and on the same cores as the server.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod ceiling;
mod databases;
mod figures;
mod http;
mod load;
mod notify;
mod polls;
mod preload;
mod reports;
mod run;

use databases::Databases;
use load::Limit;

use clap::Parser;
use wor_hub::fhir::identifiers::is_valid_bsn;

/// The shared fixture: a GP system's referral (Patient, Organization, Practitioner,
/// Consent, ServiceRequest) as one transaction Bundle.
const REFERRAL: &str = include_str!("../../../tests/fixtures/referral-transaction.json");
/// The fixture's BSN (Patient identifier and its ifNoneExist).
const FIXTURE_BSN: &str = "999999011";
/// The fixture's ServiceRequest identifier; the Consent's is this plus `-C1`.
const FIXTURE_SR_ID: &str = "HIS-2026-000123";
/// The fixture's `ServiceRequest.authoredOn`.
const FIXTURE_AUTHORED: &str = "2026-11-20T10:00:00+01:00";
/// Where the sample directory routes the fixture's patient (Boskoop).
const OWNER: &str = "Organization/tom-in-de-buurt";
const FHIR_JSON: &str = "application/fhir+json";

#[derive(Debug, Parser)]
#[command(
    name = "wor-hub-bench",
    about = "Benchmark of wor-hub: referral ingest, reads, polling search, storage ceiling"
)]
struct Args {
    /// PostgreSQL admin URL (e.g. postgres://postgres@127.0.0.1:5432/postgres): a fresh
    /// database is created on that server. Default: SQLite in a temporary directory.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Ingest concurrency levels (concurrent clients, one request in flight each).
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    concurrency: Vec<usize>,
    /// Seconds per measurement (each ingest level, reads, search, each ceiling figure).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrency of the read-by-id and polling-search measurements.
    #[arg(long, default_value_t = 8)]
    read_concurrency: usize,
    /// Referrals sent (concurrency 1) before the first measurement.
    #[arg(long, default_value_t = 50)]
    warmup: u64,
    /// Database connection pool size of the server (default: the server's default).
    #[arg(long)]
    pool_size: Option<u32>,
    /// Referrals in the statistics projection the reports are measured on (its rows
    /// written straight to a fresh database; 0 skips the phase).
    #[arg(long, default_value_t = 1_000_000)]
    report_referrals: u64,
    /// Referrals stored before a second set of server measurements (ingest, reads,
    /// polling search, start-up) on a database filled through the store API;
    /// 0 skips it.
    #[arg(long, default_value_t = 0)]
    preload: u64,
    /// An existing database filled by an earlier `--preload` run and kept with
    /// `--keep-databases` (a SQLite file, or a postgres:// URL): the filled-database
    /// measurements run on it instead of a fresh preload. Their ingest adds referrals
    /// to it. With `--preload N` as well, N more referrals are added first (the store
    /// API again; its directory and practice are used, not written again).
    #[arg(long, value_name = "PATH|URL")]
    preloaded: Option<String>,
    /// Referrals per unit of work (database transaction) of the preload.
    #[arg(long, default_value_t = 1_000)]
    preload_unit: u64,
    /// Referrals whose notification latency is measured (0 skips the phase).
    #[arg(long, default_value_t = 200)]
    notifications: u64,
    /// Referrals per second sent, one at a time, while measuring notification latency.
    #[arg(long, default_value_t = 20.0)]
    notification_rate: f64,
    /// Runs of the whole measurement, each on fresh databases; with more than one, the
    /// median of every figure is printed with the per-run figures [default: 1; 2 in
    /// --smoke].
    #[arg(long)]
    repeat: Option<u32>,
    /// A few seconds in total (ingest at concurrency 1 and 4 for 1 s each, a handful of
    /// reads and searches, a preload of 200 referrals, 5 notifications, 2 runs unless
    /// --repeat says otherwise); asserts only that every phase ran and counted its
    /// referrals and notifications back. For CI.
    #[arg(long)]
    smoke: bool,
    /// Keep the databases (the SQLite directory or the PostgreSQL database names are
    /// printed) instead of removing them at the end, to inspect what the run wrote or to
    /// measure on a filled one again (`--preloaded`).
    #[arg(long)]
    keep_databases: bool,
}

/// The next unique, valid BSN: eight digits from a counter and the check digit that
/// makes 9*d1 + 8*d2 + .. + 2*d8 - d9 divisible by 11 (counters where it would be 10
/// are skipped).
fn next_bsn(counter: &AtomicU64) -> String {
    loop {
        let n = 10_000_000 + counter.fetch_add(1, Ordering::Relaxed) % 90_000_000;
        let digits: Vec<u64> = format!("{n:08}")
            .bytes()
            .map(|b| u64::from(b - b'0'))
            .collect();
        let sum: u64 = digits.iter().zip((2..=9).rev()).map(|(d, w)| d * w).sum();
        let check = sum % 11;
        if check < 10 {
            let bsn = format!("{n:08}{check}");
            debug_assert!(is_valid_bsn(&bsn), "{bsn}");
            return bsn;
        }
    }
}

/// The fixture with BSN `bsn` and ServiceRequest/Consent identifiers made from `n`.
fn referral(bsn: &str, n: u64) -> String {
    REFERRAL
        .replace(FIXTURE_BSN, bsn)
        .replace(FIXTURE_SR_ID, &format!("BENCH-{n:09}"))
        // Authored now: the fixture's date (2026-11-20) is past the contact deadline
        // (14 days) from 2026-12-04 09:00 UTC on, and the server's overdue marker would
        // then write a new version of every stored Task at start-up.
        .replace(
            FIXTURE_AUTHORED,
            &wor_hub::fhir::instant::format_instant(wor_hub::fhir::instant::now_micros()),
        )
}

/// The measurement plan: `--smoke` or the full run.
struct Plan {
    levels: Vec<usize>,
    ingest: Limit,
    reads: Limit,
    searches: Limit,
    ceiling: Limit,
    warmup: u64,
    preload: u64,
    preload_unit: u64,
    notifications: u64,
    report_referrals: u64,
    repeat: u32,
}

impl Plan {
    fn of(args: &Args) -> Self {
        if args.smoke {
            return Self {
                levels: vec![1, 4],
                ingest: Limit::For(Duration::from_secs(1)),
                reads: Limit::Count(20),
                searches: Limit::Count(10),
                ceiling: Limit::Count(20),
                warmup: 3,
                preload: match (&args.preloaded, args.preload) {
                    (Some(_), _) => 0,
                    (None, 0) => 200,
                    (None, n) => n,
                },
                preload_unit: args.preload_unit.min(50),
                notifications: args.notifications.min(5),
                report_referrals: args.report_referrals.min(2_000),
                repeat: args.repeat.unwrap_or(2).max(1),
            };
        }
        let each = Limit::For(Duration::from_secs(args.seconds.max(1)));
        Self {
            levels: args.concurrency.clone(),
            ingest: each,
            reads: each,
            searches: each,
            ceiling: each,
            warmup: args.warmup,
            preload: args.preload,
            preload_unit: args.preload_unit,
            notifications: args.notifications,
            report_referrals: args.report_referrals,
            repeat: args.repeat.unwrap_or(1).max(1),
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() {
    let args = Args::parse();
    // `WOR_HUB_BENCH_LOG=error` (an EnvFilter) prints the server's log lines to stderr.
    if let Ok(filter) = std::env::var("WOR_HUB_BENCH_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wor-hub-bench: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let mut databases = match Databases::new(args.postgres.clone()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("wor-hub-bench: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(run(&args, &mut databases));
    if args.keep_databases {
        say(&format!("the databases are kept: {}", databases.kept()));
    } else {
        databases.clean_up();
    }
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("wor-hub-bench: FAILED: {e}");
            1
        }
    };
    // The in-process server and its background jobs are not shut down one by one.
    std::process::exit(code);
}

async fn run(args: &Args, databases: &mut Databases) -> Result<(), String> {
    let plan = Plan::of(args);
    let backend = databases.name();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    say(&format!(
        "wor-hub-bench {}: {backend}, {profile} build, {} cores; server and client in this process",
        env!("CARGO_PKG_VERSION"),
        std::thread::available_parallelism().map_or(0, usize::from),
    ));
    if cfg!(debug_assertions) {
        say("NOTE: a debug build: these figures are not the benchmark (use --release)");
    }
    if args.smoke {
        say("smoke mode: asserts only that every phase ran and counted its referrals and notifications back");
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    // Counters start at this run's start in milliseconds since 1970, so that a run on a
    // database an earlier run filled (`--preloaded`) sends new identifiers: each run
    // sends fewer than 1,000 referrals a second, so no run reaches a later run's start.
    // (Starting at 0, every referral of a second run matched one stored by the first,
    // and its conditional creates answered with the stored ServiceRequest.)
    let first = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
    let ctx = run::Ctx {
        args,
        plan: &plan,
        client,
        bsns: Arc::new(AtomicU64::new(first)),
        serial: Arc::new(AtomicU64::new(first)),
    };
    let title = format!(
        "wor-hub-bench summary: {backend}, {profile} build, {}",
        plan_text(&plan, args)
    );
    let mut runs = Vec::new();
    for i in 1..=plan.repeat {
        if plan.repeat > 1 {
            say(&format!("==== run {i} of {}", plan.repeat));
        }
        let rows = run::run_once(&ctx, databases).await?;
        figures::print_table(&format!("## {title}{}", run_label(i, plan.repeat)), &rows);
        runs.push(rows);
    }
    if plan.repeat > 1 {
        figures::print_medians(
            &format!("## medians of {} runs: {title}", plan.repeat),
            &runs,
        );
    }
    if args.smoke {
        say(&format!(
            "smoke: OK ({} runs: ingest, counted back, reads, polling search, preload of {} with start-up, ingest, reads and search on it, {} notifications received, statistics, ceiling)",
            plan.repeat, plan.preload, plan.notifications
        ));
    }
    Ok(())
}

fn run_label(i: u32, of: u32) -> String {
    if of > 1 {
        format!(" (run {i} of {of})")
    } else {
        String::new()
    }
}

fn plan_text(plan: &Plan, args: &Args) -> String {
    let mut text = format!(
        "ingest at concurrency {:?} for {} each after {} warm-up referrals; reads and searches at concurrency {} for {}",
        plan.levels,
        plan.ingest.describe(),
        plan.warmup,
        args.read_concurrency,
        plan.reads.describe()
    );
    match (&args.preloaded, plan.preload) {
        (Some(filled), 0) => text.push_str(&format!("; again on the filled database {filled}")),
        (Some(filled), n) => text.push_str(&format!(
            "; again on the filled database {filled} after adding {n} referrals (units of {})",
            plan.preload_unit
        )),
        (None, 0) => {}
        (None, n) => text.push_str(&format!(
            "; again with {n} referrals preloaded (units of {})",
            plan.preload_unit
        )),
    }
    if plan.notifications > 0 {
        text.push_str(&format!(
            "; {} notifications at {} referrals/s",
            plan.notifications, args.notification_rate
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bsns_are_valid_and_distinct() {
        let counter = AtomicU64::new(0);
        let bsns: Vec<String> = (0..1000).map(|_| next_bsn(&counter)).collect();
        assert!(bsns.iter().all(|b| is_valid_bsn(b)));
        let distinct: std::collections::HashSet<_> = bsns.iter().collect();
        assert_eq!(distinct.len(), bsns.len());
    }

    #[test]
    fn the_referral_gets_its_own_identifiers() {
        let body = referral("100000009", 7);
        assert!(!body.contains(FIXTURE_BSN) && !body.contains(FIXTURE_SR_ID));
        assert_eq!(body.matches("100000009").count(), 2);
        assert_eq!(body.matches("BENCH-000000007").count(), 4);
    }
}
