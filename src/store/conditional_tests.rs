//! Conditional creates on PostgreSQL (`Tx::conditional_ids`): criteria that match one
//! resource already do not wait for the criteria's lock; criteria that match none do.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{conditional_lock_key, Access, CreateOutcome, Criterion, Failure, Store};
use crate::config::DatabaseUrl;
use crate::fhir::criteria::parse_criteria;
use crate::fhir::index::index_rows;
use crate::fhir::registry::resource;

pub(super) const AGB: &str = "http://fhir.nl/fhir/NamingSystem/agb-z";
const HELD: Duration = Duration::from_millis(1_500);

async fn store_on_postgres() -> Store {
    let url = super::fresh_postgres_database("wor_hub_conditional");
    Store::open(&DatabaseUrl::Postgres(url), 4).await.unwrap()
}

pub(super) fn by_agb(value: &str) -> Vec<Criterion> {
    let def = resource("Organization").unwrap();
    parse_criteria(def, &format!("identifier={AGB}|{value}"), &[]).unwrap()
}

/// Stores `Organization/practice` with AGB 01234567.
pub(super) async fn store_practice(store: &Store) {
    let body = json!({"resourceType": "Organization", "id": "practice",
                      "identifier": [{"system": AGB, "value": "01234567"}]});
    let rows = index_rows(resource("Organization").unwrap(), &body);
    store
        .transaction(Access::system("system:test"), move |tx| {
            tx.create("Organization", "practice", &|_, _| body.to_string(), &rows)?;
            Ok::<_, Failure<Infallible>>(())
        })
        .await
        .unwrap();
}

/// Holds the lock of a conditional create on `criteria` for [`HELD`], as a unit of
/// work whose create missed would; returns once it holds it.
async fn hold_lock(store: &Store, criteria: Vec<Criterion>) -> tokio::task::JoinHandle<()> {
    let held = Arc::new(AtomicBool::new(false));
    let (store, flag) = (store.clone(), held.clone());
    let holder = tokio::spawn(async move {
        store
            .transaction(Access::system("system:test"), move |tx| {
                tx.lock(&conditional_lock_key("Organization", &criteria))?;
                flag.store(true, Ordering::Release);
                std::thread::sleep(HELD);
                Ok::<_, Failure<Infallible>>(())
            })
            .await
            .unwrap();
    });
    while !held.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    holder
}

/// A conditional create on `criteria`: what it found and how long it took.
async fn conditional(store: &Store, criteria: Vec<Criterion>) -> (Option<String>, Duration) {
    let started = Instant::now();
    let found = store
        .transaction(Access::system("system:test"), move |tx| {
            Ok::<_, Failure<Infallible>>(match tx.conditional("Organization", &criteria)? {
                Some(CreateOutcome::Matched(v)) => Some(v.id),
                _ => None,
            })
        })
        .await
        .unwrap();
    (found, started.elapsed())
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn a_conditional_create_waits_for_the_lock_only_when_nothing_matches() {
    let store = store_on_postgres().await;
    store_practice(&store).await;

    // One Organization matches: found while another unit holds the criteria's lock.
    let holder = hold_lock(&store, by_agb("01234567")).await;
    let (found, took) = conditional(&store, by_agb("01234567")).await;
    assert_eq!(found.as_deref(), Some("practice"));
    assert!(took < HELD / 2, "matched one, yet waited {took:?}");
    holder.await.unwrap();

    // None matches: it waits for the holder, which might be creating the match.
    let holder = hold_lock(&store, by_agb("76543210")).await;
    let (found, took) = conditional(&store, by_agb("76543210")).await;
    assert_eq!(found, None);
    assert!(took > HELD / 2, "matched none, yet did not wait ({took:?})");
    holder.await.unwrap();
}
