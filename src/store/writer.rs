//! The writer: the lock every writing unit takes (SQLite allows one writer), and on
//! SQLite the one connection every write runs on.
//!
//! SQLite empties a connection's page cache whenever another connection has committed
//! since that connection's last transaction. A writer that took any pooled connection
//! (the readers' too) therefore started every unit of work with a cold cache and read
//! its B-tree pages from the OS again: in a profile of the 1,000,000-referral preload,
//! the kernel's page-cache copies (`copy_to_iter`, `filemap_*`) took about 12% of the
//! CPU and SQLite's own page-cache look-ups another 4%. Only this connection writes, so
//! its cache stays valid from one unit to the next, and it is larger than a reader's
//! (`WRITER_CACHE_KIB`). Its prepared statements stay too.
//!
//! The connection is the writer's own, outside the readers' pool (a pool of one, as a
//! command-line tool opens, still has its reader). A PostgreSQL connection is not kept:
//! the group commit there takes one from the pool for each group (a kept one could be
//! broken by a server restart).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use diesel::connection::SimpleConnection;
use diesel::r2d2::ManageConnection;

use super::db::{DbConnection, Manager, Pool};
use super::StoreError;

/// The page cache of the writer's connection, in KiB (a reader's is SQLite's default,
/// 2 MiB). It is the most the writer adds to the process's memory; see BENCHMARKS.md
/// ("Round 4") for what it changed.
pub(crate) const WRITER_CACHE_KIB: u32 = 16 * 1024;

/// The writer's state behind its lock.
#[derive(Default)]
pub(crate) struct Writer {
    /// SQLite: opens the writer's connection (the pool's manager, so the same
    /// settings), once.
    connect: Option<Manager>,
    /// SQLite: the writer's connection, once opened.
    conn: Option<DbConnection>,
}

/// The lock every writer takes, with the writer's state.
pub(crate) type WriterLock = Arc<Mutex<Writer>>;

impl Writer {
    /// SQLite's writer: opens its own connection with `connect` when first used, and
    /// keeps it.
    pub(crate) fn kept(connect: Manager) -> WriterLock {
        Arc::new(Mutex::new(Self {
            connect: Some(connect),
            conn: None,
        }))
    }

    /// Takes the writer lock (a panic while it was held does not poison it: the
    /// connection's transaction was rolled back by then).
    pub(crate) fn lock(lock: &WriterLock) -> MutexGuard<'_, Self> {
        lock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the writer's connection: its own (SQLite), or one from `pool`.
    /// Call with the lock held.
    pub(crate) fn run<T>(
        &mut self,
        pool: &Pool,
        f: impl FnOnce(&mut DbConnection) -> T,
    ) -> Result<T, StoreError> {
        let Some(connect) = &self.connect else {
            return Ok(f(&mut *pool.get()?));
        };
        let conn = match &mut self.conn {
            Some(conn) => conn,
            empty => {
                let mut conn = connect
                    .connect()
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                if let DbConnection::Sqlite(c) = &mut conn {
                    // A failure leaves the default cache: slower, not wrong.
                    if let Err(e) =
                        c.batch_execute(&format!("PRAGMA cache_size = -{WRITER_CACHE_KIB}"))
                    {
                        tracing::warn!(error = %e, "cannot size the writer's page cache");
                    }
                }
                empty.insert(conn)
            }
        };
        let out = f(conn);
        if broken(conn) {
            self.conn = None;
        }
        Ok(out)
    }
}

fn broken(conn: &mut DbConnection) -> bool {
    use diesel::r2d2::R2D2Connection;
    match conn {
        DbConnection::Postgres(c) => c.is_broken(),
        DbConnection::Sqlite(c) => c.is_broken(),
    }
}
