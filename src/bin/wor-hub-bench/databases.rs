//! The benchmark's databases: fresh ones per measurement (a SQLite file in a temporary
//! directory, or a new database on the PostgreSQL server given), removed at the end.

use std::path::PathBuf;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use wor_hub::config::{postgres_database_url, DatabaseUrl};

/// Where the run's databases live, to create fresh ones and clean up at the end.
pub enum Databases {
    Sqlite(PathBuf),
    Postgres { admin: String, created: Vec<String> },
}

impl Databases {
    pub fn new(postgres: Option<String>) -> Result<Self, String> {
        match postgres {
            Some(admin) => Ok(Self::Postgres {
                admin,
                created: Vec::new(),
            }),
            None => {
                let dir = std::env::temp_dir()
                    .join(format!("wor-hub-bench-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                Ok(Self::Sqlite(dir))
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "SQLite",
            Self::Postgres { .. } => "PostgreSQL",
        }
    }

    /// A fresh, empty database.
    pub fn fresh(&mut self, label: &str) -> Result<DatabaseUrl, String> {
        match self {
            Self::Sqlite(dir) => Ok(DatabaseUrl::Sqlite(
                dir.join(format!("{label}-{}.db", uuid::Uuid::new_v4().simple())),
            )),
            Self::Postgres { admin, created } => {
                let name = format!("wor_hub_bench_{label}_{}", uuid::Uuid::new_v4().simple());
                PgConnection::establish(admin)
                    .and_then(|mut c| {
                        c.batch_execute(&format!("CREATE DATABASE {name}"))
                            .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))
                    })
                    .map_err(|e| format!("cannot create database {name}: {e}"))?;
                created.push(name.clone());
                Ok(DatabaseUrl::Postgres(postgres_database_url(admin, &name)))
            }
        }
    }

    /// Where the databases are, for `--keep-databases`: the SQLite directory, or the
    /// names of the PostgreSQL databases created.
    pub fn kept(&self) -> String {
        match self {
            Self::Sqlite(dir) => format!("SQLite files in {}", dir.display()),
            Self::Postgres { created, .. } => format!("PostgreSQL {}", created.join(", ")),
        }
    }

    /// Removes what [`Databases::fresh`] made (best effort: the in-process server still
    /// holds connections, hence `WITH (FORCE)`).
    pub fn clean_up(&self) {
        match self {
            Self::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Self::Postgres { admin, created } => {
                if let Ok(mut c) = PgConnection::establish(admin) {
                    for name in created {
                        let _ = c
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                    }
                }
            }
        }
    }
}

/// PostgreSQL: gathers the planner's statistics of `database` (`ANALYZE`), as its
/// autovacuum does within a minute of that many rows changing, so the reads measured
/// next run with the plans a running service has. Just after a fast ingest into a
/// fresh database the statistics still describe empty tables, and a poll of 561
/// matches took 62 ms in a nested loop over the whole index table (2026-12-04).
/// Nothing on SQLite: its planner has no such statistics.
pub async fn analyze(database: &DatabaseUrl) -> Result<(), String> {
    let DatabaseUrl::Postgres(url) = database else {
        return Ok(());
    };
    let url = url.clone();
    tokio::task::spawn_blocking(move || {
        PgConnection::establish(&url)
            .map_err(|e| e.to_string())
            .and_then(|mut c| c.batch_execute("ANALYZE").map_err(|e| e.to_string()))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("ANALYZE: {e}"))
}
