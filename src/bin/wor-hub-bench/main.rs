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
//! - start-up (`Application::build`) and peak RSS of this process (server and client).
//!
//! ```sh
//! cargo run --release --bin wor-hub-bench -- --seconds 10
//! source .ci/postgres.sh
//! cargo run --release --bin wor-hub-bench -- --postgres "$WOR_HUB_TEST_POSTGRES_URL"
//! cargo run --bin wor-hub-bench -- --smoke    # CI: a few seconds, debug build
//! ```
//! The client runs in the same process and on the same cores as the server.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod ceiling;
mod databases;
mod http;
mod load;
mod reports;

use ceiling::storage_ceiling;
use databases::Databases;
use http::{expect_ok, peak_rss, task_ids, total};
use load::{load, ms, Limit, Outcome};

use clap::Parser;
use wor_hub::config::Settings;
use wor_hub::fhir::identifiers::is_valid_bsn;
use wor_hub::fhir::instant::{format_instant, now_micros};
use wor_hub::startup::Application;

/// The shared fixture: a GP system's referral (Patient, Organization, Practitioner,
/// Consent, ServiceRequest) as one transaction Bundle.
const REFERRAL: &str = include_str!("../../../tests/fixtures/referral-transaction.json");
/// The fixture's BSN (Patient identifier and its ifNoneExist).
const FIXTURE_BSN: &str = "999999011";
/// The fixture's ServiceRequest identifier; the Consent's is this plus `-C1`.
const FIXTURE_SR_ID: &str = "HIS-2026-000123";
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
    /// A few seconds in total (ingest at concurrency 1 and 4 for 1 s each, a handful of
    /// reads and searches); asserts only that it ran and counted every acknowledged
    /// referral back. For CI.
    #[arg(long)]
    smoke: bool,
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
}

/// The measurement plan: `--smoke` or the full run.
struct Plan {
    levels: Vec<usize>,
    ingest: Limit,
    reads: Limit,
    searches: Limit,
    ceiling: Limit,
    warmup: u64,
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
        }
    }
}

/// One row of the summary table.
struct Row {
    what: String,
    figure: String,
    p50: String,
    p99: String,
    note: String,
}

impl Row {
    fn of(what: impl Into<String>, o: &Outcome, unit: &str, note: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            figure: format!(
                "{:.0} {unit}/s ({} in {:.1} s)",
                o.rate(),
                o.ok(),
                o.elapsed.as_secs_f64()
            ),
            p50: ms(o.pct(50)),
            p99: ms(o.pct(99)),
            note: note.into(),
        }
    }

    fn plain(what: impl Into<String>, figure: impl Into<String>, note: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            figure: figure.into(),
            p50: "".into(),
            p99: "".into(),
            note: note.into(),
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
    databases.clean_up();
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
        say("smoke mode: asserts only that every phase ran and every acknowledged referral is stored");
    }
    let mut rows = Vec::new();

    // ---- start-up
    let mut settings = Settings::for_database(databases.fresh("service")?);
    if let Some(n) = args.pool_size {
        settings.db_pool_size = n;
    }
    settings.log = "warn".into();
    let started = Instant::now();
    let app = Application::build(&settings)
        .await
        .map_err(|e| format!("the server does not start: {e}"))?;
    let startup = started.elapsed();
    let base = format!("http://127.0.0.1:{}/fhir", app.port());
    tokio::spawn(app.run_until_stopped());
    say(&format!(
        "start-up (Application::build, empty database): {}",
        ms(startup)
    ));
    rows.push(Row::plain(
        "start-up, empty database",
        ms(startup),
        "Application::build: migrations, directory check, bind",
    ));

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let res = client
        .post(&base)
        .header("Content-Type", FHIR_JSON)
        .body(wor_hub::api::directory::SAMPLE_DIRECTORY)
        .send()
        .await
        .map_err(|e| format!("loading the sample directory: {e}"))?;
    if !res.status().is_success() {
        return Err(format!(
            "loading the sample directory: HTTP {}",
            res.status()
        ));
    }
    let before_run = format_instant(now_micros() - 1_000_000);

    // ---- referral ingest
    let bsns = Arc::new(AtomicU64::new(0));
    let serial = Arc::new(AtomicU64::new(0));
    let ingest = {
        let (client, base) = (client.clone(), Arc::<str>::from(base.as_str()));
        let (bsns, serial) = (bsns.clone(), serial.clone());
        Arc::new(move |_: u64| {
            let (client, base) = (client.clone(), base.clone());
            let body = referral(&next_bsn(&bsns), serial.fetch_add(1, Ordering::Relaxed));
            async move {
                expect_ok(
                    client
                        .post(&*base)
                        .header("Content-Type", FHIR_JSON)
                        .body(body),
                )
                .await
            }
        })
    };
    let mut acknowledged = 0u64;
    let mut ingest_figures = Vec::new();
    if plan.warmup > 0 {
        let op = ingest.clone();
        let warm = load(1, Limit::Count(plan.warmup), move |i| op(i)).await;
        acknowledged += warm.ok();
        say(&warm.line("warm-up ingest, concurrency 1", "referrals"));
    }
    for &c in &plan.levels {
        let op = ingest.clone();
        let o = load(c, plan.ingest, move |i| op(i)).await;
        acknowledged += o.ok();
        say(&o.line(&format!("referral ingest, concurrency {c}"), "referrals"));
        if o.ok() == 0 {
            return Err(format!("no referral acknowledged at concurrency {c}"));
        }
        ingest_figures.push((c, o.rate()));
        rows.push(Row::of(
            format!("referral ingest, c{c}"),
            &o,
            "referrals",
            if o.failed > 0 {
                format!("{} failed", o.failed)
            } else {
                String::new()
            },
        ));
    }

    // ---- every acknowledged referral counted back
    let stored = total(&client, &format!("{base}/ServiceRequest?_summary=count")).await?;
    let counted = stored == acknowledged;
    say(&format!(
        "counted back: {stored} ServiceRequests stored, {acknowledged} referrals acknowledged (2xx): {}",
        if counted { "OK" } else { "MISMATCH" }
    ));
    rows.push(Row::plain(
        "acknowledged referrals counted back",
        format!("{stored} stored / {acknowledged} acknowledged"),
        if counted { "OK" } else { "MISMATCH" },
    ));

    // ---- read by id
    let ids = task_ids(&client, &base).await?;
    let reads = {
        let (client, base, ids) = (client.clone(), base.clone(), Arc::new(ids));
        load(args.read_concurrency, plan.reads, move |i| {
            let url = format!("{base}/Task/{}", ids[(i % ids.len() as u64) as usize]);
            let client = client.clone();
            async move { expect_ok(client.get(url)).await }
        })
        .await
    };
    say(&reads.line(
        &format!("read by id (Task), concurrency {}", args.read_concurrency),
        "reads",
    ));
    rows.push(Row::of(
        format!("read by id, c{}", args.read_concurrency),
        &reads,
        "reads",
        "GET Task/{id}",
    ));

    // ---- polling search
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("owner", OWNER)
        .append_pair("status", "requested")
        .append_pair("_lastUpdated", &format!("gt{before_run}"))
        .finish();
    let matches = total(&client, &format!("{base}/Task?{query}&_summary=count")).await?;
    let searches = {
        let url = format!("{base}/Task?{query}&_count=10");
        let client = client.clone();
        load(args.read_concurrency, plan.searches, move |_| {
            let (client, url) = (client.clone(), url.clone());
            async move { expect_ok(client.get(url)).await }
        })
        .await
    };
    say(&format!(
        "{}; {matches} matches",
        searches.line(
            &format!(
                "polling search (first page of 10), concurrency {}",
                args.read_concurrency
            ),
            "searches"
        )
    ));
    rows.push(Row::of(
        format!("polling search, c{}", args.read_concurrency),
        &searches,
        "searches",
        format!("first page of 10 out of {matches} matches"),
    ));

    // ---- statistics at --report-referrals referrals
    if args.report_referrals > 0 {
        let n = if args.smoke {
            2_000
        } else {
            args.report_referrals
        };
        let r = reports::reports(databases.fresh("reports")?, n, plan.searches).await?;
        say(&format!(
            "statistics: {} projection rows written in {:.1} s",
            r.seeded,
            r.seeding.as_secs_f64()
        ));
        for (what, o, note) in [
            (
                "yearly report of one municipality",
                &r.municipality_year,
                format!(
                    "GM0484, by month: {} referrals of {}",
                    r.municipality_rows, r.seeded
                ),
            ),
            (
                "yearly report of every municipality",
                &r.all_year,
                format!("20 municipalities, {} referrals", r.seeded),
            ),
        ] {
            say(&o.line(&format!("statistics: {what}, concurrency 1"), "reports"));
            if o.ok() == 0 {
                return Err(format!(
                    "statistics: {what}: nothing succeeded: {:?}",
                    o.first_failure
                ));
            }
            rows.push(Row::of(
                format!("statistics: {what}, c1"),
                o,
                "reports",
                note,
            ));
        }
    }

    // ---- storage ceiling
    let ceiling = storage_ceiling(databases.fresh("ceiling")?, plan.ceiling).await?;
    say(&ceiling.commits.line(
        "storage ceiling: durable commits of one referral-sized row, sequential, no HTTP",
        "commits",
    ));
    rows.push(Row::of(
        "ceiling: single-row commits, c1",
        &ceiling.commits,
        "commits",
        "raw SQL: BEGIN; INSERT one ~4 KB row; COMMIT (same connection settings)",
    ));
    for (c, o) in [(1, &ceiling.units_c1), (8, &ceiling.units_c8)] {
        say(&o.line(
            &format!(
                "storage ceiling: store units creating a referral's 5 resources, concurrency {c}, no HTTP"
            ),
            "units",
        ));
        rows.push(Row::of(
            format!("ceiling: store units of 5 creates, c{c}"),
            o,
            "units",
            "Store::transaction + 5 x Tx::create, no index rows, routing, Task or validation",
        ));
    }
    let best = ceiling.units_c1.rate().max(ceiling.units_c8.rate());
    for (c, rate) in &ingest_figures {
        let ratio = rate / best.max(1e-9);
        say(&format!(
            "ingest c{c} / storage ceiling (best store-unit rate, {best:.0}/s): {ratio:.2}"
        ));
        rows.push(Row::plain(
            format!("ingest c{c} as a ratio of the ceiling"),
            format!("{ratio:.2}"),
            format!("{rate:.0}/s of {best:.0} store units/s"),
        ));
    }

    // ---- peak RSS
    let rss = peak_rss().unwrap_or_else(|| "unknown".into());
    say(&format!(
        "peak RSS (VmHWM, server and client in one process): {rss}"
    ));
    rows.push(Row::plain(
        "peak RSS",
        rss,
        "VmHWM of this process: server and client",
    ));

    // ---- summary
    say("");
    say(&format!(
        "## wor-hub-bench summary: {backend}, {profile} build, {}",
        plan_text(&plan, args)
    ));
    say("");
    say("| measurement | figure | p50 | p99 | note |");
    say("|---|---|---|---|---|");
    for r in &rows {
        say(&format!(
            "| {} | {} | {} | {} | {} |",
            r.what, r.figure, r.p50, r.p99, r.note
        ));
    }
    if !counted {
        return Err(format!(
            "{acknowledged} referrals were acknowledged but {stored} are stored"
        ));
    }
    for (what, o) in [
        ("read by id", &reads),
        ("polling search", &searches),
        ("storage ceiling commits", &ceiling.commits),
        ("storage ceiling units", &ceiling.units_c1),
    ] {
        if o.ok() == 0 {
            return Err(format!("{what}: nothing succeeded"));
        }
    }
    if args.smoke {
        say("smoke: OK");
    }
    Ok(())
}

fn plan_text(plan: &Plan, args: &Args) -> String {
    format!(
        "ingest at concurrency {:?} for {} each after {} warm-up referrals; reads and searches at concurrency {} for {}",
        plan.levels,
        plan.ingest.describe(),
        plan.warmup,
        args.read_concurrency,
        plan.reads.describe()
    )
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
