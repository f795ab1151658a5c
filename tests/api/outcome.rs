//! Outcome and feedback: Positive Health QuestionnaireResponses (checked on write),
//! Task.output searchable with `_include=Task:output`, and `_tag` on Task.

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{expect_outcome, has_issue, task_transaction, TestApp};
use crate::search::{found, id_of, search, sorted};
use crate::search_results::entries_with_mode;

backend_tests!(
    positive_health_answers_are_stored_and_found,
    invalid_positive_health_answers_are_refused_and_not_stored,
    task_output_is_included,
    tasks_are_found_by_tag,
    metadata_lists_questionnaire_response_and_task_output_and_tag,
);

const POSITIVE_HEALTH: &str = "https://wor-hub.nl/fhir/Questionnaire/positive-health";
const TASK_FLAG: &str = "https://wor-hub.nl/fhir/CodeSystem/task-flag";
const OUTPUT_TYPE: &str = "https://wor-hub.nl/fhir/CodeSystem/task-output-type";

pub(crate) const DIMENSIONS: [&str; 6] = [
    "bodily-functions",
    "mental-wellbeing",
    "meaningfulness",
    "quality-of-life",
    "participation",
    "daily-functioning",
];

/// A completed Positive Health response with scores 5, 6, 7, 8, 9, 10.
fn positive_health(patient: &str) -> Value {
    json!({
        "resourceType": "QuestionnaireResponse",
        "questionnaire": POSITIVE_HEALTH,
        "status": "completed",
        "subject": {"reference": format!("Patient/{patient}")},
        "authored": "2026-11-24T10:00:00+01:00",
        "item": DIMENSIONS
            .iter()
            .zip(5..)
            .map(|(l, score)| json!({"linkId": l, "answer": [{"valueInteger": score}]}))
            .collect::<Vec<_>>()
    })
}

/// `Organization/<id>` of a new welfare organisation, to own Tasks.
async fn organization(app: &TestApp) -> String {
    let org = app
        .create(&json!({"resourceType": "Organization", "name": "Tom in de buurt"}))
        .await;
    format!("Organization/{}", id_of(&org))
}

async fn patient(app: &TestApp) -> String {
    id_of(
        &app.create(&json!({"resourceType": "Patient", "birthDate": "1958-04-17"}))
            .await,
    )
}

async fn positive_health_answers_are_stored_and_found(app: TestApp) {
    let p = patient(&app).await;
    let res = app
        .post("QuestionnaireResponse", &positive_health(&p))
        .await;
    assert_eq!(res.status(), 201);
    let stored: Value = res.json().await.unwrap();
    assert_eq!(stored["item"][5]["answer"][0]["valueInteger"], 10);
    let qr = id_of(&stored);

    // Answers in progress may leave questions open; another version of the questionnaire.
    let mut partial = positive_health(&p);
    partial["status"] = json!("in-progress");
    partial["questionnaire"] = json!(format!("{POSITIVE_HEALTH}|1.0.0"));
    partial["item"].as_array_mut().unwrap().truncate(2);
    let partial = id_of(&app.create(&partial).await);

    // Responses to other questionnaires are not checked against Positive Health.
    let other = id_of(
        &app.create(&json!({
            "resourceType": "QuestionnaireResponse",
            "questionnaire": "https://example.org/fhir/Questionnaire/phq-9",
            "status": "completed",
            "item": [{"linkId": "1", "answer": [{"valueString": "meestal"}]}]
        }))
        .await,
    );

    let q = format!("QuestionnaireResponse?questionnaire={POSITIVE_HEALTH}");
    assert_eq!(
        found(&app, &q).await,
        sorted(vec![qr.clone(), partial.clone()])
    );
    assert_eq!(found(&app, &format!("{q}|1.0.0")).await, [partial.as_str()]);
    assert_eq!(
        found(
            &app,
            "QuestionnaireResponse?questionnaire=https://example.org/fhir/Questionnaire/phq-9"
        )
        .await,
        [other]
    );
    assert_eq!(
        found(
            &app,
            &format!("QuestionnaireResponse?patient=Patient/{p}&status=completed")
        )
        .await,
        [qr.as_str()]
    );
    assert_eq!(
        found(
            &app,
            "QuestionnaireResponse?authored=2026-11-24&status=in-progress"
        )
        .await,
        [partial]
    );
    // The questionnaire is not served here, so there is nothing to include.
    let res = app
        .get("QuestionnaireResponse?_include=QuestionnaireResponse:questionnaire")
        .await;
    let issues = expect_outcome(res, 400).await;
    assert!(has_issue(&issues, "not-supported", Some("_include")));
}

/// (what, how to spoil a valid response, issue code, expression).
type Spoiled = (&'static str, fn(&mut Value), &'static str, &'static str);

async fn invalid_positive_health_answers_are_refused_and_not_stored(app: TestApp) {
    let p = patient(&app).await;
    let cases: [Spoiled; 5] = [
        (
            "score 11",
            |qr| qr["item"][2]["answer"][0]["valueInteger"] = json!(11),
            "value",
            "QuestionnaireResponse.item[2].answer[0].valueInteger",
        ),
        (
            "unknown linkId",
            |qr| qr["item"][4]["linkId"] = json!("happiness"),
            "value",
            "QuestionnaireResponse.item[4].linkId",
        ),
        (
            "missing item when completed",
            |qr| {
                qr["item"].as_array_mut().unwrap().remove(3);
            },
            "required",
            "QuestionnaireResponse.item",
        ),
        (
            "string answer",
            |qr| qr["item"][1]["answer"][0] = json!({"valueString": "7"}),
            "value",
            "QuestionnaireResponse.item[1].answer[0].valueString",
        ),
        (
            "same question twice",
            |qr| qr["item"][5]["linkId"] = json!("bodily-functions"),
            "duplicate",
            "QuestionnaireResponse.item[5].linkId",
        ),
    ];
    for (what, spoil, code, expression) in cases {
        let mut qr = positive_health(&p);
        spoil(&mut qr);
        let res = app.post("QuestionnaireResponse", &qr).await;
        let issues = expect_outcome(res, 422).await;
        assert!(
            has_issue(&issues, code, Some(expression)),
            "{what}: {issues:?}"
        );
        // Update-as-create and transactions apply the same rules.
        let mut with_id = qr.clone();
        with_id["id"] = json!("ph-1");
        let res = app.put("QuestionnaireResponse/ph-1", &with_id).await;
        let issues = expect_outcome(res, 422).await;
        assert!(has_issue(&issues, code, Some(expression)), "{what} (PUT)");
        let bundle = json!({
            "resourceType": "Bundle", "type": "transaction",
            "entry": [{"fullUrl": "urn:uuid:8c2b7f0e-4d3a-4c8e-9a57-1f0d2e3c4b5a", "resource": qr,
                       "request": {"method": "POST", "url": "QuestionnaireResponse"}}]
        });
        let res = app.post("", &bundle).await;
        assert_eq!(res.status(), 422, "{what} (transaction)");
    }
    assert_eq!(app.version_count("QuestionnaireResponse").await, 0);
}

async fn task_output_is_included(app: TestApp) {
    let p = patient(&app).await;
    let intake = id_of(&app.create(&positive_health(&p)).await);
    let closing = id_of(&app.create(&positive_health(&p)).await);
    let unrelated = id_of(&app.create(&positive_health(&p)).await);
    let output = |code: &str| json!({"coding": [{"system": OUTPUT_TYPE, "code": code}]});
    let task = json!({
        "output": [
            {"type": output("feedback"), "valueString": "Mevrouw doet mee aan de wandelgroep."},
            {"type": output("positive-health-intake"),
             "valueReference": {"reference": format!("QuestionnaireResponse/{intake}")}},
            {"type": output("positive-health-closing"),
             "valueReference": {"reference": format!("QuestionnaireResponse/{closing}")}}
        ]
    });
    let owner = organization(&app).await;
    let t = id_of(&app.create_task(&p, &owner, &task).await);
    // A Task without outputs: nothing of it is included.
    let other = id_of(&app.create_task(&p, &owner, &json!({})).await);

    let bundle = search(&app, &format!("Task?_id={t},{other}&_include=Task:output")).await;
    let with_mode = |mode: &str| entries_with_mode(&bundle, mode);
    assert_eq!(
        with_mode("match"),
        sorted(vec![format!("Task/{t}"), format!("Task/{other}")])
    );
    assert_eq!(
        with_mode("include"),
        sorted(vec![
            format!("QuestionnaireResponse/{intake}"),
            format!("QuestionnaireResponse/{closing}")
        ])
    );
    assert!(!with_mode("include").contains(&format!("QuestionnaireResponse/{unrelated}")));
    let included = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["search"]["mode"] == "include")
        .unwrap();
    assert_eq!(included["resource"]["questionnaire"], POSITIVE_HEALTH);

    // The output reference is a search parameter of its own, and reverse-includable.
    assert_eq!(
        found(
            &app,
            &format!("Task?output=QuestionnaireResponse/{closing}")
        )
        .await,
        [t.as_str()]
    );
    assert_eq!(found(&app, "Task?output:missing=true").await, [other]);
    let bundle = search(
        &app,
        &format!("QuestionnaireResponse?_id={intake}&_revinclude=Task:output"),
    )
    .await;
    assert!(bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["search"]["mode"] == "include" && e["resource"]["id"] == t.as_str()));
}

async fn tasks_are_found_by_tag(app: TestApp) {
    let p = patient(&app).await;
    let overdue =
        json!({"system": TASK_FLAG, "code": "overdue", "display": "Contact deadline passed"});
    let owner = organization(&app).await;
    // Long past the contact deadline, without contact: the hub tags it overdue when it
    // is next updated (the tag is the hub's: a client may not create a Task with it).
    let pilot = json!({"system": "http://example.org/tags", "code": "pilot"});
    let mut with_tags =
        json!({"meta": {"tag": [pilot.clone(), overdue]}, "authoredOn": "2020-01-06"});
    let res = app
        .post("", &task_transaction(&p, &owner, &with_tags))
        .await;
    let issues = expect_outcome(res, 422).await;
    assert!(
        has_issue(
            &issues,
            "business-rule",
            Some("Bundle.entry[1].resource.meta.tag")
        ),
        "{issues:?}"
    );
    with_tags["meta"] = json!({"tag": [pilot]});
    let created = app.create_task(&p, &owner, &with_tags).await;
    let mut noted = created.clone();
    noted["note"] = json!([{"text": "Nog geen contact"}]);
    let res = crate::helpers::put_task(&app, None, &noted).await;
    assert_eq!(res.status(), 200);
    let stored: Value = res.json().await.unwrap();
    assert_eq!(stored["meta"]["tag"][1]["code"], "overdue");
    let tagged = id_of(&stored);
    // Authored today: well within the deadline.
    let untagged = id_of(&app.create_task(&p, &owner, &json!({})).await);
    assert_eq!(
        found(&app, &format!("Task?_tag={TASK_FLAG}|overdue")).await,
        [tagged.as_str()]
    );
    assert_eq!(found(&app, "Task?_tag=overdue").await, [tagged.as_str()]);
    assert!(found(&app, "Task?_tag=http://example.org/tags|overdue")
        .await
        .is_empty());
    assert_eq!(
        found(&app, &format!("Task?_tag:not={TASK_FLAG}|overdue")).await,
        [untagged.as_str()]
    );
    assert_eq!(found(&app, "Task?_tag:missing=true").await, [untagged]);
}

async fn metadata_lists_questionnaire_response_and_task_output_and_tag(app: TestApp) {
    let res = app.get("metadata").await;
    assert_eq!(res.status(), 200);
    let cs: Value = res.json().await.unwrap();
    let resources = cs["rest"][0]["resource"].as_array().unwrap();
    let of = |ty: &str| resources.iter().find(|r| r["type"] == ty).unwrap();
    let params = |r: &Value| -> Vec<(String, String, String)> {
        r["searchParam"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let s = |k: &str| p[k].as_str().unwrap().to_owned();
                (s("name"), s("type"), s("definition"))
            })
            .collect()
    };
    let qr = of("QuestionnaireResponse");
    let fhir = |id: &str| format!("http://hl7.org/fhir/SearchParameter/{id}");
    let expected: Vec<(String, String, String)> = [
        ("_id", "token", "Resource-id"),
        ("_lastUpdated", "date", "Resource-lastUpdated"),
        ("identifier", "token", "QuestionnaireResponse-identifier"),
        (
            "questionnaire",
            "reference",
            "QuestionnaireResponse-questionnaire",
        ),
        ("subject", "reference", "QuestionnaireResponse-subject"),
        ("patient", "reference", "QuestionnaireResponse-patient"),
        ("based-on", "reference", "QuestionnaireResponse-based-on"),
        ("status", "token", "QuestionnaireResponse-status"),
        ("authored", "date", "QuestionnaireResponse-authored"),
    ]
    .iter()
    .map(|(n, t, d)| (n.to_string(), t.to_string(), fhir(d)))
    .collect();
    assert_eq!(params(qr), expected);
    let interactions: Vec<&str> = qr["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    for i in ["create", "read", "update", "search-type"] {
        assert!(interactions.contains(&i), "{i}");
    }
    assert!(qr["documentation"]
        .as_str()
        .unwrap()
        .contains(POSITIVE_HEALTH));
    let includes = qr["searchInclude"].as_array().unwrap();
    assert!(includes.contains(&json!("QuestionnaireResponse:patient")));
    assert!(!includes.contains(&json!("QuestionnaireResponse:questionnaire")));
    assert!(qr["searchRevInclude"]
        .as_array()
        .unwrap()
        .contains(&json!("Task:output")));

    let task = params(of("Task"));
    assert!(task.contains(&(
        "output".into(),
        "reference".into(),
        "https://wor-hub.nl/fhir/SearchParameter/Task-output".into()
    )));
    assert!(task.contains(&("_tag".into(), "token".into(), fhir("Resource-tag"))));
    assert!(of("Task")["searchInclude"]
        .as_array()
        .unwrap()
        .contains(&json!("Task:output")));
}
