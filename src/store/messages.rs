//! Messages received at `$process-message` (`messages`): the key FHIR messaging gives
//! a message (source endpoint and MessageHeader.id), the stored Bundles of the message
//! and its response, and the referral it was about. What a message means is the
//! application's (`app::message`).

use diesel::prelude::*;

use super::schema::messages as m;
use super::tx::{Tx, TxError};

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = m)]
pub struct MessageRow {
    pub source: String,
    pub message_id: String,
    pub event: String,
    pub endpoint_id: String,
    pub request_bundle: String,
    pub response_bundle: String,
    pub service_request: String,
    pub received_at: i64,
}

impl Tx<'_> {
    /// The message `message_id` from `source`, if it was received before.
    pub fn message(
        &mut self,
        source: &str,
        message_id: &str,
    ) -> Result<Option<MessageRow>, TxError> {
        Ok(m::table
            .filter(m::source.eq(source))
            .filter(m::message_id.eq(message_id))
            .select(MessageRow::as_select())
            .load(self.conn)?
            .into_iter()
            .next())
    }

    /// Records a processed message.
    pub fn record_message(&mut self, row: &MessageRow) -> Result<(), TxError> {
        self.writing()?;
        diesel::insert_into(m::table)
            .values(row)
            .execute(self.conn)?;
        Ok(())
    }

    /// The message with `event` that brought referral `service_request` (the first).
    pub fn message_of_referral(
        &mut self,
        service_request: &str,
        event: &str,
    ) -> Result<Option<MessageRow>, TxError> {
        Ok(m::table
            .filter(m::service_request.eq(service_request))
            .filter(m::event.eq(event))
            .order(m::received_at)
            .select(MessageRow::as_select())
            // All of them (a referral has one or two), not `first()`: a bound LIMIT
            // makes SQLite prepare the statement again each time, for every Task write.
            .load(self.conn)?
            .into_iter()
            .next())
    }
}
