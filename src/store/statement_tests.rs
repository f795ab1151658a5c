//! How many statements the paths every referral takes run (on PostgreSQL each is a
//! round trip): the current version of a resource, a lookup on one identifier, a lock
//! the unit holds already, a conditional lookup under it.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use diesel::connection::{Connection, InstrumentationEvent};

use super::conditional_tests::{by_agb, store_practice};
use super::{conditional_lock_key, Access, Failure, Store, Tx};
use crate::config::DatabaseUrl;

/// What `f` returns and how many statements it ran on the unit's connection.
fn counted<T>(tx: &mut Tx<'_>, f: impl FnOnce(&mut Tx<'_>) -> T) -> (T, usize) {
    let started = Arc::new(AtomicUsize::new(0));
    let counter = started.clone();
    tx.conn
        .set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if matches!(event, InstrumentationEvent::StartQuery { .. }) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
    let out = f(tx);
    tx.conn
        .set_instrumentation(|_: InstrumentationEvent<'_>| {});
    (out, started.load(Ordering::Relaxed))
}

async fn statements_per_step(store: Store, postgres: bool) {
    store_practice(&store).await;
    store
        .transaction(Access::system("system:test"), move |tx| {
            let (found, n) = counted(tx, |tx| tx.current("Organization", "practice").unwrap());
            assert_eq!(found.unwrap().version_id, 1);
            assert_eq!(
                n, 1,
                "the current version: its head and body in one statement"
            );

            let (ids, n) = counted(tx, |tx| tx.find_ids("Organization", &by_agb("01234567")));
            assert_eq!(ids.unwrap().len(), 1);
            assert_eq!(n, 1, "a lookup on one identifier: no count before it");

            let missing = by_agb("76543210");
            let key = conditional_lock_key("Organization", &missing);
            // Taken inside a savepoint that rolls back: released with it, so not held.
            let _ = tx.savepoint(|tx| {
                tx.lock(&key)?;
                assert_eq!(tx.holds(&key), postgres);
                Err::<(), _>(Failure::Abort(()))
            });
            assert!(
                !tx.holds(&key),
                "a lock of a rolled-back savepoint is released"
            );
            let (_, n) = counted(tx, |tx| {
                tx.lock(&key).unwrap();
                tx.lock(&key).unwrap();
            });
            // SQLite's writers are serialised already: its lock is no statement.
            assert_eq!(n, usize::from(postgres), "the same lock twice");
            assert_eq!(tx.holds(&key), postgres);

            let (ids, n) = counted(tx, |tx| tx.conditional_ids("Organization", &missing));
            assert!(ids.unwrap().is_empty());
            assert_eq!(n, 1, "a conditional lookup under the lock the unit holds");
            Ok::<_, Failure<Infallible>>(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn the_paths_of_a_referral_take_one_statement_each_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&DatabaseUrl::Sqlite(dir.path().join("hub.db")), 2)
        .await
        .unwrap();
    statements_per_step(store, false).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn the_paths_of_a_referral_take_one_statement_each_on_postgres() {
    let url = super::fresh_postgres_database("wor_hub_statements");
    let store = Store::open(&DatabaseUrl::Postgres(url), 2).await.unwrap();
    statements_per_step(store, true).await;
}
