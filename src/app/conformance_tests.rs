//! Tests of the served conformance resources (`profiles/`).
use super::*;

#[test]
fn every_profile_is_served() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".json") && f != "fhir.schema.json")
        .collect();
    files.sort();
    assert_eq!(files.len(), FILES.len(), "list every profile in FILES");
    assert_eq!(ALL.len(), FILES.len(), "every file parses with id and url");
    for c in ALL.iter() {
        assert!(
            TYPES.contains(&c.resource_type.as_str()),
            "{}",
            c.resource_type
        );
        assert!(
            files.contains(&format!("{}-{}.json", c.resource_type, c.id)),
            "{}/{}",
            c.resource_type,
            c.id
        );
        assert_eq!(
            c.url,
            format!("https://wor-hub.nl/fhir/{}/{}", c.resource_type, c.id)
        );
    }
    let served: Vec<&str> = SERVED_TYPES.iter().map(|t| t.name).collect();
    assert_eq!(served, TYPES);
}

#[test]
fn every_message_event_has_its_message_definition() {
    let system = "https://wor-hub.nl/fhir/CodeSystem/message-event";
    let cs = ALL
        .iter()
        .find(|c| c.resource_type == "CodeSystem" && c.url == system)
        .unwrap();
    let cs: Value = serde_json::from_str(cs.body).unwrap();
    let codes: Vec<&str> = cs["concept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "referral-new",
            "referral-update",
            "referral-cancel",
            "referral-status"
        ]
    );
    assert_eq!(cs["count"], codes.len());
    for code in codes {
        let md = ALL
            .iter()
            .find(|c| c.resource_type == "MessageDefinition" && c.id == code)
            .unwrap_or_else(|| panic!("no MessageDefinition/{code}"));
        assert_eq!(md.event, Some((Some(system.to_owned()), code.to_owned())));
        let v: Value = serde_json::from_str(md.body).unwrap();
        // R4 1..1 elements the schema does not require: status, date, event[x],
        // focus.code and focus.min.
        assert_eq!(md.status, "active", "{code}");
        let status = code == "referral-status";
        assert_eq!(v["date"].as_str().map(str::len), Some(10), "{code}");
        // An incoming message's response (allowedResponse: the same definition)
        // also names the referral's Task.
        let focus = if status {
            json!([{"code": "Task", "min": 1, "max": "1"}])
        } else {
            json!([{"code": "ServiceRequest", "min": 1, "max": "1"},
                   {"code": "Task", "min": 0, "max": "1"}])
        };
        assert_eq!(v["focus"], focus, "{code}");
        assert_eq!(
            v["category"],
            if status {
                "notification"
            } else {
                "consequence"
            }
        );
        assert_eq!(
            v["responseRequired"],
            if status { "never" } else { "always" }
        );
        if status {
            assert!(v.get("allowedResponse").is_none());
        } else {
            assert_eq!(v["allowedResponse"][0]["message"], md.url);
        }
    }
    // What the CapabilityStatement names resolves here.
    for m in crate::api::SERVED.messaging {
        for (mode, url) in m.supported_messages {
            assert!(["sender", "receiver"].contains(mode));
            assert!(
                ALL.iter()
                    .any(|c| c.resource_type == "MessageDefinition" && c.url == *url),
                "{url}"
            );
        }
    }
}

#[test]
fn event_matches_code_system_and_code() {
    let md = ALL
        .iter()
        .find(|c| c.resource_type == "MessageDefinition" && c.id == "referral-new")
        .unwrap();
    let system = "https://wor-hub.nl/fhir/CodeSystem/message-event";
    let matches = |v: &str| {
        Criterion {
            param: Param::Event,
            values: vec![v.to_owned()],
        }
        .matches(md)
    };
    assert!(matches("referral-new"));
    assert!(matches(&format!("{system}|referral-new")));
    assert!(matches(&format!("{system}|")));
    assert!(!matches("|referral-new"));
    assert!(!matches("referral-update"));
    assert!(!matches("http://example.org|referral-new"));
    // Other canonicals have no event.
    let cs = ALL
        .iter()
        .find(|c| c.resource_type == "CodeSystem")
        .unwrap();
    assert!(!Criterion {
        param: Param::Event,
        values: vec!["referral-new".into()],
    }
    .matches(cs));
}
