//! Criteria to SQL: each criterion becomes a condition on `<alias>.id` of the
//! `resources` table, built from `IN (subquery)` lookups on the index tables so every
//! lookup uses an index on (resource_type, param, value...).

use super::sql::Sql;
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
    for c in criteria {
        sql.push(" AND ").append(criterion(alias, ty, c, depth));
    }
    sql
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
            sql.push("(1 = 1");
            for c in criteria {
                sql.push(" AND ").append(criterion(alias, ty, c, depth));
            }
            sql.push(")");
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
    }
    sql
}

fn any_of(alias: &str, ty: &str, alternatives: &[Match], depth: usize) -> Sql {
    let mut sql = Sql::new("(");
    if alternatives.is_empty() {
        sql.push("1 = 0");
    }
    for (i, m) in alternatives.iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.append(alternative(alias, ty, m, depth));
    }
    sql.push(")");
    sql
}

/// `<alias>.id IN (SELECT id FROM <table> WHERE resource_type = ? AND param = ? AND `
fn lookup(alias: &str, table: IndexTable, ty: &str, param: &str) -> Sql {
    let mut sql = Sql::default();
    sql.push(&format!(
        "{alias}.id IN (SELECT id FROM {} WHERE resource_type = ",
        table_name(table)
    ))
    .text_bind(ty)
    .push(" AND param = ")
    .text_bind(param)
    .push(" AND ");
    sql
}

fn alternative(alias: &str, ty: &str, m: &Match, depth: usize) -> Sql {
    match m {
        Match::Id(id) => {
            let mut sql = Sql::default();
            sql.push(&format!("{alias}.id = ")).text_bind(id);
            sql
        }
        Match::LastUpdated(value) => {
            let col = format!("{alias}.last_updated");
            date_condition(&col, &col, value)
        }
        Match::Token {
            param,
            system,
            code,
        } => {
            let mut sql = lookup(alias, IndexTable::Token, ty, param);
            sql.append(system_condition("system", system));
            if let Some(code) = code {
                sql.push(" AND code = ").text_bind(code);
            }
            sql.push(")");
            sql
        }
        Match::String { param, norm, mode } => {
            let mut sql = lookup(alias, IndexTable::String, ty, param);
            match mode {
                // A range on the normalised value, so the (type, param, value) index serves
                // "starts with" on both backends (PostgreSQL's column is COLLATE "C").
                StringMode::StartsWith => {
                    sql.push("value_norm >= ")
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
                    sql.push("value_norm = ")
                        .text_bind(norm)
                        .push(" AND value_exact = ")
                        .text_bind(exact);
                }
            }
            sql.push(")");
            sql
        }
        Match::Reference { param, target } => {
            let mut sql = lookup(alias, IndexTable::Reference, ty, param);
            match target {
                RefTarget::Local { target_type, id } => {
                    sql.push("target_id = ").text_bind(id);
                    if let Some(t) = target_type {
                        sql.push(" AND target_type = ").text_bind(t);
                    }
                }
                RefTarget::Url(url) => {
                    sql.push("url = ").text_bind(url);
                }
                RefTarget::Identifier { system, value } => {
                    sql.append(system_condition("ident_system", system));
                    match value {
                        Some(v) => sql.push(" AND ident_value = ").text_bind(v),
                        None => sql.push(" AND ident_value IS NOT NULL"),
                    };
                }
            }
            sql.push(")");
            sql
        }
        Match::Date { param, value } => {
            let mut sql = lookup(alias, IndexTable::Date, ty, param);
            sql.append(date_condition("low", "high", value)).push(")");
            sql
        }
        Match::Chain {
            param,
            target_type,
            criterion,
        } => {
            let inner = format!("c{depth}");
            let mut sql = lookup(alias, IndexTable::Reference, ty, param);
            sql.push("target_type = ")
                .text_bind(target_type)
                .push(&format!(
                    " AND target_id IN (SELECT {inner}.id FROM resources {inner} WHERE "
                ))
                .append(where_clause(
                    &inner,
                    target_type,
                    std::slice::from_ref(criterion.as_ref()),
                    depth + 1,
                ))
                .push("))");
            sql
        }
    }
}

fn system_condition(column: &str, system: &SystemMatch) -> Sql {
    let mut sql = Sql::default();
    match system {
        SystemMatch::Any => sql.push("1 = 1"),
        SystemMatch::NoSystem => sql.push(&format!("{column} IS NULL")),
        SystemMatch::Exactly(s) => sql.push(&format!("{column} = ")).text_bind(s),
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
