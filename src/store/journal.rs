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
use std::sync::{Arc, Mutex};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use serde::{Deserialize, Serialize};

use super::db::DbConnection;
use super::schema::{audit_event_patients, audit_events, audit_journal_batches};

/// One audit record, owned (it may wait in the journal). Fields added later carry
/// `#[serde(default)]`: journal files written before them still read.
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
    /// The organisation the actor acted for (`Organization/<id>`, ...).
    #[serde(default)]
    pub organization: Option<String>,
    /// The patients concerned (`Patient/<id>`, sorted, without repeats).
    #[serde(default)]
    pub patients: Vec<String>,
}

#[derive(QueryableByName)]
struct SeqRow {
    #[diesel(sql_type = BigInt)]
    seq: i64,
}

impl AuditRow {
    /// `patients` as stored in `audit_events.patients` (`None`: no patient).
    pub fn patients_column(&self) -> Option<String> {
        (!self.patients.is_empty()).then(|| self.patients.join(" "))
    }

    /// Inserts the rows (unchained: the sealer chains them once committed) and, per
    /// patient of a row, one `audit_event_patients` row.
    pub(super) fn insert(rows: &[AuditRow], conn: &mut DbConnection) -> QueryResult<()> {
        let mut plain: Vec<&AuditRow> = Vec::new();
        let mut links: Vec<(String, i64)> = Vec::new();
        for row in rows {
            if row.patients.is_empty() {
                plain.push(row);
                continue;
            }
            // Its seq is needed for the patient rows.
            Self::insert_plain(&plain, conn)?;
            plain.clear();
            let seq = row.insert_returning(conn)?;
            links.extend(row.patients.iter().map(|p| (p.clone(), seq)));
        }
        Self::insert_plain(&plain, conn)?;
        for chunk in links.chunks(500) {
            let values: Vec<_> = chunk
                .iter()
                .map(|(patient, seq)| {
                    (
                        audit_event_patients::patient.eq(patient),
                        audit_event_patients::seq.eq(*seq),
                    )
                })
                .collect();
            match conn {
                DbConnection::Sqlite(c) => {
                    diesel::insert_into(audit_event_patients::table)
                        .values(values)
                        .execute(c)?;
                }
                DbConnection::Postgres(c) => {
                    diesel::insert_into(audit_event_patients::table)
                        .values(values)
                        .execute(c)?;
                }
            }
        }
        Ok(())
    }

    fn insert_returning(&self, conn: &mut DbConnection) -> QueryResult<i64> {
        let sql = match conn {
            DbConnection::Sqlite(_) => {
                "INSERT INTO audit_events (recorded, request_id, actor, action, interaction, \
                 resource_type, resource_id, version_id, outcome, organization, patients) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq"
            }
            DbConnection::Postgres(_) => {
                "INSERT INTO audit_events (recorded, request_id, actor, action, interaction, \
                 resource_type, resource_id, version_id, outcome, organization, patients) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING seq"
            }
        };
        let row: SeqRow = diesel::sql_query(sql)
            .bind::<BigInt, _>(self.recorded)
            .bind::<Text, _>(&self.request_id)
            .bind::<Text, _>(&self.actor)
            .bind::<Text, _>(&self.action)
            .bind::<Text, _>(&self.interaction)
            .bind::<Text, _>(&self.resource_type)
            .bind::<Nullable<Text>, _>(&self.resource_id)
            .bind::<Nullable<BigInt>, _>(self.version_id)
            .bind::<Text, _>(&self.outcome)
            .bind::<Nullable<Text>, _>(&self.organization)
            .bind::<Nullable<Text>, _>(self.patients_column())
            .get_result(conn)?;
        Ok(row.seq)
    }

    fn insert_plain(rows: &[&AuditRow], conn: &mut DbConnection) -> QueryResult<()> {
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
                        audit_events::organization.eq(&r.organization),
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

/// The journal of one SQLite database, as this process writes it: its own live file
/// `<db>-audit-journal.<id>.live`, locked (`flock`) while this process has it open, so
/// another process (a CLI command on the same database) never takes it away from a
/// running server, yet recovers it once its owner has died.
#[derive(Debug)]
pub struct AuditJournal {
    /// `<db>-audit-journal`: the prefix of every journal file of the database.
    prefix: PathBuf,
    /// This process's live file, once something was journalled.
    live: Mutex<Option<(PathBuf, Arc<LiveFile>)>>,
}

/// A live journal file and how far it is on disk: appends are numbered, and one flush
/// covers every append before it (group commit), so concurrent reads share flushes.
#[derive(Debug)]
struct LiveFile {
    file: File,
    /// Appends written to the file (under the journal's `live` lock).
    written: std::sync::atomic::AtomicU64,
    /// Appends known to be on disk; held while flushing, so a flush waits for the
    /// running one and then often finds its append already covered.
    synced: Mutex<u64>,
}

impl LiveFile {
    /// Returns once append number `n` is on disk.
    fn sync_through(&self, n: u64) -> std::io::Result<()> {
        let mut synced = self
            .synced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *synced >= n {
            return Ok(());
        }
        let target = self.written.load(std::sync::atomic::Ordering::Acquire);
        self.file.sync_data()?;
        *synced = target;
        Ok(())
    }
}

const LIVE_SUFFIX: &str = ".live";
const BATCH_SUFFIX: &str = ".batch";
/// A live file being created (see `append`); never moved.
const NEW_SUFFIX: &str = ".new";

impl AuditJournal {
    /// The journal of the SQLite database at `db`.
    pub fn beside(db: &Path) -> Self {
        let mut name = db.as_os_str().to_owned();
        name.push("-audit-journal");
        Self {
            prefix: PathBuf::from(name),
            live: Mutex::new(None),
        }
    }

    fn path(&self, id: &str, suffix: &str) -> PathBuf {
        let mut name = self.prefix.as_os_str().to_owned();
        name.push(format!(".{id}{suffix}"));
        PathBuf::from(name)
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
        let mut live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if live.is_none() {
            // Created under a name the mover ignores, locked, then renamed: a `.live`
            // file is always locked while its process lives. Created under its own name,
            // a mover could find it unlocked between the two steps, take it for a dead
            // process's and move it away: the read failed, or its record was lost.
            let id = uuid::Uuid::new_v4().to_string();
            let (new, path) = (self.path(&id, NEW_SUFFIX), self.path(&id, LIVE_SUFFIX));
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&new)?;
            file.try_lock().map_err(std::io::Error::other)?;
            fs::rename(&new, &path)?;
            let file = LiveFile {
                file,
                written: std::sync::atomic::AtomicU64::new(0),
                synced: Mutex::new(0),
            };
            *live = Some((path, Arc::new(file)));
        }
        let live_file = live
            .as_ref()
            .map(|(_, file)| Arc::clone(file))
            .ok_or_else(|| std::io::Error::other("journal not open"))?;
        (&live_file.file).write_all(&text)?;
        let n = live_file
            .written
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
            + 1;
        drop(live);
        // Flushed outside the lock: concurrent reads append while one flush runs, and
        // one flush covers every append before it. The handle stays valid when the
        // mover renames the file meanwhile.
        live_file.sync_through(n)
    }

    /// Moves every journalled record into `audit_events`: this process's, and those a
    /// process that died left behind. The caller holds the writer lock. Returns how many
    /// records were moved.
    pub fn move_into(&self, conn: &mut DbConnection) -> Result<usize, String> {
        // This process's live file becomes a batch; appends go on in a new file.
        {
            let mut live = self
                .live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((path, _)) = live.as_ref() {
                let batch = self.path(&uuid::Uuid::new_v4().to_string(), BATCH_SUFFIX);
                fs::rename(path, batch).map_err(|e| e.to_string())?;
                // Dropping the file releases its lock: the batch is anyone's to move.
                *live = None;
            }
        }
        let mut moved = 0;
        for (id, path, suffix) in self.files().map_err(|e| e.to_string())? {
            if suffix == NEW_SUFFIX {
                remove_if_abandoned(&path);
                continue;
            }
            if suffix == LIVE_SUFFIX {
                // Another process's live file: moved only when its owner is gone.
                let Ok(file) = File::open(&path) else {
                    continue;
                };
                if file.try_lock().is_err() {
                    continue;
                }
                let batch = self.path(&id, BATCH_SUFFIX);
                fs::rename(&path, &batch).map_err(|e| e.to_string())?;
                moved += self.move_batch(conn, &id, &batch)?;
            } else {
                moved += self.move_batch(conn, &id, &path)?;
            }
        }
        Ok(moved)
    }

    /// Journal files of this database other than this process's live one: `(id, path,
    /// suffix)`.
    fn files(&self) -> std::io::Result<Vec<(String, PathBuf, &'static str)>> {
        let own = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|(p, _)| p.clone());
        let dir = self.prefix.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = dir.unwrap_or_else(|| Path::new("."));
        let prefix = format!(
            "{}.",
            self.prefix
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let mut found = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if own.as_ref() == Some(&path) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            for suffix in [BATCH_SUFFIX, LIVE_SUFFIX, NEW_SUFFIX] {
                if let Some(id) = rest.strip_suffix(suffix) {
                    found.push((id.to_owned(), path.clone(), suffix));
                }
            }
        }
        found.sort();
        Ok(found)
    }

    fn move_batch(&self, conn: &mut DbConnection, id: &str, path: &Path) -> Result<usize, String> {
        let file = match File::open(path) {
            Ok(file) => file,
            // Another process (the server, or a command beside it) moved it meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.to_string()),
        };
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
                // A write first, as `BEGIN IMMEDIATE`: another process moving the same
                // batch (or writing) is waited for (busy_timeout), where a transaction
                // that read first would fail at once on SQLite when it came to write.
                if let DbConnection::Sqlite(c) = c {
                    use diesel::connection::SimpleConnection;
                    c.batch_execute(super::tx::SQLITE_TAKE_WRITE_LOCK)?;
                }
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
        // Another process may have moved and removed it meanwhile.
        match fs::remove_file(path) {
            Ok(()) => Ok(moved),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(moved),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Whether this process journalled records not moved yet, or batches wait.
    pub fn is_pending(&self) -> bool {
        let own = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some();
        own || self
            .files()
            .is_ok_and(|files| files.iter().any(|(_, _, suffix)| *suffix == BATCH_SUFFIX))
    }
}

/// A `.new` file is renamed to `.live` microseconds after its creation, before anything
/// is written to it; one a minute old was left by a process that stopped in between and
/// holds nothing. Removed only if unlocked.
fn remove_if_abandoned(path: &Path) {
    let old = fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .is_some_and(|age| age > std::time::Duration::from_secs(60));
    if !old {
        return;
    }
    if let Ok(file) = File::open(path) {
        if file.try_lock().is_ok() {
            // Gone already (another process removed it) is as good.
            let _ = fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests;
