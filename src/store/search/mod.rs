//! Search: matching in SQL over the index tables, ordered results kept as a snapshot for
//! stable paging, and `_include`/`_revinclude`.

mod filter;
mod plan;
#[cfg(test)]
mod plan_tests;
mod snapshot;
mod time_plan;
#[cfg(test)]
mod time_plan_tests;
mod values;

use self::plan::ids_after;

pub(crate) use snapshot::NewSnapshot;
pub(crate) mod sql;

use std::collections::{BTreeSet, HashSet};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use self::sql::{load, CountRow, IdRow, Sql};
use super::db::DbConnection;
use super::query::{
    Criterion, Include, SearchPage, SearchSpec, SnapshotInfo, Sort, SortKey, SNAPSHOT_CAP,
};
use super::tx::{AuditRecord, Tx, TxError};
use super::StoredVersion;
use crate::fhir::patient_of::patients_of;

/// Ids of current resources of `ty` matching all criteria (conditional operations).
pub(crate) fn find_ids(
    conn: &mut DbConnection,
    ty: &str,
    criteria: &[Criterion],
) -> QueryResult<BTreeSet<String>> {
    let ids = match plan::all_ids_driven(conn, ty, criteria)? {
        Some(ids) => ids,
        None => ordered_ids(conn, ty, criteria, &[], None)?,
    };
    Ok(ids.into_iter().collect())
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
    sql.append(values::order_by("r", sort));
    if let Some(limit) = limit {
        sql.limit(limit);
    }
    Ok(load::<IdRow>(conn, &sql)?
        .into_iter()
        .map(|r| r.id)
        .collect())
}

#[derive(QueryableByName)]
struct ClockRow {
    #[diesel(sql_type = BigInt)]
    last_at: i64,
}

/// The change clock as this transaction sees it: every version it can see is stamped
/// at or before it, every later commit after it (see [`Tx::stamp`]).
fn clock(conn: &mut DbConnection) -> QueryResult<i64> {
    let sql = Sql::new("SELECT last_at AS last_at FROM change_clock WHERE id = 1");
    Ok(load::<ClockRow>(conn, &sql)?
        .first()
        .map_or(0, |r| r.last_at))
}

/// Later entries a lazily filled snapshot stores at once when a page needs more than
/// it holds: paging on reads the next ones from the snapshot.
const FILL_AHEAD: usize = 500;

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
const REVINCLUDE_CAP: usize = 1000;

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
                .push(" ORDER BY id")
                .limit(REVINCLUDE_CAP);
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

/// The orders whose snapshots are filled lazily (the first page reads only itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LazyOrder {
    /// No `_sort`: by id.
    Id,
    /// `_sort=_lastUpdated` or `_sort=-_lastUpdated` (ties by id): a poll's order; also
    /// a search without `_sort` that has a `_lastUpdated` lower bound.
    Updated { descending: bool },
}

impl LazyOrder {
    /// The order of a search with `sort` and `criteria`. FHIR leaves the order of a
    /// search without `_sort` to the server: one with a `_lastUpdated` lower bound (a
    /// poll for changes, `_lastUpdated=gt..`) gets the oldest change first, as with
    /// `_sort=_lastUpdated`. In id order its page would wait for the walk through every
    /// older resource's id: with time-ordered ids the window's resources are the last
    /// ones (round 5 in BENCHMARKS.md: 33 polls/s, p99 336 ms, against 389/s, p99 45 ms
    /// sorted by `_lastUpdated`).
    fn of(sort: &[Sort], criteria: &[Criterion]) -> Option<Self> {
        match sort {
            [] if criteria.iter().any(time_plan::is_lower_bound) => {
                Some(Self::Updated { descending: false })
            }
            [] => Some(Self::Id),
            [Sort {
                key: SortKey::LastUpdated,
                descending,
            }] => Some(Self::Updated {
                descending: *descending,
            }),
            _ => None,
        }
    }
}

impl Tx<'_> {
    /// Runs a search (its criteria narrowed to the read scope) and returns its first
    /// page. When there are more pages, a snapshot of the ordered matches (at most
    /// [`SNAPSHOT_CAP`]) is stored for later pages: a search in the default order (by
    /// id) or sorted by `_lastUpdated` alone stores only its first page's ids and the
    /// change clock it read, and later pages fill it on (see [`Tx::search_page`]), so
    /// the first page never reads or writes every match; a search with another `_sort`
    /// stores every match now.
    pub fn search(&mut self, spec: &SearchSpec) -> Result<SearchPage, TxError> {
        let ty = spec.resource_type.as_str();
        self.settle_for_scope()?;
        let Some(criteria) = self.access.scope.narrow(ty, &spec.criteria) else {
            self.audit(search_audit(ty))?;
            return Ok(SearchPage {
                search_id: None,
                offset: 0,
                size: 0,
                total: Some(0),
                truncated: false,
                matches: Vec::new(),
                included: Vec::new(),
            });
        };
        let order = LazyOrder::of(&spec.sort, &criteria);
        let lazy = order.is_some();
        let mut ids = match order {
            Some(LazyOrder::Id) => ids_after(self.conn, ty, &criteria, None, None, spec.count + 1)?,
            Some(LazyOrder::Updated { descending }) => {
                let span = time_plan::Span {
                    descending,
                    ..time_plan::Span::default()
                };
                time_plan::ids_after(self.conn, ty, &criteria, span, spec.count + 1)?
            }
            None => ordered_ids(self.conn, ty, &criteria, &spec.sort, Some(SNAPSHOT_CAP + 1))?,
        };
        let more = ids.len() > spec.count;
        // A lazily filled snapshot does not know how many match: it knows one more than
        // the page exists (`size`, which makes the next link), and counts only when
        // asked (`_total=accurate`).
        let counted = match (lazy && more, spec.accurate_total) {
            (true, true) => Some(count(self.conn, ty, &criteria)?),
            (true, false) => None,
            (false, _) => Some(ids.len() as u64),
        };
        let truncated = counted.is_some_and(|n| n > SNAPSHOT_CAP as u64);
        let size = if lazy {
            ids.len()
        } else {
            ids.len().min(SNAPSHOT_CAP)
        };
        ids.truncate(if lazy { spec.count } else { SNAPSHOT_CAP });
        let total = match counted {
            Some(n) if !truncated || spec.accurate_total => Some(n),
            _ => None,
        };
        let end = spec.count.min(ids.len());
        let matches = current_versions(self.conn, ty, &ids[..end])?;
        let included = self.included(ty, &matches, &spec.includes)?;
        let search_id = (size > spec.count).then(|| uuid::Uuid::now_v7().to_string());
        if let Some(sid) = &search_id {
            let as_of = if lazy { Some(clock(self.conn)?) } else { None };
            self.save_snapshot(NewSnapshot {
                search_id: sid.clone(),
                resource_type: ty.to_owned(),
                query: spec.query.clone(),
                ids: ids.clone(),
                // Lazily filled: the most positions it may come to hold.
                size: if lazy {
                    counted.map_or(SNAPSHOT_CAP, |n| {
                        usize::try_from(n).map_or(SNAPSHOT_CAP, |n| n.min(SNAPSHOT_CAP))
                    })
                } else {
                    size
                },
                total,
                as_of,
            })?;
        }
        self.audit_about(search_audit(ty), disclosed(&matches, &included))?;
        Ok(SearchPage {
            search_id,
            offset: 0,
            size,
            total,
            truncated,
            matches,
            included,
        })
    }

    /// `_summary=count`: the number of matches only.
    pub fn search_count(&mut self, ty: &str, criteria: &[Criterion]) -> Result<u64, TxError> {
        self.settle_for_scope()?;
        let n = match self.access.scope.narrow(ty, criteria) {
            Some(criteria) => count(self.conn, ty, &criteria)?,
            None => 0,
        };
        self.audit(search_audit(ty))?;
        Ok(n)
    }

    /// A snapshot's header, if it exists and has not expired.
    pub fn snapshot(&mut self, search_id: &str) -> Result<Option<SnapshotInfo>, TxError> {
        Ok(snapshot::info(self.conn, search_id, &self.access.actor)?)
    }

    /// A later page of a snapshot: the current versions of the ids at positions
    /// `offset..offset + count` (resources deleted since, or outside the read scope,
    /// are left out); `None` when the snapshot is unknown or expired.
    ///
    /// A lazily filled snapshot that holds fewer entries than the page needs is filled
    /// on first (this then writes): the matches of `criteria` (the search's own, parsed
    /// again from its stored query) after the last entry it holds, in id order, that
    /// existed at the first page's change clock, [`FILL_AHEAD`] more than needed. So
    /// a position, once read, keeps its entry; nothing created after the first page
    /// joins; a resource that stopped matching before its position was filled is
    /// left out, one that started matching is taken in.
    pub fn search_page(
        &mut self,
        search_id: &str,
        offset: usize,
        count: usize,
        (criteria, sort): (&[Criterion], &[Sort]),
        includes: &[Include],
    ) -> Result<Option<SearchPage>, TxError> {
        let Some(info) = snapshot::info(self.conn, search_id, &self.access.actor)? else {
            return Ok(None);
        };
        // A lazily filled snapshot: how many positions it holds after filling (one past
        // the page when there is more: the next link).
        let mut size = info.size;
        if let Some(as_of) = info.as_of {
            // One past the page: whether a next page exists.
            let needed = offset
                .saturating_add(count)
                .saturating_add(1)
                .min(info.size);
            let (mut held, last) = snapshot::held(self.conn, search_id)?;
            self.settle_for_scope()?;
            let narrowed = self.access.scope.narrow(&info.resource_type, criteria);
            if let (true, Some(criteria)) = (held < needed, narrowed) {
                let want = (needed - held + FILL_AHEAD).min(info.size - held);
                let ty = info.resource_type.as_str();
                let more = match LazyOrder::of(sort, &criteria) {
                    Some(LazyOrder::Updated { descending }) => {
                        let after = match &last {
                            Some(id) => time_plan::position_of(self.conn, ty, id, as_of)?,
                            None => None,
                        };
                        let span = time_plan::Span {
                            descending,
                            after: after.as_ref(),
                            upto: None,
                            as_of: Some(as_of),
                        };
                        time_plan::ids_after(self.conn, ty, &criteria, span, want)?
                    }
                    _ => ids_after(self.conn, ty, &criteria, last.as_deref(), Some(as_of), want)?,
                };
                if !more.is_empty() {
                    self.append_entries(search_id, held, &more)?;
                    held += more.len();
                }
            }
            size = held;
        }
        let ids = snapshot::ids(self.conn, search_id, offset, count)?;
        let mut matches = current_versions(self.conn, &info.resource_type, &ids)?;
        matches = self.only_visible(matches)?;
        let included = self.included(&info.resource_type, &matches, includes)?;
        self.audit_about(
            search_audit(&info.resource_type),
            disclosed(&matches, &included),
        )?;
        Ok(Some(SearchPage {
            search_id: Some(search_id.to_owned()),
            offset,
            size,
            total: info.total,
            // Lazily filled: only a count (`_total=accurate`) says there were more.
            truncated: if info.as_of.is_some() {
                info.total.is_some_and(|t| t > SNAPSHOT_CAP as u64)
            } else {
                info.truncated()
            },
            matches,
            included,
        }))
    }

    /// `_include`/`_revinclude` of a page, within the read scope.
    fn included(
        &mut self,
        ty: &str,
        matches: &[StoredVersion],
        includes: &[Include],
    ) -> Result<Vec<StoredVersion>, TxError> {
        let found = included(self.conn, ty, matches, includes)?;
        self.only_visible(found)
    }

    fn only_visible(
        &mut self,
        versions: Vec<StoredVersion>,
    ) -> Result<Vec<StoredVersion>, TxError> {
        if matches!(self.access.scope, super::access::ReadScope::All) {
            return Ok(versions);
        }
        let mut out = Vec::with_capacity(versions.len());
        for v in versions {
            if self.visible(&v.resource_type, &v.id)? {
                out.push(v);
            }
        }
        Ok(out)
    }
}

/// The patients a page discloses: those of its matches and includes (one audit row
/// names them all).
pub(crate) fn disclosed(matches: &[StoredVersion], included: &[StoredVersion]) -> Vec<String> {
    matches
        .iter()
        .chain(included)
        .flat_map(|v| patients_of(&v.resource_type, Some(&v.id), v.body.as_deref()))
        .collect()
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
