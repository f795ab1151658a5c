//! Who may read what: per organisation the resources it may read (`access_grants`).
//! The store keeps the rows; which rows a referral brings (its referrer, the owners of
//! its Tasks, what Consent permits) is the application's (`app::access`). Reads narrow
//! by these rows through [`crate::store::Criterion::GrantedTo`].

use diesel::prelude::*;

use super::db::DbConnection;
use super::schema::access_grants as g;
use super::tx::{Tx, TxError};

/// Why an organisation may read a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Relation {
    /// It sent the referral (or the referral names it as requester).
    Referrer,
    /// It owns (or owned) one of the referral's Tasks.
    Performer,
    /// A client of the organisation created the resource.
    Creator,
    /// The organisation works on the referral but no active Consent lets it read this
    /// resource: not readable, and a read says why.
    Withheld,
}

impl Relation {
    pub fn code(self) -> &'static str {
        match self {
            Self::Referrer => "referrer",
            Self::Performer => "performer",
            Self::Creator => "creator",
            Self::Withheld => "withheld",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        [
            Self::Referrer,
            Self::Performer,
            Self::Creator,
            Self::Withheld,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    /// The relations that let an organisation read.
    pub const READS: [&'static str; 3] = ["referrer", "performer", "creator"];
}

/// One row: `organization` may read (or, withheld, may not read) `resource_type/resource_id`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub organization: String,
    pub resource_type: String,
    pub resource_id: String,
    pub relation: Relation,
    /// Grants only from / until then (microseconds); `None`: no bound.
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
}

/// Creator rows have no anchor: they are not recomputed.
const NO_ANCHOR: &str = "";

impl Tx<'_> {
    /// Replaces the rows that follow `anchor` (`ServiceRequest/<id>`) with `grants`.
    pub fn replace_grants(&mut self, anchor: &str, grants: &[Grant]) -> Result<(), TxError> {
        self.writing()?;
        diesel::delete(g::table.filter(g::anchor.eq(anchor))).execute(self.conn)?;
        let mut grants = grants.to_vec();
        grants.sort();
        grants.dedup();
        for chunk in grants.chunks(200) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|r| {
                    (
                        g::organization.eq(&r.organization),
                        g::resource_type.eq(&r.resource_type),
                        g::resource_id.eq(&r.resource_id),
                        g::anchor.eq(anchor),
                        g::relation.eq(r.relation.code()),
                        g::valid_from.eq(r.valid_from),
                        g::valid_until.eq(r.valid_until),
                    )
                })
                .collect();
            match &mut *self.conn {
                DbConnection::Sqlite(c) => {
                    diesel::insert_into(g::table).values(rows).execute(c)?;
                }
                DbConnection::Postgres(c) => {
                    diesel::insert_into(g::table).values(rows).execute(c)?;
                }
            }
        }
        Ok(())
    }

    /// Records that a client of `organization` created `ty/id`.
    pub fn record_creator(
        &mut self,
        ty: &str,
        id: &str,
        organization: &str,
    ) -> Result<(), TxError> {
        self.writing()?;
        if self.creators_of(ty, id)?.iter().any(|o| o == organization) {
            return Ok(());
        }
        diesel::insert_into(g::table)
            .values((
                g::organization.eq(organization),
                g::resource_type.eq(ty),
                g::resource_id.eq(id),
                g::anchor.eq(NO_ANCHOR),
                g::relation.eq(Relation::Creator.code()),
            ))
            .execute(self.conn)?;
        Ok(())
    }

    /// The organisations whose clients created `ty/id`.
    pub fn creators_of(&mut self, ty: &str, id: &str) -> Result<Vec<String>, TxError> {
        Ok(g::table
            .filter(g::resource_type.eq(ty))
            .filter(g::resource_id.eq(id))
            .filter(g::anchor.eq(NO_ANCHOR))
            .filter(g::relation.eq(Relation::Creator.code()))
            .select(g::organization)
            .order(g::organization)
            .load(self.conn)?)
    }

    /// The relations `organization` holds on `ty/id` (from any anchor).
    pub fn relations(
        &mut self,
        ty: &str,
        id: &str,
        organization: &str,
    ) -> Result<Vec<Relation>, TxError> {
        // The grants as this unit of work's writes leave them.
        self.settle_deferred()?;
        let codes: Vec<String> = g::table
            .filter(g::organization.eq(organization))
            .filter(g::resource_type.eq(ty))
            .filter(g::resource_id.eq(id))
            .select(g::relation)
            .load(self.conn)?;
        let mut out: Vec<Relation> = codes
            .iter()
            .filter_map(|c| Relation::from_code(c))
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
}
