//! The audit journal: recovery, moves and appends beside a busy mover.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use super::*;
use crate::config::DatabaseUrl;
use crate::store::Store;

fn row(n: i64) -> AuditRow {
    AuditRow {
        recorded: n,
        request_id: format!("journal-test-{n}"),
        actor: "anonymous".into(),
        action: "R".into(),
        interaction: "read".into(),
        resource_type: "Patient".into(),
        resource_id: Some("p".into()),
        version_id: Some(1),
        outcome: "success".into(),
        organization: None,
        patients: vec!["Patient/p".into()],
    }
}

fn audit_count(conn: &mut DbConnection) -> i64 {
    audit_events::table
        .filter(audit_events::request_id.like("journal-test-%"))
        .count()
        .get_result(conn)
        .unwrap()
}

fn journal_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-audit-journal."))
        .collect()
}

#[test]
fn a_journal_line_written_before_the_chain_still_reads() {
    let old = r#"{"recorded":1,"request_id":"r","actor":"anonymous","action":"R","interaction":"read","resource_type":"Patient","resource_id":"p","version_id":1,"outcome":"success"}"#;
    let row: AuditRow = serde_json::from_str(old).unwrap();
    assert_eq!(row.organization, None);
    assert!(row.patients.is_empty());
    assert_eq!(row.patients_column(), None);
    let new = serde_json::to_string(&row).unwrap();
    assert!(new.contains(r#""patients":[]"#), "{new}");
}

#[tokio::test]
async fn records_a_dead_process_left_are_moved_once_and_a_live_owners_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let url = DatabaseUrl::Sqlite(db.clone());
    drop(Store::open(&url, 2).await.unwrap());

    // A process journalled two reads and died (its lock went with it).
    let dead = AuditJournal::beside(&db);
    dead.append(&[row(1), row(2)]).unwrap();
    drop(dead);
    // Another process is alive and keeps its live file locked.
    let alive = AuditJournal::beside(&db);
    alive.append(&[row(3)]).unwrap();
    assert_eq!(journal_files(dir.path()).len(), 2);

    // Opening the database recovers the dead process's records, not the live one's.
    let store = Store::open(&url, 2).await.unwrap();
    let mut conn = store.pool.get().unwrap();
    assert_eq!(audit_count(&mut conn), 2);
    assert_eq!(journal_files(dir.path()).len(), 1, "the live file stays");

    // Its owner moves it itself; moving again changes nothing.
    assert_eq!(alive.move_into(&mut conn).unwrap(), 1);
    assert_eq!(alive.move_into(&mut conn).unwrap(), 0);
    assert_eq!(audit_count(&mut conn), 3);
    assert!(journal_files(dir.path()).is_empty());
}

#[tokio::test]
async fn a_batch_already_moved_is_not_moved_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let store = Store::open(&DatabaseUrl::Sqlite(db.clone()), 2)
        .await
        .unwrap();
    let mut conn = store.pool.get().unwrap();
    let journal = AuditJournal::beside(&db);
    journal.append(&[row(7)]).unwrap();
    // Keep a copy of the batch as it was, as if the process stopped after the
    // insert committed but before the file was removed.
    let live = journal_files(dir.path()).pop().unwrap();
    let copy = fs::read(dir.path().join(&live)).unwrap();
    assert_eq!(journal.move_into(&mut conn).unwrap(), 1);
    let (_, batch_id) = audit_journal_batches::table
        .select((
            audit_journal_batches::moved,
            audit_journal_batches::batch_id,
        ))
        .first::<(i64, String)>(&mut conn)
        .unwrap();
    fs::write(journal.path(&batch_id, BATCH_SUFFIX), copy).unwrap();
    assert_eq!(journal.move_into(&mut conn).unwrap(), 0);
    assert_eq!(audit_count(&mut conn), 1);
    assert!(journal_files(dir.path()).is_empty());
}

/// Reads append while the mover moves (every 200 ms in the server; here as fast as
/// it can): no append may fail, and every appended record must arrive. A live file
/// the mover could see before its creator had locked it was taken for a dead
/// process's: the read failed (a 500), or its record was lost.
#[tokio::test]
async fn appends_beside_a_busy_mover_all_succeed_and_all_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let store = Store::open(&DatabaseUrl::Sqlite(db.clone()), 2)
        .await
        .unwrap();
    let journal = Arc::new(AuditJournal::beside(&db));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mover = {
        let (journal, stop, pool) = (journal.clone(), stop.clone(), store.pool.clone());
        std::thread::spawn(move || {
            let mut conn = pool.get().unwrap();
            let mut moved = 0;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                moved += journal.move_into(&mut conn).unwrap();
            }
            moved + journal.move_into(&mut conn).unwrap()
        })
    };
    let appenders: Vec<_> = (0..4)
        .map(|t| {
            let journal = journal.clone();
            std::thread::spawn(move || {
                (0..3_000)
                    .filter(|n| journal.append(&[row(t * 10_000 + n)]).is_err())
                    .count()
            })
        })
        .collect();
    let failed: usize = appenders.into_iter().map(|a| a.join().unwrap()).sum();
    stop.store(true, std::sync::atomic::Ordering::Release);
    let moved = mover.join().unwrap();
    let mut conn = store.pool.get().unwrap();
    assert_eq!(failed, 0, "appends failed");
    // The store's own mover may have moved some batches (as a second process would).
    assert!(moved <= 12_000, "{moved} moved");
    assert_eq!(audit_count(&mut conn), 12_000);
}

#[tokio::test]
async fn a_new_file_left_by_a_stopped_process_is_removed_once_old() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let store = Store::open(&DatabaseUrl::Sqlite(db.clone()), 2)
        .await
        .unwrap();
    let journal = AuditJournal::beside(&db);
    let (old, fresh) = (
        journal.path("old", NEW_SUFFIX),
        journal.path("fresh", NEW_SUFFIX),
    );
    let two_minutes_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
    File::create(&old)
        .unwrap()
        .set_modified(two_minutes_ago)
        .unwrap();
    File::create(&fresh).unwrap();
    let mut conn = store.pool.get().unwrap();
    assert_eq!(journal.move_into(&mut conn).unwrap(), 0);
    assert!(!old.exists(), "an abandoned .new file is removed");
    assert!(fresh.exists(), "one being created is left alone");
}
