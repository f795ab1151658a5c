//! A small parameterised SQL builder for the search queries the diesel DSL cannot
//! express (correlated sort keys, nested IN subqueries of varying shape). Every value is
//! a bind parameter; the text is written with `?` and numbered (`$1`) for PostgreSQL.

use diesel::pg::Pg;
use diesel::prelude::*;
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
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            binds: Vec::new(),
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
        self
    }

    /// `(?, ?, ...)` for a non-empty list.
    pub fn text_list(&mut self, values: &[String]) -> &mut Self {
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

    /// Removes `suffix` from the end of the text, if there.
    pub fn trim_end(&mut self, suffix: &str) {
        if self.text.ends_with(suffix) {
            self.text.truncate(self.text.len() - suffix.len());
        }
    }

    /// The text with PostgreSQL's numbered placeholders. The builder writes `?` only as
    /// placeholders (never inside literals), so a plain replacement is exact.
    fn numbered(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 16);
        let mut n = 0;
        for c in self.text.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        out
    }
}

macro_rules! bound {
    ($text:expr, $binds:expr, $db:ty) => {{
        let mut q = diesel::sql_query($text).into_boxed::<$db>();
        for b in $binds {
            q = match b {
                Bind::Text(s) => q.bind::<Text, _>(s.clone()),
                Bind::Int(i) => q.bind::<BigInt, _>(*i),
            };
        }
        q
    }};
}

/// Runs a query and loads its rows.
pub(crate) fn load<T>(conn: &mut DbConnection, sql: &Sql) -> QueryResult<Vec<T>>
where
    T: QueryableByName<Sqlite> + QueryableByName<Pg> + 'static,
{
    match conn {
        DbConnection::Sqlite(c) => bound!(sql.text.clone(), &sql.binds, Sqlite).load(c),
        DbConnection::Postgres(c) => bound!(sql.numbered(), &sql.binds, Pg).load(c),
    }
}

/// Runs a statement; returns the number of rows affected.
pub(crate) fn execute(conn: &mut DbConnection, sql: &Sql) -> QueryResult<usize> {
    match conn {
        DbConnection::Sqlite(c) => bound!(sql.text.clone(), &sql.binds, Sqlite).execute(c),
        DbConnection::Postgres(c) => bound!(sql.numbered(), &sql.binds, Pg).execute(c),
    }
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
