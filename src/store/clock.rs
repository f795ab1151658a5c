//! The change clock: one row every write transaction updates just before its first
//! version, holding it until commit, so versions get their timestamps (and history
//! positions) in commit order. See README "Polling for changes".

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::db::DbConnection;
use super::tx::{now_micros, Tx, TxError};

#[derive(QueryableByName)]
struct ClockRow {
    #[diesel(sql_type = BigInt)]
    last_at: i64,
}

impl Tx<'_> {
    /// The stamp of this unit of work's versions, if it wrote any yet.
    pub fn stamp_taken(&self) -> Option<i64> {
        self.stamp
    }

    /// The timestamp (`meta.lastUpdated`, microseconds) of every version this unit of
    /// work writes: taken from the change clock, which it locks until commit (SQLite:
    /// the writer lock; PostgreSQL: the clock's row lock). Writers therefore pass this
    /// point one at a time and get strictly increasing stamps in commit order, so a
    /// poller that has seen position P never misses a later commit below P.
    pub fn stamp(&mut self) -> Result<i64, TxError> {
        if let Some(at) = self.stamp {
            return Ok(at);
        }
        self.writing()?;
        let sql = match self.conn {
            DbConnection::Sqlite(_) => {
                "UPDATE change_clock SET last_at = MAX(last_at + 1, ?) WHERE id = 1 RETURNING last_at"
            }
            DbConnection::Postgres(_) => {
                "UPDATE change_clock SET last_at = GREATEST(last_at + 1, $1) WHERE id = 1 RETURNING last_at"
            }
        };
        let row: ClockRow = diesel::sql_query(sql)
            .bind::<BigInt, _>(now_micros())
            .get_result(self.conn)?;
        self.stamp = Some(row.last_at);
        Ok(row.last_at)
    }
}
