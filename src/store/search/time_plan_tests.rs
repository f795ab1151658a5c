//! Searches sorted by `_lastUpdated` (`time_plan.rs`): every plan, read in pages as a
//! lazily filled snapshot reads, finds exactly what the sorted query of every match
//! finds, in the same order, ties by id; and the walk reads the (type, last_updated)
//! index in order.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde_json::json;

use super::plan::{Plan, Tuning, TUNING};
use super::plan_tests::write;
use super::sql::{load, Sql};
use super::time_plan::{ids_after_tuned, ids_in, ids_sql, position_of, Span};
use super::{ordered_ids, Criterion};
use crate::config::DatabaseUrl;
use crate::fhir::criteria::parse_criteria;
use crate::fhir::instant::{format_instant, now_micros};
use crate::fhir::registry::resource;
use crate::store::query::{Sort, SortKey};
use crate::store::{Access, Store};

/// Small bounds, so that the fixture reaches every path: the driver at once, the walk
/// that fills the page, the walk then the driver, the walk then walking on.
const SMALL: Tuning = Tuning {
    counted: 60,
    drives_at_once: 15,
    walk: 30,
};

#[derive(Debug, Clone, Copy)]
enum How {
    Chosen(Tuning),
    Fixed(Plan),
}

/// 600 Tasks in 20 units of work of 30 (20 times; in a unit, ties), owners `big` (9 in
/// 10) and `small`, statuses `requested` and `accepted`; then 3 later units each give 25
/// of them a second version (`in-progress`). Returns the store and the clock between
/// the first and the second part.
async fn fixture(url: &DatabaseUrl) -> (Store, i64) {
    let store = Store::open(url, 2).await.unwrap();
    let task = |i: usize, status: &str| {
        let owner = if i.is_multiple_of(10) { "small" } else { "big" };
        // Ids not in time order: the id order and the time order differ.
        json!({"resourceType": "Task", "id": format!("t{:03}-{i:03}", (i * 7919) % 600),
               "status": status, "intent": "order",
               "owner": {"reference": format!("Organization/{owner}")}})
    };
    let status = |i: usize| {
        if i.is_multiple_of(3) {
            "accepted"
        } else {
            "requested"
        }
    };
    for unit in 0..20 {
        write(
            &store,
            (unit * 30..unit * 30 + 30)
                .map(|i| task(i, status(i)))
                .collect(),
        )
        .await;
    }
    let mid = now_micros();
    for unit in 0..3 {
        let later = (0..25).map(|k| task((unit * 131 + k * 17) % 600, "in-progress"));
        write(&store, later.collect()).await;
    }
    (store, mid)
}

/// The ids found for `query` in pages of `page`, each page going on after the last
/// entry's position, as the snapshot fill does.
async fn ids(store: &Store, query: &str, descending: bool, how: How, page: usize) -> Vec<String> {
    let criteria: Vec<Criterion> = parse_criteria(resource("Task").unwrap(), query, &[]).unwrap();
    store
        .read(Access::system("system:time-plan-test"), move |tx| {
            let conn = &mut *tx.conn;
            let mut all: Vec<String> = Vec::new();
            loop {
                let after = match all.last() {
                    Some(id) => Some(position_of(conn, "Task", id, i64::MAX)?.unwrap()),
                    None => None,
                };
                let span = Span {
                    descending,
                    after: after.as_ref(),
                    ..Span::default()
                };
                let more = match how {
                    How::Chosen(t) => ids_after_tuned(conn, "Task", &criteria, span, page, t)?,
                    How::Fixed(plan) => ids_in(conn, "Task", &criteria, plan, span, page)?,
                };
                let done = more.len() < page;
                all.extend(more);
                if done {
                    return Ok(all);
                }
            }
        })
        .await
        .unwrap()
}

/// Every match at once, sorted by the general query (`ORDER BY last_updated, id`).
async fn reference(store: &Store, query: &str, descending: bool) -> Vec<String> {
    let criteria: Vec<Criterion> = parse_criteria(resource("Task").unwrap(), query, &[]).unwrap();
    let sort = vec![Sort {
        key: SortKey::LastUpdated,
        descending,
    }];
    store
        .read(Access::system("system:time-plan-test"), move |tx| {
            Ok(ordered_ids(&mut *tx.conn, "Task", &criteria, &sort, None)?)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn every_time_plan_finds_what_the_sorted_query_finds() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mid) = fixture(&DatabaseUrl::Sqlite(dir.path().join("hub.db"))).await;
    every_time_plan_finds_what_the_sorted_query_finds_in(&store, mid).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn every_time_plan_finds_what_the_sorted_query_finds_on_postgres() {
    let url = crate::store::fresh_postgres_database("wor_hub_time_plan");
    let (store, mid) = fixture(&DatabaseUrl::Postgres(url)).await;
    every_time_plan_finds_what_the_sorted_query_finds_in(&store, mid).await;
}

async fn every_time_plan_finds_what_the_sorted_query_finds_in(store: &Store, mid: i64) {
    let mid = format_instant(mid);
    let queries = [
        "owner=Organization/big&status=requested".to_owned(),
        "owner=Organization/small&status=requested".to_owned(),
        format!("owner=Organization/big&_lastUpdated=gt{mid}"),
        format!("owner=Organization/small&status=in-progress&_lastUpdated=ge{mid}"),
        format!("status=requested&_lastUpdated=lt{mid}"),
        "owner=Organization/big&_lastUpdated=gt2000-01-01".to_owned(),
        "owner=Organization/none".to_owned(),
        "status=requested,in-progress&_id=t000-000,t119-001,t238-002,t357-003,none".to_owned(),
        "status:not=requested".to_owned(),
        format!("_lastUpdated=gt{mid}"),
        String::new(),
    ];
    let mut compared = 0;
    for query in &queries {
        for descending in [false, true] {
            let expected = reference(store, query, descending).await;
            compared += expected.len();
            let n = parse_criteria(resource("Task").unwrap(), query, &[])
                .unwrap()
                .len();
            let mut hows = vec![
                How::Chosen(TUNING),
                How::Chosen(SMALL),
                How::Fixed(Plan::IdOrder),
                How::Fixed(Plan::Lookups),
            ];
            hows.extend((0..n).map(|i| How::Fixed(Plan::Driven(i))));
            for how in hows {
                for page in [1, 7, 40, 1000] {
                    let found = ids(store, query, descending, how, page).await;
                    assert_eq!(
                        found, expected,
                        "{query} (descending: {descending}): {how:?}, pages of {page}"
                    );
                }
            }
        }
    }
    // The fixture's sizes, so the comparisons above compared something.
    assert_eq!(reference(store, "", false).await.len(), 600);
    assert_eq!(
        reference(store, &format!("_lastUpdated=gt{mid}"), false)
            .await
            .len(),
        75
    );
    assert!(compared > 2_000, "{compared}");
}

/// The walk reads the (type, last_updated) index in order and stops at the page: no
/// sort of the range (a sort reads every row of the range first), each lookup tested
/// by its (resource_type, id) index.
#[tokio::test]
async fn a_walk_reads_the_time_index_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mid) = fixture(&DatabaseUrl::Sqlite(dir.path().join("hub.db"))).await;
    let query = format!(
        "owner=Organization/big&status=requested&_lastUpdated=gt{}",
        format_instant(mid)
    );
    let criteria = parse_criteria(resource("Task").unwrap(), &query, &[]).unwrap();
    let plan = store
        .read(Access::system("system:time-plan-test"), move |tx| {
            let mut sql = Sql::new("EXPLAIN QUERY PLAN ");
            sql.append(ids_sql(
                "Task",
                &criteria,
                Plan::IdOrder,
                Span::default(),
                11,
            ));
            Ok(load::<PlanRow>(&mut *tx.conn, &sql)?
                .into_iter()
                .map(|r| r.detail)
                .collect::<Vec<_>>())
        })
        .await
        .unwrap();
    let text = plan.join("\n");
    assert!(
        text.contains("resources_type_updated"),
        "the walk reads the time index:\n{text}"
    );
    assert!(
        !text.contains("TEMP B-TREE FOR ORDER BY"),
        "no sort of the whole range:\n{text}"
    );
}

#[derive(diesel::QueryableByName)]
struct PlanRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    detail: String,
}
