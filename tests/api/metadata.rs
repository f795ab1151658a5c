//! GET /fhir/metadata and request ids.

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{TestApp, FHIR_JSON};

backend_tests!(
    capability_statement_lists_what_is_served,
    request_id_is_echoed_or_generated
);

async fn capability_statement_lists_what_is_served(app: TestApp) {
    let res = app.get("metadata").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with(FHIR_JSON));
    let cs: Value = res.json().await.unwrap();
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    assert_eq!(cs["kind"], "instance");
    let rest = &cs["rest"][0];
    assert_eq!(rest["mode"], "server");
    let types: Vec<&str> = rest["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    for ty in [
        "ServiceRequest",
        "Task",
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "HealthcareService",
        "Consent",
        "Location",
        "QuestionnaireResponse",
        "Subscription",
        "Bundle",
        "Endpoint",
    ] {
        assert!(types.contains(&ty), "{ty} missing");
    }
    // Plus the eight conformance types served read-only (conformance.rs) and the audit
    // trail's AuditEvent (audit_trail.rs).
    assert_eq!(types.len(), 22);
    assert!(types.contains(&"MessageDefinition"));
    // The statistics: Measure/referral-statistics and its $evaluate-measure.
    let measure = rest["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Measure")
        .unwrap();
    assert_eq!(measure["operation"][0]["name"], "evaluate-measure");
    assert_eq!(
        measure["operation"][0]["definition"],
        "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure"
    );
    // The Subscription entry names the topics (Subscriptions Backport IG).
    let subscription = rest["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Subscription")
        .unwrap();
    let topics: Vec<&str> = subscription["extension"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["url"]
                == "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical"
        })
        .map(|e| e["valueCanonical"].as_str().unwrap())
        .collect();
    assert_eq!(topics.len(), 3, "{subscription}");
    assert!(topics.contains(&"https://wor-hub.nl/fhir/SubscriptionTopic/task-change"));
    let operations: Vec<&str> = subscription["operation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(operations.contains(&"status") && operations.contains(&"events"));
    let patient = rest["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Patient")
        .unwrap();
    let interactions: Vec<&str> = patient["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    for i in [
        "read",
        "vread",
        "update",
        "delete",
        "history-instance",
        "history-type",
        "create",
        "search-type",
    ] {
        assert!(interactions.contains(&i), "{i}");
    }
    // PATCH, with the formats it takes.
    assert!(interactions.contains(&"patch"));
    assert_eq!(
        cs["patchFormat"],
        json!(["application/json-patch+json", "application/fhir+json"])
    );
    assert_eq!(patient["conditionalUpdate"], true);
    assert_eq!(patient["conditionalDelete"], "single");
    let params: Vec<&str> = patient["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        params,
        [
            "_id",
            "_lastUpdated",
            "identifier",
            "birthdate",
            "family",
            "given",
            "name",
            "address-postalcode"
        ]
    );
    let type_of = |r: &Value, name: &str| {
        r["searchParam"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["type"].as_str().unwrap().to_owned())
    };
    assert_eq!(type_of(patient, "birthdate").as_deref(), Some("date"));
    assert_eq!(type_of(patient, "family").as_deref(), Some("string"));
    assert_eq!(type_of(patient, "identifier").as_deref(), Some("token"));
    let of = |ty: &str| {
        rest["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == ty)
            .unwrap()
            .clone()
    };
    let task = of("Task");
    assert_eq!(type_of(&task, "owner").as_deref(), Some("reference"));
    assert_eq!(type_of(&task, "modified").as_deref(), Some("date"));
    assert_eq!(type_of(&task, "business-status").as_deref(), Some("token"));
    let includes: Vec<&str> = task["searchInclude"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for inc in ["Task:focus", "Task:patient", "Task:owner"] {
        assert!(includes.contains(&inc), "{inc}");
    }
    let sr = of("ServiceRequest");
    assert!(sr["searchRevInclude"]
        .as_array()
        .unwrap()
        .contains(&Value::from("Task:focus")));
    assert_eq!(
        type_of(&of("Organization"), "active").as_deref(),
        Some("token")
    );
    assert_eq!(
        type_of(&of("PractitionerRole"), "practitioner").as_deref(),
        Some("reference")
    );
    assert!(type_of(&of("Practitioner"), "organization").is_none());
    assert_eq!(patient["operation"][0]["name"], "validate");
    let system: Vec<&str> = cs["rest"][0]["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert_eq!(system, ["transaction", "batch", "history-system"]);
    // FHIR messaging: $process-message at the base, the messages taken and sent.
    assert_eq!(
        rest["operation"],
        json!([{
            "name": "process-message",
            "definition": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message"
        }])
    );
    let messaging = cs["messaging"].as_array().unwrap();
    assert_eq!(messaging.len(), 1);
    assert_eq!(
        messaging[0]["endpoint"][0]["address"],
        format!("{}/$process-message", app.base)
    );
    let documentation = messaging[0]["documentation"].as_str().unwrap();
    for text in ["Endpoint", "async=true", "response-url"] {
        assert!(documentation.contains(text), "{text}");
    }
    let supported: Vec<(&str, &str)> = messaging[0]["supportedMessage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["mode"].as_str().unwrap(),
                m["definition"].as_str().unwrap(),
            )
        })
        .collect();
    let definition = |code: &str| format!("https://wor-hub.nl/fhir/MessageDefinition/{code}");
    assert_eq!(
        supported,
        [
            ("receiver", definition("referral-new").as_str()),
            ("receiver", definition("referral-update").as_str()),
            ("receiver", definition("referral-cancel").as_str()),
            ("sender", definition("referral-status").as_str()),
        ]
    );
    // Each canonical resolves on this server.
    for (_, url) in &supported {
        let res = app.get(&format!("MessageDefinition?url={url}")).await;
        assert_eq!(res.status(), 200);
        let found: Value = res.json().await.unwrap();
        assert_eq!(found["total"], 1, "{url}");
    }
    // Referral documents (R4: document.profile 1..1).
    assert_eq!(cs["document"].as_array().unwrap().len(), 1);
    assert_eq!(cs["document"][0]["mode"], "consumer");
    assert_eq!(
        cs["document"][0]["profile"],
        "http://hl7.org/fhir/StructureDefinition/Bundle"
    );
    assert_eq!(
        cs["document"][0]["documentation"],
        of("Bundle")["documentation"]
    );
}

async fn request_id_is_echoed_or_generated(app: TestApp) {
    let res = app
        .client
        .get(app.url("metadata"))
        .header("X-Request-Id", "his-2026-000123.retry-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "his-2026-000123.retry-1");
    let generated = app.get("metadata").await;
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    // Values that could smuggle data into logs are refused (400), not echoed.
    let res = app
        .client
        .get(app.url("Patient/unknown"))
        .header("X-Request-Id", "bsn 999999011 <script>")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "bsn 999999011 <script>");
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn health_probes_answer() {
    let app = crate::helpers::spawn(crate::helpers::Backend::Sqlite, |_| {})
        .await
        .unwrap();
    let health = |p: &str| app.base.replace("/fhir", p);
    let res = app.client.get(health("/health/live")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .get(health("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// PostgreSQL: drop the test database under the running server.
#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn health_ready_and_requests_are_503_when_the_database_is_gone() {
    let admin = crate::helpers::postgres_admin_url();
    let app = crate::helpers::spawn(crate::helpers::Backend::Postgres, |_| {})
        .await
        .unwrap();
    let db = crate::helpers::database_of(&app);
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut conn = diesel::PgConnection::establish(&admin).unwrap();
    conn.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .unwrap();
    let res = app.get("Patient/x").await;
    assert_eq!(
        res.headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("2")
    );
    let issues = crate::helpers::expect_outcome(res, 503).await;
    assert!(crate::helpers::has_issue(&issues, "transient", None));
    let res = app
        .client
        .get(app.base.replace("/fhir", "/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
}
