//! POST /fhir/$process-message: a referral delivered as a FHIR message (messaging.html),
//! the way messaging standards in the style of the NHS Booking and Referral Standard
//! send it. The MessageHeader is read (`referral::message`), the sender is found by its
//! registered Endpoint, and the event is carried out in one unit of work with storing
//! the message as received and the response message, which is the synchronous answer.
//! A referral-new message's resources are written as the equivalent transaction (as a
//! document's, [`document::transaction_of`]); referral-update replaces the stored
//! ServiceRequest; referral-cancel cancels the open Task as its requester. The key
//! (source endpoint, MessageHeader.id) makes a message delivered again get its first
//! response. Later status changes go to the sender as referral-status messages through
//! the outbox (`app::subscriptions`). The mapping: profiles/README-message-intake.md.

use serde_json::{json, Value};

use crate::app::access::{require, Need};
use crate::app::bundle::Plan;
use crate::app::document;
use crate::app::error::{AppError, ErrorKind};
use crate::app::principal::{ClientRole, Principal, Role};
use crate::app::reply::{self, status, Reply, ReturnPref};
use crate::app::resources::{check_valid, WriteRequest};
use crate::app::routing::open_tasks;
use crate::app::workflow::{update_task, Workflow};
use crate::app::write::run_write;
use crate::app::App;
use crate::fhir::index::index_rows;
use crate::fhir::instant::{format_instant, now_micros};
use crate::fhir::outcome::{Details, Issue, IssueCode};
use crate::fhir::references::parse_local;
use crate::fhir::registry;
use crate::fhir::resource::IncomingResource;
use crate::referral::message::{
    business_identifier, outgoing_message, read_header, Event, Header, Outgoing,
    CONNECTION_FHIR_MSG, CS_RESPONSE_CODE,
};
use crate::store::query::{Match, SystemMatch};
use crate::store::{Criterion, Failure, MessageRow, StoredVersion, Tx};

/// The parameters of `$process-message` besides the message.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `async`: only synchronous processing is offered.
    pub asynchronous: Option<String>,
    /// `response-url`: responses go to the registered Endpoint only.
    pub response_url: Option<String>,
}

/// `issue.details` of a refusal: the message's content (the sender's) caused it.
pub const SENDER_CAUSED: Details = Details {
    system: CS_RESPONSE_CODE,
    code: "fatal-error",
    text: "Refused because of the message's content, the sender's to correct; the same message again is refused again",
};

/// `issue.details` of a failure of the hub itself (5xx): nothing was processed.
pub const RECEIVER_CAUSED: Details = Details {
    system: CS_RESPONSE_CODE,
    code: "transient-error",
    text: "The hub could not process the message now (its own failure); send the same message again later",
};

/// Says in every issue which party caused a refusal: the sender (`fatal-error`, 4xx)
/// or the hub (`transient-error`, 5xx: the same message may be sent again unchanged).
fn senders(mut e: AppError) -> AppError {
    let cause = match e.kind {
        ErrorKind::Internal | ErrorKind::Unavailable => RECEIVER_CAUSED,
        _ => SENDER_CAUSED,
    };
    for issue in &mut e.issues {
        issue.details.get_or_insert_with(|| cause.clone());
    }
    e
}

/// Processes a message; the answer is the response message (200) or an
/// OperationOutcome whose issues say the sender caused the refusal.
pub async fn process(
    app: &App,
    principal: &Principal,
    incoming: IncomingResource,
    options: Options,
    req: WriteRequest,
) -> Result<Reply, AppError> {
    prepare_and_run(app, principal, incoming, options, req)
        .await
        .map_err(senders)
}

async fn prepare_and_run(
    app: &App,
    principal: &Principal,
    incoming: IncomingResource,
    options: Options,
    req: WriteRequest,
) -> Result<Reply, AppError> {
    only_referrers(principal)?;
    require(principal, "Bundle", Need::Create)?;
    check_options(&options)?;
    let header = read_header(&incoming.value).map_err(|r| {
        if r.unprocessable {
            AppError::unprocessable(vec![r.issue])
        } else {
            AppError::invalid(vec![r.issue])
        }
    })?;
    check_entries(&incoming.value)?;
    let focus = incoming.value["entry"][header.focus_entry]["resource"].clone();
    let identifier = business_identifier(&focus);
    let focus_at = format!("Bundle.entry[{}].resource.identifier", header.focus_entry);
    if header.event != Event::New && identifier.is_none() {
        return Err(AppError::invalid(vec![Issue::error(
            IssueCode::Required,
            format!(
                "A {} message names the referral by the ServiceRequest's identifier (with a system)",
                header.event.code()
            ),
        )
        .at(&focus_at)]));
    }
    let plan = match header.event {
        Event::New | Event::Update => {
            let tx_bundle = transaction_of(&incoming.value, &header)?;
            let raw = serde_json::to_vec(&tx_bundle).map_err(|e| AppError::internal(&e))?;
            let plan = Plan::new(&tx_bundle, &raw, app.max_bundle_entries).map_err(|mut e| {
                if e.kind == ErrorKind::NotFound {
                    e.kind = ErrorKind::Unprocessable;
                }
                document::shift(e)
            })?;
            plan.require(principal).map_err(document::shift)?;
            Some(plan)
        }
        Event::Cancel => {
            require(principal, "Task", Need::Update)?;
            None
        }
        Event::Status => None,
    };
    let def = registry::resource("Bundle").ok_or_else(|| AppError::internal(&"no Bundle"))?;
    let rows = index_rows(def, &incoming.value);
    let received = document::without_id_and_meta(&incoming.value);
    let wf = Workflow::new(app, principal);
    let organization = match principal.role {
        Role::Client(_) => principal.organization.clone(),
        _ => None,
    };
    let base = req.base;
    let request_id = uuid::Uuid::new_v4().to_string();
    run_write(app, principal, req.idempotency, move |tx| {
        tx.lock(&format!("message:{}|{}", header.source, header.id))?;
        if let Some(earlier) = tx.message(&header.source, &header.id)? {
            return replay(tx, &earlier, &received, &base);
        }
        let endpoint = sender_endpoint(tx, &header.source, organization.as_deref(), &base)?;
        let (sr_id, tasks) = match header.event {
            Event::New | Event::Update => {
                if let (Event::Update, Some(key)) = (header.event, &identifier) {
                    if referral_by_identifier(tx, key)?.is_none() {
                        return Err(Failure::Abort(no_referral(key, &focus_at)));
                    }
                }
                let Some(plan) = &plan else {
                    return Err(Failure::Abort(AppError::internal(&"no plan")));
                };
                let answer = plan
                    .run(tx, &base, ReturnPref::Minimal, Some(&wf))
                    .map_err(|f| match f {
                        Failure::Abort(e) => Failure::Abort(document::shift(e)),
                        other => other,
                    })?;
                let sr_id = written_id(&answer, header.focus_entry - 1, &base)
                    .ok_or_else(|| Failure::Abort(AppError::internal(&"no ServiceRequest")))?;
                // Matched by identifier to a referral another organisation sent: its
                // status is not this sender's to hear.
                if !tx.visible("ServiceRequest", &sr_id)? {
                    return Err(Failure::Abort(AppError::one(
                        ErrorKind::Conflict,
                        Issue::error(
                            IssueCode::Duplicate,
                            "A referral with this identifier was received from another organisation",
                        )
                        .at(&focus_at),
                    )));
                }
                let tasks = open_tasks(tx, &sr_id)?.into_iter().collect::<Vec<_>>();
                (sr_id, tasks)
            }
            Event::Cancel => {
                let key = identifier
                    .as_ref()
                    .ok_or_else(|| Failure::Abort(AppError::internal(&"no identifier")))?;
                let Some(sr_id) = referral_by_identifier(tx, key)? else {
                    return Err(Failure::Abort(no_referral(key, &focus_at)));
                };
                let tasks = cancel(tx, &wf, &sr_id, &header, &base)?;
                (sr_id, tasks)
            }
            Event::Status => {
                return Err(Failure::Abort(AppError::internal(&"status is outgoing")));
            }
        };
        let request = tx.create(
            "Bundle",
            &request_id,
            &|v, at| incoming.render(&request_id, v, at),
            &rows,
        )?;
        let mut carried = Vec::new();
        if let Some(v) = tx.current("ServiceRequest", &sr_id)? {
            carried.extend(body_of(&v));
        }
        for task in &tasks {
            if let Some(v) = tx.current("Task", task)? {
                carried.extend(body_of(&v));
            }
        }
        let response_id = crate::fhir::resource::new_logical_id();
        let response = outgoing_message(&Outgoing {
            id: &response_id,
            event: header.event,
            base: &base,
            destination: &header.source,
            response_to: &header.id,
            timestamp: &format_instant(now_micros()),
            resources: &carried,
        });
        let stored = store_bundle(tx, &response_id, &response)?;
        tx.record_message(&MessageRow {
            source: header.source.clone(),
            message_id: header.id.clone(),
            event: header.event.code().to_owned(),
            endpoint_id: endpoint,
            request_bundle: request.id.clone(),
            response_bundle: stored.id.clone(),
            service_request: sr_id,
            received_at: now_micros(),
        })?;
        Ok(answer(&stored, &base))
    })
    .await
}

/// With authentication on, only referrer clients send messages (and documents).
pub fn only_referrers(principal: &Principal) -> Result<(), AppError> {
    match principal.role {
        Role::Client(ClientRole::Referrer) => Ok(()),
        Role::Client(_) => Err(AppError::one(
            ErrorKind::Forbidden,
            Issue::error(
                IssueCode::Forbidden,
                "Referrals arrive as documents and messages from referrer clients only",
            ),
        )),
        _ => Ok(()),
    }
}

fn check_options(options: &Options) -> Result<(), AppError> {
    if options
        .asynchronous
        .as_deref()
        .is_some_and(|a| a != "false")
    {
        return Err(AppError::unprocessable(vec![Issue::error(
            IssueCode::NotSupported,
            "This hub processes messages synchronously only (async=false): the response message is the answer, and status changes follow as referral-status messages",
        )
        .at("http.async")]));
    }
    if options.response_url.is_some() {
        return Err(AppError::unprocessable(vec![Issue::error(
            IssueCode::NotSupported,
            "response-url is not honoured: response messages go only to the Endpoint the sender registered for its MessageHeader.source.endpoint",
        )
        .at("http.response-url")]));
    }
    Ok(())
}

/// Every entry after the MessageHeader carries a valid resource the hub stores.
fn check_entries(bundle: &Value) -> Result<(), AppError> {
    let entries = bundle["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, e) in entries.iter().enumerate() {
        let Some(r) = e.get("resource").filter(|r| r.is_object()) else {
            return Err(AppError::invalid(vec![Issue::error(
                IssueCode::Required,
                "Every entry of a message carries a resource",
            )
            .at(format!("Bundle.entry[{i}].resource"))]));
        };
        let ty = r.get("resourceType").and_then(Value::as_str).unwrap_or("");
        check_valid(ty, r).map_err(|e| document::at_entry(i, e))?;
    }
    Ok(())
}

/// The transaction a referral-new or referral-update message stands for: as a
/// document's (entries after the first, conditional creates by BSN, AGB and the
/// referral's identifier); for an update the ServiceRequest replaces the stored one
/// (`PUT ServiceRequest?identifier=...`).
fn transaction_of(bundle: &Value, header: &Header) -> Result<Value, AppError> {
    let mut tx = document::transaction_of(bundle)?;
    if header.event == Event::Update {
        let entry = &mut tx["entry"][header.focus_entry - 1];
        let key = business_identifier(&entry["resource"]).unwrap_or_default();
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("identifier", &format!("{}|{}", key.0, key.1))
            .finish();
        entry["request"] = json!({"method": "PUT", "url": format!("ServiceRequest?{query}")});
    }
    Ok(tx)
}

/// The stored ServiceRequest with this business identifier.
fn referral_by_identifier(
    tx: &mut Tx<'_>,
    (system, value): &(String, String),
) -> Result<Option<String>, Failure<AppError>> {
    let criterion = Criterion::Any(vec![Match::Token {
        param: "identifier".to_owned(),
        system: SystemMatch::Exactly(system.clone()),
        code: Some(value.clone()),
    }]);
    // Another organisation's referral is not found (as a read would not find it).
    for id in tx.find_ids("ServiceRequest", &[criterion])? {
        if tx.visible("ServiceRequest", &id)? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

fn no_referral((system, value): &(String, String), at: &str) -> AppError {
    AppError::unprocessable(vec![Issue::error(
        IssueCode::BusinessRule,
        format!("No referral with identifier {system}|{value} was received: send it first (referral-new)"),
    )
    .at(at)])
}

/// The registered, active messaging Endpoint whose address is `source` (of the
/// client's organisation when authentication is on): its id.
fn sender_endpoint(
    tx: &mut Tx<'_>,
    source: &str,
    organization: Option<&str>,
    base: &str,
) -> Result<String, Failure<AppError>> {
    let criteria = [
        Criterion::Any(vec![Match::Token {
            param: "connection-type".to_owned(),
            system: SystemMatch::Any,
            code: Some(CONNECTION_FHIR_MSG.to_owned()),
        }]),
        Criterion::Any(vec![Match::Token {
            param: "status".to_owned(),
            system: SystemMatch::Any,
            code: Some("active".to_owned()),
        }]),
    ];
    for id in tx.find_ids("Endpoint", &criteria)? {
        let Some(body) = tx.current("Endpoint", &id)?.as_ref().and_then(body_of) else {
            continue;
        };
        if body.get("address").and_then(Value::as_str) != Some(source) {
            continue;
        }
        let manager = body
            .pointer("/managingOrganization/reference")
            .and_then(Value::as_str)
            .and_then(|r| parse_local(r, base))
            .map(|(ty, id)| format!("{ty}/{id}"));
        if organization.is_none() || organization == manager.as_deref() {
            return Ok(id);
        }
    }
    let whose = match organization {
        Some(org) => format!(" managed by {org}"),
        None => String::new(),
    };
    Err(Failure::Abort(AppError::unprocessable(vec![Issue::error(
        IssueCode::BusinessRule,
        format!(
            "No active Endpoint{whose} with connectionType hl7-fhir-msg has address '{source}': register the sender's Endpoint first (POST /fhir/Endpoint); status messages go there"
        ),
    )
    .at("Bundle.entry[0].resource.source.endpoint")])))
}

/// Cancels the referral's open Tasks as its requester (work in progress: a request
/// the owner confirms); the Tasks touched.
fn cancel(
    tx: &mut Tx<'_>,
    wf: &Workflow,
    sr_id: &str,
    header: &Header,
    base: &str,
) -> Result<Vec<String>, Failure<AppError>> {
    let tasks: Vec<String> = open_tasks(tx, sr_id)?.into_iter().collect();
    if tasks.is_empty() {
        return Err(Failure::Abort(AppError::unprocessable(vec![Issue::error(
            IssueCode::BusinessRule,
            format!("Referral ServiceRequest/{sr_id} has no open Task to cancel (it was completed, cancelled or rejected before)"),
        )
        .at("Bundle.entry[0].resource.focus")])));
    }
    let reason = header
        .reason
        .clone()
        .unwrap_or_else(|| format!("Cancelled by the referrer's message {}", header.id));
    for id in &tasks {
        let Some(current) = tx.current("Task", id)? else {
            continue;
        };
        let Some(mut task) = body_of(&current) else {
            continue;
        };
        task["status"] = json!("cancelled");
        task["statusReason"] = json!({"text": reason});
        let text = serde_json::to_vec(&task).map_err(|e| Failure::Abort(AppError::internal(&e)))?;
        let incoming = IncomingResource::parse(&text)
            .map_err(|i| Failure::Abort(AppError::internal(&i.diagnostics)))?;
        update_task(
            tx,
            wf,
            id,
            &incoming,
            Some(current.version_id),
            base,
            |_| Ok(()),
        )?;
    }
    Ok(tasks)
}

/// The same message again: its first response; another message with that key: 409.
fn replay(
    tx: &mut Tx<'_>,
    earlier: &MessageRow,
    received: &Value,
    base: &str,
) -> Result<Reply, Failure<AppError>> {
    let stored = tx
        .current("Bundle", &earlier.request_bundle)?
        .as_ref()
        .and_then(body_of)
        .map(|b| document::without_id_and_meta(&b));
    if stored.as_ref() != Some(received) {
        return Err(Failure::Abort(AppError::one(
            ErrorKind::Conflict,
            Issue::error(
                IssueCode::Duplicate,
                "A different message with this MessageHeader.id was received from this source endpoint before; a message id is never reused",
            )
            .at("Bundle.entry[0].resource.id"),
        )));
    }
    let response = tx
        .current("Bundle", &earlier.response_bundle)?
        .ok_or_else(|| Failure::Abort(AppError::internal(&"the response is gone")))?;
    Ok(answer(&response, base))
}

fn answer(response: &StoredVersion, base: &str) -> Reply {
    reply::resource(
        status::OK,
        response,
        base,
        ReturnPref::Representation,
        false,
    )
}

/// Stores a Bundle the hub built (a response or status message) under `id`.
pub(crate) fn store_bundle(
    tx: &mut Tx<'_>,
    id: &str,
    bundle: &Value,
) -> Result<StoredVersion, Failure<AppError>> {
    let text = serde_json::to_vec(bundle).map_err(|e| Failure::Abort(AppError::internal(&e)))?;
    let incoming = IncomingResource::parse(&text)
        .map_err(|i| Failure::Abort(AppError::internal(&i.diagnostics)))?;
    let def = registry::resource("Bundle")
        .ok_or_else(|| Failure::Abort(AppError::internal(&"no Bundle")))?;
    let rows = index_rows(def, &incoming.value);
    Ok(tx.create("Bundle", id, &|v, at| incoming.render(id, v, at), &rows)?)
}

/// The id written for transaction entry `index` (from its `response.location`).
fn written_id(answer: &Reply, index: usize, base: &str) -> Option<String> {
    let body: Value = serde_json::from_str(answer.body.as_deref()?).ok()?;
    let location = body["entry"][index]["response"]["location"].as_str()?;
    let (ty, id) = parse_local(location, base)?;
    (ty == "ServiceRequest").then_some(id)
}

fn body_of(v: &StoredVersion) -> Option<Value> {
    v.body.as_deref().and_then(|b| serde_json::from_str(b).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_party_that_caused_it() {
        let sender = senders(AppError::invalid(vec![Issue::error(
            IssueCode::Required,
            "x",
        )]));
        assert_eq!(
            sender.issues[0].details.as_ref().map(|d| d.code),
            Some("fatal-error")
        );
        let hub = senders(AppError::internal(&"disk full"));
        assert!(hub.issues.iter().all(|i| i
            .details
            .as_ref()
            .is_some_and(|d| d.code == "transient-error")));
        assert!(!hub.issues.is_empty());
    }
}
