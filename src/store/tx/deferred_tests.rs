//! Deferred work runs once per key before the commit, again after a savepoint that
//! undid it, and before a read under a narrowed scope.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use crate::config::DatabaseUrl;
use crate::store::query::{Criterion, Match};
use crate::store::{
    Access, Change, Failure, IndexRows, ReadScope, Store, StoredVersion, Tx, TxError, WriteHook,
};

/// Defers `group:<the body's group>` for every version; records what it settles.
#[derive(Default)]
struct Recorder {
    settled: Mutex<Vec<Vec<String>>>,
}

impl WriteHook for Recorder {
    fn after_write(&self, tx: &mut Tx<'_>, v: &StoredVersion, _: Change) -> Result<(), TxError> {
        let body: serde_json::Value = serde_json::from_str(v.body.as_deref().unwrap()).unwrap();
        assert!(tx.defer(format!("group:{}", body["group"].as_str().unwrap())));
        Ok(())
    }

    fn settle(&self, _: &mut Tx<'_>, keys: BTreeSet<String>) -> Result<(), TxError> {
        self.settled
            .lock()
            .unwrap()
            .push(keys.into_iter().collect());
        Ok(())
    }

    fn committed(&self) {}
}

impl Recorder {
    fn take(&self) -> Vec<Vec<String>> {
        std::mem::take(&mut *self.settled.lock().unwrap())
    }
}

fn create(tx: &mut Tx<'_>, id: &str, group: &str) -> Result<(), TxError> {
    let body = serde_json::json!({"resourceType": "Basic", "id": id, "group": group}).to_string();
    tx.create("Basic", id, &|_, _| body.clone(), &IndexRows::default())?;
    Ok(())
}

async fn store_on(url: &DatabaseUrl) -> (Store, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let store = Store::open(url, 2)
        .await
        .unwrap()
        .with_hook(recorder.clone());
    (store, recorder)
}

async fn deferred_work_runs_once_per_key(url: &DatabaseUrl) {
    let (store, recorder) = store_on(url).await;
    // Three versions of two groups: each group settled once, before the commit.
    store
        .transaction(Access::system("system:test"), |tx| {
            create(tx, "a1", "a")?;
            create(tx, "b1", "b")?;
            create(tx, "a2", "a")?;
            Ok::<_, Failure<Infallible>>(())
        })
        .await
        .unwrap();
    assert_eq!(recorder.take(), [["group:a", "group:b"]]);

    // Settled inside a savepoint that rolls back: what was deferred before it is
    // deferred again, and settled at the end.
    store
        .transaction(Access::system("system:test"), |tx| {
            create(tx, "c1", "c")?;
            let undone = tx.savepoint(|tx| {
                create(tx, "d1", "d")?;
                tx.settle_deferred()?;
                Err::<(), _>(Failure::Abort("undo"))
            });
            assert!(undone.is_err());
            Ok::<_, Failure<&str>>(())
        })
        .await
        .unwrap();
    // `d` was written and settled in the savepoint only: undone with it.
    assert_eq!(
        recorder.take(),
        [vec!["group:c", "group:d"], vec!["group:c"]]
    );

    // A read under a narrowed scope settles first; the commit has nothing left.
    let mut types = BTreeMap::new();
    types.insert(
        "Basic".to_owned(),
        vec![Criterion::Any(vec![Match::Id("e1".to_owned())])],
    );
    let access = Access {
        scope: ReadScope::Only(Arc::new(types)),
        ..Access::system("system:test")
    };
    let seen = store
        .transaction(access, {
            let recorder = recorder.clone();
            move |tx| {
                create(tx, "e1", "e")?;
                assert!(
                    recorder.take().is_empty(),
                    "nothing settled before the read"
                );
                let seen = tx.visible("Basic", "e1")?;
                assert_eq!(recorder.take(), [["group:e"]]);
                Ok::<_, Failure<Infallible>>(seen)
            }
        })
        .await
        .unwrap();
    assert!(seen);
    assert!(recorder.take().is_empty(), "settled once");
}

#[tokio::test]
async fn deferred_work_runs_once_per_key_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    deferred_work_runs_once_per_key(&DatabaseUrl::Sqlite(dir.path().join("hub.db"))).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn deferred_work_runs_once_per_key_on_postgres() {
    let url = crate::store::fresh_postgres_database("wor_hub_deferred");
    deferred_work_runs_once_per_key(&DatabaseUrl::Postgres(url)).await;
}
