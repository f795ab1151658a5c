//! Criteria to SQL: each criterion becomes a condition on `<alias>.id` of the
//! `resources` table, built from lookups on the index tables: `IN (subquery)` lookups
//! that use an index on (resource_type, param, value...), or, tested per row, `EXISTS`
//! lookups that use the (resource_type, id) index ([`Form`]; `plan.rs` chooses).
//!
//! A search may carry up to 1,000 values. Alternatives of one parameter share one
//! lookup, equalities become `IN (...)` lists, and what is left is joined in balanced
//! `OR`/`AND` trees: the expression stays a few levels deep whatever the number of
//! values (SQLite refuses expressions more than 1,000 levels deep, and a chain of
//! 1,000 `OR`s is that deep).

use std::collections::BTreeMap;

use super::sql::{Sql, NO_INDEX, PER_ROW_END};
use super::values::{date_condition, string_condition, system_condition, SystemKey};
use crate::store::index::index_key;
use crate::store::query::{Criterion, DateMatch, IndexTable, Match, RefTarget};

fn table_name(table: IndexTable) -> &'static str {
    match table {
        IndexTable::Token => "search_token",
        IndexTable::String => "search_string",
        IndexTable::Reference => "search_reference",
        IndexTable::Date => "search_date",
    }
}

/// How a criterion's lookups test `<alias>.id` (see `plan.rs` for which is chosen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// `<alias>.id IN (SELECT id FROM <index table> WHERE ...)`, and `_lastUpdated` on
    /// `<alias>.last_updated`: the database may read every id the lookup finds first.
    In,
    /// As [`Form::In`], and `_lastUpdated` too as `<alias>.id IN (SELECT id FROM
    /// resources WHERE ...)`: the criterion whose few matches drive the query.
    Drive,
    /// `EXISTS (SELECT 1 FROM <index table> x WHERE x.resource_type = ? AND x.id =
    /// <alias>.id AND ...)`, and `_lastUpdated` on `+<alias>.last_updated` (which keeps
    /// its index out): tested on each row something else found, through the index
    /// table's (resource_type, id) index, reading nothing else.
    Exists,
    /// The bare `SELECT id FROM ...` of a lookup (what [`Form::Drive`] wraps).
    Rows,
    /// The bare `SELECT 1 FROM ...` of a lookup: what counting its rows reads (the
    /// lookup's index alone, without the table row that holds the id); one per
    /// condition, joined by `UNION ALL`, when the lookup has a few (see `lookup`).
    Count,
}

/// `<alias>.resource_type = ? AND NOT <alias>.deleted AND <criteria...>`
pub(crate) fn where_clause(alias: &str, ty: &str, criteria: &[Criterion], depth: usize) -> Sql {
    where_in_forms(alias, ty, criteria, depth, |_| Form::In)
}

/// [`where_clause`] with criterion `i` written in form `form(i)`.
pub(crate) fn where_in_forms(
    alias: &str,
    ty: &str,
    criteria: &[Criterion],
    depth: usize,
    form: impl Fn(usize) -> Form,
) -> Sql {
    let mut sql = Sql::default();
    sql.push(&format!("{alias}.resource_type = "))
        .text_bind(ty)
        .push(&format!(" AND NOT {alias}.deleted"));
    if !criteria.is_empty() {
        let terms = criteria
            .iter()
            .enumerate()
            .map(|(i, c)| criterion(alias, ty, c, depth, form(i)))
            .collect();
        sql.push(" AND ").append(balanced(Join::And, terms));
    }
    sql
}

/// The bare `SELECT 1 FROM ...` that reads the index rows matching `c` for resources of
/// type `ty`, when `c` is one lookup of one index table (or `_id`, or one `_lastUpdated`
/// value): what can drive a query, counted ahead to choose the driver.
pub(crate) fn counted_rows_of(ty: &str, c: &Criterion) -> Option<Sql> {
    let Criterion::Any(alternatives) = c else {
        return None;
    };
    let mut terms = any_terms("r", ty, alternatives, 0, Form::Count);
    (terms.len() == 1).then(|| terms.pop()).flatten()
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

fn criterion(alias: &str, ty: &str, c: &Criterion, depth: usize, form: Form) -> Sql {
    let mut sql = Sql::default();
    // Only a plain `Any` can drive.
    let plain = if form == Form::Exists {
        Form::Exists
    } else {
        Form::In
    };
    let (test, x) = (Membership { alias, form: plain }, format!("x{depth}"));
    match c {
        Criterion::Any(alternatives) => {
            sql.append(any_of(alias, ty, alternatives, depth, form));
        }
        Criterion::NoneOf(alternatives) => {
            sql.push("NOT ")
                .append(any_of(alias, ty, alternatives, depth, plain));
        }
        Criterion::All(criteria) => {
            let terms = criteria
                .iter()
                .map(|c| criterion(alias, ty, c, depth, plain))
                .collect();
            sql.push("(").append(balanced(Join::And, terms)).push(")");
        }
        Criterion::Missing {
            table,
            param,
            missing,
        } => {
            if *missing {
                sql.push("NOT ");
            }
            sql.append(test.open(table_name(*table), &x, "id", ty))
                .append(test.param(&x, param))
                .push(test.close());
        }
        Criterion::GrantedTo { organizations, at } => {
            sql.append(test.open("access_grants", &x, "resource_id", ty))
                .push(&format!(" AND {x}.organization IN "))
                .text_list(organizations)
                .push(&format!(" AND {x}.relation IN "))
                .text_list(&crate::store::grants::Relation::READS.map(str::to_owned))
                .push(&format!(
                    " AND ({x}.valid_from IS NULL OR {x}.valid_from <= {at}) \
                 AND ({x}.valid_until IS NULL OR {x}.valid_until >= {at}))"
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

/// How a lookup on an index table tests `<alias>.id`.
struct Membership<'a> {
    alias: &'a str,
    form: Form,
}

impl Membership<'_> {
    /// The start of the test on `table` (as `x`, whose `id_column` holds the resource
    /// id) for resources of type `ty`; the caller adds ` AND x.<condition>` and
    /// [`Membership::close`]s it.
    fn open(&self, table: &str, x: &str, id_column: &str, ty: &str) -> Sql {
        let alias = self.alias;
        let mut sql = Sql::new(&match self.form {
            Form::Exists => format!(
                "EXISTS (SELECT 1 FROM {table} {x} WHERE {x}.{id_column} = {alias}.id \
                 AND {x}.resource_type = "
            ),
            Form::Rows => {
                format!("SELECT {x}.{id_column} AS id FROM {table} {x} WHERE {x}.resource_type = ")
            }
            Form::Count => format!("SELECT 1 FROM {table} {x} WHERE {x}.resource_type = "),
            Form::In | Form::Drive => format!(
                "{alias}.id IN (SELECT {x}.{id_column} FROM {table} {x} WHERE {x}.resource_type = "
            ),
        });
        sql.text_bind(ty);
        sql
    }

    /// ` AND x.param = ?`; tested per row, with SQLite's no-index hint: with it the
    /// table's (resource_type, id) index serves the test, without it SQLite would
    /// rather walk the (resource_type, param, value) index for every row.
    fn param(&self, x: &str, param: &str) -> Sql {
        let mut sql = Sql::new(" AND ");
        if self.form == Form::Exists {
            sql.no_index();
        }
        sql.push(&format!("{x}.param = ")).text_bind(param);
        sql
    }

    fn close(&self) -> &'static str {
        match self.form {
            Form::Rows | Form::Count => "",
            Form::Exists => PER_ROW_END,
            Form::In | Form::Drive => ")",
        }
    }
}

fn any_of(alias: &str, ty: &str, alternatives: &[Match], depth: usize, form: Form) -> Sql {
    let terms = any_terms(alias, ty, alternatives, depth, form);
    let mut sql = Sql::new("(");
    sql.append(balanced(Join::Or, terms)).push(")");
    sql
}

/// The alternatives of one criterion as terms to join by OR: one per index-table
/// lookup, `_id` list or `_lastUpdated` value.
fn any_terms(alias: &str, ty: &str, alternatives: &[Match], depth: usize, form: Form) -> Vec<Sql> {
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
    let membership = Membership {
        alias,
        form: if form == Form::Drive { Form::In } else { form },
    };
    let x = format!("x{depth}");
    let test = (&membership, x.as_str());
    let mut terms = Vec::new();
    // `_id` and `_lastUpdated` are columns of `resources` itself.
    let own_rows = |condition: Sql| {
        let bare = if form == Form::Count {
            Form::Count
        } else {
            Form::Rows
        };
        let rows = Membership { alias, form: bare };
        let mut sql = rows.open("resources", "o", "id", ty);
        sql.push(" AND NOT o.deleted AND ").append(condition);
        match form {
            Form::Rows | Form::Count => sql,
            _ => {
                let mut wrapped = Sql::new(&format!("{alias}.id IN ("));
                wrapped.append(sql).push(")");
                wrapped
            }
        }
    };
    if !g.ids.is_empty() {
        let mut sql = Sql::default();
        if matches!(form, Form::Rows | Form::Count) {
            let mut list = Sql::new("o.id IN ");
            list.text_list(&g.ids);
            sql = own_rows(list);
        } else {
            sql.push(&format!("{alias}.id IN ")).text_list(&g.ids);
        }
        terms.push(sql);
    }
    for value in g.last_updated {
        terms.push(match form {
            Form::Rows | Form::Count | Form::Drive => {
                own_rows(date_condition("o.last_updated", "o.last_updated", value))
            }
            Form::In => {
                let col = format!("{alias}.last_updated");
                date_condition(&col, &col, value)
            }
            Form::Exists => {
                let col = format!("{NO_INDEX}{alias}.last_updated");
                date_condition(&col, &col, value)
            }
        });
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
        terms.push(lookup(test, IndexTable::Token, ty, param, conditions));
    }
    for (param, conditions) in g.strings {
        terms.push(lookup(test, IndexTable::String, ty, param, conditions));
    }
    for (param, values) in g.dates {
        let conditions = values
            .into_iter()
            .map(|v| date_condition("low", "high", v))
            .collect();
        terms.push(lookup(test, IndexTable::Date, ty, param, conditions));
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
        terms.push(lookup(test, IndexTable::Reference, ty, param, conditions));
    }
    for ((param, target_type), (merged, others)) in g.chains {
        let mut criteria: Vec<Criterion> = Vec::new();
        if !merged.is_empty() {
            criteria.push(Criterion::Any(merged));
        }
        criteria.extend(others.into_iter().cloned());
        for c in criteria {
            terms.push(chain(test, ty, param, target_type, &c, depth));
        }
    }
    terms
}

/// `<alias>.id IN (SELECT x.id FROM <table> x WHERE x.resource_type = ? AND x.param = ?
/// AND (<conditions joined by OR>))`, or that lookup in another [`Form`]. The
/// conditions name the table's columns unqualified.
fn lookup(
    (test, x): (&Membership<'_>, &str),
    table: IndexTable,
    ty: &str,
    param: &str,
    conditions: Vec<Sql>,
) -> Sql {
    // Counted: one `SELECT` per condition joined by `UNION ALL`, so the count's `LIMIT`
    // stops each index scan early. With the conditions joined by `OR` PostgreSQL reads
    // them through a `BitmapOr`, which builds the bitmap of every matching row before
    // the first one counts: at 691,145 stored Tasks the owner's lookup (a local id or
    // its absolute URL) took 110-150 ms to count 300 of its 721,535 rows. A row that
    // matches two conditions counts twice; the count only chooses the plan.
    if test.form == Form::Count && (2..=COUNTED_BRANCHES).contains(&conditions.len()) {
        let mut sql = Sql::default();
        for (i, condition) in conditions.into_iter().enumerate() {
            if i > 0 {
                sql.push(" UNION ALL ");
            }
            sql.append(test.open(table_name(table), x, "id", ty))
                .append(test.param(x, param))
                .push(" AND ")
                .append(condition);
        }
        return sql;
    }
    let mut sql = test.open(table_name(table), x, "id", ty);
    sql.append(test.param(x, param))
        .push(" AND ")
        .append(balanced(Join::Or, conditions))
        .push(test.close());
    sql
}

/// Most conditions a counted lookup is split into (see [`lookup`]); a lookup with more
/// (a search of many systems) is counted as one `OR`.
const COUNTED_BRANCHES: usize = 8;

/// `param` points to a `target_type` resource that satisfies `criterion`.
fn chain(
    test: (&Membership<'_>, &str),
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
    lookup(test, IndexTable::Reference, ty, param, vec![condition])
}
