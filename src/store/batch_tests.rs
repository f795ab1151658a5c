//! Group commit on SQLite ([`super::tx::batch`]): units of work that wait for the writer
//! together commit in one transaction, each in its own savepoint.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use diesel::RunQueryDsl;

use super::{AuditContext, Failure, IndexRows, Lookup, Store, StoreError, WriteError};
use crate::config::DatabaseUrl;

fn system() -> AuditContext {
    AuditContext {
        request_id: "batch-test".into(),
        actor: "system:batch-test".into(),
    }
}

/// What unit `i` of the batch does.
fn unit(i: usize, tx: &mut super::Tx<'_>) -> Result<i64, Failure<String>> {
    let id = format!("p{i}");
    let body = move |v: i64, at: i64| {
        format!(
            r#"{{"resourceType":"Patient","id":"p{i}","meta":{{"versionId":"{v}","lastUpdated":"{at}"}}}}"#
        )
    };
    match i {
        // Aborts before writing.
        2 => Err(Failure::Abort("unit 2 aborts".into())),
        // Writes, then aborts: its write must not survive.
        4 => {
            tx.create("Patient", &id, &body, &IndexRows::default())?;
            Err(Failure::Abort("unit 4 aborts after writing".into()))
        }
        // Writes, then a statement fails in the database.
        5 => {
            tx.create("Patient", &id, &body, &IndexRows::default())?;
            diesel::sql_query("INSERT INTO no_such_table VALUES (1)").execute(tx.conn)?;
            Ok(0)
        }
        _ => Ok(tx
            .create("Patient", &id, &body, &IndexRows::default())?
            .last_updated),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The writer lock is held on purpose while the units queue (they run on other threads).
#[allow(clippy::await_holding_lock)]
async fn units_waiting_together_commit_once_and_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&DatabaseUrl::Sqlite(dir.path().join("hub.db")), 2)
        .await
        .unwrap();
    let (lock, queue) = store.group.clone();
    let before = store.commits().get();

    // The writer is busy: every unit queues.
    let guard = lock.lock().unwrap();
    let mut waiting = Vec::new();
    for i in 0..7 {
        let store = store.clone();
        waiting.push(tokio::spawn(async move {
            store.transaction(system(), move |tx| unit(i, tx)).await
        }));
        // In order, so the batch runs them in this order.
        for _ in 0..200 {
            if queue.len() == i + 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(queue.len(), i + 1, "unit {i} did not queue");
    }
    drop(guard);

    let mut results = Vec::new();
    for w in waiting {
        results.push(w.await.unwrap());
    }
    assert_eq!(
        store.commits().get() - before,
        1,
        "one commit for the batch"
    );
    let mut stamps = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        match (i, result) {
            (2 | 4, Err(WriteError::Abort(e))) => {
                assert!(e.starts_with(&format!("unit {i}")), "{e}")
            }
            (5, Err(WriteError::Store(StoreError::Internal(e)))) => {
                assert!(e.contains("no_such_table"), "{e}");
            }
            (0 | 1 | 3 | 6, Ok(stamp)) => stamps.push(stamp),
            (i, other) => panic!("unit {i}: {other:?}"),
        }
    }
    // Each unit has its own change-clock stamp, increasing in the order they ran.
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");

    let access = super::Access::from(system());
    for i in 0..7 {
        let id = format!("p{i}");
        let found = store
            .read(access.clone(), move |tx| tx.read("Patient", &id, None))
            .await
            .unwrap();
        let stored = matches!(found, Lookup::Found(_));
        assert_eq!(
            stored,
            matches!(i, 0 | 1 | 3 | 6),
            "Patient/p{i}: {found:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_alone_commits_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&DatabaseUrl::Sqlite(dir.path().join("hub.db")), 2)
        .await
        .unwrap();
    let before = store.commits().get();
    let stamp = store.transaction(system(), |tx| unit(0, tx)).await.unwrap();
    assert!(stamp > 0);
    assert_eq!(store.commits().get() - before, 1);
    assert_eq!(store.group.1.len(), 0);
}
