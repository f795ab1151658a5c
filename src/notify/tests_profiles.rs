//! `profiles/topics/`: one Basic (R4 form of a SubscriptionTopic) per entry of [`TOPICS`].

use std::path::Path;

use serde_json::Value;

use super::*;
use crate::fhir::validate::validate_resource;

const R5: &str = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.";
const R43: &str = "http://hl7.org/fhir/4.3/StructureDefinition/extension-SubscriptionTopic.";

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/topics")
}

fn extensions<'a>(v: &'a Value, url: &str) -> Vec<&'a Value> {
    v["extension"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["url"] == url)
        .collect()
}

fn sub<'a>(ext: &'a Value, url: &str) -> Vec<&'a Value> {
    extensions(ext, url)
}

#[test]
fn every_topic_has_its_basic_file() {
    for topic in TOPICS {
        let slug = topic.canonical.rsplit('/').next().unwrap();
        let name = format!("Basic-topic-{slug}.json");
        let text =
            std::fs::read_to_string(dir().join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["resourceType"], "Basic", "{name}");
        assert_eq!(v["id"], format!("topic-{slug}"), "{name}");
        assert_eq!(
            v["code"]["coding"][0]["code"], "SubscriptionTopic",
            "{name}"
        );
        assert_eq!(
            extensions(&v, &format!("{R5}url"))[0]["valueUri"],
            topic.canonical,
            "{name}"
        );
        assert_eq!(
            extensions(&v, &format!("{R5}title"))[0]["valueString"],
            topic.title
        );
        assert_eq!(
            extensions(&v, &format!("{R5}description"))[0]["valueMarkdown"],
            topic
                .description
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            "{name}"
        );
        let trigger = extensions(&v, &format!("{R43}resourceTrigger"));
        assert_eq!(trigger.len(), 1, "{name}");
        assert_eq!(
            sub(trigger[0], "resource")[0]["valueUri"],
            format!(
                "http://hl7.org/fhir/StructureDefinition/{}",
                topic.resource_type
            )
        );
        let interactions: Vec<&str> = sub(trigger[0], "supportedInteraction")
            .iter()
            .map(|e| e["valueCode"].as_str().unwrap())
            .collect();
        assert_eq!(
            interactions,
            ["create", "update"],
            "{name}: deletes never trigger"
        );
        let filters: Vec<&str> = extensions(&v, &format!("{R43}canFilterBy"))
            .iter()
            .map(|f| {
                assert_eq!(sub(f, "resource")[0]["valueUri"], topic.resource_type);
                sub(f, "filterParameter")[0]["valueString"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(filters, topic.filters, "{name}");
        let issues: Vec<_> = validate_resource("Basic", &v)
            .into_iter()
            .filter(|i| i.is_error())
            .collect();
        assert!(issues.is_empty(), "{name}: {issues:?}");
    }
}

#[test]
fn no_basic_file_without_a_topic() {
    for entry in std::fs::read_dir(dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let slug = name
            .strip_prefix("Basic-topic-")
            .and_then(|n| n.strip_suffix(".json"))
            .unwrap_or_else(|| panic!("unexpected file {name}"));
        let canonical = format!("https://wor-hub.nl/fhir/SubscriptionTopic/{slug}");
        assert!(topic(&canonical).is_some(), "{name} has no entry in TOPICS");
    }
}
