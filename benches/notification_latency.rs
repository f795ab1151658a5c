//! Notification latency of the real server: one rest-hook Subscription (topic
//! task-change, payload id-only) on a local receiver in the same process, then `N`
//! referrals, one at a time with a pause between them; each creates one routing Task,
//! whose event the worker delivers. The program prints, per measure, p50/p90/p99/max of
//! commit-to-receipt latency and how many notifications the receiver got.
//!
//! ```sh
//! cargo bench --bench notification_latency -- sqlite 200 20
//! WOR_HUB_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo bench --bench notification_latency -- postgres 200 20
//! ```
//! (arguments: backend, referrals (200), pause between them in ms (20). PostgreSQL: a
//! fresh database is created on that server; `source .ci/postgres.sh` starts a throwaway
//! one and exports WOR_HUB_TEST_POSTGRES_URL, which is used when the bench variable is
//! not set.)
//!
//! The commit itself is not observable from outside, so it is bracketed:
//! - "from response": from the arrival of the referral POST's response at the client
//!   (after the commit: an upper bound of the commit time, so this latency is a lower
//!   bound; it can be negative when the notification overtakes the response);
//! - "from stamp": from the event's `timestamp` (the version's stamp from the change
//!   clock, in microseconds, taken inside the transaction before its commit: a lower
//!   bound of the commit time, so this latency is an upper bound), on the same wall
//!   clock as the receiver's.
//!
//! Referrals are sent one at a time, so their Tasks commit in order and referral `i`
//! (from 1) is event number `i` of the Subscription; the program checks afterwards
//! that each event's focus is the Task routing created for that referral. It exits
//! non-zero unless every event `1..=N` arrived exactly once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse, HttpServer};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use serde_json::{json, Value};
use wor_hub::config::{DatabaseUrl, Settings};
use wor_hub::fhir::instant::{now_micros, parse_instant};
use wor_hub::startup::Application;

const TASK_TOPIC: &str = "https://wor-hub.nl/fhir/SubscriptionTopic/task-change";
const PAYLOAD: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";
const FHIR_JSON: &str = "application/fhir+json";
const WAIT: Duration = Duration::from_secs(30);

/// One request the receiver got: when (monotonic and wall clock, microseconds), and
/// its body.
struct Arrival {
    at: Instant,
    wall: i64,
    body: web::Bytes,
}

type Arrivals = Arc<Mutex<Vec<Arrival>>>;

#[allow(clippy::unwrap_used)]
async fn hook(body: web::Bytes, arrivals: web::Data<Arrivals>) -> HttpResponse {
    let (at, wall) = (Instant::now(), now_micros());
    arrivals.lock().unwrap().push(Arrival { at, wall, body });
    HttpResponse::Ok().finish()
}

/// One event of an event-notification, with when its notification arrived.
struct Received {
    at: Instant,
    wall: i64,
    /// the event's `timestamp`, microseconds
    stamp: i64,
    /// "http://127.0.0.1:PORT/fhir/Task/<id>"
    focus: String,
}

/// The events of the event-notifications among `arrivals`, and how many
/// event-notifications there were.
fn events(arrivals: &[Arrival]) -> (Vec<(i64, Received)>, usize) {
    let mut out = Vec::new();
    let mut notifications = 0;
    for a in arrivals {
        let body: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
        let params = body["entry"][0]["resource"]["parameter"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let kind = params
            .iter()
            .find(|p| p["name"] == "type")
            .and_then(|p| p["valueCode"].as_str());
        if kind != Some("event-notification") {
            continue;
        }
        notifications += 1;
        for event in params.iter().filter(|p| p["name"] == "notification-event") {
            let parts = event["part"].as_array().cloned().unwrap_or_default();
            let part = |name: &str| parts.iter().find(|q| q["name"] == name).cloned();
            let number = part("event-number")
                .and_then(|q| q["valueString"].as_str().and_then(|s| s.parse().ok()));
            let stamp =
                part("timestamp").and_then(|q| q["valueInstant"].as_str().and_then(parse_instant));
            let focus = part("focus")
                .and_then(|q| q["valueReference"]["reference"].as_str().map(str::to_owned));
            if let (Some(number), Some(stamp), Some(focus)) = (number, stamp, focus) {
                out.push((
                    number,
                    Received {
                        at: a.at,
                        wall: a.wall,
                        stamp,
                        focus,
                    },
                ));
            }
        }
    }
    (out, notifications)
}

/// A referral as a GP system sends it (as tests/api/helpers.rs `refer`): Practitioner,
/// a new Patient and the ServiceRequest in one transaction.
fn referral() -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000003",
             "resource": {"resourceType": "Practitioner", "name": [{"family": "de Vries"}]},
             "request": {"method": "POST", "url": "Practitioner"}},
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
             "resource": {"resourceType": "Patient", "birthDate": "1959-04-02",
                          "address": [{"use": "home", "district": "Alphen aan den Rijn", "postalCode": "2771 AB"}]},
             "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000002",
             "resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                          "code": {"text": "Welzijn op Recept"},
                          "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"},
                          "requester": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000003"},
                          "authoredOn": "2026-11-20"},
             "request": {"method": "POST", "url": "ServiceRequest"}},
        ],
    })
}

/// Nearest-rank percentile `p` of sorted `v`.
fn pct(v: &[f64], p: usize) -> f64 {
    let rank = (v.len() * p).div_ceil(100).max(1);
    v.get(rank - 1).copied().unwrap_or(f64::NAN)
}

#[allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]
fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let backend = args.first().map_or("sqlite", String::as_str).to_owned();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let pause = Duration::from_millis(args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20));
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
    let ok = runtime.block_on(async move {
        let mut settings = Settings::for_database(database);
        settings.db_pool_size = 4;
        settings.log = "warn".into();
        let app = Application::build(&settings).await.unwrap();
        let base = format!("http://127.0.0.1:{}/fhir", app.port());
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::new();
        let post = |path: &str, body: String| {
            client
                .post(format!("{base}/{path}"))
                .header("Content-Type", FHIR_JSON)
                .body(body)
                .send()
        };

        // The directory, so that referrals are routed.
        let res = post("", wor_hub::api::directory::SAMPLE_DIRECTORY.to_owned())
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "sample directory loaded");

        // The receiver.
        let arrivals: Arrivals = Arc::default();
        let data = web::Data::new(arrivals.clone());
        let receiver = HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .default_service(web::to(hook))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let endpoint = format!("http://127.0.0.1:{}/hook", receiver.addrs()[0].port());
        tokio::spawn(receiver.run());

        // The Subscription, active once its handshake was acknowledged.
        let subscription = json!({
            "resourceType": "Subscription",
            "status": "requested",
            "reason": "notification latency benchmark",
            "criteria": TASK_TOPIC,
            "channel": {
                "type": "rest-hook",
                "endpoint": endpoint,
                "payload": FHIR_JSON,
                "_payload": {"extension": [{"url": PAYLOAD, "valueCode": "id-only"}]}
            }
        });
        let res = post("Subscription", subscription.to_string()).await.unwrap();
        assert_eq!(res.status(), 201, "Subscription created");
        let id = res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let deadline = Instant::now() + WAIT;
        loop {
            let now: Value = client
                .get(format!("{base}/Subscription/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if now["status"] == "active" {
                break;
            }
            assert!(
                now["status"] != "error" && Instant::now() < deadline,
                "Subscription not active: {now}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // The referrals, one at a time: when each response arrived, and its
        // ServiceRequest.
        let body = referral().to_string();
        let mut answered = Vec::with_capacity(n);
        let started = Instant::now();
        for _ in 0..n {
            let res = post("", body.clone()).await.unwrap();
            let at = Instant::now();
            assert_eq!(res.status(), 200, "referral accepted");
            let reply: Value = res.json().await.unwrap();
            let location = reply["entry"][2]["response"]["location"].as_str().unwrap();
            let sr = location.split('/').nth_back(2).unwrap().to_owned();
            answered.push((at, sr));
            tokio::time::sleep(pause).await;
        }
        let sent_in = started.elapsed();

        // Every event, or the wait runs out; then a moment for duplicates.
        let deadline = Instant::now() + WAIT;
        while events(&arrivals.lock().unwrap()).0.len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (got, notifications) = events(&arrivals.lock().unwrap());
        let count = got.len();
        let mut by_number: BTreeMap<i64, Received> = BTreeMap::new();
        let mut duplicates = 0;
        for (number, r) in got {
            if by_number.insert(number, r).is_some() {
                duplicates += 1;
            }
        }

        // Each event's focus is the Task routing created for its referral.
        let mut mismatched = 0;
        let mut from_response = Vec::with_capacity(n);
        let mut from_stamp = Vec::with_capacity(n);
        let mut missing = 0;
        for (i, (at, sr)) in answered.iter().enumerate() {
            let Some(r) = by_number.get(&i64::try_from(i + 1).unwrap()) else {
                missing += 1;
                continue;
            };
            let tasks: Value = client
                .get(format!("{base}/Task?focus=ServiceRequest/{sr}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let task = tasks["entry"][0]["resource"]["id"].as_str().unwrap_or("?");
            if tasks["total"] != 1 || r.focus != format!("{base}/Task/{task}") {
                mismatched += 1;
            }
            // Signed: the notification may arrive before the response does.
            let ms = if r.at >= *at {
                (r.at - *at).as_secs_f64() * 1e3
            } else {
                -((*at - r.at).as_secs_f64() * 1e3)
            };
            from_response.push(ms);
            from_stamp.push((r.wall - r.stamp) as f64 / 1e3);
        }
        let overtaken = from_response.iter().filter(|&&ms| ms < 0.0).count();
        from_response.sort_by(f64::total_cmp);
        from_stamp.sort_by(f64::total_cmp);

        println!(
            "{backend}: {n} referrals, one at a time with {} ms pauses, sent in {:.1}s",
            pause.as_millis(),
            sent_in.as_secs_f64()
        );
        for (name, v) in [
            ("from POST response (commit upper bound)", &from_response),
            ("from event timestamp (commit lower bound)", &from_stamp),
        ] {
            println!(
                "  latency to receipt {name}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                pct(v, 50),
                pct(v, 90),
                pct(v, 99),
                v.last().copied().unwrap_or(f64::NAN)
            );
        }
        println!(
            "  events received: {count} (expected {n}; missing {missing}, duplicates {duplicates}), \
             in {notifications} event-notifications; focus mismatches: {mismatched}; \
             notifications that arrived before the POST response: {overtaken}"
        );
        let ok = count == n && missing == 0 && duplicates == 0 && mismatched == 0;
        if !ok {
            eprintln!("FAILED: not every referral was notified exactly once with its Task");
        }
        ok
    });
    if !ok {
        std::process::exit(1);
    }
}
