//! The hub's conformance resources (`profiles/`) served read-only: read by id,
//! searchable by url (and _id, name, status, version; MessageDefinition also event),
//! writes 405.

use reqwest::Method;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{expect_outcome, has_issue, link, TestApp, FHIR_JSON};

backend_tests!(
    canonicals_are_readable_by_id,
    canonicals_are_found_by_url_and_other_parameters,
    conformance_resources_are_read_only,
    capability_statement_lists_the_read_only_types,
    conformance_resources_take_head_summary_and_elements,
    message_definitions_are_found_by_event,
);

async fn json_of(app: &TestApp, path: &str) -> Value {
    let res = app.get(path).await;
    assert_eq!(res.status(), 200, "{path}");
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with(FHIR_JSON), "{ct}");
    res.json().await.unwrap()
}

fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn canonicals_are_readable_by_id(app: TestApp) {
    let op = json_of(&app, "OperationDefinition/ServiceRequest-route").await;
    let file: Value = serde_json::from_str(include_str!(
        "../../profiles/OperationDefinition-ServiceRequest-route.json"
    ))
    .unwrap();
    assert_eq!(op, file);
    let cs = json_of(&app, "CodeSystem/task-business-status").await;
    assert_eq!(
        cs["url"],
        "https://wor-hub.nl/fhir/CodeSystem/task-business-status"
    );
    let q = json_of(&app, "Questionnaire/positive-health").await;
    assert_eq!(q["resourceType"], "Questionnaire");
    let sd = json_of(&app, "StructureDefinition/wor-healthcareservice").await;
    assert_eq!(sd["type"], "HealthcareService");
    json_of(&app, "ValueSet/age-group").await;
    json_of(&app, "SearchParameter/Task-output").await;

    expect_outcome(app.get("CodeSystem/nope").await, 404).await;
    expect_outcome(app.get("ValueSet/a%20b").await, 400).await;
    // History and vread are not served for them.
    expect_outcome(app.get("CodeSystem/age-group/_history").await, 404).await;
}

async fn canonicals_are_found_by_url_and_other_parameters(app: TestApp) {
    let url = "https://wor-hub.nl/fhir/CodeSystem/task-business-status";
    let found = json_of(&app, &format!("CodeSystem?url={url}")).await;
    assert_eq!(found["type"], "searchset");
    assert_eq!(found["total"], 1);
    assert_eq!(ids(&found), ["task-business-status"]);
    assert_eq!(
        found["entry"][0]["fullUrl"],
        format!("{}/CodeSystem/task-business-status", app.base)
    );
    let self_link = link(&found, "self").unwrap();
    assert!(
        self_link.starts_with(&format!("{}/CodeSystem?url=", app.base)),
        "{self_link}"
    );

    // The route operation and the Positive Health questionnaire by their canonicals.
    let op = json_of(
        &app,
        "OperationDefinition?url=https://wor-hub.nl/fhir/OperationDefinition/ServiceRequest-route",
    )
    .await;
    assert_eq!(ids(&op), ["ServiceRequest-route"]);
    let q = json_of(
        &app,
        "Questionnaire?url=https://wor-hub.nl/fhir/Questionnaire/positive-health",
    )
    .await;
    assert_eq!(ids(&q), ["positive-health"]);
    // url|version, version, _id, name (starts with, :exact, :contains), status.
    let q = json_of(
        &app,
        "Questionnaire?url=https://wor-hub.nl/fhir/Questionnaire/positive-health|1.0.0",
    )
    .await;
    assert_eq!(q["total"], 1);
    let q = json_of(
        &app,
        "Questionnaire?url=https://wor-hub.nl/fhir/Questionnaire/positive-health|9",
    )
    .await;
    assert_eq!(q["total"], 0);
    assert_eq!(
        ids(&json_of(&app, "CodeSystem?version=2023").await),
        ["cbs-municipality"]
    );
    assert_eq!(
        ids(&json_of(&app, "CodeSystem?_id=task-flag,age-group").await),
        ["age-group", "task-flag"]
    );
    assert_eq!(
        ids(&json_of(&app, "StructureDefinition?name=routing").await),
        ["routing-decision", "routing-priority"]
    );
    assert_eq!(
        ids(&json_of(&app, "StructureDefinition?name:exact=AgeGroup").await),
        ["age-group"]
    );
    assert_eq!(
        ids(&json_of(&app, "ValueSet?name:contains=status").await),
        ["task-business-status"]
    );
    assert_eq!(json_of(&app, "ValueSet?status=retired").await["total"], 0);
    let all = json_of(&app, "StructureDefinition").await;
    assert_eq!(all["total"], 7);
    let counted = json_of(&app, "CodeSystem?status=active&_summary=count").await;
    assert_eq!(counted["total"], 10);
    assert!(counted
        .get("entry")
        .is_none_or(|e| e.as_array().unwrap().is_empty()));

    // Paging with _count: next links until every match was seen once.
    let mut page = json_of(&app, "ValueSet?status=active&_count=3").await;
    assert_eq!(page["total"], 10);
    let mut seen = ids(&page);
    while let Some(next) = link(&page, "next") {
        let res = app.client.get(&next).send().await.unwrap();
        assert_eq!(res.status(), 200);
        page = res.json().await.unwrap();
        seen.extend(ids(&page));
    }
    assert_eq!(seen.len(), 10, "{seen:?}");
    seen.dedup();
    assert_eq!(seen.len(), 10);
    // The statistics' Measure is read like any canonical.
    let measure = json_of(&app, "Measure/referral-statistics").await;
    assert_eq!(
        measure["url"],
        "https://wor-hub.nl/fhir/Measure/referral-statistics"
    );

    // POST _search with a form body.
    let res = app
        .request(Method::POST, "CodeSystem/_search")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("url={url}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(ids(&res.json().await.unwrap()), ["task-business-status"]);

    // Unknown parameters: 400 naming them, or a warning with handling=lenient.
    let issues = expect_outcome(app.get("CodeSystem?colour=blue").await, 400).await;
    assert!(
        has_issue(&issues, "not-supported", Some("colour")),
        "{issues:?}"
    );
    let issues = expect_outcome(app.get("CodeSystem?url=").await, 400).await;
    assert!(has_issue(&issues, "value", Some("url")), "{issues:?}");
    expect_outcome(app.get("CodeSystem?_count=none").await, 400).await;
    let res = app
        .request(Method::GET, &format!("CodeSystem?url={url}&colour=blue"))
        .header("Prefer", "handling=lenient")
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["total"], 1);
    let outcome = body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["search"]["mode"] == "outcome")
        .expect("a warning entry");
    assert_eq!(outcome["resource"]["issue"][0]["severity"], "warning");
}

async fn conformance_resources_are_read_only(app: TestApp) {
    let cs = json_of(&app, "CodeSystem/age-group").await;
    let attempts = [
        (Method::POST, "CodeSystem"),
        (Method::PUT, "CodeSystem/age-group"),
        (Method::DELETE, "CodeSystem/age-group"),
        (
            Method::PUT,
            "CodeSystem?url=https://wor-hub.nl/fhir/CodeSystem/age-group",
        ),
        (
            Method::DELETE,
            "Questionnaire?url=https://wor-hub.nl/fhir/Questionnaire/positive-health",
        ),
        (Method::POST, "Questionnaire"),
    ];
    for (method, path) in attempts {
        let res = app
            .request(method.clone(), path)
            .header("Content-Type", FHIR_JSON)
            .body(cs.to_string())
            .send()
            .await
            .unwrap();
        let issues = expect_outcome(res, 405).await;
        assert!(has_issue(&issues, "not-supported", None), "{method} {path}");
    }
    // A client Questionnaire is refused the same way, and the hub's one is unchanged.
    let res = app
        .post(
            "Questionnaire",
            &json!({"resourceType": "Questionnaire", "status": "draft"}),
        )
        .await;
    expect_outcome(res, 405).await;
    assert_eq!(json_of(&app, "CodeSystem/age-group").await, cs);
    // Not part of a stored type's history either.
    expect_outcome(app.get("CodeSystem/_history").await, 404).await;
}

async fn capability_statement_lists_the_read_only_types(app: TestApp) {
    let cs = json_of(&app, "metadata").await;
    let resources = cs["rest"][0]["resource"].as_array().unwrap();
    for ty in [
        "CodeSystem",
        "MessageDefinition",
        "OperationDefinition",
        "Questionnaire",
        "SearchParameter",
        "StructureDefinition",
        "ValueSet",
    ] {
        let r = resources
            .iter()
            .find(|r| r["type"] == ty)
            .unwrap_or_else(|| panic!("{ty} listed"));
        let interactions: Vec<&str> = r["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["code"].as_str().unwrap())
            .collect();
        assert_eq!(interactions, ["read", "search-type"], "{ty}");
        assert_eq!(r["conditionalUpdate"], false);
        assert_eq!(r["conditionalDelete"], "not-supported");
        let params: Vec<&str> = r["searchParam"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        if ty == "MessageDefinition" {
            assert_eq!(
                params,
                ["_id", "url", "name", "status", "version", "event"],
                "{ty}"
            );
            assert_eq!(r["searchParam"][5]["type"], "token");
        } else {
            assert_eq!(params, ["_id", "url", "name", "status", "version"], "{ty}");
        }
        let url = r["searchParam"][1]["type"].as_str().unwrap();
        assert_eq!(url, "uri");
        assert!(r.get("operation").is_none());
    }
}

fn subsetted(resource: &Value) -> bool {
    resource["meta"]["tag"]
        .as_array()
        .is_some_and(|tags| tags.iter().any(|t| t["code"] == "SUBSETTED"))
}

async fn conformance_resources_take_head_summary_and_elements(app: TestApp) {
    // HEAD answers GET's status and headers without a body, on read and search.
    for path in ["CodeSystem/task-business-status", "CodeSystem?url=x"] {
        let res = app
            .client
            .request(Method::HEAD, format!("{}/{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "HEAD {path}");
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with(FHIR_JSON), "{ct}");
        assert!(
            res.bytes().await.unwrap().is_empty(),
            "HEAD {path} has a body"
        );
    }
    // _summary=true on read: the summary elements (R4: CodeSystem.concept is not one),
    // the mandatory ones, and the SUBSETTED tag.
    let full = json_of(&app, "CodeSystem/task-business-status").await;
    assert!(full.get("concept").is_some());
    let summary = json_of(&app, "CodeSystem/task-business-status?_summary=true").await;
    assert!(subsetted(&summary), "{summary}");
    assert!(summary.get("concept").is_none(), "{summary}");
    assert_eq!(summary["url"], full["url"]);
    assert_eq!(summary["status"], full["status"]);
    // _elements on read and on search keep the named and the mandatory elements.
    let only = json_of(&app, "CodeSystem/task-business-status?_elements=url").await;
    assert!(subsetted(&only));
    assert_eq!(only["url"], full["url"]);
    assert_eq!(
        only["content"], full["content"],
        "CodeSystem.content is mandatory"
    );
    assert!(only.get("concept").is_none() && only.get("name").is_none());
    let bundle = json_of(
        &app,
        "CodeSystem?url=https://wor-hub.nl/fhir/CodeSystem/task-business-status&_elements=url",
    )
    .await;
    let found = &bundle["entry"][0]["resource"];
    assert!(subsetted(found), "{bundle}");
    assert!(found.get("concept").is_none());
    // _summary=count: the total only; both at once, or count on a read: 400.
    let count = json_of(&app, "CodeSystem?_summary=count").await;
    assert!(count["total"].as_u64().unwrap() >= 1);
    assert!(count.get("entry").is_none());
    expect_outcome(app.get("CodeSystem?_summary=true&_elements=url").await, 400).await;
    expect_outcome(app.get("CodeSystem/age-group?_summary=count").await, 400).await;
}

async fn message_definitions_are_found_by_event(app: TestApp) {
    let system = "https://wor-hub.nl/fhir/CodeSystem/message-event";
    let md = json_of(&app, "MessageDefinition/referral-new").await;
    let file: Value = serde_json::from_str(include_str!(
        "../../profiles/MessageDefinition-referral-new.json"
    ))
    .unwrap();
    assert_eq!(md, file);
    let all = json_of(&app, "MessageDefinition").await;
    assert_eq!(
        ids(&all),
        [
            "referral-cancel",
            "referral-new",
            "referral-status",
            "referral-update"
        ]
    );
    // event: code, system|code, |code (no system: none here), system|.
    assert_eq!(
        ids(&json_of(&app, "MessageDefinition?event=referral-status").await),
        ["referral-status"]
    );
    assert_eq!(
        ids(&json_of(
            &app,
            &format!("MessageDefinition?event={system}|referral-cancel")
        )
        .await),
        ["referral-cancel"]
    );
    assert_eq!(
        json_of(&app, "MessageDefinition?event=other|referral-cancel").await["total"],
        0
    );
    assert_eq!(
        json_of(&app, "MessageDefinition?event=|referral-cancel").await["total"],
        0
    );
    assert_eq!(
        json_of(&app, &format!("MessageDefinition?event={system}|")).await["total"],
        4
    );
    assert_eq!(
        ids(&json_of(&app, "MessageDefinition?event=referral-new,referral-update").await),
        ["referral-new", "referral-update"]
    );
    // The event system and its value set resolve too.
    assert_eq!(
        ids(&json_of(&app, &format!("CodeSystem?url={system}")).await),
        ["message-event"]
    );
    assert_eq!(
        ids(&json_of(
            &app,
            "ValueSet?url=https://wor-hub.nl/fhir/ValueSet/message-event"
        )
        .await),
        ["message-event"]
    );
    // event is MessageDefinition's only.
    let issues = expect_outcome(app.get("CodeSystem?event=referral-new").await, 400).await;
    assert!(
        has_issue(&issues, "not-supported", Some("event")),
        "{issues:?}"
    );
    // _summary=true: R4 marks event[x] as summary, responseRequired not.
    let summary = json_of(&app, "MessageDefinition/referral-new?_summary=true").await;
    assert!(subsetted(&summary), "{summary}");
    assert_eq!(summary["eventCoding"], md["eventCoding"]);
    assert!(summary.get("responseRequired").is_none(), "{summary}");
    // Read-only like the others.
    let res = app
        .request(Method::PUT, "MessageDefinition/referral-new")
        .header("Content-Type", FHIR_JSON)
        .body(md.to_string())
        .send()
        .await
        .unwrap();
    expect_outcome(res, 405).await;
}
