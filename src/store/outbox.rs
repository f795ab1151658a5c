//! The notification outbox (README "Notifications"): per Subscription its delivery
//! state, and the events the after-write hook records in the unit of work of the
//! change that causes them. This module stores rows; what a topic or filter means is
//! the application's (`app::notify`).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::db::DbConnection;
use super::schema::{subscription_events as ev, subscription_state as st};
use super::tx::{Tx, TxError};
use super::types::StoredVersion;

/// A Subscription's row in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = st)]
pub struct SubscriptionRow {
    pub id: String,
    pub topic: String,
    pub resource_type: String,
    pub filter_query: String,
    pub status: String,
    /// The last event number handed out.
    pub events_since_start: i64,
    /// Every event up to this number was delivered.
    pub delivered_through: i64,
    pub next_attempt_at: i64,
    pub attempts: i32,
    pub failing_since: Option<i64>,
    pub last_error: Option<String>,
    pub heartbeat_period: Option<i64>,
    pub last_sent_at: i64,
    pub lease_owner: Option<String>,
    pub lease_until: i64,
    pub secret: Option<String>,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = ev)]
pub struct EventRow {
    pub subscription_id: String,
    pub event_number: i64,
    pub at: i64,
    pub focus_type: String,
    pub focus_id: String,
    pub focus_version: i64,
}

/// What a Subscription write does to its signing secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretChange {
    Set(String),
    Keep,
    Clear,
}

/// The outbox facts of a stored Subscription (the hook derives them from its body).
#[derive(Debug, Clone)]
pub struct SubscriptionFacts<'a> {
    pub id: &'a str,
    pub topic: &'a str,
    pub resource_type: &'a str,
    pub filter_query: &'a str,
    pub status: &'a str,
    pub heartbeat_period: Option<i64>,
    pub secret: SecretChange,
    /// A (re-)activation: failed attempts are forgotten and delivery starts at once
    /// (with a handshake), from the first event not yet delivered.
    pub restart: bool,
}

/// How a delivery attempt ended, as the worker records it.
#[derive(Debug, Clone)]
pub enum Attempt {
    /// Delivered through this event number (the same number when nothing was pending:
    /// a handshake or heartbeat).
    Delivered { through: i64, at: i64 },
    /// Failed; the next attempt not before `retry_at`.
    Failed {
        at: i64,
        retry_at: i64,
        error: String,
    },
}

/// Something to deliver now: a handshake, pending events or a heartbeat due, no
/// attempt scheduled later, and no lease of another instance. The one bind parameter
/// is the claiming instance (`now` is a number, written into the text).
fn due_condition(conn: &DbConnection, now: i64) -> String {
    let owner = match conn {
        DbConnection::Postgres(_) => "$1",
        DbConnection::Sqlite(_) => "?",
    };
    format!(
        "status IN ('requested', 'active') AND next_attempt_at <= {now} \
         AND (lease_until < {now} OR lease_owner = {owner}) \
         AND (status = 'requested' OR delivered_through < events_since_start \
              OR (heartbeat_period IS NOT NULL \
                  AND last_sent_at + heartbeat_period * 1000000 <= {now}))"
    )
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    id: String,
}

impl Tx<'_> {
    /// The Subscriptions that record events about `resource_type` now: those being
    /// handshaken, active, or in error (an error is resumed from where it stopped).
    pub fn listening_subscriptions(
        &mut self,
        resource_type: &str,
    ) -> Result<Vec<SubscriptionRow>, TxError> {
        Ok(st::table
            .filter(st::resource_type.eq(resource_type))
            .filter(st::status.eq_any(["requested", "active", "error"]))
            .select(SubscriptionRow::as_select())
            .load(self.conn)?)
    }

    /// The outbox row of Subscription `id`.
    pub fn subscription_row(&mut self, id: &str) -> Result<Option<SubscriptionRow>, TxError> {
        Ok(st::table
            .find(id)
            .select(SubscriptionRow::as_select())
            .load(self.conn)?
            .into_iter()
            .next())
    }

    /// Records the next event of Subscription `subscription` about version `v`, and
    /// asks for the delivery worker to wake after the commit. Returns its number.
    pub fn record_event(&mut self, subscription: &str, v: &StoredVersion) -> Result<i64, TxError> {
        self.writing()?;
        diesel::update(st::table.find(subscription))
            .set(st::events_since_start.eq(st::events_since_start + 1))
            .execute(self.conn)?;
        let number: i64 = st::table
            .find(subscription)
            .select(st::events_since_start)
            .load(self.conn)?
            .into_iter()
            .next()
            .ok_or(diesel::result::Error::NotFound)?;
        diesel::insert_into(ev::table)
            .values((
                ev::subscription_id.eq(subscription),
                ev::event_number.eq(number),
                ev::at.eq(v.last_updated),
                ev::focus_type.eq(&v.resource_type),
                ev::focus_id.eq(&v.id),
                ev::focus_version.eq(v.version_id),
            ))
            .execute(self.conn)?;
        self.wake_after_commit();
        Ok(number)
    }

    /// Creates or updates the outbox row of a Subscription just written.
    pub fn put_subscription(&mut self, f: &SubscriptionFacts<'_>) -> Result<(), TxError> {
        self.writing()?;
        let exists = st::table.find(f.id).count().get_result::<i64>(self.conn)? > 0;
        if !exists {
            diesel::insert_into(st::table)
                .values((
                    st::id.eq(f.id),
                    st::topic.eq(f.topic),
                    st::resource_type.eq(f.resource_type),
                    st::filter_query.eq(f.filter_query),
                    st::status.eq(f.status),
                    st::heartbeat_period.eq(f.heartbeat_period),
                    st::secret.eq(match &f.secret {
                        SecretChange::Set(s) => Some(s.as_str()),
                        SecretChange::Keep | SecretChange::Clear => None,
                    }),
                ))
                .execute(self.conn)?;
        } else {
            diesel::update(st::table.find(f.id))
                .set((
                    st::topic.eq(f.topic),
                    st::resource_type.eq(f.resource_type),
                    st::filter_query.eq(f.filter_query),
                    st::status.eq(f.status),
                    st::heartbeat_period.eq(f.heartbeat_period),
                ))
                .execute(self.conn)?;
            match &f.secret {
                SecretChange::Keep => {}
                SecretChange::Set(s) => {
                    diesel::update(st::table.find(f.id))
                        .set(st::secret.eq(Some(s.as_str())))
                        .execute(self.conn)?;
                }
                SecretChange::Clear => {
                    diesel::update(st::table.find(f.id))
                        .set(st::secret.eq(None::<String>))
                        .execute(self.conn)?;
                }
            }
        }
        if f.restart {
            diesel::update(st::table.find(f.id))
                .set((
                    st::attempts.eq(0),
                    st::failing_since.eq(None::<i64>),
                    st::last_error.eq(None::<String>),
                    st::next_attempt_at.eq(0_i64),
                ))
                .execute(self.conn)?;
            self.wake_after_commit();
        }
        Ok(())
    }

    /// Sets, keeps or clears the signing secret of Subscription `id` (its row exists:
    /// the hook made it when the version was written).
    pub fn set_subscription_secret(
        &mut self,
        id: &str,
        secret: &SecretChange,
    ) -> Result<(), TxError> {
        self.writing()?;
        let value = match secret {
            SecretChange::Keep => return Ok(()),
            SecretChange::Set(s) => Some(s.as_str()),
            SecretChange::Clear => None,
        };
        diesel::update(st::table.find(id))
            .set(st::secret.eq(value))
            .execute(self.conn)?;
        Ok(())
    }

    /// Forgets a deleted Subscription: its row and events.
    pub fn remove_subscription(&mut self, id: &str) -> Result<(), TxError> {
        self.writing()?;
        diesel::delete(ev::table.filter(ev::subscription_id.eq(id))).execute(self.conn)?;
        diesel::delete(st::table.find(id)).execute(self.conn)?;
        Ok(())
    }

    /// Whether any Subscription has something to deliver now that `owner` may claim (a
    /// read: the worker claims, which writes, only then).
    pub fn anything_due(&mut self, owner: &str, now: i64) -> Result<bool, TxError> {
        let sql = format!(
            "SELECT id FROM subscription_state WHERE {} LIMIT 1",
            due_condition(self.conn, now)
        );
        let found: Vec<IdRow> = diesel::sql_query(sql)
            .bind::<Text, _>(owner)
            .load(self.conn)?;
        Ok(!found.is_empty())
    }

    /// Claims up to `limit` Subscriptions with something to deliver now (a handshake,
    /// pending events, a heartbeat due) for `owner` until `lease_until`. On PostgreSQL
    /// rows another instance is claiming are skipped (`FOR UPDATE SKIP LOCKED`); a
    /// lease another instance holds is respected until it expires.
    pub fn claim_due(
        &mut self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<SubscriptionRow>, TxError> {
        self.writing()?;
        let condition = due_condition(self.conn, now);
        let ids: Vec<IdRow> = match self.conn {
            DbConnection::Postgres(_) => diesel::sql_query(format!(
                "SELECT id FROM subscription_state WHERE {condition} ORDER BY next_attempt_at \
                 LIMIT $2 FOR UPDATE SKIP LOCKED"
            ))
            .bind::<Text, _>(owner)
            .bind::<BigInt, _>(limit)
            .load(self.conn)?,
            // One writer at a time: the lease below is taken before anyone else looks.
            DbConnection::Sqlite(_) => diesel::sql_query(format!(
                "SELECT id FROM subscription_state WHERE {condition} ORDER BY next_attempt_at LIMIT ?"
            ))
            .bind::<Text, _>(owner)
            .bind::<BigInt, _>(limit)
            .load(self.conn)?,
        };
        let ids: Vec<String> = ids.into_iter().map(|r| r.id).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        diesel::update(st::table.filter(st::id.eq_any(&ids)))
            .set((
                st::lease_owner.eq(Some(owner)),
                st::lease_until.eq(lease_until),
            ))
            .execute(self.conn)?;
        Ok(st::table
            .filter(st::id.eq_any(&ids))
            .select(SubscriptionRow::as_select())
            .load(self.conn)?)
    }

    /// Events of `subscription` numbered `from..=to`, in order, at most `limit`.
    pub fn subscription_events(
        &mut self,
        subscription: &str,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, TxError> {
        Ok(ev::table
            .filter(ev::subscription_id.eq(subscription))
            .filter(ev::event_number.ge(from))
            .filter(ev::event_number.le(to))
            .order(ev::event_number.asc())
            .limit(limit)
            .select(EventRow::as_select())
            .load(self.conn)?)
    }

    /// Records an attempt of `owner`, and releases its lease. `false`: the lease was
    /// lost meanwhile (another instance took over), and nothing was recorded.
    pub fn finish_attempt(
        &mut self,
        subscription: &str,
        owner: &str,
        attempt: &Attempt,
    ) -> Result<bool, TxError> {
        self.writing()?;
        let mine = st::table
            .find(subscription)
            .filter(st::lease_owner.eq(owner))
            .select(st::delivered_through)
            .first::<i64>(self.conn)
            .optional()?;
        let Some(delivered) = mine else {
            return Ok(false);
        };
        let target = st::table.find(subscription);
        match attempt {
            Attempt::Delivered { through, at } => {
                diesel::update(target)
                    .set((
                        st::delivered_through.eq(delivered.max(*through)),
                        st::attempts.eq(0),
                        st::failing_since.eq(None::<i64>),
                        st::last_error.eq(None::<String>),
                        st::last_sent_at.eq(*at),
                        st::next_attempt_at.eq(0_i64),
                        st::lease_owner.eq(None::<String>),
                        st::lease_until.eq(0_i64),
                    ))
                    .execute(self.conn)?;
            }
            Attempt::Failed {
                at,
                retry_at,
                error,
            } => {
                diesel::update(target)
                    .set((
                        st::attempts.eq(st::attempts + 1),
                        st::last_error.eq(Some(error.as_str())),
                        st::next_attempt_at.eq(*retry_at),
                        st::lease_owner.eq(None::<String>),
                        st::lease_until.eq(0_i64),
                    ))
                    .execute(self.conn)?;
                diesel::update(target.filter(st::failing_since.is_null()))
                    .set(st::failing_since.eq(Some(*at)))
                    .execute(self.conn)?;
            }
        }
        Ok(true)
    }

    /// Sets the status the worker decided (active after a handshake, error after the
    /// retry horizon); the Subscription resource gets the same status in this unit.
    pub fn set_subscription_status(&mut self, id: &str, status: &str) -> Result<(), TxError> {
        self.writing()?;
        diesel::update(st::table.find(id))
            .set(st::status.eq(status))
            .execute(self.conn)?;
        Ok(())
    }
}
