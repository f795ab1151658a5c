//! One run of every measurement, on fresh databases: the server on an empty database,
//! then (`--preload N`) the server on a database filled with N referrals, notification
//! latency, the statistics reports, the storage ceiling and peak RSS.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wor_hub::config::{DatabaseUrl, Settings};
use wor_hub::fhir::instant::{format_instant, now_micros};
use wor_hub::startup::Application;

use crate::ceiling::storage_ceiling;
use crate::databases::Databases;
use crate::figures::{Figure, Row};
use crate::http::{accepted_task_ids, expect_ok, peak_rss_mb, task_ids, total};
use crate::load::{load, ms, Limit};
use crate::{next_bsn, notify, preload, referral, reports, say, Args, Plan, FHIR_JSON};

/// What a run shares between its phases.
pub(crate) struct Ctx<'a> {
    pub(crate) args: &'a Args,
    pub(crate) plan: &'a Plan,
    pub(crate) client: reqwest::Client,
    /// BSN and identifier counters: unique over the whole process.
    pub(crate) bsns: Arc<AtomicU64>,
    pub(crate) serial: Arc<AtomicU64>,
}

impl Ctx<'_> {
    fn settings(&self, database: DatabaseUrl) -> Settings {
        let mut settings = Settings::for_database(database);
        if let Some(n) = self.args.pool_size {
            settings.db_pool_size = n;
        }
        settings.log = "warn".into();
        settings
    }

    fn next_referral(&self) -> String {
        referral(
            &next_bsn(&self.bsns),
            self.serial.fetch_add(1, Ordering::Relaxed),
        )
    }
}

/// What the measurements on one server found.
struct Served {
    /// Ingest rate per concurrency level.
    ingest: Vec<(usize, f64)>,
}

/// One run: every phase; the rows of its summary table, or what went wrong.
pub(crate) async fn run_once(ctx: &Ctx<'_>, databases: &mut Databases) -> Result<Vec<Row>, String> {
    let (args, plan) = (ctx.args, ctx.plan);
    let mut rows = Vec::new();
    let mut problems = Vec::new();

    // ---- the server on an empty database
    let service = databases.fresh("service")?;
    let settings = ctx.settings(service.clone());
    let started = Instant::now();
    let app = Application::build(&settings)
        .await
        .map_err(|e| format!("the server does not start: {e}"))?;
    let startup = started.elapsed();
    let mut base = format!("http://127.0.0.1:{}/fhir", app.port());
    tokio::spawn(app.run_until_stopped());
    say(&format!(
        "start-up (Application::build, empty database): {}",
        ms(startup)
    ));
    rows.push(Row::new(
        "start-up, empty database",
        millis(startup),
        "Application::build: migrations, directory check, bind",
    ));
    let res = ctx
        .client
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
    let empty = serve(
        ctx,
        (&base, &service),
        &before_run,
        "",
        0,
        Vec::new(),
        &mut rows,
        &mut problems,
    )
    .await?;

    // ---- the server on a database filled with --preload referrals (or --preloaded)
    if plan.preload > 0 || args.preloaded.is_some() {
        let (database, loaded) = match &args.preloaded {
            Some(raw) => {
                let database = DatabaseUrl::parse(raw).map_err(|e| format!("--preloaded: {e}"))?;
                // With --preload as well: that many more referrals first.
                let added = match plan.preload {
                    0 => None,
                    _ => Some(fill(ctx, database.clone(), true, &mut rows).await?),
                };
                (database, added)
            }
            None => {
                let database = databases.fresh("preload")?;
                let loaded = fill(ctx, database.clone(), false, &mut rows).await?;
                (database, Some(loaded))
            }
        };
        let settings = ctx.settings(database.clone());
        // The polling search's window opens after the last preloaded version.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let before_run = format_instant(now_micros());
        let started = Instant::now();
        let app = Application::build(&settings)
            .await
            .map_err(|e| format!("the server does not start on the filled database: {e}"))?;
        let startup = started.elapsed();
        base = format!("http://127.0.0.1:{}/fhir", app.port());
        tokio::spawn(app.run_until_stopped());
        let n = match &loaded {
            Some(l) if args.preloaded.is_none() => l.referrals,
            _ => {
                total(
                    &ctx.client,
                    &format!("{base}/ServiceRequest?_summary=count"),
                )
                .await?
            }
        };
        say(&format!(
            "start-up (Application::build, {n} referrals stored): {}",
            ms(startup)
        ));
        rows.push(Row::new(
            format!("start-up, {n} referrals stored"),
            millis(startup),
            "Application::build on the filled database (its files in the OS cache)",
        ));
        let label = format!(" at {n} stored");
        let sample_tasks = match loaded {
            Some(l) => l.sample_tasks,
            None => accepted_task_ids(&ctx.client, &base).await?,
        };
        let filled = serve(
            ctx,
            (&base, &database),
            &before_run,
            &label,
            n,
            sample_tasks,
            &mut rows,
            &mut problems,
        )
        .await?;
        for ((c, at_n), (_, at_empty)) in filled.ingest.iter().zip(&empty.ingest) {
            let ratio = at_n / at_empty.max(1e-9);
            say(&format!(
                "ingest c{c} at {n} stored / on the empty database: {at_n:.0}/s / {at_empty:.0}/s = {ratio:.2}"
            ));
            rows.push(Row::new(
                format!("ingest c{c} at {n} stored / empty"),
                Figure::Ratio(ratio),
                format!("{at_n:.0}/s / {at_empty:.0}/s (target: at least 0.80)"),
            ));
        }
    }

    // ---- notification latency, on the last server
    if plan.notifications > 0 {
        let pause = Duration::from_secs_f64(1.0 / args.notification_rate.max(0.1));
        let l = notify::latency(&ctx.client, &base, plan.notifications, pause, || {
            ctx.next_referral()
        })
        .await?;
        let (p50, p99) = (l.pct(50), l.pct(99));
        let where_ = match (&args.preloaded, plan.preload) {
            (Some(filled), _) => format!("the filled database {filled}"),
            (None, 0) => "the empty database".into(),
            (None, n) => format!("{n} referrals stored"),
        };
        say(&format!(
            "notification latency (2xx answer of the POST to receipt, id-only rest-hook on 127.0.0.1, {:.0} referrals/s, {where_}): p50 {p50:.1} ms, p99 {p99:.1} ms; {} of {} received, {} duplicates, {} before the answer",
            args.notification_rate, l.received, l.expected, l.duplicates, l.overtaken
        ));
        rows.push(Row::new(
            "notification latency",
            Figure::Millis {
                value: p50,
                p50: Some(p50),
                p99: Some(p99),
            },
            format!(
                "answer of the POST to receipt; {:.0} referrals/s, one at a time, on {where_}",
                args.notification_rate
            ),
        ));
        let complete = l.received == l.expected;
        rows.push(Row::text(
            "notifications received",
            format!("{} of {}", l.received, l.expected),
            format!(
                "{}; {} duplicates; {} arrived before the answer",
                if complete { "OK" } else { "MISSING" },
                l.duplicates,
                l.overtaken
            ),
        ));
        if !complete {
            problems.push(format!(
                "notifications: {} of {} referrals notified",
                l.received, l.expected
            ));
        }
    }

    // ---- statistics at --report-referrals referrals
    if plan.report_referrals > 0 {
        let r = reports::reports(
            databases.fresh("reports")?,
            plan.report_referrals,
            plan.searches,
        )
        .await?;
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
    for (c, rate) in &empty.ingest {
        let ratio = rate / best.max(1e-9);
        say(&format!(
            "ingest c{c} / storage ceiling (best store-unit rate, {best:.0}/s): {ratio:.2}"
        ));
        rows.push(Row::new(
            format!("ingest c{c} as a ratio of the ceiling"),
            Figure::Ratio(ratio),
            format!("{rate:.0}/s of {best:.0} store units/s"),
        ));
    }
    for (what, o) in [
        ("storage ceiling commits", &ceiling.commits),
        ("storage ceiling units", &ceiling.units_c1),
    ] {
        if o.ok() == 0 {
            problems.push(format!("{what}: nothing succeeded"));
        }
    }

    // ---- peak RSS
    match peak_rss_mb() {
        Some(mb) => {
            say(&format!(
                "peak RSS (VmHWM, server and client in one process, so far): {mb:.0} MB"
            ));
            rows.push(Row::new(
                "peak RSS",
                Figure::Megabytes(mb),
                "VmHWM of this process so far: server and client, every run until this one",
            ));
        }
        None => rows.push(Row::text("peak RSS", "unknown", "")),
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        crate::figures::print_table("## the failed run's figures", &rows);
        Err(problems.join("; "))
    }
}

/// Fills `database` with `--preload` referrals through the store API (`preload.rs`);
/// with `top_up`, adds them to a filled database (`--preloaded`).
async fn fill(
    ctx: &Ctx<'_>,
    database: DatabaseUrl,
    top_up: bool,
    rows: &mut Vec<Row>,
) -> Result<preload::Preloaded, String> {
    let (n, unit) = (ctx.plan.preload, ctx.plan.preload_unit);
    let settings = ctx.settings(database.clone());
    say(&format!(
        "preload: {n} referrals in units of {unit} (the store API, no HTTP) ..."
    ));
    let loaded = preload::preload(
        database,
        &settings,
        n,
        unit,
        top_up,
        ctx.bsns.clone(),
        ctx.serial.clone(),
    )
    .await?;
    let rate = loaded.referrals as f64 / loaded.writing.as_secs_f64().max(1e-9);
    say(&format!(
        "preload: {} referrals ({} Tasks accepted, the others requested) written in {:.1} s ({rate:.0}/s), audit chain sealed in {:.1} s",
        loaded.referrals,
        loaded.accepted,
        loaded.writing.as_secs_f64(),
        loaded.sealing.as_secs_f64()
    ));
    rows.push(Row::new(
        format!("preload of {n} referrals"),
        Figure::Seconds(loaded.writing.as_secs_f64() + loaded.sealing.as_secs_f64()),
        format!(
            "{rate:.0} referrals/s in units of {unit}, then {:.1} s sealing the audit chain; {} Tasks accepted",
            loaded.sealing.as_secs_f64(),
            loaded.accepted
        ),
    ));
    Ok(loaded)
}

fn millis(d: Duration) -> Figure {
    Figure::Millis {
        value: d.as_secs_f64() * 1e3,
        p50: None,
        p99: None,
    }
}

/// Ingest, counted back, read by id and the polling search on the server at `base`,
/// which holds `stored` referrals before this phase. `label` names the phase in its
/// rows; `extra_ids` are Tasks to read besides the newest ones.
#[allow(clippy::too_many_arguments)]
async fn serve(
    ctx: &Ctx<'_>,
    (base, database): (&str, &DatabaseUrl),
    before_run: &str,
    label: &str,
    stored: u64,
    extra_ids: Vec<String>,
    rows: &mut Vec<Row>,
    problems: &mut Vec<String>,
) -> Result<Served, String> {
    let (args, plan, client) = (ctx.args, ctx.plan, &ctx.client);
    let ingest = {
        let (client, base) = (client.clone(), Arc::<str>::from(base));
        let (bsns, serial) = (ctx.bsns.clone(), ctx.serial.clone());
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
    let mut figures = Vec::new();
    if plan.warmup > 0 {
        let op = ingest.clone();
        let warm = load(1, Limit::Count(plan.warmup), move |i| op(i)).await;
        acknowledged += warm.ok();
        say(&warm.line(
            &format!("warm-up ingest{label}, concurrency 1"),
            "referrals",
        ));
    }
    for &c in &plan.levels {
        let op = ingest.clone();
        let o = load(c, plan.ingest, move |i| op(i)).await;
        acknowledged += o.ok();
        say(&o.line(
            &format!("referral ingest{label}, concurrency {c}"),
            "referrals",
        ));
        if o.ok() == 0 {
            return Err(format!(
                "no referral acknowledged{label} at concurrency {c}"
            ));
        }
        figures.push((c, o.rate()));
        rows.push(Row::of(
            format!("referral ingest{label}, c{c}"),
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
    let counted = total(client, &format!("{base}/ServiceRequest?_summary=count")).await?;
    let expected = stored + acknowledged;
    let ok = counted == expected;
    say(&format!(
        "counted back{label}: {counted} ServiceRequests stored, {stored} preloaded + {acknowledged} acknowledged (2xx): {}",
        if ok { "OK" } else { "MISMATCH" }
    ));
    rows.push(Row::text(
        format!("referrals counted back{label}"),
        format!("{counted} stored / {stored} preloaded + {acknowledged} acknowledged"),
        if ok { "OK" } else { "MISMATCH" },
    ));
    if !ok {
        problems.push(format!(
            "{label}: {expected} referrals should be stored but {counted} are"
        ));
    }

    // ---- the planner's statistics (PostgreSQL), as a running service has them
    crate::databases::analyze(database).await?;

    // ---- read by id
    let mut ids = task_ids(client, base).await?;
    let spread = extra_ids.len();
    ids.extend(extra_ids);
    let reads = {
        let (client, base, ids) = (client.clone(), base.to_owned(), Arc::new(ids));
        load(args.read_concurrency, plan.reads, move |i| {
            let url = format!("{base}/Task/{}", ids[(i % ids.len() as u64) as usize]);
            let client = client.clone();
            async move { expect_ok(client.get(url)).await }
        })
        .await
    };
    say(&reads.line(
        &format!(
            "read by id (Task){label}, concurrency {}",
            args.read_concurrency
        ),
        "reads",
    ));
    rows.push(Row::of(
        format!("read by id{label}, c{}", args.read_concurrency),
        &reads,
        "reads",
        if spread > 0 {
            format!("GET Task/{{id}}: the first 100 of Task?owner=.. and {spread} accepted Tasks spread over the preload")
        } else {
            "GET Task/{id}".to_owned()
        },
    ));
    if reads.ok() == 0 {
        problems.push(format!("read by id{label}: nothing succeeded"));
    }

    crate::polls::polls(
        ctx,
        base,
        (label, before_run),
        (acknowledged, stored),
        rows,
        problems,
    )
    .await?;
    Ok(Served { ingest: figures })
}
