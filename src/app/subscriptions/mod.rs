//! Notifications (R4 Subscriptions Backport IG 1.1): the rules a Subscription write
//! checks, the outbox hook, the delivery worker, and `$status` / `$events`. The topics,
//! the reading of a Subscription and the notification Bundles are the domain's
//! (`crate::notify`); the outbox tables are the store's.

mod hook;
mod messages;
mod recovery;
mod worker;

use serde_json::Value;

pub use hook::OutboxHook;
pub use recovery::{events, status, EventsQuery};
pub use worker::{spawn_delivery, DeliverySettings};

use crate::app::error::AppError;
use crate::fhir::criteria::parse_criteria;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::registry;
use crate::fhir::resource::IncomingResource;
use crate::notify;
use crate::store::SecretChange;

/// The business rules of a Subscription (422): it reads as a backport Subscription on
/// one of this hub's topics, and its filters are searches the topic's type supports.
pub fn check(resource: &Value) -> Vec<Issue> {
    let spec = match notify::read_subscription(resource) {
        Ok(spec) => spec,
        Err(issues) => return issues,
    };
    let Some(def) = registry::resource(spec.topic.resource_type) else {
        return Vec::new();
    };
    if spec.filter_query.is_empty() {
        return Vec::new();
    }
    match parse_criteria(def, &spec.filter_query, &[]) {
        Ok(_) => Vec::new(),
        Err(issue) => vec![Issue::error(
            IssueCode::BusinessRule,
            format!(
                "The filter cannot be honoured: {} ({})",
                issue.diagnostics, spec.filter_query
            ),
        )
        .at("Subscription.criteria.extension")],
    }
}

/// A Subscription's signing secret never reaches the stored body: it is replaced by
/// `********` there and kept in the outbox. Other types pass unchanged (`None`).
pub fn take_secret(
    resource_type: &str,
    incoming: IncomingResource,
) -> Result<(IncomingResource, Option<SecretChange>), AppError> {
    if resource_type != "Subscription" {
        return Ok((incoming, None));
    }
    let spec = notify::read_subscription(&incoming.value).map_err(AppError::unprocessable)?;
    let change = match (spec.signing_secret, spec.keep_secret) {
        (Some(secret), _) => SecretChange::Set(secret),
        (None, true) => SecretChange::Keep,
        (None, false) => SecretChange::Clear,
    };
    let mut value = incoming.value.clone();
    if !notify::redact_secret(&mut value) {
        return Ok((incoming, Some(change)));
    }
    let text = serde_json::to_vec(&value).map_err(|e| AppError::internal(&e))?;
    let redacted = IncomingResource::parse(&text).map_err(|i| AppError::invalid(vec![i]))?;
    Ok((redacted, Some(change)))
}

/// A Bundle entry cannot carry a signing secret (it would be stored with the entry):
/// set it with `POST` or `PUT /Subscription`.
pub fn no_secret_in_bundle(resource_type: &str, resource: &Value) -> Result<(), AppError> {
    if resource_type != "Subscription" {
        return Ok(());
    }
    match notify::read_subscription(resource) {
        Ok(spec) if spec.signing_secret.is_some() => Err(AppError::unprocessable(vec![
            Issue::error(
                IssueCode::BusinessRule,
                "A Subscription with a signing secret is created or updated with POST or PUT /Subscription, not in a Bundle (the secret is never stored with the resource)",
            )
            .at("Subscription.channel.extension"),
        ])),
        _ => Ok(()),
    }
}
