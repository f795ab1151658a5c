//! The delivery worker of `wor-hub serve`: claims Subscriptions with something to send
//! (a handshake, pending events, a heartbeat), sends the notification Bundle with
//! reqwest over rustls, and records the outcome. One Subscription is delivered by one
//! task at a time, in event order; a slow receiver holds only its own task and a
//! permit of its endpoint's host, never intake or other subscribers.
//!
//! Several instances on one PostgreSQL share the outbox: a claim is a lease in the
//! database (`FOR UPDATE SKIP LOCKED`), so an event goes out from one instance at a
//! time, and a crashed instance's leases expire and are taken over.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, Semaphore};

use crate::app::principal::Principal;
use crate::app::{micros, App};
use crate::fhir::index::index_rows;
use crate::fhir::instant::now_micros;
use crate::fhir::registry;
use crate::fhir::resource::IncomingResource;
use crate::notify::{self, Event, NotificationType, PayloadContent, StatusInfo};
use crate::referral::message::STATUS_CHANNEL;

use super::messages;
use crate::store::{Attempt, AuditRecord, Failure, SubscriptionRow, Tx, TxError, UpdateOutcome};

/// How the worker behaves (`--notification-retry-horizon`).
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// The FHIR base URL notifications name resources under.
    pub base: String,
    /// After failing this long, a Subscription goes to `error`.
    pub retry_horizon: Duration,
    /// How long a claim holds (longer than the longest delivery: timeouts are <= 60 s).
    pub lease: Duration,
    /// How often the outbox is looked at without a wake-up (events other instances
    /// recorded, retries, heartbeats).
    pub poll: Duration,
    /// Deliveries at once to one host.
    pub per_host: usize,
}

impl DeliverySettings {
    pub fn new(base: String, retry_horizon: Duration, lease: Duration) -> Self {
        Self {
            base,
            retry_horizon,
            lease,
            poll: Duration::from_secs(1),
            per_host: 4,
        }
    }
}

struct Worker {
    /// The application's store with a commit counter of its own.
    store: crate::store::Store,
    settings: DeliverySettings,
    /// This instance, in the leases it takes.
    owner: String,
    client: reqwest::Client,
    in_flight: Mutex<HashSet<String>>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
    wake: Arc<Notify>,
    /// Counts delivered and failed attempts.
    metrics: Arc<crate::metrics::Metrics>,
}

/// Starts the worker on the current runtime.
pub fn spawn_delivery(app: App, settings: DeliverySettings) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("wor-hub/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the notification HTTP client; no deliveries");
            return;
        }
    };
    let wake = app.outbox_wake.clone();
    let worker = Arc::new(Worker {
        store: app.store.with_own_commit_counter(),
        settings,
        owner: uuid::Uuid::new_v4().to_string(),
        client,
        in_flight: Mutex::new(HashSet::new()),
        hosts: Mutex::new(HashMap::new()),
        wake,
        metrics: app.metrics.clone(),
    });
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = worker.wake.notified() => {}
                () = tokio::time::sleep(worker.settings.poll) => {}
            }
            if let Err(e) = Arc::clone(&worker).round().await {
                tracing::warn!(error = %e, "notification delivery round failed");
            }
        }
    });
}

fn system() -> Principal {
    Principal::system("system:notifications")
}

impl Worker {
    /// Claims what is due and starts a delivery task for each.
    async fn round(self: Arc<Self>) -> Result<(), String> {
        let owner = self.owner.clone();
        let due = self
            .store
            .read(system().access(), move |tx| {
                tx.anything_due(&owner, now_micros())
            })
            .await
            .map_err(|e| e.to_string())?;
        if !due {
            return Ok(());
        }
        let owner = self.owner.clone();
        let lease = micros(self.settings.lease);
        let claimed = self
            .store
            .transaction(system().access(), move |tx| {
                let now = now_micros();
                Ok::<_, Failure<()>>(tx.claim_due(&owner, now, now + lease, 32)?)
            })
            .await
            .map_err(|e| format!("{e:?}"))?;
        for row in claimed {
            let fresh = self
                .in_flight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(row.id.clone());
            if !fresh {
                continue;
            }
            let worker = Arc::clone(&self);
            tokio::spawn(async move {
                let id = row.id.clone();
                let more = worker.deliver(row).await;
                worker
                    .in_flight
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&id);
                if more {
                    worker.wake.notify_one();
                }
            });
        }
        Ok(())
    }

    fn host_permits(&self, endpoint: &str) -> Arc<Semaphore> {
        let host = reqwest::Url::parse(endpoint)
            .ok()
            .and_then(|u| u.host_str().map(|h| format!("{h}:{:?}", u.port())))
            .unwrap_or_default();
        let mut hosts = self
            .hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(
            hosts
                .entry(host)
                .or_insert_with(|| Arc::new(Semaphore::new(self.settings.per_host))),
        )
    }

    /// One attempt for one claimed Subscription. `true`: more is pending.
    async fn deliver(&self, row: SubscriptionRow) -> bool {
        let id = row.id.clone();
        let loaded = self.load(row).await;
        let Ok(Some(job)) = loaded else {
            if let Err(e) = loaded {
                tracing::warn!(subscription = %id, error = %e, "cannot load a notification");
            }
            return false;
        };
        if job.bundle.is_null() {
            // A status event with nothing left to say: acknowledged, the next goes out.
            return self.record(&job, None).await.unwrap_or(false);
        }
        let body = job.bundle.to_string();
        let mut request = self
            .client
            .post(&job.endpoint)
            .timeout(Duration::from_secs(u64::from(job.timeout)))
            .header("Content-Type", job.content_type.as_str());
        for (name, value) in &job.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(secret) = &job.secret {
            request = request.header(
                notify::SIGNATURE_HEADER,
                notify::signature(secret.as_bytes(), body.as_bytes()),
            );
        }
        let permits = self.host_permits(&job.endpoint);
        let sent = {
            let _permit = permits.acquire().await;
            request.body(body).send().await
        };
        let error = match sent {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!("the endpoint answered {}", response.status())),
            Err(e) if e.is_timeout() => Some(format!(
                "the endpoint did not answer within {} s",
                job.timeout
            )),
            Err(e) => Some(format!("cannot reach the endpoint: {}", without_url(&e))),
        };
        self.metrics.delivery(error.is_none());
        // The endpoint has the notification now: recording it is retried through a
        // brief database outage (a busy writer, a pool timeout), so that it is not sent
        // again; only a longer outage leaves it to be redelivered (at least once).
        let mut wait = Duration::from_millis(100);
        loop {
            match self.record(&job, error.clone()).await {
                Ok(more) => return more,
                Err(e) if wait <= Duration::from_millis(1600) => {
                    tracing::warn!(subscription = %job.id, error = %e, "cannot record a delivery yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => {
                    tracing::warn!(subscription = %job.id, error = %e, "cannot record a delivery");
                    return false;
                }
            }
        }
    }

    /// What to send for a claimed Subscription, read in one unit of work. The row is
    /// read again there: the claimed one can be older than the record of the last
    /// delivery (a round claims the Subscription while its previous delivery is being
    /// recorded, and starts this one once that delivery is done), and from its
    /// `delivered_through` the same events would go out again (seen under load: events
    /// 3 and 4 delivered twice).
    async fn load(&self, row: SubscriptionRow) -> Result<Option<Job>, String> {
        let base = self.settings.base.clone();
        self.store
            .transaction(system().access(), move |tx| {
                let Some(current) = tx.subscription_row(&row.id).map_err(Failure::<()>::Tx)? else {
                    return Ok(None);
                };
                load_job(tx, &current, &base).map_err(Failure::<()>::Tx)
            })
            .await
            .map_err(|e| format!("{e:?}"))
    }

    /// Records the attempt; a handshake's outcome and the end of the retry horizon
    /// also set the Subscription's status (resource and outbox). `true`: more pending.
    async fn record(&self, job: &Job, error: Option<String>) -> Result<bool, String> {
        let owner = self.owner.clone();
        let horizon = micros(self.settings.retry_horizon);
        let job = job.clone();
        self.store
            .transaction(system().access(), move |tx| {
                let now = now_micros();
                let Some(row) = tx.subscription_row(&job.id)? else {
                    return Ok(false);
                };
                match &error {
                    None => {
                        let attempt = Attempt::Delivered {
                            through: job.through,
                            at: now,
                        };
                        let activate =
                            job.kind == NotificationType::Handshake && row.status == "requested";
                        if activate {
                            // The change clock before the outbox row, as every writer
                            // takes them (PostgreSQL would otherwise find a deadlock).
                            tx.stamp()?;
                        }
                        if !tx.finish_attempt(&job.id, &owner, &attempt)? {
                            return Ok(false);
                        }
                        if activate {
                            set_status(tx, &job.id, "active", None)?;
                        }
                        // What was disclosed to the endpoint, as reads are audited.
                        for (ty, focus, version) in &job.foci {
                            let patients = tx.patients_of_version(ty, focus, *version)?;
                            tx.audit_about(
                                AuditRecord {
                                    action: "R",
                                    interaction: "notification",
                                    resource_type: ty,
                                    resource_id: Some(focus),
                                    version_id: Some(*version),
                                    outcome: "success",
                                },
                                patients,
                            )?;
                        }
                        if job.kind == NotificationType::EventNotification {
                            tracing::info!(subscription = %job.id, through = job.through, "notification delivered");
                        }
                        Ok(job.through < row.events_since_start)
                    }
                    Some(error) => {
                        let first = row.failing_since.unwrap_or(now);
                        let give_up =
                            job.kind == NotificationType::Handshake || now - first >= horizon;
                        let attempts = u32::try_from(row.attempts).unwrap_or(u32::MAX);
                        let delay = notify::backoff(attempts.saturating_add(1), fastrand::f64());
                        let attempt = Attempt::Failed {
                            at: now,
                            retry_at: now + micros(delay),
                            error: error.clone(),
                        };
                        if give_up {
                            tx.stamp()?;
                        }
                        if !tx.finish_attempt(&job.id, &owner, &attempt)? {
                            return Ok(false);
                        }
                        tracing::warn!(subscription = %job.id, error = %error, attempts = attempts + 1, "notification not delivered");
                        if give_up {
                            let why = if job.kind == NotificationType::Handshake {
                                format!("The handshake failed: {error}")
                            } else {
                                format!("Deliveries failed for longer than the retry horizon; last: {error}")
                            };
                            set_status(tx, &job.id, "error", Some(&why))?;
                        }
                        Ok(false)
                    }
                }
            })
            .await
            .map_err(|e: crate::store::WriteError<()>| format!("{e:?}"))
    }
}

/// A reqwest error names the URL; the URL may carry a token in its query.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<endpoint>");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// One notification, ready to send.
#[derive(Debug, Clone)]
struct Job {
    id: String,
    kind: NotificationType,
    /// Delivered through this event number once acknowledged.
    through: i64,
    endpoint: String,
    content_type: String,
    headers: Vec<(String, String)>,
    timeout: u32,
    secret: Option<String>,
    bundle: Value,
    /// (type, id, version) of each event's focus, for the audit trail.
    foci: Vec<(String, String, i64)>,
}

/// A sender Endpoint's next status message as a job of the worker.
fn message_job(row: &SubscriptionRow, m: messages::MessageJob) -> Job {
    Job {
        id: row.id.clone(),
        kind: NotificationType::EventNotification,
        through: m.through,
        endpoint: m.endpoint.address,
        content_type: m.endpoint.content_type,
        headers: m.endpoint.headers,
        timeout: notify::DEFAULT_TIMEOUT,
        secret: None,
        bundle: m.bundle,
        foci: m.foci,
    }
}

fn load_job(tx: &mut Tx<'_>, row: &SubscriptionRow, base: &str) -> Result<Option<Job>, TxError> {
    if row.topic == STATUS_CHANNEL {
        let job = messages::load_message(tx, row, base)?;
        return Ok(job.map(|m| message_job(row, m)));
    }
    let Some(stored) = tx.current("Subscription", &row.id)? else {
        return Ok(None);
    };
    let Some(value) = stored
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str::<Value>(b).ok())
    else {
        return Ok(None);
    };
    let Ok(spec) = notify::read_subscription(&value) else {
        return Ok(None);
    };
    // Subscription.end: the server turns it off then (R4).
    if spec.end.is_some_and(|end| end <= now_micros()) {
        set_status(tx, &row.id, "off", None)?;
        return Ok(None);
    }
    let (kind, events) = if row.status == "requested" {
        (NotificationType::Handshake, Vec::new())
    } else if row.delivered_through < row.events_since_start {
        let rows = tx.subscription_events(
            &row.id,
            row.delivered_through + 1,
            row.events_since_start,
            i64::from(spec.max_count),
        )?;
        let events = events_of(tx, &rows, spec.payload)?;
        (NotificationType::EventNotification, events)
    } else {
        (NotificationType::Heartbeat, Vec::new())
    };
    let through = events.last().map_or(row.delivered_through, |e| e.number);
    let info = StatusInfo {
        subscription: format!("{base}/Subscription/{}", row.id),
        topic: row.topic.clone(),
        status: if kind == NotificationType::Handshake {
            "requested".to_owned()
        } else {
            row.status.clone()
        },
        kind,
        events_since_start: if kind == NotificationType::EventNotification {
            through
        } else {
            row.events_since_start
        },
        error: None,
    };
    Ok(Some(Job {
        id: row.id.clone(),
        kind,
        through,
        endpoint: spec.endpoint.clone(),
        content_type: spec.content_type.clone(),
        headers: spec.headers.clone(),
        timeout: spec.timeout,
        secret: row.secret.clone(),
        bundle: notify::notification_bundle(base, &info, &events, spec.payload),
        foci: events
            .iter()
            .filter_map(|e| {
                let (ty, id) = e.focus.split_once('/')?;
                Some((ty.to_owned(), id.to_owned(), e.focus_version))
            })
            .collect(),
    }))
}

/// Notification events for outbox rows, with the focus version when the payload is
/// `full-resource`.
pub(super) fn events_of(
    tx: &mut Tx<'_>,
    rows: &[crate::store::EventRow],
    payload: PayloadContent,
) -> Result<Vec<Event>, TxError> {
    let mut events = Vec::with_capacity(rows.len());
    for r in rows {
        let resource = match payload {
            PayloadContent::FullResource => tx
                .version_of(&r.focus_type, &r.focus_id, r.focus_version)?
                .and_then(|v| v.body)
                .and_then(|b| serde_json::from_str(&b).ok()),
            PayloadContent::Empty | PayloadContent::IdOnly => None,
        };
        events.push(Event {
            number: r.event_number,
            timestamp: r.at,
            focus: format!("{}/{}", r.focus_type, r.focus_id),
            focus_version: r.focus_version,
            resource,
        });
    }
    Ok(events)
}

/// Writes the status the worker decided into the outbox and, as a new version, into
/// the Subscription resource (with `error` saying why, or without it). The change
/// clock is taken first, as every writer takes it before the outbox rows.
fn set_status(
    tx: &mut Tx<'_>,
    row_id: &str,
    status: &str,
    error: Option<&str>,
) -> Result<(), TxError> {
    tx.stamp()?;
    tx.set_subscription_status(row_id, status)?;
    // A sender's Endpoint has no element for the error: its outbox row keeps it.
    let (ty, id, error) = match messages::endpoint_of_row(row_id) {
        Some(endpoint) => ("Endpoint", endpoint, None),
        None => ("Subscription", row_id, error),
    };
    let Some(current) = tx.current(ty, id)? else {
        return Ok(());
    };
    let Some(mut value) = current
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str::<Value>(b).ok())
    else {
        return Ok(());
    };
    let Some(object) = value.as_object_mut() else {
        return Ok(());
    };
    object.insert("status".into(), Value::String(status.to_owned()));
    match error {
        Some(e) => object.insert("error".into(), Value::String(e.to_owned())),
        None => object.remove("error"),
    };
    let Ok(text) = serde_json::to_vec(&value) else {
        return Ok(());
    };
    let Ok(resource) = IncomingResource::parse(&text) else {
        return Ok(());
    };
    let Some(def) = registry::resource(ty) else {
        return Ok(());
    };
    let rows = index_rows(def, &resource.value);
    let render = |v, at| resource.render(id, v, at);
    match tx.update(ty, id, &render, &rows, Some(current.version_id), false)? {
        UpdateOutcome::Updated(_) | UpdateOutcome::Created(_) => Ok(()),
        // A client changed it meanwhile: try again with its version.
        UpdateOutcome::VersionMismatch { .. } | UpdateOutcome::NotFound => Err(TxError::Retry),
    }
}
