//! SQLite's durable path for read audit records while a long write holds the writer
//! lock. A read then runs in a read-only transaction and its audit records are
//! appended to a journal file beside the database and flushed to disk before the read
//! answers; a mover copies them into `audit_events` (in batches, as soon as it gets the
//! writer lock) and removes them. A batch is moved once: its id is recorded in
//! `audit_journal_batches` in the same transaction, so a batch file left behind by a
//! crash after the copy is removed, not copied again.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::db::DbConnection;
use super::schema::{audit_events, audit_journal_batches};

/// One audit record, owned (it may wait in the journal).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRow {
    pub recorded: i64,
    pub request_id: String,
    pub actor: String,
    pub action: String,
    pub interaction: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub version_id: Option<i64>,
    pub outcome: String,
}

impl AuditRow {
    pub(super) fn insert(rows: &[AuditRow], conn: &mut DbConnection) -> QueryResult<()> {
        for chunk in rows.chunks(500) {
            let values: Vec<_> = chunk
                .iter()
                .map(|r| {
                    (
                        audit_events::recorded.eq(r.recorded),
                        audit_events::request_id.eq(&r.request_id),
                        audit_events::actor.eq(&r.actor),
                        audit_events::action.eq(&r.action),
                        audit_events::interaction.eq(&r.interaction),
                        audit_events::resource_type.eq(&r.resource_type),
                        audit_events::resource_id.eq(&r.resource_id),
                        audit_events::version_id.eq(r.version_id),
                        audit_events::outcome.eq(&r.outcome),
                    )
                })
                .collect();
            match conn {
                DbConnection::Sqlite(c) => {
                    diesel::insert_into(audit_events::table)
                        .values(values)
                        .execute(c)?;
                }
                DbConnection::Postgres(c) => {
                    diesel::insert_into(audit_events::table)
                        .values(values)
                        .execute(c)?;
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct AuditJournal {
    path: PathBuf,
    /// The open journal file; appends and rotation take turns on it.
    file: Mutex<Option<File>>,
}

const BATCH_SUFFIX: &str = ".batch";

impl AuditJournal {
    /// The journal of the SQLite database at `db`: `<db>-audit-journal`.
    pub fn beside(db: &Path) -> Self {
        let mut name = db.as_os_str().to_owned();
        name.push("-audit-journal");
        Self {
            path: PathBuf::from(name),
            file: Mutex::new(None),
        }
    }

    /// Appends `rows` and flushes them to disk before returning.
    pub fn append(&self, rows: &[AuditRow]) -> std::io::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut text = Vec::new();
        for row in rows {
            serde_json::to_writer(&mut text, row)?;
            text.push(b'\n');
        }
        let mut guard = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let file = guard
            .as_mut()
            .ok_or_else(|| std::io::Error::other("journal not open"))?;
        file.write_all(&text)?;
        file.sync_data()
    }

    /// Moves every journalled record into `audit_events`. The caller holds the writer
    /// lock. Returns how many records were moved.
    pub fn move_into(&self, conn: &mut DbConnection) -> Result<usize, String> {
        // The current journal becomes a batch; appends go on in a new file.
        {
            let mut guard = self
                .file
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let has_records = fs::metadata(&self.path).is_ok_and(|m| m.len() > 0);
            if has_records {
                *guard = None;
                let batch = self.batch_path(&uuid::Uuid::new_v4().to_string());
                fs::rename(&self.path, batch).map_err(|e| e.to_string())?;
            }
        }
        let mut moved = 0;
        for batch in self.batches().map_err(|e| e.to_string())? {
            moved += self.move_batch(conn, &batch)?;
        }
        Ok(moved)
    }

    fn batch_path(&self, id: &str) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{id}{BATCH_SUFFIX}"));
        PathBuf::from(name)
    }

    /// Batch files waiting to be moved (left by an earlier run, or just rotated).
    fn batches(&self) -> std::io::Result<Vec<(String, PathBuf)>> {
        let dir = self.path.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = dir.unwrap_or_else(|| Path::new("."));
        let prefix = format!(
            "{}.",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let mut found = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(BATCH_SUFFIX))
            {
                found.push((id.to_owned(), entry.path()));
            }
        }
        found.sort();
        Ok(found)
    }

    fn move_batch(
        &self,
        conn: &mut DbConnection,
        batch: &(String, PathBuf),
    ) -> Result<usize, String> {
        let (id, path) = batch;
        let file = File::open(path).map_err(|e| e.to_string())?;
        // A torn last line (the process stopped mid-append, before the read answered)
        // is skipped: that read never got its answer.
        let rows: Vec<AuditRow> = BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| serde_json::from_str(&line).ok())
            .collect();
        let now = super::tx::now_micros();
        let moved = conn
            .transaction::<usize, diesel::result::Error, _>(|c| {
                let done: Option<String> = audit_journal_batches::table
                    .filter(audit_journal_batches::batch_id.eq(id))
                    .select(audit_journal_batches::batch_id)
                    .first(c)
                    .optional()?;
                if done.is_some() {
                    return Ok(0);
                }
                AuditRow::insert(&rows, c)?;
                diesel::insert_into(audit_journal_batches::table)
                    .values((
                        audit_journal_batches::batch_id.eq(id),
                        audit_journal_batches::moved.eq(now),
                    ))
                    .execute(c)?;
                Ok(rows.len())
            })
            .map_err(|e| e.to_string())?;
        fs::remove_file(path).map_err(|e| e.to_string())?;
        Ok(moved)
    }

    /// Whether records wait in the journal.
    pub fn is_pending(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| m.len() > 0)
            || self.batches().is_ok_and(|b| !b.is_empty())
    }
}
