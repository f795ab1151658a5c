//! Search: matching in SQL over the index tables, ordered results kept as a snapshot for
//! stable paging, and `_include`/`_revinclude`.

mod filter;
mod snapshot;
pub(crate) mod sql;

use std::collections::{BTreeSet, HashSet};
use std::convert::Infallible;
use std::sync::Arc;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use self::sql::{load, CountRow, IdRow, Sql};
use super::db::DbConnection;
use super::query::{Criterion, Include, SearchPage, SearchSpec, SnapshotInfo, Sort, SNAPSHOT_CAP};
use super::tx::{AuditRecord, Failure};
use super::{AuditContext, Store, StoreError, StoredVersion, WriteError};

/// Ids of current resources of `ty` matching all criteria (conditional operations).
pub(crate) fn find_ids(
    conn: &mut DbConnection,
    ty: &str,
    criteria: &[Criterion],
) -> QueryResult<BTreeSet<String>> {
    Ok(ordered_ids(conn, ty, criteria, &[], None)?
        .into_iter()
        .collect())
}

/// Ids of matches in sort order, at most `limit`.
fn ordered_ids(
    conn: &mut DbConnection,
    ty: &str,
    criteria: &[Criterion],
    sort: &[Sort],
    limit: Option<usize>,
) -> QueryResult<Vec<String>> {
    let mut sql = Sql::new("SELECT r.id AS id FROM resources r WHERE ");
    sql.append(filter::where_clause("r", ty, criteria, 0));
    sql.append(filter::order_by("r", sort));
    if let Some(limit) = limit {
        sql.push(" LIMIT ")
            .int(i64::try_from(limit).unwrap_or(i64::MAX));
    }
    Ok(load::<IdRow>(conn, &sql)?
        .into_iter()
        .map(|r| r.id)
        .collect())
}

fn count(conn: &mut DbConnection, ty: &str, criteria: &[Criterion]) -> QueryResult<u64> {
    let mut sql = Sql::new("SELECT COUNT(*) AS n FROM resources r WHERE ");
    sql.append(filter::where_clause("r", ty, criteria, 0));
    let n = load::<CountRow>(conn, &sql)?.first().map_or(0, |r| r.n);
    Ok(u64::try_from(n).unwrap_or(0))
}

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = BigInt)]
    version_id: i64,
    #[diesel(sql_type = BigInt)]
    last_updated: i64,
    #[diesel(sql_type = Nullable<Text>)]
    body: Option<String>,
}

/// The current versions of `ids` (in that order), skipping deleted and unknown ones.
fn current_versions(
    conn: &mut DbConnection,
    ty: &str,
    ids: &[String],
) -> QueryResult<Vec<StoredVersion>> {
    let mut found = std::collections::HashMap::new();
    for chunk in ids.chunks(500) {
        let mut sql = Sql::new(
            "SELECT r.id AS id, r.version_id AS version_id, r.last_updated AS last_updated, \
             v.body AS body FROM resources r JOIN resource_versions v \
             ON v.resource_type = r.resource_type AND v.id = r.id AND v.version_id = r.version_id \
             WHERE r.resource_type = ",
        );
        sql.text_bind(ty)
            .push(" AND NOT r.deleted AND r.id IN ")
            .text_list(chunk);
        for row in load::<VersionRow>(conn, &sql)? {
            found.insert(row.id.clone(), row);
        }
    }
    Ok(ids
        .iter()
        .filter_map(|id| found.remove(id))
        .filter(|row| row.body.is_some())
        .map(|row| StoredVersion {
            resource_type: ty.to_owned(),
            id: row.id,
            version_id: row.version_id,
            last_updated: row.last_updated,
            body: row.body,
        })
        .collect())
}

#[derive(QueryableByName)]
struct TargetRow {
    #[diesel(sql_type = Text)]
    target_type: String,
    #[diesel(sql_type = Text)]
    target_id: String,
}

/// Most resources one `_revinclude` adds to a page.
const REVINCLUDE_CAP: i64 = 1000;

/// Resources the `includes` add to a page of `matches` of type `ty`, without repeats.
fn included(
    conn: &mut DbConnection,
    ty: &str,
    matches: &[StoredVersion],
    includes: &[Include],
) -> QueryResult<Vec<StoredVersion>> {
    let ids: Vec<String> = matches.iter().map(|v| v.id.clone()).collect();
    let mut seen: HashSet<(String, String)> = matches
        .iter()
        .map(|v| (v.resource_type.clone(), v.id.clone()))
        .collect();
    let mut out = Vec::new();
    if ids.is_empty() {
        return Ok(out);
    }
    for inc in includes {
        let mut wanted: Vec<(String, String)> = Vec::new();
        if inc.reverse {
            let mut sql =
                Sql::new("SELECT DISTINCT id AS id FROM search_reference WHERE resource_type = ");
            sql.text_bind(&inc.source_type)
                .push(" AND param = ")
                .text_bind(&inc.param)
                .push(" AND target_type = ")
                .text_bind(ty)
                .push(" AND target_id IN ")
                .text_list(&ids)
                .push(" ORDER BY id LIMIT ")
                .int(REVINCLUDE_CAP);
            for row in load::<IdRow>(conn, &sql)? {
                wanted.push((inc.source_type.clone(), row.id));
            }
        } else {
            let mut sql = Sql::new(
                "SELECT DISTINCT target_type AS target_type, target_id AS target_id \
                 FROM search_reference WHERE resource_type = ",
            );
            sql.text_bind(ty)
                .push(" AND param = ")
                .text_bind(&inc.param)
                .push(" AND target_type IS NOT NULL AND target_id IS NOT NULL AND id IN ")
                .text_list(&ids);
            if let Some(t) = &inc.target_type {
                sql.push(" AND target_type = ").text_bind(t);
            }
            sql.push(" ORDER BY target_type, target_id");
            for row in load::<TargetRow>(conn, &sql)? {
                wanted.push((row.target_type, row.target_id));
            }
        }
        wanted.retain(|key| seen.insert(key.clone()));
        let types: BTreeSet<String> = wanted.iter().map(|(t, _)| t.clone()).collect();
        for t in types {
            let of_type: Vec<String> = wanted
                .iter()
                .filter(|(wt, _)| *wt == t)
                .map(|(_, id)| id.clone())
                .collect();
            out.extend(current_versions(conn, &t, &of_type)?);
        }
    }
    Ok(out)
}

impl Store {
    /// Runs a search and returns its first page. When there are more pages, the ordered
    /// matches (at most [`SNAPSHOT_CAP`]) are stored as a snapshot that later pages read;
    /// the snapshot and the audit record are written in one unit of work.
    pub async fn search(
        &self,
        ctx: AuditContext,
        spec: SearchSpec,
    ) -> Result<SearchPage, StoreError> {
        let spec = Arc::new(spec);
        let s = spec.clone();
        let (ids, page) = self
            .with_conn(move |conn| {
                let mut ids = ordered_ids(
                    conn,
                    &s.resource_type,
                    &s.criteria,
                    &s.sort,
                    Some(SNAPSHOT_CAP + 1),
                )?;
                let truncated = ids.len() > SNAPSHOT_CAP;
                ids.truncate(SNAPSHOT_CAP);
                let total = if !truncated {
                    Some(ids.len() as u64)
                } else if s.accurate_total {
                    Some(count(conn, &s.resource_type, &s.criteria)?)
                } else {
                    None
                };
                let end = s.count.min(ids.len());
                let matches = current_versions(conn, &s.resource_type, &ids[..end])?;
                let included = included(conn, &s.resource_type, &matches, &s.includes)?;
                let page = SearchPage {
                    search_id: None,
                    offset: 0,
                    size: ids.len(),
                    total,
                    truncated,
                    matches,
                    included,
                };
                Ok((ids, page))
            })
            .await?;
        let mut page = page;
        let search_id = (ids.len() > spec.count).then(|| uuid::Uuid::new_v4().to_string());
        page.search_id.clone_from(&search_id);
        let ids = Arc::new(ids);
        let total = page.total;
        let result = self
            .transaction(ctx, move |tx| {
                if let Some(sid) = &search_id {
                    tx.save_snapshot(sid, &spec.resource_type, &spec.query, &ids, total)?;
                }
                tx.audit(search_audit(&spec.resource_type))?;
                Ok::<_, Failure<Infallible>>(())
            })
            .await;
        match result {
            Ok(()) => Ok(page),
            Err(WriteError::Store(e)) => Err(e),
            Err(WriteError::Abort(never)) => match never {},
        }
    }

    /// `_summary=count`: the number of matches only.
    pub async fn search_count(
        &self,
        ctx: AuditContext,
        resource_type: String,
        criteria: Vec<Criterion>,
    ) -> Result<u64, StoreError> {
        let ty = resource_type.clone();
        let n = self
            .with_conn(move |conn| Ok(count(conn, &ty, &criteria)?))
            .await?;
        self.record_access(ctx, "search-type", resource_type, None, None, "success")
            .await?;
        Ok(n)
    }

    /// A snapshot's header, if it exists and has not expired.
    pub async fn snapshot(&self, search_id: String) -> Result<Option<SnapshotInfo>, StoreError> {
        self.with_conn(move |conn| Ok(snapshot::info(conn, &search_id)?))
            .await
    }

    /// A later page of a snapshot: the current versions of the ids at positions
    /// `offset..offset + count` (resources deleted since are left out); `None` when the
    /// snapshot is unknown or expired.
    pub async fn search_page(
        &self,
        ctx: AuditContext,
        search_id: String,
        offset: usize,
        count: usize,
        includes: Vec<Include>,
    ) -> Result<Option<SearchPage>, StoreError> {
        let page = self
            .with_conn(move |conn| {
                let Some(info) = snapshot::info(conn, &search_id)? else {
                    return Ok(None);
                };
                let ids = snapshot::ids(conn, &search_id, offset, count)?;
                let matches = current_versions(conn, &info.resource_type, &ids)?;
                let included = included(conn, &info.resource_type, &matches, &includes)?;
                let page = SearchPage {
                    search_id: Some(search_id),
                    offset,
                    size: info.size,
                    total: info.total,
                    truncated: info.truncated(),
                    matches,
                    included,
                };
                Ok(Some((info.resource_type, page)))
            })
            .await?;
        let Some((ty, page)) = page else {
            return Ok(None);
        };
        self.record_access(ctx, "search-type", ty, None, None, "success")
            .await?;
        Ok(Some(page))
    }
}

fn search_audit(ty: &str) -> AuditRecord<'_> {
    AuditRecord {
        action: "R",
        interaction: "search-type",
        resource_type: ty,
        resource_id: None,
        version_id: None,
        outcome: "success",
    }
}
