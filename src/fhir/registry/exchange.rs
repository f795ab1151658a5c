//! The search parameters of the types clients exchange with the hub rather than the
//! referral itself: stored documents and messages (Bundle), messaging Endpoints and
//! Subscriptions.

use super::super::{ParamType, SearchParamDef};
use super::{ID, LAST_UPDATED};

/// Documents received at POST /fhir/Bundle (README "Document intake").
pub(super) const BUNDLE: &[SearchParamDef] = &[
    ID,
    LAST_UPDATED,
    identifier!("Bundle-identifier"),
    param!(
        "type",
        Token,
        ["type"],
        [],
        "Bundle-type",
        "document (received at POST /fhir/Bundle) or message (received at $process-message, and the response messages)"
    ),
];

/// Where a message sender takes its response messages (README "Message intake").
pub(super) const ENDPOINT: &[SearchParamDef] = &[
    ID,
    LAST_UPDATED,
    identifier!("Endpoint-identifier"),
    param!(
        "status",
        Token,
        ["status"],
        [],
        "Endpoint-status",
        "active | suspended | error | off | entered-in-error | test"
    ),
    param!(
        "connection-type",
        Token,
        ["connectionType"],
        [],
        "Endpoint-connection-type",
        "hl7-fhir-msg for a message sender's endpoint"
    ),
    param!(
        "organization",
        Reference,
        ["managingOrganization"],
        ["Organization"],
        "Endpoint-organization",
        "The organisation that manages the endpoint (the message sender)"
    ),
    param!(
        "name",
        String,
        ["name"],
        [],
        "Endpoint-name",
        "Name (starts with; :exact, :contains)"
    ),
];

pub(super) const SUBSCRIPTION: &[SearchParamDef] = &[
    ID,
    LAST_UPDATED,
    param!(
        "status",
        Token,
        ["status"],
        [],
        "Subscription-status",
        "requested | active | error | off"
    ),
    param!(
        "url",
        Uri,
        ["channel.endpoint"],
        [],
        "Subscription-url",
        "The rest-hook endpoint notifications are sent to (exact match)"
    ),
    param!(
        "criteria",
        String,
        ["criteria"],
        [],
        "Subscription-criteria",
        "The topic's canonical URL (Subscriptions Backport: Subscription.criteria)"
    ),
];
