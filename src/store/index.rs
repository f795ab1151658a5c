//! The search index: rows for the current version of each resource, written in the
//! same transaction as the version, and rebuilt from stored bodies by `reindex`.
//! Lookups are in `store::search`.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;

use diesel::prelude::*;

use super::db::DbConnection;
use super::schema::{search_date, search_reference, search_string, search_token};
use super::search::sql::{load, Sql};
use super::tx::Failure;
use super::types::IndexRows;
use super::{Access, Store, StoreError};

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
    match rows {
        Some(rows) => insert_rows(conn, ty, id, rows),
        None => Ok(()),
    }
}

/// Multi-row INSERTs are only available on each concrete connection, not through the
/// MultiConnection backend.
macro_rules! insert_all {
    ($conn:expr, $table:expr, $values:expr) => {
        if !$values.is_empty() {
            let insert = diesel::insert_into($table).values(&$values);
            match &mut *$conn {
                DbConnection::Sqlite(c) => insert.execute(c)?,
                DbConnection::Postgres(c) => insert.execute(c)?,
            };
        }
    };
}

/// Writes the index rows of a resource that has none (a new resource): one statement
/// per index table.
pub(super) fn insert_rows(
    conn: &mut DbConnection,
    ty: &str,
    id: &str,
    rows: &IndexRows,
) -> QueryResult<()> {
    // Duplicates (the same code twice) add nothing to matching.
    let tokens: Vec<_> = rows
        .tokens
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|t| {
            (
                search_token::resource_type.eq(ty),
                search_token::id.eq(id),
                search_token::param.eq(&t.param),
                search_token::system.eq(&t.system),
                search_token::code.eq(&t.code),
            )
        })
        .collect();
    insert_all!(conn, search_token::table, tokens);
    let strings: Vec<_> = rows
        .strings
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|s| {
            (
                search_string::resource_type.eq(ty),
                search_string::id.eq(id),
                search_string::param.eq(&s.param),
                search_string::value_norm.eq(&s.norm),
                search_string::value_exact.eq(&s.exact),
            )
        })
        .collect();
    insert_all!(conn, search_string::table, strings);
    let references: Vec<_> = rows
        .references
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|r| {
            (
                search_reference::resource_type.eq(ty),
                search_reference::id.eq(id),
                search_reference::param.eq(&r.param),
                search_reference::target_type.eq(&r.target_type),
                search_reference::target_id.eq(&r.target_id),
                search_reference::url.eq(&r.url),
                search_reference::ident_system.eq(&r.ident_system),
                search_reference::ident_value.eq(&r.ident_value),
            )
        })
        .collect();
    insert_all!(conn, search_reference::table, references);
    let dates: Vec<_> = rows
        .dates
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|d| {
            (
                search_date::resource_type.eq(ty),
                search_date::id.eq(id),
                search_date::param.eq(&d.param),
                search_date::low.eq(d.low),
                search_date::high.eq(d.high),
            )
        })
        .collect();
    insert_all!(conn, search_date::table, dates);
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct BodyRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    resource_type: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    body: Option<String>,
}

/// Resources rebuilt per unit of work.
const REINDEX_BATCH: i64 = 200;

/// Computes a stored body's index rows; `None` for a type the server does not serve.
pub type RowsOf = Arc<dyn Fn(&str, &str) -> Option<IndexRows> + Send + Sync>;

impl Store {
    /// Rebuilds the index rows of every current resource from its stored body (after
    /// an upgrade that adds search parameters). Run it while no server writes: each
    /// batch reads and rewrites in one unit of work. Returns the number of resources.
    pub async fn reindex(&self, rows_of: RowsOf) -> Result<u64, StoreError> {
        let ctx = Access::system("system:reindex");
        let mut after: (String, String) = (String::new(), String::new());
        let mut done = 0_u64;
        loop {
            let (cursor, f) = (after.clone(), rows_of.clone());
            let batch = self
                .transaction(ctx.clone(), move |tx| {
                    let mut sql = Sql::new(
                        "SELECT r.resource_type AS resource_type, r.id AS id, v.body AS body \
                         FROM resources r JOIN resource_versions v ON v.resource_type = \
                         r.resource_type AND v.id = r.id AND v.version_id = r.version_id \
                         WHERE NOT r.deleted AND (r.resource_type > ",
                    );
                    sql.text_bind(&cursor.0)
                        .push(" OR (r.resource_type = ")
                        .text_bind(&cursor.0)
                        .push(" AND r.id > ")
                        .text_bind(&cursor.1)
                        .push(")) ORDER BY r.resource_type, r.id LIMIT ")
                        .int(REINDEX_BATCH);
                    let rows: Vec<BodyRow> = load(tx.conn, &sql)?;
                    for row in &rows {
                        if let Some(rows) =
                            row.body.as_deref().and_then(|b| f(&row.resource_type, b))
                        {
                            replace_rows(tx.conn, &row.resource_type, &row.id, Some(&rows))?;
                        }
                    }
                    Ok::<_, Failure<Infallible>>(
                        rows.last()
                            .map(|r| (r.resource_type.clone(), r.id.clone(), rows.len())),
                    )
                })
                .await
                .map_err(StoreError::from)?;
            let Some((ty, id, n)) = batch else {
                return Ok(done);
            };
            done += n as u64;
            after = (ty, id);
        }
    }
}
