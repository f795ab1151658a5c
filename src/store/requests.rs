//! Records of processed write requests, for `X-Request-Id` replay (idempotency).

use diesel::prelude::*;

use super::schema::request_records;
use std::convert::Infallible;

use super::tx::{Failure, Tx, TxError};
use super::{Access, Store, StoreError};

/// A processed request: its fingerprint and the stored reply.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub fingerprint: String,
    pub reply: String,
}

impl Tx<'_> {
    /// The record of `request_id` written at or after `not_before` (microseconds).
    /// Call after `lock("request:<id>")` so concurrent duplicates wait for the first.
    pub fn find_request(
        &mut self,
        request_id: &str,
        not_before: i64,
    ) -> Result<Option<RequestRecord>, TxError> {
        let row: Option<(String, String)> = request_records::table
            .filter(request_records::request_id.eq(request_id))
            .filter(request_records::recorded.ge(not_before))
            .select((request_records::fingerprint, request_records::reply))
            .first(self.conn)
            .optional()?;
        Ok(row.map(|(fingerprint, reply)| RequestRecord { fingerprint, reply }))
    }

    /// Stores the reply of a processed request, replacing an expired record of the id.
    pub fn save_request(
        &mut self,
        request_id: &str,
        record: &RequestRecord,
        at: i64,
    ) -> Result<(), TxError> {
        diesel::delete(request_records::table.filter(request_records::request_id.eq(request_id)))
            .execute(self.conn)?;
        diesel::insert_into(request_records::table)
            .values((
                request_records::request_id.eq(request_id),
                request_records::fingerprint.eq(&record.fingerprint),
                request_records::reply.eq(&record.reply),
                request_records::recorded.eq(at),
            ))
            .execute(self.conn)?;
        Ok(())
    }
}

impl Store {
    /// Deletes request records written before `before` (microseconds); returns how many.
    pub async fn purge_request_records(&self, before: i64) -> Result<usize, StoreError> {
        let result = self
            .transaction(Access::system("system:housekeeping"), move |tx| {
                diesel::delete(request_records::table.filter(request_records::recorded.lt(before)))
                    .execute(tx.conn)
                    .map_err(Failure::<Infallible>::from)
            })
            .await;
        result.map_err(StoreError::from)
    }
}
