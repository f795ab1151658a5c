//! Criteria to SQL: each criterion becomes a condition on `<alias>.id` of the
//! `resources` table, built from `IN (subquery)` lookups on the index tables so every
//! lookup uses an index on (resource_type, param, value...).
//!
//! A search may carry up to 1,000 values. Alternatives of one parameter share one
//! lookup, equalities become `IN (...)` lists, and what is left is joined in balanced
//! `OR`/`AND` trees: the expression stays a few levels deep whatever the number of
//! values (SQLite refuses expressions more than 1,000 levels deep, and a chain of
//! 1,000 `OR`s is that deep).

use std::collections::BTreeMap;

use super::sql::Sql;
use crate::store::index::{index_key, STRING_INDEX_CHARS};
use crate::store::query::{
    Criterion, DateMatch, DatePrefix, IndexTable, Match, RefTarget, Sort, SortKey, StringMode,
    SystemMatch,
};

fn table_name(table: IndexTable) -> &'static str {
    match table {
        IndexTable::Token => "search_token",
        IndexTable::String => "search_string",
        IndexTable::Reference => "search_reference",
        IndexTable::Date => "search_date",
    }
}

/// `<alias>.resource_type = ? AND NOT <alias>.deleted AND <criteria...>`
pub(crate) fn where_clause(alias: &str, ty: &str, criteria: &[Criterion], depth: usize) -> Sql {
    let mut sql = Sql::default();
    sql.push(&format!("{alias}.resource_type = "))
        .text_bind(ty)
        .push(&format!(" AND NOT {alias}.deleted"));
    if !criteria.is_empty() {
        let terms = criteria
            .iter()
            .map(|c| criterion(alias, ty, c, depth))
            .collect();
        sql.push(" AND ").append(balanced(Join::And, terms));
    }
    sql
}

#[derive(Clone, Copy)]
enum Join {
    And,
    Or,
}

/// `terms` joined by AND or OR as a balanced tree: its depth grows with the logarithm
/// of the number of terms.
fn balanced(join: Join, mut terms: Vec<Sql>) -> Sql {
    match terms.len() {
        0 => Sql::new(match join {
            Join::And => "1 = 1",
            Join::Or => "1 = 0",
        }),
        1 => terms.pop().unwrap_or_default(),
        n => {
            let right = terms.split_off(n / 2);
            let mut sql = Sql::new("(");
            sql.append(balanced(join, terms))
                .push(match join {
                    Join::And => " AND ",
                    Join::Or => " OR ",
                })
                .append(balanced(join, right))
                .push(")");
            sql
        }
    }
}

fn criterion(alias: &str, ty: &str, c: &Criterion, depth: usize) -> Sql {
    let mut sql = Sql::default();
    match c {
        Criterion::Any(alternatives) => {
            sql.append(any_of(alias, ty, alternatives, depth));
        }
        Criterion::NoneOf(alternatives) => {
            sql.push("NOT ")
                .append(any_of(alias, ty, alternatives, depth));
        }
        Criterion::All(criteria) => {
            let terms = criteria
                .iter()
                .map(|c| criterion(alias, ty, c, depth))
                .collect();
            sql.push("(").append(balanced(Join::And, terms)).push(")");
        }
        Criterion::Missing {
            table,
            param,
            missing,
        } => {
            let not = if *missing { " NOT" } else { "" };
            sql.push(&format!(
                "{alias}.id{not} IN (SELECT id FROM {} WHERE resource_type = ",
                table_name(*table)
            ))
            .text_bind(ty)
            .push(" AND param = ")
            .text_bind(param)
            .push(")");
        }
        Criterion::GrantedTo { organizations, at } => {
            sql.push(&format!(
                "{alias}.id IN (SELECT resource_id FROM access_grants WHERE resource_type = "
            ))
            .text_bind(ty)
            .push(" AND organization IN ")
            .text_list(organizations)
            .push(" AND relation IN ")
            .text_list(&crate::store::grants::Relation::READS.map(str::to_owned))
            .push(&format!(
                " AND (valid_from IS NULL OR valid_from <= {at}) \
                 AND (valid_until IS NULL OR valid_until >= {at}))"
            ));
        }
    }
    sql
}

/// The alternatives of one criterion, grouped so that each (index table, parameter)
/// is one lookup and each chained (parameter, type) one subquery.
#[derive(Default)]
struct Groups<'a> {
    ids: Vec<String>,
    last_updated: Vec<&'a DateMatch>,
    /// Per (table, param): codes per system, systems with any code.
    tokens: BTreeMap<&'a str, TokenGroup<'a>>,
    strings: BTreeMap<&'a str, Vec<Sql>>,
    dates: BTreeMap<&'a str, Vec<&'a DateMatch>>,
    references: BTreeMap<&'a str, ReferenceGroup<'a>>,
    /// Per (param, target type): the merged alternatives of plain `Any` criteria, and
    /// other criteria as they are.
    chains: BTreeMap<(&'a str, &'a str), ChainGroup<'a>>,
}

/// The merged alternatives of plain `Any` criteria, and the other criteria.
type ChainGroup<'a> = (Vec<Match>, Vec<&'a Criterion>);

#[derive(Default)]
struct TokenGroup<'a> {
    codes: BTreeMap<SystemKey<'a>, Vec<String>>,
    any_code: Vec<SystemKey<'a>>,
}

#[derive(Default)]
struct ReferenceGroup<'a> {
    /// Target ids per target type (`None`: any type).
    local: BTreeMap<Option<&'a str>, Vec<String>>,
    urls: Vec<String>,
    ident_values: BTreeMap<SystemKey<'a>, Vec<String>>,
    ident_any: Vec<SystemKey<'a>>,
}

/// A [`SystemMatch`] as an ordered map key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SystemKey<'a> {
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

fn any_of(alias: &str, ty: &str, alternatives: &[Match], depth: usize) -> Sql {
    let mut g = Groups::default();
    for m in alternatives {
        match m {
            Match::Id(id) => g.ids.push(id.clone()),
            Match::LastUpdated(value) => g.last_updated.push(value),
            Match::Token {
                param,
                system,
                code,
            } => {
                let group = g.tokens.entry(param).or_default();
                match code {
                    Some(code) => group
                        .codes
                        .entry(system.into())
                        .or_default()
                        .push(index_key(code).into_owned()),
                    None => group.any_code.push(system.into()),
                }
            }
            Match::String { param, norm, mode } => g
                .strings
                .entry(param)
                .or_default()
                .push(string_condition(norm, mode)),
            Match::Date { param, value } => g.dates.entry(param).or_default().push(value),
            Match::Reference { param, target } => {
                let group = g.references.entry(param).or_default();
                match target {
                    RefTarget::Local { target_type, id } => group
                        .local
                        .entry(target_type.as_deref())
                        .or_default()
                        .push(index_key(id).into_owned()),
                    RefTarget::Url(url) => group.urls.push(index_key(url).into_owned()),
                    RefTarget::Identifier { system, value } => match value {
                        Some(v) => group
                            .ident_values
                            .entry(system.into())
                            .or_default()
                            .push(index_key(v).into_owned()),
                        None => group.ident_any.push(system.into()),
                    },
                }
            }
            Match::Chain {
                param,
                target_type,
                criterion,
            } => {
                let (merged, others) = g.chains.entry((param, target_type)).or_default();
                match criterion.as_ref() {
                    Criterion::Any(ms) => merged.extend(ms.iter().cloned()),
                    other => others.push(other),
                }
            }
        }
    }
    let mut terms = Vec::new();
    if !g.ids.is_empty() {
        let mut sql = Sql::default();
        sql.push(&format!("{alias}.id IN ")).text_list(&g.ids);
        terms.push(sql);
    }
    for value in g.last_updated {
        let col = format!("{alias}.last_updated");
        terms.push(date_condition(&col, &col, value));
    }
    for (param, group) in g.tokens {
        let mut conditions = Vec::new();
        for (system, codes) in &group.codes {
            let mut sql = Sql::new("(");
            sql.append(system_condition("system", *system))
                .push(" AND code IN ")
                .text_list(codes)
                .push(")");
            conditions.push(sql);
        }
        for system in &group.any_code {
            conditions.push(system_condition("system", *system));
        }
        terms.push(lookup(alias, IndexTable::Token, ty, param, conditions));
    }
    for (param, conditions) in g.strings {
        terms.push(lookup(alias, IndexTable::String, ty, param, conditions));
    }
    for (param, values) in g.dates {
        let conditions = values
            .into_iter()
            .map(|v| date_condition("low", "high", v))
            .collect();
        terms.push(lookup(alias, IndexTable::Date, ty, param, conditions));
    }
    for (param, group) in g.references {
        let mut conditions = Vec::new();
        for (target_type, ids) in &group.local {
            let mut sql = Sql::new("(target_id IN ");
            sql.text_list(ids);
            if let Some(t) = target_type {
                sql.push(" AND target_type = ").text_bind(t);
            }
            sql.push(")");
            conditions.push(sql);
        }
        if !group.urls.is_empty() {
            let mut sql = Sql::new("url IN ");
            sql.text_list(&group.urls);
            conditions.push(sql);
        }
        for (system, values) in &group.ident_values {
            let mut sql = Sql::new("(");
            sql.append(system_condition("ident_system", *system))
                .push(" AND ident_value IN ")
                .text_list(values)
                .push(")");
            conditions.push(sql);
        }
        for system in &group.ident_any {
            let mut sql = Sql::new("(");
            sql.append(system_condition("ident_system", *system))
                .push(" AND ident_value IS NOT NULL)");
            conditions.push(sql);
        }
        terms.push(lookup(alias, IndexTable::Reference, ty, param, conditions));
    }
    for ((param, target_type), (merged, others)) in g.chains {
        let mut criteria: Vec<Criterion> = Vec::new();
        if !merged.is_empty() {
            criteria.push(Criterion::Any(merged));
        }
        criteria.extend(others.into_iter().cloned());
        for c in criteria {
            terms.push(chain(alias, ty, param, target_type, &c, depth));
        }
    }
    let mut sql = Sql::new("(");
    sql.append(balanced(Join::Or, terms)).push(")");
    sql
}

/// `<alias>.id IN (SELECT id FROM <table> WHERE resource_type = ? AND param = ? AND
/// (<conditions joined by OR>))`
fn lookup(alias: &str, table: IndexTable, ty: &str, param: &str, conditions: Vec<Sql>) -> Sql {
    let mut sql = Sql::default();
    sql.push(&format!(
        "{alias}.id IN (SELECT id FROM {} WHERE resource_type = ",
        table_name(table)
    ))
    .text_bind(ty)
    .push(" AND param = ")
    .text_bind(param)
    .push(" AND ")
    .append(balanced(Join::Or, conditions))
    .push(")");
    sql
}

/// The first [`STRING_INDEX_CHARS`] characters, as the lookup index holds them.
fn string_prefix(norm: &str) -> String {
    norm.chars().take(STRING_INDEX_CHARS).collect()
}

fn string_condition(norm: &str, mode: &StringMode) -> Sql {
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

/// `param` points to a `target_type` resource that satisfies `criterion`.
fn chain(
    alias: &str,
    ty: &str,
    param: &str,
    target_type: &str,
    criterion: &Criterion,
    depth: usize,
) -> Sql {
    let inner = format!("c{depth}");
    let mut condition = Sql::new("target_type = ");
    condition
        .text_bind(target_type)
        .push(&format!(
            " AND target_id IN (SELECT {inner}.id FROM resources {inner} WHERE "
        ))
        .append(where_clause(
            &inner,
            target_type,
            std::slice::from_ref(criterion),
            depth + 1,
        ))
        .push(")");
    lookup(alias, IndexTable::Reference, ty, param, vec![condition])
}

fn system_condition(column: &str, system: SystemKey<'_>) -> Sql {
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
fn date_condition(low: &str, high: &str, m: &DateMatch) -> Sql {
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
