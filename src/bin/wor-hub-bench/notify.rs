//! Notification latency (issue 16: "commit to receipt on a local receiver"): a local
//! rest-hook receiver (actix-web on 127.0.0.1, one worker, answering 200 at once), an
//! active R4 backport Subscription on the Task topic for the owner's Tasks (payload
//! `id-only`), then referrals one at a time at a modest rate. Per referral: the time
//! from the 2xx answer of its POST (after the commit, so an upper bound of the commit
//! time and this latency a lower bound; negative when the notification overtakes the
//! answer) to the receipt of the notification whose focus is the Task routing created
//! for it (looked up afterwards with `Task?focus=ServiceRequest/<id>`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse, HttpServer};
use serde_json::{json, Value};

use crate::http::get_json;
use crate::{FHIR_JSON, OWNER};

const TASK_TOPIC: &str = "https://wor-hub.nl/fhir/SubscriptionTopic/task-change";
const FILTER: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria";
const PAYLOAD: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";
/// How long to wait for the handshake, and for the last notifications.
const WAIT: Duration = Duration::from_secs(30);

/// What the receiver got: when, and the body.
type Arrivals = Arc<Mutex<Vec<(Instant, web::Bytes)>>>;

async fn hook(body: web::Bytes, arrivals: web::Data<Arrivals>) -> HttpResponse {
    let at = Instant::now();
    if let Ok(mut got) = arrivals.lock() {
        got.push((at, body));
    }
    HttpResponse::Ok().finish()
}

/// The figures of the phase.
pub(crate) struct Latency {
    /// Milliseconds from the POST's answer to the receipt, sorted (signed).
    pub(crate) from_answer: Vec<f64>,
    pub(crate) expected: u64,
    /// Referrals whose Task's notification arrived (at least once).
    pub(crate) received: u64,
    /// Task events received more than once.
    pub(crate) duplicates: u64,
    /// Notifications that arrived before the POST's answer.
    pub(crate) overtaken: u64,
}

impl Latency {
    /// Nearest-rank-style percentile as [`crate::load::Outcome::pct`].
    pub(crate) fn pct(&self, p: usize) -> f64 {
        let n = self.from_answer.len();
        if n == 0 {
            return f64::NAN;
        }
        self.from_answer[(n * p / 100).min(n - 1)]
    }
}

/// The focus references (`.../Task/<id>`) of a notification's events, if it is an
/// event-notification.
fn foci(body: &[u8]) -> Vec<String> {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let params = body
        .pointer("/entry/0/resource/parameter")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let kind = params
        .iter()
        .find(|p| p["name"] == "type")
        .and_then(|p| p["valueCode"].as_str());
    if kind != Some("event-notification") {
        return Vec::new();
    }
    params
        .iter()
        .filter(|p| p["name"] == "notification-event")
        .filter_map(|p| p["part"].as_array())
        .flatten()
        .filter(|q| q["name"] == "focus")
        .filter_map(|q| q["valueReference"]["reference"].as_str())
        .map(str::to_owned)
        .collect()
}

/// Runs the phase against the server at `base`: `count` referrals made by `next`, one
/// at a time, `pause` apart.
pub(crate) async fn latency(
    client: &reqwest::Client,
    base: &str,
    count: u64,
    pause: Duration,
    next: impl Fn() -> String,
) -> Result<Latency, String> {
    // The receiver.
    let arrivals: Arrivals = Arc::default();
    let data = web::Data::new(arrivals.clone());
    let receiver = HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .default_service(web::to(hook))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .map_err(|e| format!("notification receiver: {e}"))?;
    let port = receiver
        .addrs()
        .first()
        .map(std::net::SocketAddr::port)
        .ok_or("notification receiver: no address")?;
    let receiver = receiver.run();
    let stop = receiver.handle();
    tokio::spawn(receiver);
    let result = measure(client, base, count, pause, next, port, &arrivals).await;
    stop.stop(false).await;
    result
}

async fn measure(
    client: &reqwest::Client,
    base: &str,
    count: u64,
    pause: Duration,
    next: impl Fn() -> String,
    port: u16,
    arrivals: &Arrivals,
) -> Result<Latency, String> {
    // The Subscription, active once its handshake was acknowledged.
    let subscription = json!({
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "wor-hub-bench notification latency",
        "criteria": TASK_TOPIC,
        "_criteria": {"extension": [{"url": FILTER, "valueString": format!("Task?owner={OWNER}")}]},
        "channel": {
            "type": "rest-hook",
            "endpoint": format!("http://127.0.0.1:{port}/hook"),
            "payload": FHIR_JSON,
            "_payload": {"extension": [{"url": PAYLOAD, "valueCode": "id-only"}]}
        }
    });
    let res = client
        .post(format!("{base}/Subscription"))
        .header("Content-Type", FHIR_JSON)
        .body(subscription.to_string())
        .send()
        .await
        .map_err(|e| format!("creating the Subscription: {e}"))?;
    if res.status() != 201 {
        return Err(format!("creating the Subscription: HTTP {}", res.status()));
    }
    let created: Value = res
        .json()
        .await
        .map_err(|e| format!("creating the Subscription: {e}"))?;
    let id = created["id"]
        .as_str()
        .ok_or("creating the Subscription: no id")?
        .to_owned();
    let deadline = Instant::now() + WAIT;
    loop {
        let now = get_json(client, &format!("{base}/Subscription/{id}")).await?;
        match now["status"].as_str() {
            Some("active") => break,
            Some("error") => return Err(format!("the Subscription went to error: {now}")),
            _ if Instant::now() >= deadline => {
                return Err(format!("the Subscription is not active after 30 s: {now}"))
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }

    // The referrals, one at a time: when each answer arrived, and its ServiceRequest.
    let mut answered = Vec::new();
    for _ in 0..count {
        let res = client
            .post(base)
            .header("Content-Type", FHIR_JSON)
            .body(next())
            .send()
            .await
            .map_err(|e| format!("notification referral: {e}"))?;
        let at = Instant::now();
        let status = res.status();
        let reply: Value = res
            .json()
            .await
            .map_err(|e| format!("notification referral: {e}"))?;
        if !status.is_success() {
            return Err(format!("notification referral: HTTP {status}: {reply}"));
        }
        let sr = reply["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.pointer("/response/location").and_then(Value::as_str))
            .find_map(|l| l.split("/ServiceRequest/").nth(1))
            .and_then(|rest| rest.split('/').next())
            .ok_or("notification referral: no ServiceRequest in the answer")?
            .to_owned();
        answered.push((at, sr));
        tokio::time::sleep(pause).await;
    }

    // Each referral's Task, then every notification or the wait runs out.
    let mut task_of = HashMap::new();
    for (i, (_, sr)) in answered.iter().enumerate() {
        let tasks = get_json(client, &format!("{base}/Task?focus=ServiceRequest/{sr}")).await?;
        let task = tasks
            .pointer("/entry/0/resource/id")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("no Task for ServiceRequest/{sr}"))?;
        task_of.insert(format!("{base}/Task/{task}"), i);
    }
    let received = |arrivals: &Arrivals| -> Vec<(Instant, String)> {
        arrivals
            .lock()
            .map(|got| {
                got.iter()
                    .flat_map(|(at, body)| foci(body).into_iter().map(move |f| (*at, f)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let deadline = Instant::now() + WAIT;
    loop {
        let got = received(arrivals);
        let distinct: std::collections::HashSet<_> = got
            .iter()
            .filter_map(|(_, f)| task_of.get(f))
            .copied()
            .collect();
        if distinct.len() >= answered.len() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A moment for duplicates.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut first: HashMap<usize, Instant> = HashMap::new();
    let mut duplicates = 0;
    for (at, focus) in received(arrivals) {
        if let Some(&i) = task_of.get(&focus) {
            if first.insert(i, at).is_some() {
                duplicates += 1;
            }
        }
    }
    let mut from_answer = Vec::new();
    let mut overtaken = 0;
    for (i, (answer, _)) in answered.iter().enumerate() {
        let Some(&at) = first.get(&i) else { continue };
        let ms = if at >= *answer {
            (at - *answer).as_secs_f64() * 1e3
        } else {
            overtaken += 1;
            -((*answer - at).as_secs_f64() * 1e3)
        };
        from_answer.push(ms);
    }
    from_answer.sort_by(f64::total_cmp);
    Ok(Latency {
        received: first.len() as u64,
        from_answer,
        expected: count,
        duplicates,
        overtaken,
    })
}
