//! A small parameterised SQL builder for the search queries the diesel DSL cannot
//! express (correlated sort keys, nested IN subqueries of varying shape). Every value is
//! a bind parameter; the text is written with `?` and numbered (`$1`) for PostgreSQL.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::Sqlite;

use crate::store::db::DbConnection;

#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Sql {
    text: String,
    binds: Vec<Bind>,
    /// A value list was written ([`Sql::text_list`]): the text changes with its length.
    lists: bool,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            binds: Vec::new(),
            lists: false,
        }
    }

    /// Appends SQL text (never a value: values go through [`Sql::text_bind`]/[`Sql::int`]).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends `?` bound to a text value.
    pub fn text_bind(&mut self, value: &str) -> &mut Self {
        self.text.push('?');
        self.binds.push(Bind::Text(value.to_owned()));
        self
    }

    /// Appends a row limit. Written into the text, not bound: SQLite's planner reads a
    /// bound LIMIT, so it would prepare the statement again at every execution.
    pub fn limit(&mut self, n: usize) -> &mut Self {
        self.text.push_str(" LIMIT ");
        self.text.push_str(&n.to_string());
        self
    }

    /// Appends `?` bound to an integer.
    pub fn int(&mut self, value: i64) -> &mut Self {
        self.text.push('?');
        self.binds.push(Bind::Int(value));
        self
    }

    /// Appends another fragment with its binds.
    pub fn append(&mut self, other: Sql) -> &mut Self {
        self.text.push_str(&other.text);
        self.binds.extend(other.binds);
        self.lists |= other.lists;
        self
    }

    /// `(?, ?, ...)` for a non-empty list.
    pub fn text_list(&mut self, values: &[String]) -> &mut Self {
        self.lists = true;
        self.text.push('(');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.text_bind(v);
        }
        self.text.push(')');
        self
    }

    /// Appends SQLite's unary `+` ("use no index for this term": a planner hint for a
    /// term that an index would serve worse than another index, see `plan.rs`);
    /// nothing on PostgreSQL, whose planner has statistics and whose `+` takes numbers
    /// only.
    pub fn no_index(&mut self) -> &mut Self {
        self.text.push(NO_INDEX);
        self
    }

    /// Removes `suffix` from the end of the text, if there.
    pub fn trim_end(&mut self, suffix: &str) {
        if self.text.ends_with(suffix) {
            self.text.truncate(self.text.len() - suffix.len());
        }
    }
}

/// Where [`Sql::no_index`] puts SQLite's `+` (a character no SQL text holds); also
/// written into a text directly, before a column name.
pub(crate) const NO_INDEX: char = '\u{1}';

/// The end of a correlated `EXISTS` subquery that is to be tested row by row, as the
/// plan chose (`plan.rs`): PostgreSQL's ` OFFSET 0)`, `)` on SQLite. PostgreSQL turns
/// a plain `EXISTS` into a semi-join and, misled by its estimate for a lookup of
/// correlated columns (134 rows for an owner's 21,259 Tasks), read every Task of the
/// owner, hashed them and sorted before the first row: 32 ms for a first page of 10 out
/// of 10,000 matches at 20,000 stored. A subquery with an `OFFSET` is never turned into
/// a join, so the walk reads the (type, id) index in order and stops at the page
/// (0.5 ms; `EXPLAIN ANALYZE` in BENCHMARKS.md, "Round 4").
pub(crate) const PER_ROW_END: &str = "\u{2})";
const PER_ROW: char = '\u{2}';

/// Distinct statement texts whose prepared statements connections keep. The texts are
/// built from a handful of shapes, but a search's criteria shape them too, and every
/// connection would keep every text it ever ran: the first [`CACHED_TEXTS`] texts are
/// kept (the fixed statements of every write come first), any later one is prepared
/// each time, as before.
const CACHED_TEXTS: usize = 512;

fn admitted(text: &str) -> bool {
    use std::collections::HashSet;
    use std::hash::{Hash, Hasher};
    use std::sync::{Mutex, OnceLock, PoisonError};
    static KEPT: OnceLock<Mutex<HashSet<u64>>> = OnceLock::new();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    let key = hasher.finish();
    let mut kept = KEPT
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    kept.contains(&key) || (kept.len() < CACHED_TEXTS && kept.insert(key))
}

/// A built statement as a diesel query: the text between placeholders is SQL, each
/// bind a bind parameter (each backend writes its own placeholder), and the prepared
/// statement is kept by the connection when the text is [`admitted`] and holds no
/// value list (whose length makes a new text each time).
struct Statement<'a> {
    text: std::borrow::Cow<'a, str>,
    binds: &'a [Bind],
    cache: bool,
}

impl<'a> Statement<'a> {
    /// `sql` for SQLite (`sqlite`) or PostgreSQL.
    fn of(sql: &'a Sql, sqlite: bool) -> Self {
        let text = if sql.text.contains([NO_INDEX, PER_ROW]) {
            let (hint, per_row) = if sqlite { ("+", "") } else { ("", " OFFSET 0") };
            std::borrow::Cow::Owned(sql.text.replace(NO_INDEX, hint).replace(PER_ROW, per_row))
        } else {
            std::borrow::Cow::Borrowed(sql.text.as_str())
        };
        let cache = !sql.lists && admitted(&text);
        Self {
            text,
            binds: &sql.binds,
            cache,
        }
    }
}

impl<DB> QueryFragment<DB> for Statement<'_>
where
    DB: diesel::backend::Backend
        + diesel::sql_types::HasSqlType<Text>
        + diesel::sql_types::HasSqlType<BigInt>,
    String: diesel::serialize::ToSql<Text, DB>,
    i64: diesel::serialize::ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        if !self.cache {
            out.unsafe_to_cache_prepared();
        }
        let mut parts = self.text.split('?');
        out.push_sql(parts.next().unwrap_or_default());
        let mut binds = self.binds.iter();
        for part in parts {
            match binds.next() {
                Some(Bind::Text(s)) => out.push_bind_param::<Text, String>(s)?,
                Some(Bind::Int(i)) => out.push_bind_param::<BigInt, i64>(i)?,
                None => {
                    return Err(diesel::result::Error::QueryBuilderError(
                        "a placeholder without a value".into(),
                    ))
                }
            }
            out.push_sql(part);
        }
        Ok(())
    }
}

impl QueryId for Statement<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::query_builder::Query for Statement<'_> {
    type SqlType = diesel::sql_types::Untyped;
}

impl<Conn> RunQueryDsl<Conn> for Statement<'_> {}

/// Runs a query and loads its rows.
pub(crate) fn load<T>(conn: &mut DbConnection, sql: &Sql) -> QueryResult<Vec<T>>
where
    T: QueryableByName<Sqlite> + QueryableByName<Pg> + 'static,
{
    match conn {
        DbConnection::Sqlite(c) => Statement::of(sql, true).load(c),
        DbConnection::Postgres(c) => Statement::of(sql, false).load(c),
    }
}

/// Runs a statement; returns the number of rows affected.
pub(crate) fn execute(conn: &mut DbConnection, sql: &Sql) -> QueryResult<usize> {
    match conn {
        DbConnection::Sqlite(c) => Statement::of(sql, true).execute(c),
        DbConnection::Postgres(c) => Statement::of(sql, false).execute(c),
    }
}

/// Runs a query whose rows are ids (`... AS id`) and returns them in its order.
pub(crate) fn load_ids(conn: &mut DbConnection, sql: &Sql) -> QueryResult<Vec<String>> {
    Ok(load::<IdRow>(conn, sql)?
        .into_iter()
        .map(|r| r.id)
        .collect())
}

#[derive(QueryableByName)]
pub(crate) struct IdRow {
    #[diesel(sql_type = Text)]
    pub id: String,
}

#[derive(QueryableByName)]
pub(crate) struct CountRow {
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}
