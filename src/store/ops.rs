//! The store's async interface: each call is one unit of work on the blocking pool.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use diesel::prelude::*;

use super::access::Access;
use super::db::{DbConnection, MultiBackend};
use super::query::Criterion;
use super::schema::resource_versions;
use super::tx::{self, AuditRecord, Failure, LockWait, Tx, TxError, WriteError};
use super::types::{CreateOutcome, HistoryQuery, HistoryRow, StoredVersion};
use super::writer::Writer;
use super::{Store, StoreError};

impl Store {
    /// Runs `f` as one unit of work: all its writes, index rows and audit records
    /// commit together, or none do (on any error, including `Failure::Abort`). `f` may
    /// run more than once when a concurrent writer forces a retry. On SQLite, units of
    /// work that wait for the writer at the same time commit together (group commit,
    /// [`tx::batch`]), each in a savepoint of its own. On PostgreSQL each runs in its
    /// own transaction, concurrently (group commit there is a measured next step, see
    /// BENCHMARKS.md).
    pub async fn transaction<T, E, F>(
        &self,
        access: impl Into<Access>,
        f: F,
    ) -> Result<T, WriteError<E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: Fn(&mut Tx<'_>) -> Result<T, Failure<E>> + Send + 'static,
    {
        let access = access.into();
        let span = tracing::Span::current();
        if self.backend == super::Backend::Postgres {
            let (pool, commits, hook) =
                (self.pool.clone(), self.commits.clone(), self.hook.clone());
            return tokio::task::spawn_blocking(move || {
                let _span = span.enter();
                let mut conn = pool.get().map_err(StoreError::from)?;
                tx::run(&mut conn, &access, hook.as_deref(), &commits.0, None, &f)
            })
            .await
            .map_err(|e| {
                WriteError::Store(StoreError::Internal(format!("database task failed: {e}")))
            })?;
        }
        let group = self.grouped();
        let observe = self
            .write_wait
            .clone()
            .map(|o| (std::time::Instant::now(), o));
        tokio::task::spawn_blocking(move || {
            let _span = span.enter();
            group.run(access, f, observe)
        })
        .await
        .map_err(|e| {
            WriteError::Store(StoreError::Internal(format!("database task failed: {e}")))
        })?
    }

    /// Returns once every write queued for the group commit before this call has
    /// committed (SQLite; on PostgreSQL at once: there a unit commits before it
    /// answers). A later page of a search waits here when it does not find the
    /// snapshot its first page queued (see [`Store::read`]).
    pub async fn settle(&self) -> Result<(), StoreError> {
        if self.backend == super::Backend::Postgres {
            return Ok(());
        }
        self.transaction(Access::system("system:settle"), |_| {
            Ok::<_, Failure<Infallible>>(())
        })
        .await
        .map_err(|e| match e {
            WriteError::Store(e) => e,
            other => StoreError::Internal(format!("settle: {other:?}")),
        })
    }

    /// What a unit of work needs to join a group commit (see [`Grouped::run`]).
    fn grouped(&self) -> Grouped {
        Grouped {
            lock: Arc::clone(&self.group.0),
            queue: Arc::clone(&self.group.1),
            pool: self.pool.clone(),
            commits: self.commits.clone(),
            hook: self.hook.clone(),
        }
    }

    /// The one door for reads: `f` runs in one database transaction. On PostgreSQL the
    /// audit records it makes are written in that same transaction, so a read commits
    /// once. On SQLite a read never waits for the writer lock: it runs in a read-only
    /// transaction and its audit records go to the journal, on disk before the read
    /// answers (concurrent reads share one flush), and the journal mover brings them
    /// into `audit_events` in batches. A read that must write (a search storing its
    /// paging snapshot) then takes the lock and runs as a writer.
    pub async fn read<T, F>(&self, access: Access, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&mut Tx<'_>) -> Result<T, TxError> + Send + 'static,
    {
        let lock = self.write_lock.clone();
        let journal = self.journal.clone();
        let pool = self.pool.clone();
        let commits = self.commits.clone();
        let hook = self.hook.clone();
        let write_wait = self.write_wait.clone();
        let group = self.grouped();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _span = span.enter();
            let as_writer = |conn: &mut DbConnection, since: std::time::Instant| {
                let wait = write_wait
                    .as_deref()
                    .map(|observe| LockWait { since, observe });
                tx::run(conn, &access, hook.as_deref(), &commits.0, wait, &|tx| {
                    tx.one_snapshot().map_err(Failure::<Infallible>::Tx)?;
                    f(tx).map_err(Failure::<Infallible>::Tx)
                })
                .map_err(StoreError::from)
            };
            let (Some(lock), Some(journal)) = (&lock, &journal) else {
                let mut conn = pool.get()?;
                return as_writer(&mut conn, std::time::Instant::now());
            };
            // The connection goes back before the writer lock is waited for (see
            // `Store::with_writer`).
            let read = {
                let mut conn = pool.get()?;
                tx::run_read_only(&mut conn, &access, &f)
            };
            match read {
                Ok((value, collected)) => {
                    commits.0.fetch_add(1, Ordering::Relaxed);
                    journal
                        .append(&collected.audit)
                        .map_err(|e| StoreError::Internal(format!("audit journal: {e}")))?;
                    // A first page's snapshot: queued for the group commit before the
                    // page answers, in a unit of work of its own that nobody waits for
                    // (a later page that does not find it waits in `Store::settle`).
                    if !collected.snapshots.is_empty() {
                        let snapshots = collected.snapshots;
                        group.submit(access.clone(), move |tx| {
                            for s in &snapshots {
                                tx.store_snapshot(s)?;
                            }
                            Ok::<_, Failure<Infallible>>(())
                        });
                    }
                    Ok(value)
                }
                Err(TxError::NeedsWriter | TxError::Retry) => {
                    let since = std::time::Instant::now();
                    Writer::lock(lock).run(&pool, |conn| as_writer(conn, since))?
                }
                Err(TxError::Db(e)) => Err(e.into()),
            }
        })
        .await
        .map_err(|e| StoreError::Internal(format!("database task failed: {e}")))?
    }
}

/// A group commit's parts: the lock its runner holds (SQLite: the writer lock), the
/// queue, and what the runner needs.
#[derive(Clone)]
struct Grouped {
    lock: super::writer::WriterLock,
    queue: Arc<tx::batch::Queue>,
    pool: super::db::Pool,
    commits: super::CommitCounter,
    hook: Option<Arc<dyn super::WriteHook>>,
}

impl Grouped {
    /// Queues `f` and waits for the lock (on the blocking pool); the holder runs every
    /// queued unit in one transaction. Back with the lock, a request whose unit a
    /// previous holder ran has its answer; otherwise it runs the queue itself.
    fn run<T, E, F>(
        &self,
        access: Access,
        f: F,
        observe: Option<(std::time::Instant, super::WaitObserver)>,
    ) -> Result<T, WriteError<E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: Fn(&mut Tx<'_>) -> Result<T, Failure<E>> + Send + 'static,
    {
        let slot = self.push(access, f, observe);
        self.drive(&slot)
    }

    /// Queues `f` and returns at once: a task on the blocking pool runs the queue, so
    /// `f` commits with the next group. For a write nobody waits for; what it failed
    /// with goes to the log.
    fn submit<E, F>(&self, access: Access, f: F)
    where
        E: Send + std::fmt::Debug + 'static,
        F: Fn(&mut Tx<'_>) -> Result<(), Failure<E>> + Send + 'static,
    {
        let slot = self.push(access, f, None);
        let group = self.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = group.drive(&slot) {
                tracing::warn!(error = ?e, "a queued write without a waiter failed");
            }
        });
    }

    fn push<T, E, F>(
        &self,
        access: Access,
        f: F,
        observe: Option<(std::time::Instant, super::WaitObserver)>,
    ) -> tx::batch::Slot<Result<T, WriteError<E>>>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: Fn(&mut Tx<'_>) -> Result<T, Failure<E>> + Send + 'static,
    {
        let slot: tx::batch::Slot<Result<T, WriteError<E>>> = Arc::default();
        self.queue.push(Box::new(tx::batch::Pending::new(
            f,
            access,
            Arc::clone(&slot),
            observe,
        )));
        slot
    }

    /// Takes the lock until `slot` has its answer, running the queue when no previous
    /// holder ran its unit.
    fn drive<T, E>(
        &self,
        slot: &tx::batch::Slot<Result<T, WriteError<E>>>,
    ) -> Result<T, WriteError<E>> {
        let mut writer = Writer::lock(&self.lock);
        loop {
            if let Some(result) = slot.lock().unwrap_or_else(PoisonError::into_inner).take() {
                return result;
            }
            let units = self.queue.take();
            // A pool error drops the units: each answers "not run" (see `Pending`).
            let committed = writer.run(&self.pool, |conn| {
                tx::batch::run_batch(conn, units, self.hook.as_deref())
            })?;
            if committed {
                self.commits.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Up to `count + 1` versions of the history query, newest first, older than `before`.
fn history_rows(
    conn: &mut DbConnection,
    q: &HistoryQuery,
    before: Option<i64>,
) -> QueryResult<Vec<HistoryRow>> {
    let mut sql = resource_versions::table
        .select((
            resource_versions::seq,
            resource_versions::resource_type,
            resource_versions::id,
            resource_versions::version_id,
            resource_versions::last_updated,
            resource_versions::method,
            resource_versions::body,
        ))
        .order(resource_versions::seq.desc())
        .limit(q.count.saturating_add(1))
        .into_boxed::<MultiBackend>();
    if let Some(ty) = &q.resource_type {
        sql = sql.filter(resource_versions::resource_type.eq(ty.clone()));
    }
    if let Some(id) = &q.id {
        sql = sql.filter(resource_versions::id.eq(id.clone()));
    }
    if let Some(since) = q.since {
        sql = sql.filter(resource_versions::last_updated.ge(since));
    }
    if let Some(before) = before {
        sql = sql.filter(resource_versions::seq.lt(before));
    }
    if let Some((low, high)) = q.at {
        // Current during [low, high]: written by `high`, and not replaced (by the next
        // version of the same resource) by `low`.
        sql = sql.filter(resource_versions::last_updated.le(high)).filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>(
                "NOT EXISTS (SELECT 1 FROM resource_versions nv \
                     WHERE nv.resource_type = resource_versions.resource_type \
                     AND nv.id = resource_versions.id \
                     AND nv.version_id = resource_versions.version_id + 1 \
                     AND nv.last_updated <= ",
            )
            .bind::<diesel::sql_types::BigInt, _>(low)
            .sql(")"),
        );
    }
    type Row = (i64, String, String, i64, i64, String, Option<String>);
    let rows: Vec<Row> = sql.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(seq, ty, id, v, at, method, body)| HistoryRow {
            seq,
            method,
            version: StoredVersion {
                resource_type: ty,
                id,
                version_id: v,
                last_updated: at,
                body,
            },
        })
        .collect())
}

impl Tx<'_> {
    /// History, newest first, at most `count + 1` rows (the extra one tells a next
    /// page exists), audited; versions outside the read scope are left out.
    pub fn history(&mut self, q: &HistoryQuery) -> Result<Vec<HistoryRow>, TxError> {
        let wanted = usize::try_from(q.count)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let mut out = Vec::new();
        let mut before = q.before_seq;
        // Versions the read scope hides do not count towards the page: read on until it
        // is full (or history ends), so paging neither stops early nor skips.
        loop {
            let rows = history_rows(self.conn, q, before)?;
            let exhausted = rows.len() < wanted;
            before = rows.last().map(|r| r.seq).or(before);
            for row in rows {
                if out.len() < wanted
                    && self.visible(&row.version.resource_type, &row.version.id)?
                {
                    out.push(row);
                }
            }
            if exhausted || out.len() >= wanted {
                break;
            }
        }
        let interaction = if q.id.is_some() {
            "history-instance"
        } else if q.resource_type.is_some() {
            "history-type"
        } else {
            "history-system"
        };
        let versions: Vec<StoredVersion> = out.iter().map(|r| r.version.clone()).collect();
        self.audit_about(
            AuditRecord {
                action: "R",
                interaction,
                resource_type: q.resource_type.as_deref().unwrap_or("*"),
                resource_id: q.id.as_deref(),
                version_id: None,
                outcome: "success",
            },
            super::search::disclosed(&versions, &[]),
        )?;
        Ok(out)
    }
}

/// The lock a conditional create on these criteria holds (see [`Tx::lock_in_order`]).
pub fn conditional_lock_key(resource_type: &str, criteria: &[Criterion]) -> String {
    format!("create:{resource_type}:{criteria:?}")
}

impl Tx<'_> {
    /// Takes all `keys` at once, in one canonical (sorted) order, before a unit of work
    /// that would otherwise take them one by one in its own order: two Bundles naming
    /// the same identifiers in opposite order then queue instead of deadlocking.
    pub fn lock_in_order(&mut self, keys: impl IntoIterator<Item = String>) -> Result<(), TxError> {
        let keys: BTreeSet<String> = keys.into_iter().collect();
        for key in keys {
            self.lock(&key)?;
        }
        Ok(())
    }

    /// The ids a conditional create or update matches, serialised (its lock, see
    /// [`conditional_lock_key`]) with every unit of work that could create a match, so
    /// concurrent identical submissions cannot both miss.
    ///
    /// PostgreSQL looks first without the lock: when exactly one resource matches, no
    /// unit of work can create another (each would find that one too), so nothing
    /// needs to wait. Every referral of one practice names the same Organization and
    /// Practitioner: their units no longer queue on one lock. Otherwise it locks and
    /// looks again (what a unit that held the lock committed is then seen); a unit
    /// that holds the lock already (a Bundle takes its entries' locks first) looks
    /// once. SQLite's writers are serialised already: it looks once.
    pub fn conditional_ids(
        &mut self,
        resource_type: &str,
        criteria: &[Criterion],
    ) -> Result<BTreeSet<String>, TxError> {
        let key = conditional_lock_key(resource_type, criteria);
        if matches!(self.conn, DbConnection::Postgres(_)) && !self.holds(&key) {
            let ids = self.find_ids(resource_type, criteria)?;
            if ids.len() == 1 {
                return Ok(ids);
            }
        }
        self.lock(&key)?;
        self.find_ids(resource_type, criteria)
    }

    /// Whether a conditional create or update on these criteria must take its lock:
    /// on PostgreSQL unless exactly one resource matches already (see
    /// [`Tx::conditional_ids`]); on SQLite always (the lock costs nothing there).
    pub fn needs_conditional_lock(
        &mut self,
        resource_type: &str,
        criteria: &[Criterion],
    ) -> Result<bool, TxError> {
        if !matches!(self.conn, DbConnection::Postgres(_)) {
            return Ok(true);
        }
        Ok(self.find_ids(resource_type, criteria)?.len() != 1)
    }

    /// Conditional create (`If-None-Exist`): serialised per criteria so concurrent
    /// identical submissions cannot both miss ([`Tx::conditional_ids`]); `Some` when it
    /// must not create.
    pub fn conditional(
        &mut self,
        resource_type: &str,
        criteria: &[Criterion],
    ) -> Result<Option<CreateOutcome>, TxError> {
        let ids = self.conditional_ids(resource_type, criteria)?;
        let mut iter = ids.iter();
        match (iter.next(), iter.next()) {
            (None, _) => Ok(None),
            (Some(existing), None) => {
                let found = self
                    .current(resource_type, existing)?
                    .ok_or(TxError::Retry)?;
                self.audit_about(
                    AuditRecord {
                        action: "R",
                        interaction: "create",
                        resource_type,
                        resource_id: Some(existing),
                        version_id: Some(found.version_id),
                        outcome: "matched-existing",
                    },
                    super::search::disclosed(std::slice::from_ref(&found), &[]),
                )?;
                Ok(Some(CreateOutcome::Matched(found)))
            }
            (Some(_), Some(_)) => Ok(Some(CreateOutcome::MultipleMatches)),
        }
    }
}
