//! Topic-based rest-hook Subscriptions (R4 Subscriptions Backport IG 1.1,
//! http://hl7.org/fhir/uv/subscriptions-backport/STU1.1/): the domain part, no actix and no
//! diesel. Which writes trigger which topic, reading a Subscription, building notification
//! Bundles, signing them, and the retry backoff.

mod bundle;
mod delivery;
mod endpoint;
mod message_endpoint;
mod secret;
mod subscription;
mod topic;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bundle;
#[cfg(test)]
mod tests_profiles;
#[cfg(test)]
mod tests_refusals;

pub use bundle::{
    notification_bundle, status_parameters, Event, StatusInfo, PROFILE_NOTIFICATION_R4,
    PROFILE_STATUS_R4,
};
pub use delivery::{backoff, signature, BACKOFF_CAP, SIGNATURE_HEADER};
pub use endpoint::endpoint_allowed;
pub use message_endpoint::{is_messaging, read_message_endpoint, MessageEndpoint};
pub use secret::{redact_secret, EXT_SIGNING_SECRET, MIN_SECRET_CHARS, SECRET_MASK};
pub use subscription::{
    read_subscription, SubscriptionSpec, DEFAULT_MAX_COUNT, DEFAULT_TIMEOUT, EXT_FILTER_CRITERIA,
    EXT_HEARTBEAT_PERIOD, EXT_MAX_COUNT, EXT_PAYLOAD_CONTENT, EXT_TIMEOUT, MAX_MAX_COUNT,
    MAX_TIMEOUT,
};
pub use topic::{
    subscription_topic_extensions, topic, Topic, TopicId, EXT_CAPABILITY_TOPIC, TOPICS,
};

/// How much of the focus resources a notification carries (backport-payload-content).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadContent {
    Empty,
    #[default]
    IdOnly,
    FullResource,
}

impl PayloadContent {
    pub fn code(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::IdOnly => "id-only",
            Self::FullResource => "full-resource",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "empty" => Some(Self::Empty),
            "id-only" => Some(Self::IdOnly),
            "full-resource" => Some(Self::FullResource),
            _ => None,
        }
    }
}

/// http://hl7.org/fhir/ValueSet/subscription-notification-type
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationType {
    Handshake,
    Heartbeat,
    EventNotification,
    QueryStatus,
    QueryEvent,
}

impl NotificationType {
    pub fn code(self) -> &'static str {
        match self {
            Self::Handshake => "handshake",
            Self::Heartbeat => "heartbeat",
            Self::EventNotification => "event-notification",
            Self::QueryStatus => "query-status",
            Self::QueryEvent => "query-event",
        }
    }
}
