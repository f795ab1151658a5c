//! Resource operations: versioned writes with their index rows and audit record in one
//! transaction, reads, history.

use std::collections::BTreeSet;
use std::sync::Arc;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::db::{DbConnection, MultiBackend};
use super::schema::{audit_events, resource_versions, resources, search_token};
use super::{AuditContext, Store, StoreError};

/// Why a write transaction stopped.
pub(super) enum TxError {
    /// A concurrent writer changed the same row: run the transaction again.
    Retry,
    Db(DieselError),
}

impl From<DieselError> for TxError {
    fn from(err: DieselError) -> Self {
        match err {
            // Two writers created the same (type, id): the loser retries and sees the row.
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
            | DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => Self::Retry,
            other => Self::Db(other),
        }
    }
}

// Each round lets at least one concurrent writer of a row win, so this bounds the
// number of writers racing for one resource before a 409.
const MAX_ATTEMPTS: usize = 16;

pub(super) fn write_with_retry<T>(
    conn: &mut DbConnection,
    f: &dyn Fn(&mut DbConnection) -> Result<T, TxError>,
) -> Result<T, StoreError> {
    for _ in 0..MAX_ATTEMPTS {
        match conn.transaction::<T, TxError, _>(|c| f(c)) {
            Ok(value) => return Ok(value),
            Err(TxError::Retry) => continue,
            Err(TxError::Db(e)) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict(
        "The resource was changed concurrently by other requests; retry".into(),
    ))
}

/// One stored version. `body` is `None` for a delete.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    /// Microseconds since the Unix epoch.
    pub last_updated: i64,
    pub body: Option<String>,
}

#[derive(Debug)]
pub enum Lookup {
    Found(StoredVersion),
    /// The resource (or this version) is a deletion.
    Deleted(StoredVersion),
    NotFound,
}

#[derive(Debug)]
pub enum CreateOutcome {
    Created(StoredVersion),
    /// `If-None-Exist` matched exactly this resource; nothing was written.
    Matched(StoredVersion),
    /// `If-None-Exist` matched more than one resource.
    MultipleMatches,
}

#[derive(Debug)]
pub enum UpdateOutcome {
    Updated(StoredVersion),
    Created(StoredVersion),
    NotFound,
    VersionMismatch { current: i64 },
}

#[derive(Debug)]
pub enum DeleteOutcome {
    Deleted { version_id: i64 },
    AlreadyDeleted,
    NotFound,
    VersionMismatch { current: i64 },
}

/// A token index row of the current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub param: String,
    pub system: Option<String>,
    pub code: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemMatch {
    /// `code`: any system.
    Any,
    /// `|code`: no system.
    NoSystem,
    /// `system|code` or `system|`.
    Exactly(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMatch {
    pub param: String,
    pub system: SystemMatch,
    /// `None` for `system|` (any code in the system).
    pub code: Option<String>,
}

/// One search criterion; a resource must satisfy all criteria of a query. Each
/// criterion is an OR over its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Criterion {
    Id(Vec<String>),
    Token(Vec<TokenMatch>),
}

#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub resource_type: Option<String>,
    pub id: Option<String>,
    /// Versions written at or after this time (microseconds).
    pub since: Option<i64>,
    /// Keyset cursor: only versions with a smaller sequence number.
    pub before_seq: Option<i64>,
    pub count: i64,
}

#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub seq: i64,
    pub method: String,
    pub version: StoredVersion,
}

pub type RenderBody = Arc<dyn Fn(i64) -> String + Send + Sync>;

fn now_micros() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

struct AuditRecord<'a> {
    action: &'a str,
    interaction: &'a str,
    resource_type: &'a str,
    resource_id: Option<&'a str>,
    version_id: Option<i64>,
    outcome: &'a str,
}

fn audit(conn: &mut DbConnection, ctx: &AuditContext, rec: AuditRecord<'_>) -> QueryResult<()> {
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::recorded.eq(now_micros()),
            audit_events::request_id.eq(&ctx.request_id),
            audit_events::actor.eq(&ctx.actor),
            audit_events::action.eq(rec.action),
            audit_events::interaction.eq(rec.interaction),
            audit_events::resource_type.eq(rec.resource_type),
            audit_events::resource_id.eq(rec.resource_id),
            audit_events::version_id.eq(rec.version_id),
            audit_events::outcome.eq(rec.outcome),
        ))
        .execute(conn)?;
    Ok(())
}

fn current(conn: &mut DbConnection, ty: &str, id: &str) -> QueryResult<Option<(i64, bool)>> {
    resources::table
        .filter(resources::resource_type.eq(ty))
        .filter(resources::id.eq(id))
        .select((resources::version_id, resources::deleted))
        .first(conn)
        .optional()
}

fn version(
    conn: &mut DbConnection,
    ty: &str,
    id: &str,
    version_id: i64,
) -> QueryResult<Option<StoredVersion>> {
    let row: Option<(i64, Option<String>)> = resource_versions::table
        .filter(resource_versions::resource_type.eq(ty))
        .filter(resource_versions::id.eq(id))
        .filter(resource_versions::version_id.eq(version_id))
        .select((resource_versions::last_updated, resource_versions::body))
        .first(conn)
        .optional()?;
    Ok(row.map(|(last_updated, body)| StoredVersion {
        resource_type: ty.to_owned(),
        id: id.to_owned(),
        version_id,
        last_updated,
        body,
    }))
}

fn insert_version(
    conn: &mut DbConnection,
    v: &StoredVersion,
    method: &str,
    tokens: &[TokenRow],
) -> QueryResult<()> {
    diesel::insert_into(resource_versions::table)
        .values((
            resource_versions::resource_type.eq(&v.resource_type),
            resource_versions::id.eq(&v.id),
            resource_versions::version_id.eq(v.version_id),
            resource_versions::last_updated.eq(v.last_updated),
            resource_versions::method.eq(method),
            resource_versions::body.eq(&v.body),
        ))
        .execute(conn)?;
    diesel::delete(
        search_token::table
            .filter(search_token::resource_type.eq(&v.resource_type))
            .filter(search_token::id.eq(&v.id)),
    )
    .execute(conn)?;
    if v.body.is_some() {
        for t in dedup(tokens) {
            diesel::insert_into(search_token::table)
                .values((
                    search_token::resource_type.eq(&v.resource_type),
                    search_token::id.eq(&v.id),
                    search_token::param.eq(&t.param),
                    search_token::system.eq(&t.system),
                    search_token::code.eq(&t.code),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

fn dedup(tokens: &[TokenRow]) -> Vec<&TokenRow> {
    let mut seen = BTreeSet::new();
    tokens
        .iter()
        .filter(|t| seen.insert((&t.param, &t.system, &t.code)))
        .collect()
}

/// Ids of current, non-deleted resources of `ty` matching all criteria.
fn find_ids(
    conn: &mut DbConnection,
    ty: &str,
    criteria: &[Criterion],
) -> QueryResult<BTreeSet<String>> {
    let mut result: Option<BTreeSet<String>> = None;
    for criterion in criteria {
        let mut ids = BTreeSet::new();
        match criterion {
            Criterion::Id(wanted) => {
                let found: Vec<String> = resources::table
                    .filter(resources::resource_type.eq(ty))
                    .filter(resources::deleted.eq(false))
                    .filter(resources::id.eq_any(wanted))
                    .select(resources::id)
                    .load(conn)?;
                ids.extend(found);
            }
            Criterion::Token(alternatives) => {
                for m in alternatives {
                    let mut q = search_token::table
                        .filter(search_token::resource_type.eq(ty))
                        .filter(search_token::param.eq(&m.param))
                        .select(search_token::id)
                        .into_boxed::<MultiBackend>();
                    if let Some(code) = &m.code {
                        q = q.filter(search_token::code.eq(code.clone()));
                    }
                    q = match &m.system {
                        SystemMatch::Any => q,
                        SystemMatch::NoSystem => q.filter(search_token::system.is_null()),
                        SystemMatch::Exactly(s) => q.filter(search_token::system.eq(s.clone())),
                    };
                    ids.extend(q.load::<String>(conn)?);
                }
            }
        }
        result = Some(match result {
            None => ids,
            Some(prev) => prev.intersection(&ids).cloned().collect(),
        });
    }
    Ok(result.unwrap_or_default())
}

impl Store {
    /// Creates version 1 of a new resource, unless `if_none_exist` matches.
    #[allow(clippy::too_many_arguments)]
    pub async fn create(
        &self,
        ctx: AuditContext,
        resource_type: String,
        id: String,
        at: i64,
        body: String,
        tokens: Vec<TokenRow>,
        if_none_exist: Option<Vec<Criterion>>,
    ) -> Result<CreateOutcome, StoreError> {
        self.write(move |conn| {
            if let Some(criteria) = &if_none_exist {
                let ids = find_ids(conn, &resource_type, criteria)?;
                let mut iter = ids.iter();
                match (iter.next(), iter.next()) {
                    (None, _) => {}
                    (Some(existing), None) => {
                        let Some((v, _)) = current(conn, &resource_type, existing)? else {
                            return Err(TxError::Retry);
                        };
                        let found =
                            version(conn, &resource_type, existing, v)?.ok_or(TxError::Retry)?;
                        audit(
                            conn,
                            &ctx,
                            AuditRecord {
                                action: "R",
                                interaction: "create",
                                resource_type: &resource_type,
                                resource_id: Some(existing),
                                version_id: Some(v),
                                outcome: "matched-existing",
                            },
                        )?;
                        return Ok(CreateOutcome::Matched(found));
                    }
                    (Some(_), Some(_)) => return Ok(CreateOutcome::MultipleMatches),
                }
            }
            let stored = StoredVersion {
                resource_type: resource_type.clone(),
                id: id.clone(),
                version_id: 1,
                last_updated: at,
                body: Some(body.clone()),
            };
            diesel::insert_into(resources::table)
                .values((
                    resources::resource_type.eq(&resource_type),
                    resources::id.eq(&id),
                    resources::version_id.eq(1_i64),
                    resources::last_updated.eq(at),
                    resources::deleted.eq(false),
                ))
                .execute(conn)?;
            insert_version(conn, &stored, "POST", &tokens)?;
            audit(
                conn,
                &ctx,
                AuditRecord {
                    action: "C",
                    interaction: "create",
                    resource_type: &resource_type,
                    resource_id: Some(&id),
                    version_id: Some(1),
                    outcome: "success",
                },
            )?;
            Ok(CreateOutcome::Created(stored))
        })
        .await
    }

    /// Writes a new version; `render(version_id)` yields the body to store.
    #[allow(clippy::too_many_arguments)]
    pub async fn update(
        &self,
        ctx: AuditContext,
        resource_type: String,
        id: String,
        at: i64,
        render: RenderBody,
        tokens: Vec<TokenRow>,
        if_match: Option<i64>,
        allow_create: bool,
    ) -> Result<UpdateOutcome, StoreError> {
        self.write(move |conn| {
            let (new_version, created) = match current(conn, &resource_type, &id)? {
                None if if_match.is_some() || !allow_create => {
                    return Ok(UpdateOutcome::NotFound);
                }
                None => {
                    diesel::insert_into(resources::table)
                        .values((
                            resources::resource_type.eq(&resource_type),
                            resources::id.eq(&id),
                            resources::version_id.eq(1_i64),
                            resources::last_updated.eq(at),
                            resources::deleted.eq(false),
                        ))
                        .execute(conn)?;
                    (1, true)
                }
                Some((v, _)) => {
                    if let Some(expected) = if_match {
                        if expected != v {
                            return Ok(UpdateOutcome::VersionMismatch { current: v });
                        }
                    }
                    let changed = diesel::update(
                        resources::table
                            .filter(resources::resource_type.eq(&resource_type))
                            .filter(resources::id.eq(&id))
                            .filter(resources::version_id.eq(v)),
                    )
                    .set((
                        resources::version_id.eq(v + 1),
                        resources::last_updated.eq(at),
                        resources::deleted.eq(false),
                    ))
                    .execute(conn)?;
                    if changed == 0 {
                        return Err(TxError::Retry);
                    }
                    (v + 1, false)
                }
            };
            let stored = StoredVersion {
                resource_type: resource_type.clone(),
                id: id.clone(),
                version_id: new_version,
                last_updated: at,
                body: Some(render(new_version)),
            };
            insert_version(conn, &stored, "PUT", &tokens)?;
            audit(
                conn,
                &ctx,
                AuditRecord {
                    action: if created { "C" } else { "U" },
                    interaction: "update",
                    resource_type: &resource_type,
                    resource_id: Some(&id),
                    version_id: Some(new_version),
                    outcome: "success",
                },
            )?;
            Ok(if created {
                UpdateOutcome::Created(stored)
            } else {
                UpdateOutcome::Updated(stored)
            })
        })
        .await
    }

    /// Soft delete: a new version without body; reads then answer 410.
    pub async fn delete(
        &self,
        ctx: AuditContext,
        resource_type: String,
        id: String,
        at: i64,
        if_match: Option<i64>,
    ) -> Result<DeleteOutcome, StoreError> {
        self.write(move |conn| {
            let Some((v, deleted)) = current(conn, &resource_type, &id)? else {
                return Ok(DeleteOutcome::NotFound);
            };
            if let Some(expected) = if_match {
                if expected != v {
                    return Ok(DeleteOutcome::VersionMismatch { current: v });
                }
            }
            if deleted {
                return Ok(DeleteOutcome::AlreadyDeleted);
            }
            let changed = diesel::update(
                resources::table
                    .filter(resources::resource_type.eq(&resource_type))
                    .filter(resources::id.eq(&id))
                    .filter(resources::version_id.eq(v)),
            )
            .set((
                resources::version_id.eq(v + 1),
                resources::last_updated.eq(at),
                resources::deleted.eq(true),
            ))
            .execute(conn)?;
            if changed == 0 {
                return Err(TxError::Retry);
            }
            let stored = StoredVersion {
                resource_type: resource_type.clone(),
                id: id.clone(),
                version_id: v + 1,
                last_updated: at,
                body: None,
            };
            insert_version(conn, &stored, "DELETE", &[])?;
            audit(
                conn,
                &ctx,
                AuditRecord {
                    action: "D",
                    interaction: "delete",
                    resource_type: &resource_type,
                    resource_id: Some(&id),
                    version_id: Some(v + 1),
                    outcome: "success",
                },
            )?;
            Ok(DeleteOutcome::Deleted { version_id: v + 1 })
        })
        .await
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
                    None => match current(conn, &ty, &rid)? {
                        Some((v, _)) => v,
                        None => return Ok(Lookup::NotFound),
                    },
                };
                Ok(match version(conn, &ty, &rid, v)? {
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
    async fn record_access(
        &self,
        ctx: AuditContext,
        interaction: &'static str,
        resource_type: String,
        id: Option<String>,
        version_id: Option<i64>,
        outcome: &'static str,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            audit(
                conn,
                &ctx,
                AuditRecord {
                    action: "R",
                    interaction,
                    resource_type: &resource_type,
                    resource_id: id.as_deref(),
                    version_id,
                    outcome,
                },
            )?;
            Ok(())
        })
        .await
    }

    /// Current versions of `resource_type` matching all criteria, ordered by id, after
    /// the keyset cursor `after_id`; at most `count + 1` (the extra one tells a next
    /// page exists). Also returns the total number of matches.
    pub async fn search(
        &self,
        ctx: AuditContext,
        resource_type: String,
        criteria: Vec<Criterion>,
        after_id: Option<String>,
        count: i64,
    ) -> Result<(Vec<StoredVersion>, u64), StoreError> {
        let ty = resource_type.clone();
        let (found, total) = self
            .with_conn(move |conn| {
                let limit = usize::try_from(count + 1).unwrap_or(usize::MAX);
                let (page_ids, total): (Vec<String>, u64) = if criteria.is_empty() {
                    let base = resources::table
                        .filter(resources::resource_type.eq(&ty))
                        .filter(resources::deleted.eq(false));
                    let total: i64 = base.count().get_result(conn)?;
                    let mut q = base
                        .select(resources::id)
                        .order(resources::id.asc())
                        .limit(count + 1)
                        .into_boxed::<MultiBackend>();
                    if let Some(after) = &after_id {
                        q = q.filter(resources::id.gt(after.clone()));
                    }
                    (q.load(conn)?, u64::try_from(total).unwrap_or(0))
                } else {
                    let ids = find_ids(conn, &ty, &criteria)?;
                    let total = ids.len() as u64;
                    let page = ids
                        .into_iter()
                        .filter(|id| after_id.as_ref().is_none_or(|a| id > a))
                        .take(limit)
                        .collect();
                    (page, total)
                };
                let mut found = Vec::with_capacity(page_ids.len());
                for id in page_ids {
                    if let Some((v, false)) = current(conn, &ty, &id)? {
                        if let Some(stored) = version(conn, &ty, &id, v)? {
                            found.push(stored);
                        }
                    }
                }
                Ok((found, total))
            })
            .await?;
        self.record_access(ctx, "search-type", resource_type, None, None, "success")
            .await?;
        Ok((found, total))
    }
}
