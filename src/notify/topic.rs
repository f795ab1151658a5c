//! The subscription topics this hub offers, and when a write triggers each of them.
//!
//! R4 has no SubscriptionTopic resource; the Subscriptions Backport IG lets a server define
//! its topics by canonical URL only (`profiles/Basic-topic-*.json` describe them).

use serde_json::{json, Value};

use crate::referral::codes::CS_TASK_BUSINESS_STATUS;

/// The three topics this hub offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicId {
    TaskChange,
    ServiceRequestStatus,
    Unroutable,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Topic {
    pub id: TopicId,
    /// canonical URL, e.g. "https://wor-hub.nl/fhir/SubscriptionTopic/task-change"
    pub canonical: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// the resource type the topic is about ("Task" or "ServiceRequest")
    pub resource_type: &'static str,
    /// search parameter names a filter may use
    pub filters: &'static [&'static str],
}

pub const TOPICS: &[Topic] = &[
    Topic {
        id: TopicId::TaskChange,
        canonical: "https://wor-hub.nl/fhir/SubscriptionTopic/task-change",
        title: "Task created or changed",
        description: "A Welzijn op Recept Task was created or updated (any element: status, \
            businessStatus, owner, output ...). Deletes do not trigger. Modelled on the Task \
            topic of the HL7 SDOH Clinical Care IG.",
        resource_type: "Task",
        filters: &["owner", "requester", "status", "business-status", "focus"],
    },
    Topic {
        id: TopicId::ServiceRequestStatus,
        canonical: "https://wor-hub.nl/fhir/SubscriptionTopic/service-request-status",
        title: "Referral created or its status changed",
        description: "A ServiceRequest (referral) was created, or updated with a status \
            different from its previous version's. Deletes do not trigger.",
        resource_type: "ServiceRequest",
        filters: &["requester", "_id"],
    },
    Topic {
        id: TopicId::Unroutable,
        canonical: "https://wor-hub.nl/fhir/SubscriptionTopic/unroutable",
        title: "Referral became unroutable",
        description: "A Task got businessStatus `unroutable` (CodeSystem \
            https://wor-hub.nl/fhir/CodeSystem/task-business-status) that its previous version \
            did not have, or was created with it: no welfare organisation could be chosen and a \
            coordinator must assign one.",
        resource_type: "Task",
        filters: &[],
    },
];

/// The CapabilityStatement extension advertising a supported topic (Backport IG 1.1), for
/// `CapabilityStatement.rest.resource` of type Subscription.
pub const EXT_CAPABILITY_TOPIC: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical";

/// One `capabilitystatement-subscriptiontopic-canonical` extension per topic, in
/// [`TOPICS`] order, for the Subscription entry of the CapabilityStatement.
pub fn subscription_topic_extensions() -> Vec<Value> {
    TOPICS
        .iter()
        .map(|t| json!({ "url": EXT_CAPABILITY_TOPIC, "valueCanonical": t.canonical }))
        .collect()
}

/// The topic with this canonical URL; a `|version` suffix is ignored.
pub fn topic(canonical: &str) -> Option<&'static Topic> {
    let url = canonical.split_once('|').map_or(canonical, |(url, _)| url);
    TOPICS.iter().find(|t| t.canonical == url)
}

impl Topic {
    /// Does a write of the topic's resource type trigger this topic? previous = the version
    /// before (None on create), current = the new version (None on delete).
    pub fn triggers(&self, previous: Option<&Value>, current: Option<&Value>) -> bool {
        // Deletes trigger none of the topics.
        let Some(current) = current else {
            return false;
        };
        if !self.is_about(current) || previous.is_some_and(|p| !self.is_about(p)) {
            return false;
        }
        match self.id {
            TopicId::TaskChange => true,
            TopicId::ServiceRequestStatus => {
                previous.is_none_or(|p| p.get("status") != current.get("status"))
            }
            TopicId::Unroutable => is_unroutable(current) && !previous.is_some_and(is_unroutable),
        }
    }

    /// A resource of another type never triggers (a `resourceType`-less value is taken as
    /// being of the topic's type: the store may hand over bare bodies).
    fn is_about(&self, resource: &Value) -> bool {
        resource
            .get("resourceType")
            .and_then(Value::as_str)
            .is_none_or(|t| t == self.resource_type)
    }
}

/// `Task.businessStatus` carries the hub's `unroutable` code.
fn is_unroutable(task: &Value) -> bool {
    task.pointer("/businessStatus/coding")
        .and_then(Value::as_array)
        .is_some_and(|codings| {
            codings.iter().any(|c| {
                c.get("system").and_then(Value::as_str) == Some(CS_TASK_BUSINESS_STATUS)
                    && c.get("code").and_then(Value::as_str) == Some("unroutable")
            })
        })
}
