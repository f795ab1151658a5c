//! Persistence: resource versions, the search index and the audit trail, on SQLite or
//! PostgreSQL through one diesel codebase. Every call runs on tokio's blocking pool,
//! never on an actix worker. This module knows nothing about HTTP.

mod access;
pub mod audit;
#[cfg(test)]
mod batch_tests;
mod clients;
mod clock;
#[cfg(test)]
mod conditional_tests;
pub mod db;
#[cfg(test)]
mod door_tests;
mod facts;
mod grants;
mod index;
mod journal;
mod messages;
mod ops;
mod outbox;
mod postcodes;
pub mod query;
mod requests;
pub mod schema;
mod search;
pub mod serving;
#[cfg(test)]
mod statement_tests;
mod stats;
mod tx;
mod types;
mod writer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use diesel::result::{DatabaseErrorKind, Error as DieselError};

pub use access::{Access, AuditContext, ReadScope, Visible};
pub use audit::{AuditEntry, AuditQuery, ChainReport};
pub use clients::{ClientRow, NewToken, TokenGrant};
pub use db::{Backend, SchemaDrift};
use db::{DbConnection, Pool};
pub use facts::FactsRow;
pub use grants::{Grant, Relation};
pub use index::RowsOf;
use journal::AuditJournal;
pub use journal::AuditRow;
pub use messages::MessageRow;
pub use ops::conditional_lock_key;
pub use outbox::{Attempt, EventRow, SecretChange, SubscriptionFacts, SubscriptionRow};
pub use postcodes::{PostcodeImport, PostcodeRows};
pub use query::{Criterion, SystemMatch};
pub use requests::RequestRecord;
pub use stats::{CodeCount, OperationsCounts, OutboxStatus};
pub use tx::{AuditRecord, Change, Failure, Tx, TxError, WriteError, WriteHook};
pub use types::{
    CreateOutcome, DateRow, DeleteOutcome, HistoryQuery, HistoryRow, IndexRows, Lookup,
    ReferenceRow, StoredVersion, StringRow, TokenRow, UpdateOutcome,
};
use writer::{Writer, WriterLock};

use crate::config::DatabaseUrl;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now (pool timeout, connection refused,
    /// SQLite busy): the client may retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Concurrent writers kept changing the same resource.
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Internal(String),
}

/// A fresh database on the test PostgreSQL server (`WOR_HUB_TEST_POSTGRES_URL`), named
/// `<prefix>_<uuid>`: its URL.
#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is the failure report
pub(crate) fn fresh_postgres_database(prefix: &str) -> String {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let admin = std::env::var("WOR_HUB_TEST_POSTGRES_URL").unwrap();
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    diesel::PgConnection::establish(&admin)
        .unwrap()
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    crate::config::postgres_database_url(&admin, &name)
}

impl From<DieselError> for StoreError {
    fn from(err: DieselError) -> Self {
        match &err {
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
                Self::Unavailable(err.to_string())
            }
            DieselError::DatabaseError(_, info)
                if info.message().contains("database is locked")
                    || info.message().contains("database is busy") =>
            {
                Self::Unavailable(err.to_string())
            }
            _ => Self::Internal(err.to_string()),
        }
    }
}

impl From<diesel::r2d2::PoolError> for StoreError {
    fn from(err: diesel::r2d2::PoolError) -> Self {
        Self::Unavailable(err.to_string())
    }
}

/// Database transactions this process committed (reads and writes): what a request
/// costs the database, for tests and operators. On SQLite a group of writes that
/// commits together counts once, and the audit journal's moves (background work for
/// many reads) are not counted.
#[derive(Debug, Clone, Default)]
pub struct CommitCounter(Arc<AtomicU64>);

impl CommitCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    backend: Backend,
    /// SQLite allows one writer; serialising writers in-process avoids SQLITE_BUSY on
    /// lock upgrades, and every write runs on the writer's own connection (see
    /// [`writer`]). PostgreSQL needs no such lock.
    write_lock: Option<WriterLock>,
    /// SQLite: where reads' audit records wait for the journal mover.
    journal: Option<Arc<AuditJournal>>,
    /// SQLite: units of work waiting for the writer, committed in groups (see
    /// [`tx::batch`]), and the lock the group's runner holds (the writer lock).
    group: (WriterLock, Arc<tx::batch::Queue>),
    commits: CommitCounter,
    /// Runs in the unit of work of every version written (see [`WriteHook`]).
    hook: Option<Arc<dyn WriteHook>>,
    /// SQLite: told how long each writer waited for the write lock (see
    /// [`Store::with_write_wait`]).
    write_wait: Option<WaitObserver>,
}

/// Told how long a SQLite writer waited for the write lock (the in-process lock, then
/// the database's): the operator's metrics (`crate::metrics`) observe it.
pub type WaitObserver = Arc<dyn Fn(std::time::Duration) + Send + Sync>;

/// The connection pool's state: connections open, idle among them, and the most it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    pub connections: u32,
    pub idle: u32,
    pub max_size: u32,
}

impl Store {
    /// Connects and applies pending migrations.
    pub async fn open(url: &DatabaseUrl, pool_size: u32) -> Result<Self, StoreError> {
        let backend = db::Manager::new(url.clone()).backend();
        let journal = match url {
            DatabaseUrl::Sqlite(path) => Some(Arc::new(AuditJournal::beside(path))),
            DatabaseUrl::Postgres(_) => None,
        };
        let write_lock =
            (backend == Backend::Sqlite).then(|| Writer::kept(db::Manager::new(url.clone())));
        let url = url.clone();
        let recover = journal.clone();
        let errors = db::ConnectionErrors::default();
        let opened = errors.opened.clone();
        let (pool, applied) = tokio::task::spawn_blocking(move || {
            let pool = db::build_pool(&url, pool_size, errors)?;
            let mut conn = pool.get()?;
            let applied = db::run_migrations(&mut conn).map_err(StoreError::Internal)?;
            // Audit records a previous run journalled and did not move yet.
            if let Some(journal) = &recover {
                journal.move_into(&mut conn).map_err(StoreError::Internal)?;
            }
            Ok::<_, StoreError>((pool, applied))
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))??;
        opened.store(true, Ordering::Relaxed);
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "applied database migrations");
        }
        let store = Self {
            pool,
            backend,
            group: (write_lock.clone().unwrap_or_default(), Arc::default()),
            write_lock,
            journal,
            commits: CommitCounter::default(),
            hook: None,
            write_wait: None,
        };
        store.spawn_journal_mover();
        Ok(store)
    }

    /// The same database with a commit counter of its own: a background job's
    /// transactions (the notification worker's) are not counted as requests'.
    #[must_use]
    pub fn with_own_commit_counter(&self) -> Self {
        let mut store = self.clone();
        store.commits = CommitCounter::default();
        store
    }

    /// This store with `hook` run after every version written.
    #[must_use]
    pub fn with_hook(mut self, hook: Arc<dyn WriteHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// This store with `observe` told how long each SQLite writer waited for the
    /// write lock (PostgreSQL has no such lock: never called there).
    #[must_use]
    pub fn with_write_wait(mut self, observe: WaitObserver) -> Self {
        self.write_wait = Some(observe);
        self
    }

    /// The connection pool's state now.
    pub fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            connections: state.connections,
            idle: state.idle_connections,
            max_size: self.pool.max_size(),
        }
    }

    /// Database transactions committed by this process so far.
    pub fn commits(&self) -> CommitCounter {
        self.commits.clone()
    }

    /// SQLite: moves journalled read audit records into `audit_events` soon after
    /// they were written, as soon as the writer lock is free.
    fn spawn_journal_mover(&self) {
        let (Some(journal), Some(lock)) = (self.journal.clone(), self.write_lock.clone()) else {
            return;
        };
        let pool = self.pool.clone();
        let spawned = std::thread::Builder::new()
            .name("audit-journal".into())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_millis(200));
                // The store is gone when only this thread holds the journal.
                if Arc::strong_count(&journal) == 1 {
                    return;
                }
                if !journal.is_pending() {
                    continue;
                }
                let moved = Writer::lock(&lock)
                    .run(&pool, |conn| journal.move_into(conn))
                    .map_err(|e| e.to_string())
                    .and_then(|moved| moved);
                // Not counted in `commits`: the move is background work for many
                // reads, each of which counted its own (read-only) transaction.
                match moved {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(records = n, "journalled audit records moved"),
                    Err(e) => tracing::warn!(error = %e, "moving journalled audit records failed"),
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the audit journal mover");
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs `f` with a pooled connection on the blocking pool.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _span = span.enter();
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("database task failed: {e}")))?
    }

    /// Runs `f` on the blocking pool as the writer: on SQLite with the writer lock held,
    /// on the writer's connection (whoever waits for the lock holds no pooled
    /// connection, so the pool cannot run dry of connections that all wait for a lock);
    /// on PostgreSQL with a pooled connection.
    async fn with_writer<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    {
        let lock = self.write_lock.clone();
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _span = span.enter();
            match &lock {
                Some(lock) => Writer::lock(lock).run(&pool, f)?,
                None => f(&mut *pool.get()?),
            }
        })
        .await
        .map_err(|e| StoreError::Internal(format!("database task failed: {e}")))?
    }

    /// Checks that the database answers (readiness probe).
    pub async fn ping(&self) -> Result<(), StoreError> {
        use diesel::connection::SimpleConnection;
        self.with_conn(|conn| conn.batch_execute("SELECT 1").map_err(StoreError::from))
            .await
    }

    /// The database answers and says how its schema differs from this binary's
    /// migrations (readiness probe).
    pub async fn schema_drift(&self) -> Result<SchemaDrift, StoreError> {
        self.with_conn(|conn| db::schema_drift(conn).map_err(StoreError::Unavailable))
            .await
    }
}
