//! The outbox side of the after-write hook: every version written passes here in its
//! own unit of work. A Subscription's outbox row follows its resource; a Task or
//! ServiceRequest version records one event per Subscription whose topic it triggers
//! and whose filters it matches. What is written here commits with the version, or
//! not at all: a committed change always has its events, a rolled-back one none.

use std::sync::Arc;

use serde_json::Value;

use crate::app::principal::ClientRole;
use crate::fhir::criteria::parse_criteria;
use crate::fhir::registry;
use crate::notify;
use crate::store::{
    Change, ReadScope, SecretChange, StoredVersion, SubscriptionFacts, Tx, TxError, WriteHook,
};

/// The hook the application registers with the store.
pub struct OutboxHook {
    /// Wakes the delivery worker after a commit that recorded events.
    pub wake: Arc<tokio::sync::Notify>,
}

impl WriteHook for OutboxHook {
    fn after_write(
        &self,
        tx: &mut Tx<'_>,
        written: &StoredVersion,
        change: Change,
    ) -> Result<(), TxError> {
        match written.resource_type.as_str() {
            "Subscription" => follow_subscription(tx, written),
            "Endpoint" => super::messages::follow_endpoint(tx, written),
            "Task" if change != Change::Delete => {
                record_events(tx, written)?;
                super::messages::record_status(tx, written)
            }
            "ServiceRequest" if change != Change::Delete => record_events(tx, written),
            _ => Ok(()),
        }
    }

    fn committed(&self) {
        self.wake.notify_one();
    }
}

fn body(v: &StoredVersion) -> Option<Value> {
    v.body.as_deref().and_then(|b| serde_json::from_str(b).ok())
}

/// Keeps the outbox row of a Subscription in step with the version just written.
/// A client asks for (re-)activation with status `requested` (or `active` on a
/// Subscription that is not active): the row goes to `requested`, and the worker
/// handshakes, then sets `active`, resuming after the last event delivered. `off`
/// stops events and deliveries. The statuses the worker writes itself (`active`,
/// `error`) match the row already and change nothing.
fn follow_subscription(tx: &mut Tx<'_>, v: &StoredVersion) -> Result<(), TxError> {
    let Some(value) = body(v) else {
        return tx.remove_subscription(&v.id);
    };
    let Ok(spec) = notify::read_subscription(&value) else {
        // Writes are checked before they reach the store; a Subscription that does not
        // read (written by an older version) delivers nothing.
        tracing::warn!(subscription = %v.id, "stored Subscription does not read; delivery off");
        return tx.put_subscription(&SubscriptionFacts {
            id: &v.id,
            topic: "",
            resource_type: "",
            filter_query: "",
            status: "off",
            heartbeat_period: None,
            secret: SecretChange::Keep,
            restart: false,
        });
    };
    let row = tx.subscription_row(&v.id)?;
    let asked = spec.status.as_str();
    let (status, restart) = match (asked, row.as_ref().map(|r| r.status.as_str())) {
        ("off", _) => ("off", false),
        ("requested", Some("requested")) => ("requested", false),
        ("requested", _) => ("requested", true),
        (same, Some(current)) if same == current => (same, false),
        // `active` or `error` set by a client on a Subscription not in that state.
        _ => ("requested", true),
    };
    tx.put_subscription(&SubscriptionFacts {
        id: &v.id,
        topic: spec.topic.canonical,
        resource_type: spec.topic.resource_type,
        filter_query: &spec.filter_query,
        status,
        heartbeat_period: spec.heartbeat_period.map(i64::from),
        // The secret never reaches the stored body: the write path sets it.
        secret: SecretChange::Keep,
        restart,
    })
}

/// Records an event for each listening Subscription this version triggers.
fn record_events(tx: &mut Tx<'_>, v: &StoredVersion) -> Result<(), TxError> {
    let subscriptions = tx.listening_subscriptions(&v.resource_type)?;
    if subscriptions.is_empty() {
        return Ok(());
    }
    let current = body(v);
    let previous = match v.version_id {
        1 => None,
        n => tx
            .version_of(&v.resource_type, &v.id, n - 1)?
            .as_ref()
            .and_then(body),
    };
    let Some(def) = registry::resource(&v.resource_type) else {
        return Ok(());
    };
    for sub in subscriptions {
        let Some(topic) = notify::topic(&sub.topic) else {
            continue;
        };
        if !topic.triggers(previous.as_ref(), current.as_ref()) {
            continue;
        }
        // The grants the projection refreshes at the end of the unit, brought up to
        // date first: the event is narrowed by them.
        tx.settle_deferred()?;
        // A subscriber never learns of what it may not read: a Subscription a client
        // created is narrowed as the client's searches are (its organisation's
        // grants), the focus and every chained criterion of its filter alike.
        let creators = tx.creators_of("Subscription", &sub.id)?;
        let scope = match creators.as_slice() {
            [] => ReadScope::All,
            [one, ..] => crate::app::access::read_scope(ClientRole::Performer, one),
        };
        let query = if sub.filter_query.is_empty() {
            format!("_id={}", v.id)
        } else {
            format!("{}&_id={}", sub.filter_query, v.id)
        };
        // The search engine's own matching, on the index rows just written.
        let Ok(criteria) = parse_criteria(def, &query, &[]) else {
            continue;
        };
        let Some(criteria) = scope.narrow(&v.resource_type, &criteria) else {
            continue;
        };
        if !tx.find_ids(&v.resource_type, &criteria)?.contains(&v.id) {
            continue;
        }
        tx.record_event(&sub.id, v)?;
    }
    Ok(())
}
