//! The store's async interface: each call is one unit of work on the blocking pool.

use std::convert::Infallible;

use diesel::prelude::*;

use super::db::MultiBackend;
use super::query::Criterion;
use super::schema::resource_versions;
use super::tx::{self, AuditRecord, Failure, Tx, WriteError};
use super::types::{CreateOutcome, HistoryQuery, HistoryRow, Lookup, StoredVersion};
use super::{AuditContext, Store, StoreError};

fn infallible<T>(r: Result<T, WriteError<Infallible>>) -> Result<T, StoreError> {
    r.map_err(|e| match e {
        WriteError::Store(s) => s,
        WriteError::Abort(never) => match never {},
    })
}

impl Store {
    /// Runs `f` as one unit of work: all its writes, index rows and audit records
    /// commit together, or none do (on any error, including `Failure::Abort`). `f` may
    /// run more than once when a concurrent writer forces a retry.
    pub async fn transaction<T, E, F>(&self, ctx: AuditContext, f: F) -> Result<T, WriteError<E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: Fn(&mut Tx<'_>) -> Result<T, Failure<E>> + Send + 'static,
    {
        let lock = self.write_lock.clone();
        let pool = self.pool.clone();
        // The blocking pool's thread does not inherit the request's span: enter it, so
        // what the unit of work logs (an internal error) carries the request id.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _span = span.enter();
            let _guard = lock
                .as_ref()
                .map(|l| l.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
            let mut conn = pool.get().map_err(StoreError::from)?;
            tx::run(&mut conn, &ctx, &f)
        })
        .await
        .map_err(|e| {
            WriteError::Store(StoreError::Internal(format!("database task failed: {e}")))
        })?
    }

    /// The current version (`version_id = None`) or a given one.
    pub async fn read(
        &self,
        ctx: AuditContext,
        resource_type: String,
        id: String,
        version_id: Option<i64>,
    ) -> Result<Lookup, StoreError> {
        let (ty, rid) = (resource_type.clone(), id.clone());
        let lookup = self
            .with_conn(move |conn| {
                let v = match version_id {
                    Some(v) => v,
                    None => match tx::head(conn, &ty, &rid)? {
                        Some((v, _)) => v,
                        None => return Ok(Lookup::NotFound),
                    },
                };
                Ok(match tx::version(conn, &ty, &rid, v)? {
                    None => Lookup::NotFound,
                    Some(found) if found.body.is_none() => Lookup::Deleted(found),
                    Some(found) => Lookup::Found(found),
                })
            })
            .await?;
        let (outcome, vid) = match &lookup {
            Lookup::Found(v) => ("success", Some(v.version_id)),
            Lookup::Deleted(v) => ("gone", Some(v.version_id)),
            Lookup::NotFound => ("not-found", None),
        };
        let interaction = if version_id.is_some() {
            "vread"
        } else {
            "read"
        };
        self.record_access(ctx, interaction, resource_type, Some(id), vid, outcome)
            .await?;
        Ok(lookup)
    }

    /// History, newest first, at most `count + 1` rows (the extra one tells a next page exists).
    pub async fn history(
        &self,
        ctx: AuditContext,
        query: HistoryQuery,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        let q = query.clone();
        let rows = self
            .with_conn(move |conn| {
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
                    .limit(q.count + 1)
                    .into_boxed::<MultiBackend>();
                if let Some(ty) = q.resource_type {
                    sql = sql.filter(resource_versions::resource_type.eq(ty));
                }
                if let Some(id) = q.id {
                    sql = sql.filter(resource_versions::id.eq(id));
                }
                if let Some(since) = q.since {
                    sql = sql.filter(resource_versions::last_updated.ge(since));
                }
                if let Some(before) = q.before_seq {
                    sql = sql.filter(resource_versions::seq.lt(before));
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
            })
            .await?;
        let interaction = if query.id.is_some() {
            "history-instance"
        } else if query.resource_type.is_some() {
            "history-type"
        } else {
            "history-system"
        };
        let ty = query.resource_type.unwrap_or_else(|| "*".into());
        self.record_access(ctx, interaction, ty, query.id, None, "success")
            .await?;
        Ok(rows)
    }

    /// Audit record for a read-only access.
    pub(super) async fn record_access(
        &self,
        ctx: AuditContext,
        interaction: &'static str,
        resource_type: String,
        id: Option<String>,
        version_id: Option<i64>,
        outcome: &'static str,
    ) -> Result<(), StoreError> {
        infallible(
            self.transaction(ctx, move |tx| {
                tx.audit(AuditRecord {
                    action: "R",
                    interaction,
                    resource_type: &resource_type,
                    resource_id: id.as_deref(),
                    version_id,
                    outcome,
                })?;
                Ok::<_, Failure<Infallible>>(())
            })
            .await,
        )
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
    pub fn lock_in_order(
        &mut self,
        keys: impl IntoIterator<Item = String>,
    ) -> Result<(), tx::TxError> {
        let keys: std::collections::BTreeSet<String> = keys.into_iter().collect();
        for key in keys {
            self.lock(&key)?;
        }
        Ok(())
    }

    /// Conditional create (`If-None-Exist`): serialised per criteria so concurrent
    /// identical submissions cannot both miss; `Some` when it must not create.
    pub fn conditional(
        &mut self,
        resource_type: &str,
        criteria: &[Criterion],
    ) -> Result<Option<CreateOutcome>, tx::TxError> {
        self.lock(&conditional_lock_key(resource_type, criteria))?;
        let ids = self.find_ids(resource_type, criteria)?;
        let mut iter = ids.iter();
        match (iter.next(), iter.next()) {
            (None, _) => Ok(None),
            (Some(existing), None) => {
                let found = self
                    .current(resource_type, existing)?
                    .ok_or(tx::TxError::Retry)?;
                self.audit(AuditRecord {
                    action: "R",
                    interaction: "create",
                    resource_type,
                    resource_id: Some(existing),
                    version_id: Some(found.version_id),
                    outcome: "matched-existing",
                })?;
                Ok(Some(CreateOutcome::Matched(found)))
            }
            (Some(_), Some(_)) => Ok(Some(CreateOutcome::MultipleMatches)),
        }
    }
}
