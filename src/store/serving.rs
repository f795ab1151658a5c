//! "A server uses this database": `wor-hub serve` holds a shared lock for as long as
//! it runs, and `wor-hub reindex` takes it exclusively or refuses. Several servers may
//! share one database (shared locks do not exclude each other); a reindex must not run
//! under them, because it rewrites the index they search.
//!
//! - SQLite: an OS file lock (`flock`) on the sidecar file `<database>.serving` (never on
//!   the database file itself: closing another descriptor of that file would drop
//!   SQLite's own POSIX locks). The kernel releases it when the process ends, also on
//!   SIGKILL.
//! - PostgreSQL: a session advisory lock on a connection of its own, held shared by
//!   each server; it goes with the session when the process ends.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use diesel::prelude::*;
use diesel::sql_types::Bool;

use crate::config::DatabaseUrl;

/// Advisory lock key ("wor-hub serving" folded into 64 bits; the migration lock is
/// another key).
const SERVING_LOCK: i64 = 0x0077_6f72_7365_7276;

/// A held lock; dropping it releases it.
pub enum ServingLock {
    File(File),
    Postgres(PgConnection),
    /// An in-memory SQLite database is this process's alone.
    None,
}

impl std::fmt::Debug for ServingLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::File(_) => "ServingLock::File",
            Self::Postgres(_) => "ServingLock::Postgres",
            Self::None => "ServingLock::None",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A server: waits for nothing, shares with other servers.
    Shared,
    /// A reindex: only when nobody holds it.
    Exclusive,
}

fn sidecar(path: &Path) -> Option<PathBuf> {
    let name = path.to_string_lossy();
    if name == ":memory:" || name.is_empty() || name.starts_with("file::memory:") {
        return None;
    }
    let mut file = path.as_os_str().to_owned();
    file.push(".serving");
    Some(PathBuf::from(file))
}

/// Takes the lock. `Ok(None)`: someone holds it in a mode that excludes `mode`.
fn take(url: &DatabaseUrl, mode: Mode) -> Result<Option<ServingLock>, String> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let Some(lock_path) = sidecar(path) else {
                return Ok(Some(ServingLock::None));
            };
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|e| format!("cannot open the lock file {}: {e}", lock_path.display()))?;
            let taken = match mode {
                Mode::Shared => file.try_lock_shared(),
                Mode::Exclusive => file.try_lock(),
            };
            match taken {
                Ok(()) => Ok(Some(ServingLock::File(file))),
                Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                Err(std::fs::TryLockError::Error(e)) => {
                    Err(format!("cannot lock {}: {e}", lock_path.display()))
                }
            }
        }
        DatabaseUrl::Postgres(url) => {
            let mut conn = PgConnection::establish(url).map_err(|e| {
                format!(
                    "cannot open the database {}: {e}",
                    DatabaseUrl::Postgres(url.clone()).redacted()
                )
            })?;
            let function = match mode {
                Mode::Shared => "pg_try_advisory_lock_shared",
                Mode::Exclusive => "pg_try_advisory_lock",
            };
            #[derive(QueryableByName)]
            struct Taken {
                #[diesel(sql_type = Bool)]
                taken: bool,
            }
            let row: Taken =
                diesel::sql_query(format!("SELECT {function}({SERVING_LOCK}) AS taken"))
                    .get_result(&mut conn)
                    .map_err(|e| e.to_string())?;
            Ok(row.taken.then_some(ServingLock::Postgres(conn)))
        }
    }
}

/// The lock a server holds while it runs. Only an exclusive holder (a running
/// reindex) makes this fail.
pub fn hold_for_serving(url: &DatabaseUrl) -> Result<ServingLock, String> {
    take(url, Mode::Shared)?.ok_or_else(|| {
        "a reindex is running on this database; start the server when it has finished".to_owned()
    })
}

/// The lock a reindex holds; refused while any server uses the database.
pub fn hold_for_reindex(url: &DatabaseUrl) -> Result<ServingLock, String> {
    take(url, Mode::Exclusive)?.ok_or_else(|| {
        "a server is using this database; stop every wor-hub server on it before reindex".to_owned()
    })
}
