//! The operator-loaded CBS postcode table: postcode (PC4 or PC6) to municipality code.
//! Loaded as a whole by `wor-hub postcodes import`, read while routing a referral.

use diesel::prelude::*;

use super::db::DbConnection;
use super::schema::{postcode_imports, postcodes};
use std::convert::Infallible;

use super::tx::{now_micros, Failure, Tx, TxError};
use super::{Access, Store, StoreError};

/// What the table says about one postcode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostcodeRows {
    /// The table has any row (an operator has imported a file).
    pub loaded: bool,
    /// The municipality of the exact PC6 row, when a PC6 was asked for and is listed.
    pub pc6: Option<String>,
    /// The distinct municipalities of the PC4 row and of every PC6 row in that PC4,
    /// sorted: more than one means the PC4 straddles a municipal border.
    pub pc4: Vec<String>,
}

/// The last import: when (microseconds since the Unix epoch), from what, how many rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostcodeImport {
    pub imported: i64,
    pub source: String,
    pub rows: i64,
}

/// Rows per INSERT: 2 binds each stays far below SQLite's (32766) and PostgreSQL's
/// (65535) bind limits, while keeping round trips few.
const INSERT_CHUNK: usize = 1000;

impl Tx<'_> {
    /// The municipalities listed for a PC4 and, if given, a PC6 (compact upper case, as
    /// `Postcode::pc6` gives it, e.g. `2771AB`).
    pub fn postcode_lookup(
        &mut self,
        pc4: u16,
        pc6: Option<&str>,
    ) -> Result<PostcodeRows, TxError> {
        Ok(lookup(self.conn, pc4, pc6)?)
    }
}

fn lookup(conn: &mut DbConnection, pc4: u16, pc6: Option<&str>) -> QueryResult<PostcodeRows> {
    let loaded = postcodes::table
        .select(postcodes::postcode)
        .first::<String>(conn)
        .optional()?
        .is_some();
    if !loaded {
        return Ok(PostcodeRows::default());
    }
    let pc6 = match pc6 {
        Some(pc6) => postcodes::table
            .find(pc6)
            .select(postcodes::municipality)
            .first::<String>(conn)
            .optional()?,
        None => None,
    };
    // Stored postcodes are `2771` or `2771AB` (upper case), so in byte order the PC4 row
    // and all its PC6 rows lie in `2771` ..= `2771ZZ`. A range, unlike LIKE '2771__',
    // can use the primary key index on SQLite (whose LIKE is case-insensitive and so
    // skips a BINARY index).
    let pc4 = postcodes::table
        .filter(postcodes::postcode.between(pc4.to_string(), format!("{pc4}ZZ")))
        .select(postcodes::municipality)
        .distinct()
        .order(postcodes::municipality)
        .load::<String>(conn)?;
    Ok(PostcodeRows {
        loaded: true,
        pc6,
        pc4,
    })
}

impl Store {
    /// Replaces the whole postcode table with `rows` (postcode, municipality), already
    /// validated and free of duplicate postcodes, in one transaction: readers see the
    /// old table or the new one, never a mix, and a failure leaves the old one.
    /// Returns the number of rows stored.
    pub async fn replace_postcodes(
        &self,
        rows: Vec<(String, String)>,
        source: String,
    ) -> Result<usize, StoreError> {
        let result = self
            .transaction(Access::system("system:postcodes-import"), move |tx| {
                let conn: &mut DbConnection = tx.conn;
                diesel::delete(postcodes::table).execute(conn)?;
                for chunk in rows.chunks(INSERT_CHUNK) {
                    let values: Vec<_> = chunk
                        .iter()
                        .map(|(postcode, municipality)| {
                            (
                                postcodes::postcode.eq(postcode),
                                postcodes::municipality.eq(municipality),
                            )
                        })
                        .collect();
                    // Multi-row INSERTs are not available through the MultiConnection
                    // backend, only on each concrete connection.
                    let insert = diesel::insert_into(postcodes::table).values(&values);
                    match &mut *conn {
                        DbConnection::Sqlite(c) => insert.execute(c)?,
                        DbConnection::Postgres(c) => insert.execute(c)?,
                    };
                }
                diesel::delete(postcode_imports::table).execute(conn)?;
                diesel::insert_into(postcode_imports::table)
                    .values((
                        postcode_imports::imported.eq(now_micros()),
                        postcode_imports::source.eq(&source),
                        postcode_imports::row_count
                            .eq(i64::try_from(rows.len()).unwrap_or(i64::MAX)),
                    ))
                    .execute(conn)?;
                Ok::<_, Failure<Infallible>>(rows.len())
            })
            .await;
        result.map_err(StoreError::from)
    }

    /// The last postcode import, if any.
    pub async fn last_postcode_import(&self) -> Result<Option<PostcodeImport>, StoreError> {
        self.read(Access::system("system:postcodes"), |tx| {
            let row = postcode_imports::table
                .select((
                    postcode_imports::imported,
                    postcode_imports::source,
                    postcode_imports::row_count,
                ))
                .first::<(i64, String, i64)>(tx.conn)
                .optional()?;
            Ok(row.map(|(imported, source, rows)| PostcodeImport {
                imported,
                source,
                rows,
            }))
        })
        .await
    }
}
