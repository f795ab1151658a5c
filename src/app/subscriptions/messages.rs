//! Referral-status messages (profiles/README-message-intake.md) through the same outbox
//! and worker as notifications: a message sender's Endpoint (connectionType
//! hl7-fhir-msg) has an outbox row `Endpoint/<id>` on the topic
//! [`STATUS_CHANNEL`], kept in step with the Endpoint by the after-write hook; a change
//! of status, business status or owner of a Task of a referral that sender sent by a
//! referral-new message records an event on it, in the unit of work of the change. The
//! worker sends one message per event, in order, with the same leases, retries and
//! backoff as a Subscription's notifications; past the retry horizon the Endpoint goes
//! to `error`, and a client puts it back to `active` to resume.

use serde_json::Value;

use crate::fhir::instant::format_instant;
use crate::notify;
use crate::referral::access::local_ref;
use crate::referral::message::{
    outgoing_message, status_changed, Event, Outgoing, ENDPOINT_ROW_PREFIX, STATUS_CHANNEL,
};
use crate::store::{SecretChange, StoredVersion, SubscriptionFacts, SubscriptionRow, Tx, TxError};

fn body(v: &StoredVersion) -> Option<Value> {
    v.body.as_deref().and_then(|b| serde_json::from_str(b).ok())
}

/// The outbox row of Endpoint `id`.
pub fn row_id(endpoint_id: &str) -> String {
    format!("{ENDPOINT_ROW_PREFIX}{endpoint_id}")
}

/// The Endpoint whose outbox row this is, if it is one.
pub fn endpoint_of_row(row_id: &str) -> Option<&str> {
    row_id.strip_prefix(ENDPOINT_ROW_PREFIX)
}

/// Keeps the outbox row of an Endpoint in step with the version just written: a
/// messaging Endpoint that is `active` delivers (from `error`: a restart, resuming
/// after the last message delivered); `error` as the worker set it stays; any other
/// status, another connection type or a deletion stops it (deleted: the row goes).
pub fn follow_endpoint(tx: &mut Tx<'_>, v: &StoredVersion) -> Result<(), TxError> {
    let id = row_id(&v.id);
    let value = body(v);
    let messaging = value.as_ref().is_some_and(notify::is_messaging);
    let row = tx.subscription_row(&id)?;
    let Some(value) = value.filter(|_| messaging) else {
        if v.body.is_none() {
            return tx.remove_subscription(&id);
        }
        if row.is_some() {
            tx.set_subscription_status(&id, "off")?;
        }
        return Ok(());
    };
    let asked = value["status"].as_str().unwrap_or_default();
    let current = row.as_ref().map(|r| r.status.as_str());
    let (status, restart) = match (asked, current) {
        ("active", Some("active")) => ("active", false),
        ("active", _) => ("active", true),
        ("error", Some("error")) => ("error", false),
        _ => ("off", false),
    };
    tx.put_subscription(&SubscriptionFacts {
        id: &id,
        topic: STATUS_CHANNEL,
        resource_type: "Task",
        filter_query: "",
        status,
        heartbeat_period: None,
        secret: SecretChange::Keep,
        restart,
    })
}

/// Records a status message for the sender of the referral of this Task version, when
/// its status, business status or owner changed and the sender's Endpoint delivers.
pub fn record_status(tx: &mut Tx<'_>, v: &StoredVersion) -> Result<(), TxError> {
    let Some(task) = body(v) else {
        return Ok(());
    };
    let Some(sr) = task
        .pointer("/focus/reference")
        .and_then(Value::as_str)
        .and_then(local_ref)
        .filter(|(ty, _)| *ty == "ServiceRequest")
        .map(|(_, id)| id.to_owned())
    else {
        return Ok(());
    };
    let Some(message) = tx.message_of_referral(&sr, Event::New.code())? else {
        return Ok(());
    };
    let id = row_id(&message.endpoint_id);
    let listening = tx
        .subscription_row(&id)?
        .is_some_and(|r| matches!(r.status.as_str(), "active" | "error"));
    if !listening {
        return Ok(());
    }
    let previous = match v.version_id {
        1 => None,
        n => tx.version_of("Task", &v.id, n - 1)?.as_ref().and_then(body),
    };
    if status_changed(previous.as_ref(), &task) {
        tx.record_event(&id, v)?;
    }
    Ok(())
}

/// One status message, ready to send.
#[derive(Debug, Clone)]
pub struct MessageJob {
    pub through: i64,
    pub endpoint: notify::MessageEndpoint,
    pub bundle: Value,
    /// (type, id, version) of what the message discloses, for the audit trail.
    pub foci: Vec<(String, String, i64)>,
}

/// The next status message of an Endpoint's row (one per event, in order); `None`
/// when nothing is pending or the Endpoint is gone.
pub fn load_message(
    tx: &mut Tx<'_>,
    row: &SubscriptionRow,
    base: &str,
) -> Result<Option<MessageJob>, TxError> {
    let Some(endpoint_id) = endpoint_of_row(&row.id) else {
        return Ok(None);
    };
    let Some(value) = tx.current("Endpoint", endpoint_id)?.as_ref().and_then(body) else {
        return Ok(None);
    };
    let Ok(Some(endpoint)) = notify::read_message_endpoint(&value) else {
        return Ok(None);
    };
    if row.delivered_through >= row.events_since_start {
        return Ok(None);
    }
    let Some(event) = tx
        .subscription_events(
            &row.id,
            row.delivered_through + 1,
            row.events_since_start,
            1,
        )?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let Some(task) = tx
        .version_of(&event.focus_type, &event.focus_id, event.focus_version)?
        .as_ref()
        .and_then(body)
    else {
        // A version is never removed; skip what cannot be read rather than block.
        return Ok(Some(skipped(event.event_number, endpoint)));
    };
    let sr_id = task
        .pointer("/focus/reference")
        .and_then(Value::as_str)
        .and_then(local_ref)
        .map(|(_, id)| id.to_owned())
        .unwrap_or_default();
    let sr = tx.current("ServiceRequest", &sr_id)?;
    let Some(original) = tx.message_of_referral(&sr_id, Event::New.code())? else {
        return Ok(Some(skipped(event.event_number, endpoint)));
    };
    // Stable across retries: the receiver recognises a message delivered twice.
    let id = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("{base}/{}#{}", row.id, event.event_number).as_bytes(),
    )
    .to_string();
    let mut resources = vec![task];
    let mut foci = vec![(
        event.focus_type.clone(),
        event.focus_id.clone(),
        event.focus_version,
    )];
    if let Some(sr) = &sr {
        resources.extend(body(sr));
        foci.push(("ServiceRequest".to_owned(), sr.id.clone(), sr.version_id));
    }
    let bundle = outgoing_message(&Outgoing {
        id: &id,
        event: Event::Status,
        base,
        destination: &endpoint.address,
        response_to: &original.message_id,
        timestamp: &format_instant(event.at),
        resources: &resources,
    });
    Ok(Some(MessageJob {
        through: event.event_number,
        endpoint,
        bundle,
        foci,
    }))
}

/// An event with nothing to send: acknowledged as delivered with an empty Bundle
/// (`Value::Null`), so the events after it go out.
fn skipped(through: i64, endpoint: notify::MessageEndpoint) -> MessageJob {
    MessageJob {
        through,
        endpoint,
        bundle: Value::Null,
        foci: Vec::new(),
    }
}
