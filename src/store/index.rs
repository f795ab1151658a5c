//! The search index: rows for the current version of each resource, written in the
//! same transaction as the version. Lookups are in `store::search`.

use std::collections::BTreeSet;

use diesel::prelude::*;

use super::db::DbConnection;
use super::schema::{search_date, search_reference, search_string, search_token};
use super::types::IndexRows;

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
    diesel::delete(
        search_string::table
            .filter(search_string::resource_type.eq(ty))
            .filter(search_string::id.eq(id)),
    )
    .execute(conn)?;
    diesel::delete(
        search_reference::table
            .filter(search_reference::resource_type.eq(ty))
            .filter(search_reference::id.eq(id)),
    )
    .execute(conn)?;
    diesel::delete(
        search_date::table
            .filter(search_date::resource_type.eq(ty))
            .filter(search_date::id.eq(id)),
    )
    .execute(conn)?;
    let Some(rows) = rows else { return Ok(()) };
    // Duplicates (the same code twice) add nothing to matching.
    for t in rows.tokens.iter().collect::<BTreeSet<_>>() {
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
    for s in rows.strings.iter().collect::<BTreeSet<_>>() {
        diesel::insert_into(search_string::table)
            .values((
                search_string::resource_type.eq(ty),
                search_string::id.eq(id),
                search_string::param.eq(&s.param),
                search_string::value_norm.eq(&s.norm),
                search_string::value_exact.eq(&s.exact),
            ))
            .execute(conn)?;
    }
    for r in rows.references.iter().collect::<BTreeSet<_>>() {
        diesel::insert_into(search_reference::table)
            .values((
                search_reference::resource_type.eq(ty),
                search_reference::id.eq(id),
                search_reference::param.eq(&r.param),
                search_reference::target_type.eq(&r.target_type),
                search_reference::target_id.eq(&r.target_id),
                search_reference::url.eq(&r.url),
                search_reference::ident_system.eq(&r.ident_system),
                search_reference::ident_value.eq(&r.ident_value),
            ))
            .execute(conn)?;
    }
    for d in rows.dates.iter().collect::<BTreeSet<_>>() {
        diesel::insert_into(search_date::table)
            .values((
                search_date::resource_type.eq(ty),
                search_date::id.eq(id),
                search_date::param.eq(&d.param),
                search_date::low.eq(d.low),
                search_date::high.eq(d.high),
            ))
            .execute(conn)?;
    }
    Ok(())
}
