//! Write throughput of the real server: `CLIENTS` concurrent clients create Patients
//! (POST, one resource per request, each its own transaction) for `SECONDS`, then the
//! program prints creates per second and latency percentiles. It measures the
//! serialised stretch of a write (from its first version to its commit, where the
//! change clock is held) and the commit itself.
//!
//! ```sh
//! cargo bench --bench write_throughput -- sqlite 16 10
//! WOR_HUB_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo bench --bench write_throughput -- postgres 16 10
//! ```
//! (PostgreSQL: a fresh database is created on that server; `source .ci/postgres.sh`
//! starts a throwaway one and exports WOR_HUB_TEST_POSTGRES_URL, which is used when the
//! bench variable is not set.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use wor_hub::config::{DatabaseUrl, Settings};
use wor_hub::startup::Application;

#[allow(clippy::unwrap_used, clippy::print_stdout)]
fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let backend = args.first().map_or("sqlite", String::as_str).to_owned();
    let clients: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let database = match backend.as_str() {
        "postgres" => {
            let admin = std::env::var("WOR_HUB_BENCH_POSTGRES_URL")
                .or_else(|_| std::env::var("WOR_HUB_TEST_POSTGRES_URL"))
                .expect("WOR_HUB_BENCH_POSTGRES_URL (or WOR_HUB_TEST_POSTGRES_URL)");
            let name = format!("wor_hub_bench_{}", uuid::Uuid::new_v4().simple());
            PgConnection::establish(&admin)
                .unwrap()
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap();
            let server = admin.rsplit_once('/').unwrap().0;
            DatabaseUrl::Postgres(format!("{server}/{name}"))
        }
        _ => DatabaseUrl::Sqlite(dir.path().join("bench.db")),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut settings = Settings::for_database(database);
        settings.db_pool_size = u32::try_from(clients).unwrap_or(16).clamp(4, 32);
        settings.log = "warn".into();
        let app = Application::build(&settings).await.unwrap();
        let base = format!("http://127.0.0.1:{}/fhir/Patient", app.port());
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let workers: Vec<_> = (0..clients)
            .map(|c| {
                let (client, base, latencies) = (client.clone(), base.clone(), latencies.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        let body = format!(
                            r#"{{"resourceType":"Patient","identifier":[{{"system":"urn:bench","value":"{c}-{n}"}}],"name":[{{"family":"Bench","given":["C{c}"]}}],"birthDate":"1970-01-01"}}"#
                        );
                        let sent = Instant::now();
                        let res = client
                            .post(&base)
                            .header("Content-Type", "application/fhir+json")
                            .body(body)
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(res.status(), 201);
                        latencies.lock().unwrap().push(sent.elapsed());
                        n += 1;
                    }
                })
            })
            .collect();
        let started = Instant::now();
        for w in workers {
            w.await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        let mut l = latencies.lock().unwrap().clone();
        l.sort();
        let pct = |p: usize| l.get(l.len() * p / 100).copied().unwrap_or_default();
        println!(
            "{backend}: {clients} clients, {} creates in {elapsed:.1}s = {:.0}/s; latency p50 {:.1?} p99 {:.1?}",
            l.len(),
            l.len() as f64 / elapsed,
            pct(50),
            pct(99)
        );
    });
}
