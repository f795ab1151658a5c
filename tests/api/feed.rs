//! The change feed: a client polling `Task?_lastUpdated=gt<cursor>&_sort=_lastUpdated`
//! and moving its cursor to the greatest `meta.lastUpdated` it saw must see every
//! change while several writers commit at once. That holds only if changes become
//! visible in `meta.lastUpdated` order: a change committed after the poller passed its
//! timestamp would never be returned.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use reqwest::{Client, Response};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::backend_tests;
use crate::helpers::{link, task_transaction, TestApp, FHIR_JSON};

backend_tests!(a_last_updated_poller_sees_every_final_version);

const WRITERS: usize = 4;
/// Tasks each writer creates; each is then updated [`UPDATES`] times, so there are
/// `WRITERS * TASKS_PER_WRITER * (1 + UPDATES)` changes in all.
const TASKS_PER_WRITER: usize = 250;
const UPDATES: usize = 1;
/// The poller's page size.
const PAGE: &str = "1000";
/// Rounds the poller must have run while the writers were busy, or the race was not
/// exercised.
const MIN_ROUNDS_WHILE_WRITING: usize = 5;

async fn a_last_updated_poller_sees_every_final_version(app: TestApp) {
    let started = Instant::now();
    let writing = Arc::new(AtomicBool::new(true));
    let poller = {
        let (base, writing) = (app.base.clone(), writing.clone());
        tokio::spawn(async move {
            let mut feed = Feed::new(base);
            while writing.load(Ordering::SeqCst) {
                feed.poll().await;
            }
            let rounds_while_writing = feed.rounds;
            // Every write has been acknowledged: catch up until nothing new comes.
            while feed.poll().await > 0 {}
            (feed, rounds_while_writing)
        })
    };
    // Tasks are created as clients may (a referral with its Task): for one patient,
    // owned by one organisation.
    let patient = app.create(&json!({"resourceType": "Patient"})).await;
    let org = app.create(&json!({"resourceType": "Organization"})).await;
    let (patient, owner) = (
        patient["id"].as_str().unwrap().to_owned(),
        format!("Organization/{}", org["id"].as_str().unwrap()),
    );
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(app.base.clone(), w, patient.clone(), owner.clone())))
        .collect();
    let mut finals = HashMap::new();
    for w in writers {
        finals.extend(w.await.unwrap());
    }
    writing.store(false, Ordering::SeqCst);
    let (feed, rounds_while_writing) = poller.await.unwrap();

    println!(
        "{:?}: {} changes by {WRITERS} writers to {} Tasks in {:.1?}; the poller ran {} rounds \
         ({rounds_while_writing} while writing, {} with more than one page), {} requests, \
         {} entries",
        app.backend,
        WRITERS * TASKS_PER_WRITER * (1 + UPDATES),
        finals.len(),
        started.elapsed(),
        feed.rounds,
        feed.multi_page_rounds,
        feed.requests,
        feed.entries,
    );
    assert_eq!(finals.len(), WRITERS * TASKS_PER_WRITER);
    assert!(
        rounds_while_writing >= MIN_ROUNDS_WHILE_WRITING,
        "the poller ran only {rounds_while_writing} rounds while the writers were busy: \
         the race was not exercised"
    );
    let mut missed: Vec<String> = finals
        .iter()
        .filter(|(id, version)| feed.seen.get(*id) != Some(version))
        .map(|(id, version)| {
            format!(
                "Task/{id}: final version {version}, the poller saw {:?}",
                feed.seen.get(id)
            )
        })
        .collect();
    missed.sort();
    assert!(
        missed.is_empty(),
        "{:?}: for {} of {} Tasks the poller never saw the final version (changes committed \
         behind its cursor); first ones: {:#?}",
        app.backend,
        missed.len(),
        finals.len(),
        &missed[..missed.len().min(10)]
    );
}

/// One writer with its own client: creates Tasks (each with its referral) and has a
/// coordinator update each (a new note per update). Returns each Task's id and final
/// `meta.versionId` as the server reported it.
async fn writer(base: String, w: usize, patient: String, owner: String) -> Vec<(String, u64)> {
    let client = Client::new();
    let mut finals = Vec::with_capacity(TASKS_PER_WRITER);
    for i in 0..TASKS_PER_WRITER {
        let extra = json!({"description": format!("writer {w}, task {i}")});
        let res = client
            .post(&base)
            .header("Content-Type", FHIR_JSON)
            .header("Prefer", "return=representation")
            .body(task_transaction(&patient, &owner, &extra).to_string())
            .send()
            .await
            .unwrap();
        let created = json_with_status(res, 200, "create Task").await;
        let mut task = created["entry"][1]["resource"].clone();
        let id = task["id"].as_str().unwrap().to_owned();
        for u in 0..UPDATES {
            task["note"] = json!([{"text": format!("writer {w}, update {u}")}]);
            let res = client
                .put(format!("{base}/Task/{id}"))
                .header("Content-Type", FHIR_JSON)
                .header("If-Match", format!("W/\"{}\"", version_of(&task)))
                .header("X-Acting-Party", "coordinator")
                .body(task.to_string())
                .send()
                .await
                .unwrap();
            task = json_with_status(res, 200, "update Task").await;
        }
        finals.push((id, version_of(&task)));
    }
    finals
}

async fn json_with_status(res: Response, status: u16, what: &str) -> Value {
    let got = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "{what}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn version_of(resource: &Value) -> u64 {
    resource["meta"]["versionId"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("meta.versionId in {resource}"))
}

/// The poller's state: what it has seen and where it stands.
struct Feed {
    client: Client,
    base: String,
    /// The highest `meta.versionId` seen per Task id.
    seen: HashMap<String, u64>,
    /// The greatest `meta.lastUpdated` seen, parsed and exactly as the server wrote it.
    cursor: Option<(OffsetDateTime, String)>,
    rounds: usize,
    multi_page_rounds: usize,
    requests: usize,
    entries: usize,
}

impl Feed {
    fn new(base: String) -> Self {
        Self {
            client: Client::new(),
            base,
            seen: HashMap::new(),
            cursor: None,
            rounds: 0,
            multi_page_rounds: 0,
            requests: 0,
            entries: 0,
        }
    }

    /// One round: the search from the cursor (none the first time) and all its `next`
    /// pages. Returns how many entries were new (a new Task or a higher version).
    async fn poll(&mut self) -> usize {
        let mut query = vec![
            ("_sort", "_lastUpdated".to_owned()),
            ("_count", PAGE.into()),
        ];
        if let Some((_, at)) = &self.cursor {
            // reqwest encodes the value: '+' in an offset becomes %2B.
            query.push(("_lastUpdated", format!("gt{at}")));
        }
        let mut request = self.client.get(format!("{}/Task", self.base)).query(&query);
        let mut new = 0;
        let mut pages = 0;
        loop {
            let bundle = json_with_status(request.send().await.unwrap(), 200, "poll").await;
            self.requests += 1;
            pages += 1;
            let matches = bundle["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["search"]["mode"] == "match");
            for entry in matches {
                self.entries += 1;
                if self.record(&entry["resource"]) {
                    new += 1;
                }
            }
            match link(&bundle, "next") {
                Some(url) => request = self.client.get(url),
                None => break,
            }
        }
        self.rounds += 1;
        if pages > 1 {
            self.multi_page_rounds += 1;
        }
        new
    }

    /// Records one Task; true when it is new to the poller.
    fn record(&mut self, task: &Value) -> bool {
        let id = task["id"].as_str().unwrap().to_owned();
        let version = version_of(task);
        let stamp = task["meta"]["lastUpdated"].as_str().unwrap();
        let at = OffsetDateTime::parse(stamp, &Rfc3339)
            .unwrap_or_else(|e| panic!("meta.lastUpdated {stamp}: {e}"));
        if self.cursor.as_ref().is_none_or(|(cursor, _)| at > *cursor) {
            self.cursor = Some((at, stamp.to_owned()));
        }
        let best = self.seen.entry(id).or_default();
        let is_new = version > *best;
        *best = (*best).max(version);
        is_new
    }
}
