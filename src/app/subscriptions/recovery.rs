//! `$status` and `$events` on `Subscription/{id}` (Subscriptions Backport IG 1.1):
//! a receiver that missed notifications asks where the Subscription stands and
//! fetches the events it lacks, by number.

use serde_json::{json, Value};

use crate::app::error::AppError;
use crate::app::principal::Principal;
use crate::app::App;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::notify::{self, NotificationType, PayloadContent, StatusInfo};
use crate::store::{AuditRecord, Failure, Tx, TxError};

use super::worker::events_of;

/// Most events one `$events` answer holds.
const MAX_EVENTS: i64 = 1000;

/// The input parameters of `$events`.
#[derive(Debug, Default, Clone)]
pub struct EventsQuery {
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub content: Option<PayloadContent>,
}

impl EventsQuery {
    /// From `eventsSinceNumber`, `eventsUntilNumber` and `content` (query or
    /// Parameters body: the pairs are (name, value)).
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, AppError> {
        let mut q = Self::default();
        let number = |name: &str, v: &str| {
            v.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                AppError::bad_request(
                    IssueCode::Value,
                    format!("{name} must be a positive whole number, not '{v}'"),
                )
            })
        };
        for (name, value) in pairs {
            match name.as_str() {
                "eventsSinceNumber" => q.since = Some(number(name, value)?),
                "eventsUntilNumber" => q.until = Some(number(name, value)?),
                "content" => {
                    q.content = Some(match value.as_str() {
                        "empty" => PayloadContent::Empty,
                        "id-only" => PayloadContent::IdOnly,
                        "full-resource" => PayloadContent::FullResource,
                        other => {
                            return Err(AppError::bad_request(
                                IssueCode::Value,
                                format!("content must be empty, id-only or full-resource, not '{other}'"),
                            ))
                        }
                    });
                }
                "_format" | "_pretty" => {}
                other => {
                    return Err(AppError::bad_request(
                        IssueCode::NotSupported,
                        format!("$events takes eventsSinceNumber, eventsUntilNumber and content, not '{other}'"),
                    ))
                }
            }
        }
        Ok(q)
    }
}

fn not_found(id: &str) -> Failure<AppError> {
    Failure::Abort(AppError::not_found(format!(
        "Subscription/{id} does not exist"
    )))
}

fn audit(tx: &mut Tx<'_>, id: &str, interaction: &'static str) -> Result<(), TxError> {
    tx.audit(AuditRecord {
        action: "E",
        interaction,
        resource_type: "Subscription",
        resource_id: Some(id),
        version_id: None,
        outcome: "success",
    })
}

fn status_info(
    base: &str,
    row: &crate::store::SubscriptionRow,
    kind: NotificationType,
) -> StatusInfo {
    StatusInfo {
        subscription: format!("{base}/Subscription/{}", row.id),
        topic: row.topic.clone(),
        status: row.status.clone(),
        kind,
        events_since_start: row.events_since_start,
        error: row.last_error.clone(),
    }
}

/// `$status`: a searchset Bundle with the SubscriptionStatus (Parameters) of one
/// Subscription.
pub async fn status(
    app: &App,
    principal: &Principal,
    id: String,
    base: String,
) -> Result<Value, AppError> {
    crate::app::access::require(principal, "Subscription", crate::app::access::Need::Read)?;
    let result = app
        .store
        .transaction(principal.access(), move |tx| {
            if !tx.visible("Subscription", &id)? {
                return Err(not_found(&id));
            }
            let row = tx.subscription_row(&id)?.ok_or_else(|| not_found(&id))?;
            let payload = current_payload(tx, &id)?;
            audit(tx, &id, "operation:status")?;
            let info = status_info(&base, &row, NotificationType::QueryStatus);
            let parameters = notify::status_parameters(&info, &[], payload);
            Ok::<_, Failure<AppError>>(json!({
                "resourceType": "Bundle",
                "id": uuid::Uuid::new_v4().to_string(),
                "type": "searchset",
                "total": 1,
                "link": [{"relation": "self", "url": format!("{base}/Subscription/{id}/$status")}],
                "entry": [{
                    "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                    "resource": parameters,
                    "search": {"mode": "match"}
                }]
            }))
        })
        .await;
    Ok(result?)
}

/// `$events`: the events numbered `eventsSinceNumber..=eventsUntilNumber` (default:
/// all, at most 1000 from the first asked) as a `query-event` notification Bundle.
pub async fn events(
    app: &App,
    principal: &Principal,
    id: String,
    query: EventsQuery,
    base: String,
) -> Result<Value, AppError> {
    crate::app::access::require(principal, "Subscription", crate::app::access::Need::Read)?;
    let result = app
        .store
        .transaction(principal.access(), move |tx| {
            if !tx.visible("Subscription", &id)? {
                return Err(not_found(&id));
            }
            let row = tx.subscription_row(&id)?.ok_or_else(|| not_found(&id))?;
            let payload = match query.content {
                Some(p) => p,
                None => current_payload(tx, &id)?,
            };
            let since = query.since.unwrap_or(1);
            let until = query.until.unwrap_or(row.events_since_start);
            // Only the numbers the client gave can contradict each other; asking from
            // past the last event (a receiver that is caught up) finds none.
            if matches!((query.since, query.until), (Some(s), Some(u)) if u < s) {
                return Err(Failure::Abort(AppError::invalid(vec![Issue::error(
                    IssueCode::Value,
                    "eventsUntilNumber is below eventsSinceNumber",
                )
                .at("eventsUntilNumber")])));
            }
            let rows = tx.subscription_events(&id, since, until, MAX_EVENTS)?;
            let events = events_of(tx, &rows, payload)?;
            audit(tx, &id, "operation:events")?;
            let info = status_info(&base, &row, NotificationType::QueryEvent);
            Ok(notify::notification_bundle(&base, &info, &events, payload))
        })
        .await;
    Ok(result?)
}

fn current_payload(tx: &mut Tx<'_>, id: &str) -> Result<PayloadContent, Failure<AppError>> {
    let spec = tx
        .current("Subscription", id)?
        .and_then(|v| v.body)
        .and_then(|b| serde_json::from_str::<Value>(&b).ok())
        .and_then(|v| notify::read_subscription(&v).ok());
    Ok(spec.map_or(PayloadContent::IdOnly, |s| s.payload))
}
