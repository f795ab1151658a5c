//! The statistics phase (issue 17, "Monitoring"): `--report-referrals` referrals' rows
//! of the statistics projection written straight to a fresh database (the reports read
//! nothing else; the rows are what the after-write hook keeps), then a server on that
//! database answering the yearly report of one municipality and of every municipality.

use std::time::{Duration, Instant};

use wor_hub::app::principal::Principal;
use wor_hub::config::{DatabaseUrl, Settings};
use wor_hub::startup::Application;
use wor_hub::store::{FactsRow, Failure, Store};

use crate::http::expect_ok;
use crate::load::{load, Limit, Outcome};

/// Real CBS codes: the referrals are spread over these municipalities.
const MUNICIPALITIES: [&str; 20] = [
    "GM0484", "GM0153", "GM0363", "GM0599", "GM0518", "GM0344", "GM0772", "GM0014", "GM0034",
    "GM0758", "GM0268", "GM0193", "GM0402", "GM0392", "GM0202", "GM0546", "GM0935", "GM0080",
    "GM0855", "GM0796",
];
/// Days from 2024-01-01: three years of referrals.
const DAYS: u64 = 1096;
const DAY: i64 = 86_400_000_000;
const BATCH: u64 = 10_000;

pub(crate) struct Figures {
    pub(crate) seeded: u64,
    pub(crate) seeding: Duration,
    /// Rows of the measured municipality's year.
    pub(crate) municipality_rows: u64,
    pub(crate) municipality_year: Outcome,
    pub(crate) all_year: Outcome,
}

/// The projection row of synthetic referral `i`: deterministic, spread over
/// municipalities, practices, organisations, dates and outcomes.
fn row(i: u64) -> FactsRow {
    let start = time::macros::date!(2024 - 01 - 01);
    let date = start + time::Duration::days(((i * 7919) % DAYS) as i64);
    let received_at = (date.midnight().assume_utc().unix_timestamp() + 9 * 3600) * 1_000_000;
    let m = (i % MUNICIPALITIES.len() as u64) as usize;
    let outcome = i % 10;
    let contacted = !matches!(outcome, 8 | 9);
    let after = |days: u64| Some(received_at + (days as i64) * DAY);
    FactsRow {
        referral: format!("bench-{i:08}"),
        referral_date: date.to_string(),
        municipality: MUNICIPALITIES[m].to_owned(),
        practice: Some(format!("Organization/bench-practice-{}", i % 300)),
        age_group: Some(
            if i.is_multiple_of(5) {
                "under-18"
            } else {
                "18-plus"
            }
            .to_owned(),
        ),
        organization: (outcome != 9)
            .then(|| format!("Organization/bench-org-{}-{}", m, (i / 20) % 2)),
        category: "wor".to_owned(),
        status: match outcome {
            0..=4 => "completed",
            5 => "cancelled",
            6 => "failed",
            7 => "in-progress",
            _ => "requested",
        }
        .to_owned(),
        unroutable_reason: (outcome == 9).then(|| "all-rejected".to_owned()),
        rejection_reason: (outcome == 9).then(|| "capacity".to_owned()),
        flags: if outcome == 9 { 1 | 4 } else { 1 | 2 | 8 },
        received_at,
        contact_at: contacted.then(|| after(1 + i % 20)).flatten(),
        intake_at: (outcome < 8).then(|| after(10 + i % 25)).flatten(),
        completed_at: (outcome < 5).then(|| after(60 + i % 90)).flatten(),
        health: i
            .is_multiple_of(3)
            .then(|| "4,5,5,6,4,5|6,7,6,7,6,7".to_owned()),
    }
}

/// Seeds `referrals` rows on `database`, starts a server on it and measures.
pub(crate) async fn reports(
    database: DatabaseUrl,
    referrals: u64,
    limit: Limit,
) -> Result<Figures, String> {
    let store = Store::open(&database, 2)
        .await
        .map_err(|e| format!("statistics database: {e}"))?;
    let principal = Principal::system("bench:reports-seed");
    let started = Instant::now();
    let mut from = 0;
    while from < referrals {
        let to = (from + BATCH).min(referrals);
        store
            .transaction(principal.access(), move |tx| {
                let rows: Vec<FactsRow> = (from..to).map(row).collect();
                tx.insert_referral_facts(&rows)
                    .map_err(Failure::<String>::from)
            })
            .await
            .map_err(|e| format!("seeding the statistics: {e:?}"))?;
        from = to;
    }
    let seeding = started.elapsed();
    let mut settings = Settings::for_database(database);
    settings.log = "warn".into();
    settings.db_pool_size = 4;
    let app = Application::build(&settings)
        .await
        .map_err(|e| format!("the statistics server does not start: {e}"))?;
    let base = format!("http://127.0.0.1:{}/reports/referrals", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let one =
        format!("{base}?from=2026-01-01&to=2026-12-31&period=month&by=period&municipality=GM0484");
    let probe: serde_json::Value = client
        .get(&one)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let municipality_rows = probe
        .pointer("/total/received")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| format!("the municipality report has no total: {probe}"))?;
    let measure = |url: String, limit: Limit| {
        let client = client.clone();
        load(1, limit, move |_| {
            let (client, url) = (client.clone(), url.clone());
            async move { expect_ok(client.get(url)).await }
        })
    };
    let municipality_year = measure(one, limit).await;
    let all = format!("{base}?from=2026-01-01&to=2026-12-31&period=year&by=municipality");
    let all_limit = match limit {
        Limit::For(_) => Limit::Count(20),
        count => count,
    };
    let all_year = measure(all, all_limit).await;
    Ok(Figures {
        seeded: referrals,
        seeding,
        municipality_rows,
        municipality_year,
        all_year,
    })
}
