//! How a search sorted by `_lastUpdated` alone (`_sort=_lastUpdated` or
//! `_sort=-_lastUpdated`: the README's poll) finds its page, as `plan.rs` does for the
//! default id order: the page costs about what the page costs, not what every match
//! costs.
//!
//! Before, such a search read every match (up to the snapshot's cap) and sorted them:
//! at 1,000,000 stored Tasks the README's poll `Task?owner=X&_lastUpdated=gt..
//! &_sort=_lastUpdated` took 3–8 s (the owner's and the status's half a million ids
//! each were read first). Now:
//! - a criterion that is one lookup with few rows drives, its rows sorted;
//! - otherwise the resources are walked in `_lastUpdated` order through the (type,
//!   last_updated) index, within the search's own `_lastUpdated` range, each tested
//!   with `EXISTS` on the index tables, at most [`Tuning::walk`] of them: a poll's
//!   recent changes are found there;
//! - when that walk did not fill the page, the lookups are counted and the one with
//!   the fewest rows drives the rest, or the walk goes on.
//!
//! Ties (versions written by one unit of work share their time) are ordered by id, so
//! the order is total and a position `(time, id)` says where a later page goes on.

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryResult;

use super::filter::{where_in_forms, Form};
use super::plan::{fewest_rows, Plan, Tuning, TUNING};
use super::sql::{load, load_ids, Sql};
use crate::store::db::DbConnection;
use crate::store::query::{Criterion, Match};

/// Where a search in `_lastUpdated` order is: the time and id of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub updated: i64,
    pub id: String,
}

/// The order and the bounds of one read: after `after`, up to `upto` (inclusive),
/// resources whose current version is from the change-clock time `as_of` or before.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Span<'a> {
    pub descending: bool,
    pub after: Option<&'a Position>,
    pub upto: Option<&'a Position>,
    pub as_of: Option<i64>,
}

/// Ids of matches in `_lastUpdated` order (ascending, or `descending`; ties by id)
/// after `after`, at most `limit`; with `as_of`, only resources whose current version
/// is from that change-clock time or before (a lazily filled snapshot's later entries:
/// what changed after its first page is left to the next poll, whose `_lastUpdated`
/// lower bound finds it).
pub(crate) fn ids_after(
    conn: &mut DbConnection,
    ty: &str,
    criteria: &[Criterion],
    span: Span<'_>,
    limit: usize,
) -> QueryResult<Vec<String>> {
    ids_after_tuned(conn, ty, criteria, span, limit, TUNING)
}

/// [`ids_after`] within the bounds of `tuning`.
pub(crate) fn ids_after_tuned(
    conn: &mut DbConnection,
    ty: &str,
    criteria: &[Criterion],
    span: Span<'_>,
    limit: usize,
    tuning: Tuning,
) -> QueryResult<Vec<String>> {
    let span = Span { upto: None, ..span };
    match fewest_rows(conn, ty, criteria, tuning.drives_at_once)? {
        None if !criteria.is_empty() && !criteria.iter().all(is_last_updated) => {
            return ids_in(conn, ty, criteria, Plan::Lookups, span, limit)
        }
        Some((i, n)) if n < tuning.drives_at_once && !is_last_updated(&criteria[i]) => {
            return ids_in(conn, ty, criteria, Plan::Driven(i), span, limit)
        }
        _ => {}
    }
    // The walk: the `walk` resources after `after` in this order, within the search's
    // `_lastUpdated` range (a range of the (type, last_updated) index).
    let bound = walked_to(conn, ty, criteria, span, tuning.walk)?;
    let walk = Span {
        upto: bound.as_ref(),
        ..span
    };
    let mut found = ids_in(conn, ty, criteria, Plan::IdOrder, walk, limit)?;
    let Some(walked) = bound.as_ref().filter(|_| found.len() < limit) else {
        return Ok(found);
    };
    // Sparse matches: as in `plan.rs`, the lookup with the fewest rows drives when it
    // has fewer than the walk is expected to read at the density it found.
    let expected = (limit - found.len()).saturating_mul(tuning.walk) / found.len().max(1);
    let cap = expected.clamp(tuning.counted, tuning.counted.saturating_mul(25));
    let then = match fewest_rows(conn, ty, criteria, cap)? {
        Some((i, n)) if n < cap && !is_last_updated(&criteria[i]) => Plan::Driven(i),
        _ => Plan::IdOrder,
    };
    let rest = Span {
        after: Some(walked),
        ..span
    };
    found.extend(ids_in(conn, ty, criteria, then, rest, limit - found.len())?);
    Ok(found)
}

/// A `_lastUpdated` criterion: a condition on the walked index itself, never a driver
/// of its own (the walk reads its range in order already).
fn is_last_updated(c: &Criterion) -> bool {
    matches!(c, Criterion::Any(alternatives)
        if !alternatives.is_empty()
            && alternatives.iter().all(|m| matches!(m, Match::LastUpdated(_))))
}

/// A `_lastUpdated` lower bound (`gt`, `ge`, `sa`) and nothing else: a poll's window.
pub(crate) fn is_lower_bound(c: &Criterion) -> bool {
    use crate::store::query::DatePrefix;
    matches!(c, Criterion::Any(alternatives) if matches!(alternatives.as_slice(),
        [Match::LastUpdated(d)] if matches!(d.prefix, DatePrefix::Gt | DatePrefix::Ge | DatePrefix::Sa)))
}

/// The `walk`-th resource in this order after `span.after` within the search's
/// `_lastUpdated` range (deleted ones count too), when there are that many.
fn walked_to(
    conn: &mut DbConnection,
    ty: &str,
    criteria: &[Criterion],
    span: Span<'_>,
    walk: usize,
) -> QueryResult<Option<Position>> {
    let ranges: Vec<Criterion> = criteria
        .iter()
        .filter(|c| is_last_updated(c))
        .cloned()
        .collect();
    let mut sql = Sql::new("SELECT r.last_updated AS updated, r.id AS id FROM resources r WHERE ");
    sql.append(where_in_forms("r", ty, &ranges, 0, |_| Form::In));
    bounds(&mut sql, span);
    order(&mut sql, span.descending);
    sql.limit(1)
        .push(&format!(" OFFSET {}", walk.saturating_sub(1)));
    Ok(load::<PositionRow>(conn, &sql)?.pop().map(|r| Position {
        updated: r.updated,
        id: r.id,
    }))
}

/// The matches `plan` finds in `span`, in its order, at most `limit`.
pub(crate) fn ids_in(
    conn: &mut DbConnection,
    ty: &str,
    criteria: &[Criterion],
    plan: Plan,
    span: Span<'_>,
    limit: usize,
) -> QueryResult<Vec<String>> {
    let sql = ids_sql(ty, criteria, plan, span, limit);
    load_ids(conn, &sql)
}

/// The query of [`ids_in`]. In the walk ([`Plan::IdOrder`], here: `_lastUpdated`
/// order) the `_lastUpdated` criteria stay conditions on `r.last_updated`, so the
/// (type, last_updated) index reads their range in order; the others are tested per row.
pub(crate) fn ids_sql(
    ty: &str,
    criteria: &[Criterion],
    plan: Plan,
    span: Span<'_>,
    limit: usize,
) -> Sql {
    let mut sql = Sql::new("SELECT r.id AS id FROM resources r WHERE ");
    sql.append(where_in_forms("r", ty, criteria, 0, |i| match plan {
        Plan::Driven(driver) if driver == i => Form::Drive,
        Plan::IdOrder if is_last_updated(&criteria[i]) => Form::In,
        Plan::Driven(_) | Plan::IdOrder => Form::Exists,
        Plan::Lookups => Form::In,
    }));
    bounds(&mut sql, span);
    order(&mut sql, span.descending);
    sql.limit(limit);
    sql
}

/// `after`, `upto` and `as_of` as conditions on `r`.
fn bounds(sql: &mut Sql, span: Span<'_>) {
    // Ascending: later, or as late with a greater id; descending: earlier, or as
    // early with a greater id (ties are by id ascending either way).
    let (later, earlier) = if span.descending {
        ("<", ">")
    } else {
        (">", "<")
    };
    if let Some(p) = span.after {
        side(sql, later, p, ">");
    }
    if let Some(p) = span.upto {
        side(sql, earlier, p, "<=");
    }
    if let Some(as_of) = span.as_of {
        sql.push(" AND r.last_updated <= ").int(as_of);
    }
}

/// ` AND r.last_updated <time>= t AND (r.last_updated <time> t OR r.id <id> i)`: one side of
/// a position `(t, i)`; the first term lets the time index read the range.
fn side(sql: &mut Sql, time: &str, p: &Position, id: &str) {
    sql.push(&format!(" AND r.last_updated {time}= "))
        .int(p.updated)
        .push(&format!(" AND (r.last_updated {time} "))
        .int(p.updated)
        .push(&format!(" OR r.id {id} "))
        .text_bind(&p.id)
        .push(")");
}

fn order(sql: &mut Sql, descending: bool) {
    let dir = if descending { "DESC" } else { "ASC" };
    sql.push(&format!(" ORDER BY r.last_updated {dir}, r.id ASC"));
}

/// Where a lazily filled snapshot in `_lastUpdated` order goes on after its last entry
/// `id`: the time of the version that was current at `as_of` (the resource may have
/// changed since; that version placed it).
pub(crate) fn position_of(
    conn: &mut DbConnection,
    ty: &str,
    id: &str,
    as_of: i64,
) -> QueryResult<Option<Position>> {
    let mut sql = Sql::new(
        "SELECT MAX(v.last_updated) AS updated FROM resource_versions v WHERE v.resource_type = ",
    );
    sql.text_bind(ty)
        .push(" AND v.id = ")
        .text_bind(id)
        .push(" AND v.last_updated <= ")
        .int(as_of);
    Ok(load::<MaxRow>(conn, &sql)?
        .pop()
        .and_then(|r| r.updated)
        .map(|updated| Position {
            updated,
            id: id.to_owned(),
        }))
}

#[derive(diesel::QueryableByName)]
struct PositionRow {
    #[diesel(sql_type = BigInt)]
    updated: i64,
    #[diesel(sql_type = Text)]
    id: String,
}

#[derive(diesel::QueryableByName)]
struct MaxRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    updated: Option<i64>,
}
