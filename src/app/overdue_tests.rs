//! The contact-deadline job tags in units of work of a bounded size.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::convert::Infallible;

use serde_json::json;

use super::{mark_overdue_in_units, App, Principal};
use crate::config::{DatabaseUrl, Settings};
use crate::fhir::index::index_rows;
use crate::fhir::instant::{format_instant, now_micros};
use crate::fhir::registry::resource;
use crate::store::{Access, Failure, Store};

#[tokio::test]
async fn overdue_tasks_are_tagged_in_bounded_units_of_work() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(dir.path().join("hub.db"));
    let store = Store::open(&url, 2).await.unwrap();
    let app = App::new(store.clone(), &Settings::for_database(url));
    // Seven requested Tasks authored 30 days ago (past the 14-day deadline), and one
    // authored today.
    let month_ago = format_instant(now_micros() - 30 * 86_400_000_000);
    let today = format_instant(now_micros());
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            json!({"resourceType": "Task", "id": format!("t{i}"), "status": "requested",
                   "intent": "order", "authoredOn": if i < 7 { &month_ago } else { &today },
                   "owner": {"reference": "Organization/o"}})
        })
        .collect();
    store
        .transaction(Access::system("system:test"), move |tx| {
            let def = resource("Task").unwrap();
            for body in &tasks {
                let text = body.to_string();
                let id = body["id"].as_str().unwrap();
                tx.create("Task", id, &|_, _| text.clone(), &index_rows(def, body))?;
            }
            Ok::<_, Failure<Infallible>>(())
        })
        .await
        .unwrap();

    let principal = Principal::system("system:contact-deadline");
    let before = store.commits().get();
    let marked = mark_overdue_in_units(&app, &principal, 3).await.unwrap();
    assert_eq!(marked, 7);
    assert_eq!(
        store.commits().get() - before,
        3,
        "units of 3, 3 and 1 Tasks"
    );
    let tagged = store
        .read(Access::system("system:test"), |tx| {
            let mut tagged = Vec::new();
            for i in 0..8 {
                let id = format!("t{i}");
                let body = tx.current("Task", &id)?.and_then(|v| v.body).unwrap();
                if body.contains("overdue") {
                    tagged.push(id);
                }
            }
            Ok(tagged)
        })
        .await
        .unwrap();
    assert_eq!(tagged, ["t0", "t1", "t2", "t3", "t4", "t5", "t6"]);
    assert_eq!(mark_overdue_in_units(&app, &principal, 3).await.unwrap(), 0);
}
