//! The statistics projection (`referral_facts`, README "Statistics"): one row per
//! referral, written by the application's after-write hook and read by the reports.
//! What a row means is the application's (`referral::stats`).

use diesel::connection::DefaultLoadingMode;
use diesel::prelude::*;

use super::db::DbConnection;
use super::schema::{referral_facts as f, resource_versions as rv, resources as r};
use super::tx::{Tx, TxError};
use super::StoredVersion;

/// One referral's row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, Default)]
#[diesel(table_name = f)]
pub struct FactsRow {
    pub referral: String,
    pub referral_date: String,
    /// `''` when routing found none.
    pub municipality: String,
    pub practice: Option<String>,
    pub age_group: Option<String>,
    pub organization: Option<String>,
    pub category: String,
    pub status: String,
    pub unroutable_reason: Option<String>,
    pub rejection_reason: Option<String>,
    pub flags: i64,
    pub received_at: i64,
    pub contact_at: Option<i64>,
    pub intake_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub health: Option<String>,
}

impl Tx<'_> {
    /// Replaces the row of `row.referral`.
    pub fn put_referral_facts(&mut self, row: &FactsRow) -> Result<(), TxError> {
        self.writing()?;
        diesel::delete(f::table.filter(f::referral.eq(&row.referral))).execute(self.conn)?;
        diesel::insert_into(f::table)
            .values(row)
            .execute(self.conn)?;
        Ok(())
    }

    /// Adds rows (a rebuild or a benchmark's seed), many to a statement.
    pub fn insert_referral_facts(&mut self, rows: &[FactsRow]) -> Result<(), TxError> {
        self.writing()?;
        for chunk in rows.chunks(500) {
            match &mut *self.conn {
                DbConnection::Sqlite(c) => {
                    diesel::insert_into(f::table).values(chunk).execute(c)?;
                }
                DbConnection::Postgres(c) => {
                    diesel::insert_into(f::table).values(chunk).execute(c)?;
                }
            }
        }
        Ok(())
    }

    /// Removes the row of a referral (its ServiceRequest was deleted).
    pub fn remove_referral_facts(&mut self, referral: &str) -> Result<(), TxError> {
        self.writing()?;
        diesel::delete(f::table.filter(f::referral.eq(referral))).execute(self.conn)?;
        Ok(())
    }

    /// Removes every row (before a rebuild).
    pub fn clear_referral_facts(&mut self) -> Result<usize, TxError> {
        self.writing()?;
        Ok(diesel::delete(f::table).execute(self.conn)?)
    }

    /// Passes each row of the referrals dated `from..=to` (`YYYY-MM-DD`), of one
    /// municipality when given, to `each`, one at a time: a report over a million
    /// referrals never holds them all.
    pub fn each_referral_facts(
        &mut self,
        from: &str,
        to: &str,
        municipality: Option<&str>,
        each: &mut dyn FnMut(FactsRow),
    ) -> Result<(), TxError> {
        macro_rules! each_row {
            ($conn:expr, $mode:ty) => {{
                let dated = f::table
                    .filter(f::referral_date.ge(from))
                    .filter(f::referral_date.le(to))
                    .select(FactsRow::as_select());
                match municipality {
                    Some(m) => {
                        let rows = dated
                            .filter(f::municipality.eq(m))
                            .order((f::municipality, f::referral_date));
                        for row in rows.load_iter::<FactsRow, $mode>($conn)? {
                            each(row?);
                        }
                    }
                    None => {
                        for row in dated.load_iter::<FactsRow, $mode>($conn)? {
                            each(row?);
                        }
                    }
                }
            }};
        }
        match &mut *self.conn {
            DbConnection::Sqlite(c) => each_row!(c, DefaultLoadingMode),
            // Row by row: libpq would otherwise hold the whole result before the first row.
            DbConnection::Postgres(c) => each_row!(c, diesel::pg::PgRowByRowLoadingMode),
        }
        Ok(())
    }

    /// The ids of live resources of `ty` after `after` (in id order), at most `limit`:
    /// a rebuild walks a type in pages.
    pub fn live_ids(&mut self, ty: &str, after: &str, limit: i64) -> Result<Vec<String>, TxError> {
        Ok(r::table
            .filter(r::resource_type.eq(ty))
            .filter(r::deleted.eq(false))
            .filter(r::id.gt(after))
            .order(r::id)
            .limit(limit)
            .select(r::id)
            .load(self.conn)?)
    }

    /// Every stored version of a resource, oldest first (for the server's own use: no
    /// audit record).
    pub fn versions_of(&mut self, ty: &str, id: &str) -> Result<Vec<StoredVersion>, TxError> {
        let rows: Vec<(i64, i64, Option<String>)> = rv::table
            .filter(rv::resource_type.eq(ty))
            .filter(rv::id.eq(id))
            .order(rv::version_id)
            .select((rv::version_id, rv::last_updated, rv::body))
            .load(self.conn)?;
        Ok(rows
            .into_iter()
            .map(|(version_id, last_updated, body)| StoredVersion {
                resource_type: ty.to_owned(),
                id: id.to_owned(),
                version_id,
                last_updated,
                body,
            })
            .collect())
    }
}
