//! How a search in id order finds its page (the first page, and the later fills of a
//! lazily filled snapshot), so that reading a page costs about what the page costs,
//! not what every match costs.
//!
//! Written as `r.id IN (SELECT ...)` for every criterion (the plain [`where_clause`]),
//! SQLite reads each lookup's ids whole before the first row is returned: a poll
//! `Task?owner=X&status=requested&_lastUpdated=gt..` read every Task of the owner and
//! every requested Task to return ten. Instead:
//! - each criterion that is one index lookup is counted first, up to
//!   [`Tuning::drives_at_once`] rows (a scan of its index that stops there);
//! - one with fewer rows drives: its rows are read, and the other criteria are tested
//!   on each with `EXISTS` on the index tables' (type, id) indexes ([`Plan::Driven`]);
//! - otherwise the resources are walked in id order, each tested, at most
//!   [`Tuning::walk`] of them ([`Plan::IdOrder`] up to the id the walk ends at): dense
//!   matches are found there;
//! - when that walk did not fill the page, the lookups are counted again up to
//!   [`Tuning::counted`] rows, and the rest comes from the one with the fewest when it
//!   has fewer than that, else from walking on ([`Plan::IdOrder`]).
//!
//! [`where_clause`]: super::filter::where_clause

use diesel::QueryResult;

use super::filter::{counted_rows_of, where_in_forms, Form};
use super::sql::{load, load_ids, CountRow, IdRow, Sql, PER_ROW_END};
use crate::store::db::DbConnection;
use crate::store::query::Criterion;

/// How the matches of a search are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Criterion `i` finds few rows: read them, test the others on each.
    Driven(usize),
    /// Walk the resources in id order and test each.
    IdOrder,
    /// Every criterion as `IN (SELECT ...)`, the database's own choice (when no
    /// criterion is one lookup).
    Lookups,
}

/// The bounds of the choice (fixed in production; small in tests, to reach every path).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    /// Rows counted ahead per lookup.
    pub counted: usize,
    /// A lookup with fewer rows drives at once.
    pub drives_at_once: usize,
    /// Resources walked in id order before the driver takes over.
    pub walk: usize,
}

/// Measured (`BENCHMARKS.md`, round 3): counting 3,400 rows of a lookup's index takes
/// 0.6–3 ms, a walk of 2,000 resources 1–2 ms, a driver about 5 µs per row.
pub(crate) const TUNING: Tuning = Tuning {
    counted: 2_000,
    drives_at_once: 300,
    walk: 2_000,
};

/// Ids of matches in id order after `after`, at most `limit`; with `as_of`, only
/// resources created by that change-clock time (a lazily filled snapshot's later
/// entries: nothing created after its first page joins it).
pub(crate) fn ids_after(
    conn: &mut DbConnection,
    ty: &str,
    criteria: &[Criterion],
    after: Option<&str>,
    as_of: Option<i64>,
    limit: usize,
) -> QueryResult<Vec<String>> {
    ids_after_tuned(conn, ty, criteria, (after, as_of), limit, TUNING)
}

/// [`ids_after`] within the bounds of `tuning`.
pub(crate) fn ids_after_tuned(
    conn: &mut DbConnection,
    ty: &str,
    criteria: &[Criterion],
    (after, as_of): (Option<&str>, Option<i64>),
    limit: usize,
    tuning: Tuning,
) -> QueryResult<Vec<String>> {
    let all = Range {
        after,
        upto: None,
        as_of,
    };
    // First a cheap count, up to the bound under which a lookup drives at once.
    match fewest_rows(conn, ty, criteria, tuning.drives_at_once)? {
        None if !criteria.is_empty() => {
            return ids_in(conn, ty, criteria, Plan::Lookups, all, limit)
        }
        Some((i, n)) if n < tuning.drives_at_once => {
            return ids_in(conn, ty, criteria, Plan::Driven(i), all, limit)
        }
        _ => {}
    }
    // The walk: the resources up to the `walk`-th after `after`, a range of the
    // (type, id) index read in order, stopping at the page.
    let bound = walked_to(conn, ty, after, tuning.walk)?;
    let walk = Range {
        after,
        upto: bound.as_deref(),
        as_of,
    };
    let mut found = ids_in(conn, ty, criteria, Plan::IdOrder, walk, limit)?;
    let Some(walked) = bound.filter(|_| found.len() < limit) else {
        return Ok(found); // a full page, or the walk saw every resource after `after`
    };
    // Sparse matches: the driver, when one lookup finds fewer rows than the walk is
    // expected to read before the page is full (at the density it found, at least
    // `counted`, at most 25 times that), or the walk goes on. At 1,000,000 stored
    // Tasks a poll whose 2,155 matches were 0.2% of them walked about 5,500 Tasks
    // (265 ms at concurrency 8) where its `_lastUpdated` lookup drives in 2,155 rows.
    let expected = (limit - found.len()).saturating_mul(tuning.walk) / found.len().max(1);
    let cap = expected.clamp(tuning.counted, tuning.counted.saturating_mul(25));
    let then = match fewest_rows(conn, ty, criteria, cap)? {
        Some((i, n)) if n < cap => Plan::Driven(i),
        _ => Plan::IdOrder,
    };
    let rest = Range {
        after: Some(&walked),
        upto: None,
        as_of,
    };
    found.extend(ids_in(conn, ty, criteria, then, rest, limit - found.len())?);
    Ok(found)
}

/// Every match, in id order, driven by the lookup that finds the fewest index rows
/// when it finds fewer than `DRIVES_ALL_UNDER`; `None` when none does (the caller's
/// query then runs as it is). For conditional operations and jobs that need every
/// match: a conditional create's identifier, the overdue marker's date. Without it
/// SQLite could read every match of an unselective parameter first: the overdue
/// marker's `status=requested,received,accepted` took minutes at 1,000,000 stored
/// Tasks, inside the writer.
pub(crate) fn all_ids_driven(
    conn: &mut DbConnection,
    ty: &str,
    criteria: &[Criterion],
) -> QueryResult<Option<Vec<String>>> {
    let driver = match criteria {
        // One lookup: there is nothing to choose, and every match is read either way.
        // A conditional create's identifier is one statement, not a count and a select.
        [only] if counted_rows_of(ty, only).is_some() => Some(0),
        _ => match fewest_rows(conn, ty, criteria, DRIVES_ALL_UNDER)? {
            Some((i, n)) if n < DRIVES_ALL_UNDER => Some(i),
            _ => None,
        },
    };
    match driver {
        Some(i) => {
            let mut sql = Sql::new("SELECT r.id AS id FROM resources r WHERE ");
            sql.append(where_in_forms("r", ty, criteria, 0, |c| {
                if c == i {
                    Form::Drive
                } else {
                    Form::Exists
                }
            }));
            sql.push(" ORDER BY r.id ASC");
            Ok(Some(
                load::<IdRow>(conn, &sql)?
                    .into_iter()
                    .map(|r| r.id)
                    .collect(),
            ))
        }
        None => Ok(None),
    }
}

/// Under how many index rows a lookup drives [`all_ids_driven`].
const DRIVES_ALL_UNDER: usize = 5_000;

/// The lookup criterion that finds the fewest index rows, counted up to `cap`.
pub(super) fn fewest_rows(
    conn: &mut DbConnection,
    ty: &str,
    criteria: &[Criterion],
    cap: usize,
) -> QueryResult<Option<(usize, usize)>> {
    let mut best: Option<(usize, usize)> = None;
    for (i, c) in criteria.iter().enumerate() {
        let Some(rows) = counted_rows_of(ty, c) else {
            continue;
        };
        // Counted only as far as the fewest so far: a conditional create's identifier
        // (one row) spares counting its `status` (thousands) to the cap.
        let cap = best.map_or(cap, |(_, fewest)| fewest.min(cap));
        if cap == 0 {
            break;
        }
        let mut sql = Sql::new("SELECT COUNT(*) AS n FROM (");
        sql.append(rows).limit(cap).push(") counted");
        let n = load::<CountRow>(conn, &sql)?.first().map_or(0, |r| r.n);
        let n = usize::try_from(n).unwrap_or(cap);
        if best.is_none_or(|(_, fewest)| n < fewest) {
            best = Some((i, n));
        }
    }
    Ok(best)
}

/// The `walk`-th resource of type `ty` after `after` (deleted ones count too), when
/// there are that many.
fn walked_to(
    conn: &mut DbConnection,
    ty: &str,
    after: Option<&str>,
    walk: usize,
) -> QueryResult<Option<String>> {
    let mut sql = Sql::new("SELECT id AS id FROM resources WHERE resource_type = ");
    sql.text_bind(ty);
    if let Some(after) = after {
        sql.push(" AND id > ").text_bind(after);
    }
    sql.push(" ORDER BY id")
        .limit(1)
        .push(&format!(" OFFSET {}", walk.saturating_sub(1)));
    Ok(load::<IdRow>(conn, &sql)?.pop().map(|r| r.id))
}

/// Which ids a read covers: after `after`, up to `upto` (both optional), created by
/// the change-clock time `as_of` (when given).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Range<'a> {
    pub after: Option<&'a str>,
    pub upto: Option<&'a str>,
    pub as_of: Option<i64>,
}

/// The matches `plan` finds in `range`, in id order, at most `limit`.
pub(crate) fn ids_in(
    conn: &mut DbConnection,
    ty: &str,
    criteria: &[Criterion],
    plan: Plan,
    range: Range<'_>,
    limit: usize,
) -> QueryResult<Vec<String>> {
    let sql = ids_sql(ty, criteria, plan, range, limit);
    load_ids(conn, &sql)
}

/// The query of [`ids_in`].
pub(crate) fn ids_sql(
    ty: &str,
    criteria: &[Criterion],
    plan: Plan,
    range: Range<'_>,
    limit: usize,
) -> Sql {
    let mut sql = Sql::new("SELECT r.id AS id FROM resources r WHERE ");
    sql.append(where_in_forms("r", ty, criteria, 0, |i| match plan {
        Plan::Driven(driver) if driver == i => Form::Drive,
        Plan::Driven(_) | Plan::IdOrder => Form::Exists,
        Plan::Lookups => Form::In,
    }));
    if let Some(after) = range.after {
        sql.push(" AND r.id > ").text_bind(after);
    }
    if let Some(upto) = range.upto {
        sql.push(" AND r.id <= ").text_bind(upto);
    }
    if let Some(as_of) = range.as_of {
        sql.push(
            " AND EXISTS (SELECT 1 FROM resource_versions c WHERE c.resource_type = r.resource_type \
             AND c.id = r.id AND c.version_id = 1 AND c.last_updated <= ",
        )
        .int(as_of)
        .push(PER_ROW_END);
    }
    sql.push(" ORDER BY r.id ASC").limit(limit);
    sql
}
