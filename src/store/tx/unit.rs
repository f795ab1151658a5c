//! The write unit of work: one database transaction around a closure, retried when a
//! concurrent writer won, the after-write hook woken after the commit.

use diesel::Connection;

use super::super::access::Access;
use super::super::db::DbConnection;
use super::super::StoreError;
use super::{Failure, Tx, TxError, WriteError, WriteHook};

// Each round lets at least one concurrent writer of a row win, so this bounds the
// number of writers racing for one resource before a 409.
pub(super) const MAX_ATTEMPTS: usize = 16;

/// SQLite: how long a writer waited for the write lock (`waited`, with the instant the
/// wait began: before the in-process lock), observed once per attempt.
pub(in crate::store) struct LockWait<'a> {
    pub since: std::time::Instant,
    pub observe: &'a (dyn Fn(std::time::Duration) + Send + Sync),
}

pub(in crate::store) fn run<T, E>(
    conn: &mut DbConnection,
    access: &Access,
    hook: Option<&dyn WriteHook>,
    commits: &std::sync::atomic::AtomicU64,
    wait: Option<LockWait<'_>>,
    f: &dyn Fn(&mut Tx<'_>) -> Result<T, Failure<E>>,
) -> Result<T, WriteError<E>> {
    let mut since = wait.as_ref().map(|w| w.since);
    for _ in 0..MAX_ATTEMPTS {
        let wake = std::cell::Cell::new(false);
        let deferred = std::cell::RefCell::default();
        let began = since.take().unwrap_or_else(std::time::Instant::now);
        let result = conn.transaction::<T, Failure<E>, _>(|c| {
            take_sqlite_write_lock(c)?;
            if let (Some(w), DbConnection::Sqlite(_)) = (&wait, &*c) {
                (w.observe)(began.elapsed());
            }
            let mut tx = Tx::new(c, access, hook);
            tx.wake = Some(&wake);
            tx.deferring(&deferred);
            let value = f(&mut tx)?;
            tx.settle_deferred().map_err(Failure::Tx)?;
            Ok(value)
        });
        match result {
            Ok(value) => {
                commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let (true, Some(hook)) = (wake.get(), hook) {
                    hook.committed();
                }
                return Ok(value);
            }
            Err(Failure::Tx(TxError::Retry)) => continue,
            Err(Failure::Tx(TxError::NeedsWriter)) => {
                return Err(WriteError::Store(StoreError::Internal(
                    "a read-only unit of work tried to write".into(),
                )))
            }
            Err(Failure::Tx(TxError::Db(e))) => return Err(WriteError::Store(e.into())),
            Err(Failure::Abort(e)) => return Err(WriteError::Abort(e)),
        }
    }
    Err(WriteError::Store(StoreError::Conflict(
        "The resource was changed concurrently by other requests; retry".into(),
    )))
}

/// On SQLite, a write unit's first statement is a write (as `BEGIN IMMEDIATE`): it
/// waits (busy_timeout) for another process's writer, such as `wor-hub client add`
/// next to the server, where a deferred transaction with an older snapshot would fail
/// with "database is locked". Within one process writers are serialised already.
/// A write that changes nothing: the first statement of a SQLite write transaction.
pub(in crate::store) const SQLITE_TAKE_WRITE_LOCK: &str = "DELETE FROM request_records WHERE 1 = 0";

fn take_sqlite_write_lock<E>(conn: &mut DbConnection) -> Result<(), Failure<E>> {
    if let DbConnection::Sqlite(c) = conn {
        use diesel::connection::SimpleConnection;
        c.batch_execute(SQLITE_TAKE_WRITE_LOCK)
            .map_err(|e| Failure::Tx(TxError::from(e)))?;
    }
    Ok(())
}
