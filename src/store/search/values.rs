//! The conditions on one index row's values (tokens, strings, dates) and the `ORDER
//! BY` of a sorted search.

use super::sql::Sql;
use crate::store::index::{index_key, STRING_INDEX_CHARS};
use crate::store::query::{DateMatch, DatePrefix, Sort, SortKey, StringMode, SystemMatch};

/// A [`SystemMatch`] as an ordered map key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum SystemKey<'a> {
    Any,
    NoSystem,
    Exactly(&'a str),
}

impl<'a> From<&'a SystemMatch> for SystemKey<'a> {
    fn from(s: &'a SystemMatch) -> Self {
        match s {
            SystemMatch::Any => Self::Any,
            SystemMatch::NoSystem => Self::NoSystem,
            SystemMatch::Exactly(v) => Self::Exactly(v),
        }
    }
}

/// The first [`STRING_INDEX_CHARS`] characters, as the lookup index holds them.
fn string_prefix(norm: &str) -> String {
    norm.chars().take(STRING_INDEX_CHARS).collect()
}

pub(super) fn string_condition(norm: &str, mode: &StringMode) -> Sql {
    // The lookup index holds `substr(value_norm, 1, N)`: a condition on that prefix
    // lets it narrow the rows; the condition on the whole value decides.
    let indexed = format!("substr(value_norm, 1, {STRING_INDEX_CHARS})");
    let prefix = string_prefix(norm);
    let mut sql = Sql::new("(");
    match mode {
        // A range on the normalised value, so the index serves "starts with" on both
        // backends (PostgreSQL's column is COLLATE "C").
        StringMode::StartsWith => {
            sql.push(&format!("{indexed} >= "))
                .text_bind(&prefix)
                .push(&format!(" AND {indexed} < "))
                .text_bind(&format!("{prefix}\u{10FFFF}"))
                .push(" AND value_norm >= ")
                .text_bind(norm)
                .push(" AND value_norm < ")
                .text_bind(&format!("{norm}\u{10FFFF}"));
        }
        StringMode::Contains => {
            sql.push("value_norm LIKE ")
                .text_bind(&format!("%{}%", like_escape(norm)))
                .push(" ESCAPE '\\'");
        }
        StringMode::Exact(exact) => {
            sql.push(&format!("{indexed} = "))
                .text_bind(&prefix)
                .push(" AND value_norm = ")
                .text_bind(norm)
                .push(" AND value_exact = ")
                .text_bind(exact);
        }
    }
    sql.push(")");
    sql
}

pub(super) fn system_condition(column: &str, system: SystemKey<'_>) -> Sql {
    let mut sql = Sql::default();
    match system {
        SystemKey::Any => sql.push("1 = 1"),
        SystemKey::NoSystem => sql.push(&format!("{column} IS NULL")),
        SystemKey::Exactly(s) => sql.push(&format!("{column} = ")).text_bind(&index_key(s)),
    };
    sql
}

fn like_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The target range `[low, high]` against the search range `[sl, sh]` (search.html#prefix).
pub(super) fn date_condition(low: &str, high: &str, m: &DateMatch) -> Sql {
    let (sl, sh) = (m.low, m.high);
    let within = |sql: &mut Sql| {
        sql.push(&format!("({low} >= "))
            .int(sl)
            .push(&format!(" AND {high} <= "))
            .int(sh)
            .push(")");
    };
    let mut sql = Sql::new("(");
    match m.prefix {
        DatePrefix::Eq => within(&mut sql),
        DatePrefix::Ne => {
            sql.push("NOT ");
            within(&mut sql);
        }
        DatePrefix::Gt => {
            sql.push(&format!("{high} > ")).int(sh);
        }
        DatePrefix::Lt => {
            sql.push(&format!("{low} < ")).int(sl);
        }
        DatePrefix::Ge => {
            sql.push(&format!("{high} > ")).int(sh).push(" OR ");
            within(&mut sql);
        }
        DatePrefix::Le => {
            sql.push(&format!("{low} < ")).int(sl).push(" OR ");
            within(&mut sql);
        }
        DatePrefix::Sa => {
            sql.push(&format!("{low} > ")).int(sh);
        }
        DatePrefix::Eb => {
            sql.push(&format!("{high} < ")).int(sl);
        }
    }
    sql.push(")");
    sql
}

/// `ORDER BY` terms; ties are broken by id so the order is total.
pub(crate) fn order_by(alias: &str, sort: &[Sort]) -> Sql {
    let mut sql = Sql::new(" ORDER BY ");
    let mut by_id = false;
    for s in sort {
        let dir = if s.descending { "DESC" } else { "ASC" };
        match &s.key {
            SortKey::Id => {
                by_id = true;
                sql.push(&format!("{alias}.id {dir}, "));
            }
            SortKey::LastUpdated => {
                sql.push(&format!("{alias}.last_updated {dir}, "));
            }
            SortKey::Date(param) => {
                // Resources without the value sort last in either direction.
                let (agg, col, missing) = if s.descending {
                    ("MAX", "high", i64::MIN)
                } else {
                    ("MIN", "low", i64::MAX)
                };
                sql.push(&format!(
                    "COALESCE((SELECT {agg}(d.{col}) FROM search_date d \
                     WHERE d.resource_type = {alias}.resource_type AND d.id = {alias}.id \
                     AND d.param = "
                ))
                .text_bind(param)
                .push("), ")
                .int(missing)
                .push(&format!(") {dir}, "));
            }
        }
    }
    if !by_id {
        sql.push(&format!("{alias}.id ASC"));
    } else {
        // Drop the trailing ", ".
        sql = trim_trailing_comma(sql);
    }
    sql
}

fn trim_trailing_comma(mut sql: Sql) -> Sql {
    sql.trim_end(", ");
    sql
}
