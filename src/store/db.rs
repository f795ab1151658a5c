//! Connections: one diesel codebase over SQLite (embedded default) and PostgreSQL.

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::DatabaseUrl;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Opens the connection type the configured URL names. (The derived
/// `MultiConnection::establish` would try each backend in turn, and SQLite accepts any
/// string as a file name: a mistyped PostgreSQL URL would silently create a file.)
#[derive(Debug, Clone)]
pub struct Manager {
    url: DatabaseUrl,
}

impl Manager {
    pub fn new(url: DatabaseUrl) -> Self {
        Self { url }
    }

    pub fn backend(&self) -> Backend {
        match self.url {
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        }
    }
}

impl ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => PgConnection::establish(url)
                .map(DbConnection::Postgres)
                .map_err(r2d2::Error::ConnectionError),
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&sqlite_url(path))
                    .map_err(r2d2::Error::ConnectionError)?;
                // WAL for concurrent readers; synchronous=FULL so an acknowledged write
                // survives power loss; busy_timeout for the rare cross-process writer.
                // The automatic checkpoint stays in the committing writer: run from a
                // background thread instead, it never found the WAL fully copied between
                // one write transaction and the next, so the WAL never restarted and
                // grew to 16 GB during a 100,000-referral preload (measured).
                // (A memory map for reads, `mmap_size`, was measured and left out: no
                // gain in reads or polling, and its pages count in the process's RSS.)
                conn.batch_execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                     PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
                )
                .map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        use diesel::r2d2::R2D2Connection;
        match conn {
            DbConnection::Postgres(c) => c.is_broken(),
            DbConnection::Sqlite(c) => c.is_broken(),
        }
    }
}

fn sqlite_url(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

pub type Pool = r2d2::Pool<Manager>;

/// PostgreSQL advisory lock key held while migrating ("wor-hub" in ASCII).
const MIGRATION_LOCK: i64 = 0x0077_6f72_2d68_7562;

/// Logs the pool's failed connection attempts once the store is open. While it opens,
/// they are left out: the failure comes back as the error of [`Store::open`](super::Store::open)
/// with the same text, and a command that cannot open its database prints one line,
/// not one log line per retry before it.
#[derive(Debug, Clone, Default)]
pub struct ConnectionErrors {
    pub opened: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl r2d2::HandleError<r2d2::Error> for ConnectionErrors {
    fn handle_error(&self, error: r2d2::Error) {
        if self.opened.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::error!(error = %error, "database connection failed");
        }
    }
}

pub fn build_pool(
    url: &DatabaseUrl,
    size: u32,
    errors: ConnectionErrors,
) -> Result<Pool, r2d2::PoolError> {
    r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        // A SQLite connection is a file handle and cannot go stale: no `SELECT 1` before
        // each use. A PostgreSQL connection can (a restarted server), so it is tested.
        .test_on_check_out(matches!(url, DatabaseUrl::Postgres(_)))
        .connection_timeout(Duration::from_secs(5))
        .error_handler(Box::new(errors))
        .build(Manager::new(url.clone()))
}

/// Applies pending embedded migrations; returns the versions applied.
pub fn run_migrations(conn: &mut DbConnection) -> Result<Vec<String>, String> {
    let applied = match conn {
        DbConnection::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|v| v.iter().map(ToString::to_string).collect())
            .map_err(|e| e.to_string())?,
        DbConnection::Postgres(c) => {
            // Instances sharing one database may start together: one migrates, the
            // others wait for it and then find nothing pending.
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
                .map_err(|e| e.to_string())?;
            let result: Result<Vec<String>, String> = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.iter().map(ToString::to_string).collect())
                .map_err(|e| e.to_string());
            c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
                .map_err(|e| e.to_string())?;
            result?
        }
    };
    Ok(applied)
}

/// What keeps the schema from matching this binary: migrations it embeds that the
/// database has not applied, and applied ones it does not know (a newer binary ran
/// them). Both empty: the schema is this binary's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaDrift {
    pub pending: Vec<String>,
    pub unknown: Vec<String>,
}

/// Compares the applied migrations with the embedded ones (reads only).
pub fn schema_drift(conn: &mut DbConnection) -> Result<SchemaDrift, String> {
    use diesel::migration::MigrationSource;
    fn drift<C: MigrationHarness<DB>, DB: diesel::backend::Backend>(
        conn: &mut C,
        source: EmbeddedMigrations,
    ) -> Result<SchemaDrift, String>
    where
        EmbeddedMigrations: MigrationSource<DB>,
    {
        let known: Vec<String> = MigrationSource::<DB>::migrations(&source)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|m| m.name().version().to_string())
            .collect();
        let applied: Vec<String> = conn
            .applied_migrations()
            .map_err(|e| e.to_string())?
            .iter()
            .map(ToString::to_string)
            .collect();
        Ok(SchemaDrift {
            pending: known
                .iter()
                .filter(|v| !applied.contains(v))
                .cloned()
                .collect(),
            unknown: applied.into_iter().filter(|v| !known.contains(v)).collect(),
        })
    }
    match conn {
        DbConnection::Sqlite(c) => drift(c, SQLITE_MIGRATIONS),
        DbConnection::Postgres(c) => drift(c, POSTGRES_MIGRATIONS),
    }
}
