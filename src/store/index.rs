//! The search index: rows for the current version of each resource, written in the
//! same transaction as the version, and rebuilt from stored bodies by `reindex`.
//! Lookups are in `store::search`.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;

use diesel::prelude::*;
use sha2::{Digest, Sha256};

use super::db::DbConnection;
use super::schema::{search_date, search_reference, search_string, search_token};
use super::search::sql::{load, Sql};
use super::tx::Failure;
use super::types::IndexRows;
use super::{Access, Store, StoreError};

/// Longest value (in bytes) an exact-match index column (token `system`/`code`,
/// reference `target_id`/`url`/`ident_system`/`ident_value`) stores as it is.
pub(crate) const KEY_MAX_BYTES: usize = 256;
/// Bytes of a longer value kept readable in front of its hash.
const KEY_PREFIX_BYTES: usize = 192;

/// The form a value takes in an exact-match index column, on write and on lookup alike.
///
/// PostgreSQL refuses a btree entry over about 2,700 bytes ("index row size exceeds
/// maximum"), so a 3,000-character identifier could not be stored. A value up to
/// [`KEY_MAX_BYTES`] is kept as it is; a longer one becomes its first bytes plus the
/// SHA-256 of the whole value. Equality on these keys is equality on the values (up to
/// a SHA-256 collision), and a key of a long value is always longer than
/// [`KEY_MAX_BYTES`], so it never equals a short value as sent. Both backends store the
/// same keys, so they answer alike.
pub(crate) fn index_key(value: &str) -> Cow<'_, str> {
    if value.len() <= KEY_MAX_BYTES && !value.contains('\0') {
        return Cow::Borrowed(value);
    }
    if value.contains('\0') {
        // PostgreSQL text cannot hold NUL (searches refuse it, so no search looks for
        // such a value): the same key on both backends, without the NUL.
        let digest = Sha256::digest(value.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let shown: String = value.chars().take(64).map(no_nul).collect();
        return Cow::Owned(format!("{shown}#sha256:{hex}"));
    }
    let mut cut = KEY_PREFIX_BYTES;
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    let digest = Sha256::digest(value.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Cow::Owned(format!("{}#sha256:{hex}", &value[..cut]))
}

fn no_nul(c: char) -> char {
    if c == '\0' {
        '\u{FFFD}'
    } else {
        c
    }
}

/// A string index value PostgreSQL can hold: NUL becomes U+FFFD (on both backends).
fn storable(value: &str) -> Cow<'_, str> {
    if value.contains('\0') {
        Cow::Owned(value.chars().map(no_nul).collect())
    } else {
        Cow::Borrowed(value)
    }
}

fn index_key_opt(value: &Option<String>) -> Option<String> {
    value.as_deref().map(|v| index_key(v).into_owned())
}

/// Characters of `search_string.value_norm` its lookup index holds (an index on
/// `substr(value_norm, 1, 128)`, migration `long_index_values`); the full value stays in
/// the column for "starts with", `:contains` and `:exact` to compare.
pub(crate) const STRING_INDEX_CHARS: usize = 128;

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

/// Rows per multi-row INSERT: at most 8 columns each, so a statement stays far below
/// SQLite's 32,766 and PostgreSQL's 65,535 bind parameters (a Patient with 5,000 names
/// has over 10,000 string rows).
const INSERT_CHUNK: usize = 1000;

/// Multi-row INSERTs are only available on each concrete connection, not through the
/// MultiConnection backend.
macro_rules! insert_all {
    ($conn:expr, $table:expr, $values:expr) => {
        for chunk in $values.chunks(INSERT_CHUNK) {
            let insert = diesel::insert_into($table).values(chunk);
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
                search_token::system.eq(index_key_opt(&t.system)),
                search_token::code.eq(index_key(&t.code).into_owned()),
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
                search_string::value_norm.eq(storable(&s.norm).into_owned()),
                search_string::value_exact.eq(storable(&s.exact).into_owned()),
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
                search_reference::target_id.eq(index_key_opt(&r.target_id)),
                search_reference::url.eq(index_key_opt(&r.url)),
                search_reference::ident_system.eq(index_key_opt(&r.ident_system)),
                search_reference::ident_value.eq(index_key_opt(&r.ident_value)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_keyed_and_short_ones_kept() {
        assert_eq!(index_key("999999011"), "999999011");
        let at_limit = "x".repeat(KEY_MAX_BYTES);
        assert_eq!(index_key(&at_limit), at_limit);
        let long = "é".repeat(1500);
        let key = index_key(&long);
        assert!(
            key.len() > KEY_MAX_BYTES && key.len() < 300,
            "{}",
            key.len()
        );
        assert!(long.starts_with(key.split('#').next().unwrap()));
        assert_eq!(key, index_key(&long.clone()));
        let mut other = long.clone();
        other.push('x');
        assert_ne!(key, index_key(&other));
        let nul = index_key("a\0b");
        assert!(!nul.contains('\0') && nul.starts_with("a\u{FFFD}b#sha256:"));
        assert_ne!(nul, index_key("a\0c"));
    }
}
