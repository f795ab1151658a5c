//! The search index: rows for the current version of each resource, written in the
//! same transaction as the version, and the lookups built on them.

use std::collections::BTreeSet;

use diesel::prelude::*;

use super::db::{DbConnection, MultiBackend};
use super::schema::{resources, search_token};
use super::types::{Criterion, IndexRows, SystemMatch};

/// Replaces the index rows of `(ty, id)`; `rows = None` removes them (delete).
pub(super) fn replace_rows(
    conn: &mut DbConnection,
    ty: &str,
    id: &str,
    rows: Option<&IndexRows>,
) -> QueryResult<()> {
    diesel::delete(
        search_token::table
            .filter(search_token::resource_type.eq(ty))
            .filter(search_token::id.eq(id)),
    )
    .execute(conn)?;
    let Some(rows) = rows else { return Ok(()) };
    let mut seen = BTreeSet::new();
    for t in rows
        .iter()
        .filter(|t| seen.insert((&t.param, &t.system, &t.code)))
    {
        diesel::insert_into(search_token::table)
            .values((
                search_token::resource_type.eq(ty),
                search_token::id.eq(id),
                search_token::param.eq(&t.param),
                search_token::system.eq(&t.system),
                search_token::code.eq(&t.code),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Ids of current, non-deleted resources of `ty` matching all criteria, in id order.
pub(super) fn find_ids(
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
