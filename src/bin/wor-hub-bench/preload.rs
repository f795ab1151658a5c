//! `--preload N`: a fresh database filled with N stored referrals before the
//! measurements, fast, through the store API (no HTTP, no SQL of ours).
//!
//! Why not the server's own transaction path (`app::bundle::Plan::run` for 1,000
//! referrals per unit of work, then `app::workflow::update_task` to accept every
//! second Task: tried first, and it wrote exactly the rows below): on SQLite it fell
//! from 200 to 100 referrals/s within the first 12,000 (perf: SQLite B-tree look-ups
//! dominating), so 100,000 would have taken hours. The cause was not pinned down; it is
//! not the per-referral path as such, since HTTP ingest at 100,000 stored referrals is
//! as fast as on an empty database: the suspects are the searches that path runs
//! (conditional creates, "no open Task yet", the access and statistics hooks, the
//! accept step's Task look-up) inside one large unit of work. This loader runs none of
//! those searches (it knows the referrals are new and unique) and stays at about
//! 250 referrals/s (release build, SQLite, a loaded 2-core machine).
//!
//! What the loader writes, in units of work of `unit` referrals (`Store::transaction`,
//! a store opened as the server opens it but without the application's after-write
//! hook):
//! - the sample directory, as the server imports it on an empty database
//!   (`app::directory::import_directory`, the application's own path);
//! - once, the fixture's Organization and Practitioner (the later referrals', and the
//!   HTTP ingest's conditional creates find them);
//! - per referral: the fixture's Patient, Consent and ServiceRequest with their own BSN
//!   and identifiers (as the HTTP ingest sends them), `urn:uuid` references resolved to
//!   `Type/id`, each by `Tx::create` with the index rows the server computes
//!   (`fhir::index::index_rows`) and its audit row (the store writes it); the routing
//!   decision (`app::routing::decide`, directory and postcode table read as on intake)
//!   and the Task built from it (`referral::task::build_task`: owner
//!   `Organization/tom-in-de-buurt`, status `requested`); every second Task gets a
//!   second version with status `accepted` (`Tx::update`); the referral's access grants
//!   (`Tx::replace_grants`: the owner as performer of the Consent, Patient,
//!   ServiceRequest and Task, the rows an HTTP referral gets) and its statistics row
//!   (`referral::stats::derive`, `app::reports::to_row`, `Tx::put_referral_facts`);
//! - at the end, the audit chain sealed (`Store::seal_audit`), as the running server's
//!   sealer would.
//!
//! What differs from the same referrals sent over HTTP: bodies are re-serialised JSON
//! (the server keeps the client's bytes of each element; same members, other
//! whitespace); the referrals of one unit share one change-clock stamp
//! (`meta.lastUpdated`) and one audit request id (actor `anonymous`, as an open-mode
//! request); the accepted version is the requested Task with `status` changed, not
//! reviewed by the workflow rules (`app::workflow::update_task`); no "withheld" note
//! check (the fixture's Consent is active, so an HTTP referral gets none either); no
//! `X-Request-Id` records (the bench sends none), no outbox rows (no Subscription
//! exists yet) and no HTTP-level bookkeeping (metrics).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use wor_hub::api::directory::SAMPLE_DIRECTORY;
use wor_hub::app::directory::{import_directory, ImportOutcome};
use wor_hub::app::error::AppError;
use wor_hub::app::principal::Principal;
use wor_hub::app::reports::to_row;
use wor_hub::app::routing::{decide, task_for};
use wor_hub::app::App;
use wor_hub::config::{DatabaseUrl, Settings};
use wor_hub::fhir::criteria::parse_criteria;
use wor_hub::fhir::index::index_rows;
use wor_hub::fhir::registry;
use wor_hub::fhir::resource::IncomingResource;
use wor_hub::referral::stats::{derive, Inputs};
use wor_hub::store::{Failure, Grant, IndexRows, Relation, Store, Tx};

use crate::{next_bsn, referral, say};

/// The base the initial directory is imported with (the server's when it listens on
/// port 0, as `startup::file_base` gives it).
const BASE: &str = "http://127.0.0.1:0/fhir";
/// Every `ACCEPTED_EVERY`-th referral's Task is accepted; the others stay `requested`.
const ACCEPTED_EVERY: u64 = 2;

/// What the loader wrote.
pub(crate) struct Preloaded {
    pub(crate) referrals: u64,
    pub(crate) accepted: u64,
    /// Writing the referrals (directory import and audit sealing not included).
    pub(crate) writing: Duration,
    /// Sealing the audit chain afterwards.
    pub(crate) sealing: Duration,
    /// Ids of accepted Tasks spread over the whole load (up to 100), to read by id.
    pub(crate) sample_tasks: Vec<String>,
}

/// A resource ready to be created: type, new id, parsed body and index rows.
struct Resource {
    ty: &'static str,
    id: String,
    incoming: IncomingResource,
    rows: IndexRows,
}

/// One referral's resources (Patient, Consent, ServiceRequest: the fixture's order).
struct Prepared {
    resources: Vec<Resource>,
    accept: bool,
}

/// Resolves every `urn:uuid` of the fixture's entries to `Type/id` (new ids, except
/// for the entries of `shared` types, which get the id already given to them) and
/// parses each resource with its index rows.
fn prepare(
    text: &str,
    shared: &[(&'static str, String)],
) -> Result<(Vec<Resource>, Vec<Resource>), String> {
    let bundle: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .ok_or("the fixture has no entries")?;
    let mut named = Vec::new();
    for e in entries {
        let ty = e
            .pointer("/resource/resourceType")
            .and_then(Value::as_str)
            .and_then(registry::resource)
            .ok_or("an entry without a known resourceType")?
            .name;
        let full_url = e.get("fullUrl").and_then(Value::as_str).unwrap_or_default();
        let id = shared
            .iter()
            .find(|(t, _)| *t == ty)
            .map_or_else(wor_hub::fhir::resource::new_logical_id, |(_, id)| {
                id.clone()
            });
        named.push((ty, full_url.to_owned(), id));
    }
    let mut resolved = text.to_owned();
    for (ty, full_url, id) in &named {
        if full_url.starts_with("urn:uuid:") {
            resolved = resolved.replace(&format!("\"{full_url}\""), &format!("\"{ty}/{id}\""));
        }
    }
    let bundle: Value = serde_json::from_str(&resolved).map_err(|e| e.to_string())?;
    let (mut own, mut common) = (Vec::new(), Vec::new());
    for ((ty, _, id), e) in named.into_iter().zip(
        bundle
            .get("entry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten(),
    ) {
        let mut resource = e.get("resource").cloned().unwrap_or(Value::Null);
        if let Some(r) = resource.as_object_mut() {
            r.remove("id");
        }
        let bytes = serde_json::to_vec(&resource).map_err(|e| e.to_string())?;
        let incoming = IncomingResource::parse(&bytes).map_err(|i| i.diagnostics)?;
        let def = registry::resource(ty).ok_or("unknown type")?;
        let rows = index_rows(def, &incoming.value);
        let r = Resource {
            ty,
            id,
            incoming,
            rows,
        };
        if shared.iter().any(|(t, _)| *t == ty) {
            common.push(r);
        } else {
            own.push(r);
        }
    }
    Ok((own, common))
}

/// Fills `url` (a fresh database) with the sample directory and `n` referrals in
/// units of `unit`; with `top_up`, adds `n` referrals to a database an earlier preload
/// filled (its directory, Organization and Practitioner are used, not written again).
/// The store is closed again when this returns.
pub(crate) async fn preload(
    url: DatabaseUrl,
    settings: &Settings,
    n: u64,
    unit: u64,
    top_up: bool,
    bsns: Arc<AtomicU64>,
    serial: Arc<AtomicU64>,
) -> Result<Preloaded, String> {
    let store = Store::open(&url, 2)
        .await
        .map_err(|e| format!("preload: cannot open the store: {e}"))?;
    // The directory through the application (its hook: nothing to follow for it).
    let app = App::new(store.clone(), settings);
    match import_directory(
        &app,
        &Principal::system("system:initial-directory"),
        SAMPLE_DIRECTORY.as_bytes(),
        BASE,
        true,
    )
    .await
    {
        Ok(ImportOutcome::Imported(_)) => {}
        Ok(ImportOutcome::NotEmpty) if top_up => {}
        Ok(ImportOutcome::NotEmpty) => return Err("preload: the database is not empty".into()),
        Err(e) => return Err(format!("preload: directory: {}", e.describe("; "))),
    }
    drop(app);

    // The practice's Organization and Practitioner, once.
    let mut shared: Vec<(&'static str, String)> = ["Organization", "Practitioner"]
        .into_iter()
        .map(|ty| (ty, wor_hub::fhir::resource::new_logical_id()))
        .collect();
    let first = referral(&next_bsn(&bsns), serial.fetch_add(1, Ordering::Relaxed));
    let (_, common) = prepare(&first, &shared).map_err(|e| format!("preload: {e}"))?;
    if top_up {
        shared = stored_ids_of(&store, common).await?;
        return fill(&store, n, unit, shared, bsns, serial).await;
    }
    write(&store, move |tx| {
        for r in &common {
            tx.create(
                r.ty,
                &r.id,
                &|v, at| r.incoming.render(&r.id, v, at),
                &r.rows,
            )?;
        }
        Ok(Vec::new())
    })
    .await?;
    fill(&store, n, unit, shared, bsns, serial).await
}

/// The ids under which an earlier preload stored `common` (the practice's Organization
/// and Practitioner), found by their first identifier.
async fn stored_ids_of(
    store: &Store,
    common: Vec<Resource>,
) -> Result<Vec<(&'static str, String)>, String> {
    let mut ids = Vec::new();
    for r in common {
        let identifier = r.incoming.value.pointer("/identifier/0");
        let (system, value) = identifier
            .and_then(|i| Some((i.get("system")?.as_str()?, i.get("value")?.as_str()?)))
            .ok_or_else(|| format!("preload: the fixture's {} has no identifier", r.ty))?;
        let def = registry::resource(r.ty).ok_or("unknown type")?;
        let criteria = parse_criteria(def, &format!("identifier={system}|{value}"), &[])
            .map_err(|e| format!("preload: {e:?}"))?;
        let ty = r.ty;
        let found = write(store, move |tx| {
            Ok(tx.find_ids(ty, &criteria)?.into_iter().collect())
        })
        .await?;
        match found.as_slice() {
            [id] => ids.push((ty, id.clone())),
            other => {
                return Err(format!(
                    "preload: adding to a database needs one stored {ty} of the fixture's identifier, found {}",
                    other.len()
                ))
            }
        }
    }
    Ok(ids)
}

/// Writes `n` referrals in units of `unit` and seals the audit chain.
async fn fill(
    store: &Store,
    n: u64,
    unit: u64,
    shared: Vec<(&'static str, String)>,
    bsns: Arc<AtomicU64>,
    serial: Arc<AtomicU64>,
) -> Result<Preloaded, String> {
    let shared = Arc::new(shared);
    // Preparing (parsing, index rows) on one thread while the previous unit commits.
    let unit = unit.max(1);
    let (send, mut receive) = tokio::sync::mpsc::channel::<Result<Vec<Prepared>, String>>(2);
    let producer = tokio::task::spawn_blocking(move || {
        let mut k = 0;
        while k < n {
            let size = unit.min(n - k);
            let prepared = (k..k + size)
                .map(|i| {
                    let text = referral(&next_bsn(&bsns), serial.fetch_add(1, Ordering::Relaxed));
                    prepare(&text, &shared).map(|(resources, _)| Prepared {
                        resources,
                        accept: i % ACCEPTED_EVERY == ACCEPTED_EVERY - 1,
                    })
                })
                .collect::<Result<Vec<_>, String>>()
                .map_err(|e| format!("preload: {e}"));
            let failed = prepared.is_err();
            if send.blocking_send(prepared).is_err() || failed {
                return;
            }
            k += size;
        }
    });

    let stride = (n / ACCEPTED_EVERY / 100).max(1);
    let started = Instant::now();
    let mut report_at = started + Duration::from_secs(15);
    let (mut written, mut accepted) = (0u64, 0u64);
    let mut sample_tasks = Vec::new();
    while let Some(next) = receive.recv().await {
        let referrals = next?;
        let count = referrals.len() as u64;
        let tasks = write(store, move |tx| {
            let mut accepted = Vec::new();
            for r in &referrals {
                if let Some(task) = store_referral(tx, r)? {
                    accepted.push(task);
                }
            }
            Ok(accepted)
        })
        .await?;
        for task in tasks {
            if accepted.is_multiple_of(stride) && sample_tasks.len() < 100 {
                sample_tasks.push(task);
            }
            accepted += 1;
        }
        written += count;
        if Instant::now() >= report_at {
            report_at += Duration::from_secs(15);
            let secs = started.elapsed().as_secs_f64();
            say(&format!(
                "  preload: {written} of {n} referrals in {secs:.0} s ({:.0}/s)",
                written as f64 / secs.max(1e-9)
            ));
        }
    }
    producer
        .await
        .map_err(|e| format!("preload: the preparing thread failed: {e}"))?;
    if written != n {
        return Err(format!("preload: {written} of {n} referrals written"));
    }
    let writing = started.elapsed();
    let sealed_from = Instant::now();
    store
        .seal_audit()
        .await
        .map_err(|e| format!("preload: sealing the audit chain: {e}"))?;
    Ok(Preloaded {
        referrals: written,
        accepted,
        writing,
        sealing: sealed_from.elapsed(),
        sample_tasks,
    })
}

/// One unit of work of the open-mode principal (the bench's HTTP ingest's).
async fn write<F>(store: &Store, f: F) -> Result<Vec<String>, String>
where
    F: Fn(&mut Tx<'_>) -> Result<Vec<String>, Failure<AppError>> + Send + 'static,
{
    let principal = Principal::from_request(uuid::Uuid::new_v4().to_string(), None, None, true);
    store
        .transaction(principal.access(), f)
        .await
        .map_err(|e| match e {
            wor_hub::store::WriteError::Abort(e) => format!("preload: {}", e.describe("; ")),
            wor_hub::store::WriteError::Store(e) => format!("preload: {e}"),
        })
}

/// Writes one referral: its resources, its Task (and accepted version), grants and
/// statistics row. Returns the Task's id when it was accepted.
fn store_referral(tx: &mut Tx<'_>, r: &Prepared) -> Result<Option<String>, Failure<AppError>> {
    let fail = |what: &str| Failure::Abort(AppError::internal(&format!("preload: {what}")));
    for res in &r.resources {
        tx.create(
            res.ty,
            &res.id,
            &|v, at| res.incoming.render(&res.id, v, at),
            &res.rows,
        )?;
    }
    let of = |ty: &str| r.resources.iter().find(|res| res.ty == ty);
    let (Some(patient), Some(sr)) = (of("Patient"), of("ServiceRequest")) else {
        return Err(fail("the fixture has no Patient or ServiceRequest"));
    };
    let at = tx.stamp()?;
    let decision = decide(tx, &sr.incoming.value, Some(&patient.incoming.value), at)?;
    let task = task_for(
        &decision,
        &sr.incoming.value,
        Some(format!("ServiceRequest/{}", sr.id)),
        Some(format!("Patient/{}", patient.id)),
        at,
    );
    let task_def = registry::resource("Task").ok_or_else(|| fail("no Task definition"))?;
    let task_id = wor_hub::fhir::resource::new_logical_id();
    let parse = |task: &Value| {
        serde_json::to_vec(task)
            .map_err(|e| fail(&e.to_string()))
            .and_then(|b| IncomingResource::parse(&b).map_err(|i| fail(&i.diagnostics)))
    };
    let incoming = parse(&task)?;
    tx.create(
        "Task",
        &task_id,
        &|v, at| incoming.render(&task_id, v, at),
        &index_rows(task_def, &incoming.value),
    )?;
    let mut versions = vec![(at, task.clone())];
    if r.accept {
        let mut done = task.clone();
        done["status"] = Value::String("accepted".into());
        let incoming = parse(&done)?;
        tx.update(
            "Task",
            &task_id,
            &|v, at| incoming.render(&task_id, v, at),
            &index_rows(task_def, &incoming.value),
            Some(1),
            false,
        )?;
        versions.push((at, done));
    }
    // The owner reads the referral as its performer (what `app::access` grants).
    if let Some(owner) = task.pointer("/owner/reference").and_then(Value::as_str) {
        let grants: Vec<Grant> = r
            .resources
            .iter()
            .map(|res| (res.ty, res.id.as_str()))
            .chain([("Task", task_id.as_str())])
            .map(|(ty, id)| Grant {
                organization: owner.to_owned(),
                resource_type: ty.to_owned(),
                resource_id: id.to_owned(),
                relation: Relation::Performer,
                valid_from: None,
                valid_until: None,
            })
            .collect();
        tx.replace_grants(&format!("ServiceRequest/{}", sr.id), &grants)?;
    }
    let practice = sr
        .incoming
        .value
        .pointer("/requester/reference")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let facts = derive(&Inputs {
        service_request: &sr.incoming.value,
        received_at: at,
        practice,
        tasks: &[versions],
        responses: &|_: &str| None,
    });
    tx.put_referral_facts(&to_row(&sr.id, &facts))?;
    Ok(r.accept.then_some(task_id))
}
