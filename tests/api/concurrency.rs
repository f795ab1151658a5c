//! Concurrent writers and the audit trail.

use diesel::prelude::*;
use reqwest::Method;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{spawn, Backend, TestApp, FHIR_JSON};

backend_tests!(
    racing_if_match_updates_let_exactly_one_win,
    concurrent_updates_without_if_match_all_land,
    two_hundred_opposite_conditional_transactions_at_once,
);

/// A transaction of conditional creates of Patients with identifiers `urn:pair|<v>`,
/// in the order given.
fn conditional_transaction(values: [&str; 2]) -> serde_json::Value {
    let entries: Vec<_> = values
        .iter()
        .map(|v| {
            json!({"resource": {"resourceType": "Patient",
                                "identifier": [{"system": "urn:pair", "value": v}]},
                   "request": {"method": "POST", "url": "Patient",
                               "ifNoneExist": format!("identifier=urn:pair|{v}")}})
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

/// 100 pairs of transactions, each pair conditionally creating the same two Patients
/// in opposite orders, all 200 sent at once (PostgreSQL used to deadlock and answer 500
/// for most of them): every answer is 200, and each Patient exists once.
async fn two_hundred_opposite_conditional_transactions_at_once(app: TestApp) {
    const PAIRS: usize = 100;
    let mut handles = Vec::new();
    for pair in 0..PAIRS {
        let (x, y) = (format!("x{pair}"), format!("y{pair}"));
        for order in [[x.as_str(), y.as_str()], [y.as_str(), x.as_str()]] {
            let req = app
                .request(Method::POST, "")
                .header("Content-Type", FHIR_JSON)
                .body(conditional_transaction(order).to_string());
            handles.push(tokio::spawn(async move {
                let res = req.send().await.unwrap();
                let status = res.status().as_u16();
                (status, res.text().await.unwrap())
            }));
        }
    }
    let mut wrong = Vec::new();
    for h in handles {
        let (status, body) = h.await.unwrap();
        if status != 200 {
            wrong.push(format!("{status} {}", &body[..body.len().min(300)]));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} answers were not 200: {:#?}",
        wrong.len(),
        2 * PAIRS,
        &wrong[..wrong.len().min(5)]
    );
    assert_eq!(app.version_count("Patient").await, 2 * PAIRS);
}

async fn racing_if_match_updates_let_exactly_one_win(app: TestApp) {
    let patient = app.create(&json!({"resourceType": "Patient"})).await;
    let org = app.create(&json!({"resourceType": "Organization"})).await;
    let created = app
        .create_task(
            patient["id"].as_str().unwrap(),
            &format!("Organization/{}", org["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let mut handles = Vec::new();
    for i in 0..10 {
        let mut task = created.clone();
        task["status"] = json!("received");
        task["note"] = json!([{"text": format!("writer {i}")}]);
        let req = app
            .request(Method::PUT, &format!("Task/{id}"))
            .header("Content-Type", FHIR_JSON)
            .header("If-Match", "W/\"1\"")
            .body(task.to_string());
        handles.push(tokio::spawn(async move {
            req.send().await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for h in handles {
        statuses.push(h.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 412),
        "{statuses:?}"
    );
    assert_eq!(app.version_count("Task").await, 2);
}

async fn concurrent_updates_without_if_match_all_land(app: TestApp) {
    let created = app
        .create(&json!({"resourceType": "Organization", "name": "v"}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let mut handles = Vec::new();
    for i in 0..8 {
        let req = app
            .request(Method::PUT, &format!("Organization/{id}"))
            .header("Content-Type", FHIR_JSON)
            .body(
                json!({"resourceType": "Organization", "id": id, "name": format!("v{i}")})
                    .to_string(),
            );
        handles.push(tokio::spawn(async move {
            req.send().await.unwrap().status().as_u16()
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), 200);
    }
    // 1 create + 8 updates, versions 1..=9 without gaps or duplicates.
    let res = app.get(&format!("Organization/{id}/_history")).await;
    let bundle: serde_json::Value = res.json().await.unwrap();
    let mut versions: Vec<String> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["resource"]["meta"]["versionId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    versions.sort_by_key(|v| v.parse::<u32>().unwrap());
    assert_eq!(versions, (1..=9).map(|v| v.to_string()).collect::<Vec<_>>());
}

diesel::table! {
    audit_events (seq) {
        seq -> BigInt,
        request_id -> Text,
        actor -> Text,
        action -> Text,
        interaction -> Text,
        resource_type -> Text,
        resource_id -> Nullable<Text>,
        outcome -> Text,
    }
}

#[tokio::test]
async fn every_access_leaves_an_audit_record() {
    let app = spawn(Backend::Sqlite, |_| {}).await.unwrap();
    let res = app
        .request(Method::POST, "Patient")
        .header("Content-Type", FHIR_JSON)
        .header("X-Request-Id", "audit-create-1")
        .body(json!({"resourceType": "Patient", "active": true}).to_string())
        .send()
        .await
        .unwrap();
    let id = res.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get(&format!("Patient/{id}")).await;
    app.get("Patient/unknown").await;
    app.get("Patient?_id=x").await;
    app.get(&format!("Patient/{id}/_history")).await;

    app.audit_moved();
    let path = app._dir.as_ref().unwrap().path().join("hub.db");
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    type Row = (String, String, String, String, Option<String>, String);
    let rows: Vec<Row> = audit_events::table
        .order(audit_events::seq.asc())
        .select((
            audit_events::request_id,
            audit_events::action,
            audit_events::interaction,
            audit_events::resource_type,
            audit_events::resource_id,
            audit_events::outcome,
        ))
        .load(&mut conn)
        .unwrap();
    let summary: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r.1.as_str(), r.2.as_str(), r.5.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("C", "create", "success"),
            ("R", "read", "success"),
            ("R", "read", "not-found"),
            ("R", "search-type", "success"),
            ("R", "history-instance", "success"),
        ]
    );
    assert_eq!(rows[0].0, "audit-create-1");
    assert_eq!(rows[0].4.as_deref(), Some(id.as_str()));
    assert!(rows.iter().all(|r| r.3 == "Patient"));
}

/// Instances sharing one PostgreSQL start together: all come up, the schema is migrated once.
#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn instances_starting_together_on_one_postgres_database() {
    let Some(first) = spawn(Backend::Postgres, |_| {}).await else {
        return;
    };
    // `first` created and migrated a fresh database; drop its schema to start over and
    // let four instances race to migrate it.
    let admin = std::env::var("WOR_HUB_TEST_POSTGRES_URL").unwrap();
    let db = crate::helpers::database_of(&first);
    let url = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
    let mut conn = PgConnection::establish(&url).unwrap();
    use diesel::connection::SimpleConnection;
    conn.batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        .unwrap();
    let starts = (0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move {
            let mut settings = wor_hub::config::Settings::for_database(
                wor_hub::config::DatabaseUrl::Postgres(url),
            );
            settings.db_pool_size = 2;
            wor_hub::startup::Application::build(&settings)
                .await
                .map(|a| a.port())
        })
    });
    for start in starts.collect::<Vec<_>>() {
        start.await.unwrap().expect("every instance starts");
    }
}
