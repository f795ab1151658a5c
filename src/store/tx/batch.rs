//! Group commit (SQLite): concurrent units of work share one database transaction.
//!
//! SQLite has one writer, so units of work queue for it anyway; what each would pay on
//! its own is the commit: the WAL frames of every page it touched, a sync, and now and
//! then a checkpoint. Here a unit is queued, and whichever waiting request gets the
//! writer lock first runs every queued unit (up to [`MAX_BATCH`]) in one transaction,
//! each in a savepoint of its own: a unit that fails or aborts rolls back to its
//! savepoint and the others go on. Each request gets its answer only after the commit
//! that made its unit durable. A page that several units touch is written to the WAL
//! once per batch, and the sync is shared.
//!
//! Every unit keeps what [`super::run`] promises alone: its own retries, its own
//! change-clock stamp (stamps still increase in commit order), its own hook calls, and
//! the hook's `committed` once the batch committed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use diesel::Connection;

use super::super::access::Access;
use super::super::db::DbConnection;
use super::super::StoreError;
use super::unit::{MAX_ATTEMPTS, SQLITE_TAKE_WRITE_LOCK};
use super::{Failure, Tx, TxError, WriteError, WriteHook};

/// Most units of work in one transaction: enough to share the commit under load, few
/// enough that the last one's answer does not wait long for the others'.
pub(in crate::store) const MAX_BATCH: usize = 32;

/// A queued unit of work, its type erased.
pub(in crate::store) trait Unit: Send {
    /// Runs the unit in a savepoint of the batch's transaction (retrying it there when
    /// a concurrent writer forces it); `true` when its hook asked to be woken after
    /// the commit.
    fn run(&mut self, conn: &mut DbConnection, hook: Option<&dyn WriteHook>) -> bool;
    /// Hands the unit's result to its request: `commit` is how the batch ended.
    fn finish(self: Box<Self>, commit: Result<(), String>);
}

/// Where a request finds its unit's result once a batch finished it.
pub(in crate::store) type Slot<R> = Arc<Mutex<Option<R>>>;

/// SQLite's queue of units of work waiting for the writer.
#[derive(Default)]
pub(in crate::store) struct Queue {
    units: Mutex<VecDeque<Box<dyn Unit>>>,
}

impl Queue {
    pub fn push(&self, unit: Box<dyn Unit>) {
        self.units
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(unit);
    }

    /// Units waiting.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.units
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Up to [`MAX_BATCH`] units, oldest first.
    pub fn take(&self) -> Vec<Box<dyn Unit>> {
        let mut units = self.units.lock().unwrap_or_else(PoisonError::into_inner);
        let n = units.len().min(MAX_BATCH);
        units.drain(..n).collect()
    }
}

/// Runs `units` in one transaction (the caller holds the writer lock) and finishes
/// each. Returns whether the transaction committed.
pub(in crate::store) fn run_batch(
    conn: &mut DbConnection,
    mut units: Vec<Box<dyn Unit>>,
    hook: Option<&dyn WriteHook>,
) -> bool {
    let mut wake = false;
    let result = conn.transaction::<(), diesel::result::Error, _>(|c| {
        // As `BEGIN IMMEDIATE`: wait (busy_timeout) for another process's writer.
        if let DbConnection::Sqlite(c) = c {
            use diesel::connection::SimpleConnection;
            c.batch_execute(SQLITE_TAKE_WRITE_LOCK)?;
        }
        for unit in &mut units {
            wake |= unit.run(c, hook);
        }
        Ok(())
    });
    let commit = result.map_err(|e| StoreError::from(e).to_string());
    let committed = commit.is_ok();
    for unit in units {
        unit.finish(commit.clone());
    }
    if let (true, true, Some(hook)) = (committed, wake, hook) {
        hook.committed();
    }
    committed
}

/// A unit of work of result type `T` and abort type `E`, with the slot its request
/// waits on.
pub(in crate::store) struct Pending<T, E, F> {
    pub f: F,
    pub access: Access,
    pub slot: Slot<Result<T, WriteError<E>>>,
    /// Told how long the unit waited for the writer (from `since`).
    pub observe: Option<(std::time::Instant, super::super::WaitObserver)>,
    /// The unit's result before the commit.
    outcome: Option<Result<T, WriteError<E>>>,
}

impl<T, E, F> Pending<T, E, F> {
    pub fn new(
        f: F,
        access: Access,
        slot: Slot<Result<T, WriteError<E>>>,
        observe: Option<(std::time::Instant, super::super::WaitObserver)>,
    ) -> Self {
        Self {
            f,
            access,
            slot,
            observe,
            outcome: None,
        }
    }
}

impl<T, E, F> Unit for Pending<T, E, F>
where
    T: Send + 'static,
    E: Send + 'static,
    F: Fn(&mut Tx<'_>) -> Result<T, Failure<E>> + Send + 'static,
{
    fn run(&mut self, conn: &mut DbConnection, hook: Option<&dyn WriteHook>) -> bool {
        if let Some((since, observe)) = self.observe.take() {
            observe(since.elapsed());
        }
        for _ in 0..MAX_ATTEMPTS {
            let wake = std::cell::Cell::new(false);
            let deferred = std::cell::RefCell::default();
            let result = conn.transaction::<T, Failure<E>, _>(|c| {
                let mut tx = Tx::new(c, &self.access, hook);
                tx.wake = Some(&wake);
                tx.deferring(&deferred);
                let value = (self.f)(&mut tx)?;
                tx.settle_deferred().map_err(Failure::Tx)?;
                Ok(value)
            });
            self.outcome = Some(match result {
                Ok(value) => Ok(value),
                Err(Failure::Tx(TxError::Retry)) => continue,
                Err(Failure::Tx(TxError::NeedsWriter)) => Err(WriteError::Store(
                    StoreError::Internal("a read-only unit of work tried to write".into()),
                )),
                Err(Failure::Tx(TxError::Db(e))) => Err(WriteError::Store(e.into())),
                Err(Failure::Abort(e)) => Err(WriteError::Abort(e)),
            });
            return wake.get() && matches!(self.outcome, Some(Ok(_)));
        }
        self.outcome = Some(Err(WriteError::Store(StoreError::Conflict(
            "The resource was changed concurrently by other requests; retry".into(),
        ))));
        false
    }

    fn finish(mut self: Box<Self>, commit: Result<(), String>) {
        let outcome = match (self.outcome.take(), commit) {
            // What did not write keeps its own answer, whatever became of the batch.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)), Err(e)) => Err(WriteError::Store(StoreError::Unavailable(e))),
            (None, Ok(())) => Err(WriteError::Store(StoreError::Internal(
                "the unit of work did not run".into(),
            ))),
            (None, Err(e)) => Err(WriteError::Store(StoreError::Unavailable(e))),
        };
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
    }
}

impl<T, E, F> Drop for Pending<T, E, F> {
    /// A unit dropped unfinished (its batch's thread panicked, or the connection could
    /// not be had) still answers its request.
    fn drop(&mut self) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(Err(WriteError::Store(StoreError::Unavailable(
                "the unit of work was not run; retry".into(),
            ))));
        }
    }
}
