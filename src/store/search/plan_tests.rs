//! Every plan finds the same matches in the same order; the cheap one is chosen.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::convert::Infallible;

use serde_json::json;

use super::filter::counted_rows_of;
use super::plan::{fewest_rows, ids_after_tuned, ids_in, ids_sql, Plan, Range, Tuning, TUNING};
use super::sql::load;
use super::sql::Sql;
use super::Criterion;
use crate::config::DatabaseUrl;
use crate::fhir::criteria::parse_criteria;
use crate::fhir::index::index_rows;
use crate::fhir::instant::{format_instant, now_micros};
use crate::fhir::registry::resource;
use crate::store::{Access, AuditContext, Failure, Store};

fn system() -> AuditContext {
    AuditContext {
        request_id: "plan-test".into(),
        actor: "system:plan-test".into(),
    }
}

/// 1,300 Tasks: 1,200 owned by `big` (two in three `requested`), 100 by `small`
/// (every other `requested`); then 40 of `big`'s and 5 of `small`'s get a second
/// version (`in-progress`), after the clock `mid` this returns.
async fn fixture() -> (tempfile::TempDir, Store, i64) {
    let dir = tempfile::tempdir().unwrap();
    let (store, mid) = fixture_on(&DatabaseUrl::Sqlite(dir.path().join("hub.db"))).await;
    (dir, store, mid)
}

/// The fixture in a fresh database on the test PostgreSQL server
/// (`WOR_HUB_TEST_POSTGRES_URL`), its statistics gathered as autovacuum would.
async fn fixture_on_postgres() -> (Store, i64) {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let url = crate::store::fresh_postgres_database("wor_hub_plan");
    let (store, mid) = fixture_on(&DatabaseUrl::Postgres(url.clone())).await;
    diesel::PgConnection::establish(&url)
        .unwrap()
        .batch_execute("ANALYZE")
        .unwrap();
    (store, mid)
}

async fn fixture_on(url: &DatabaseUrl) -> (Store, i64) {
    let store = Store::open(url, 2).await.unwrap();
    let task = |i: usize, status: &str| {
        let owner = if i.is_multiple_of(13) { "small" } else { "big" };
        json!({"resourceType": "Task", "id": format!("t{i:05}"), "status": status,
               "intent": "order", "owner": {"reference": format!("Organization/{owner}")}})
    };
    let first = |i: usize| match (
        i.is_multiple_of(13),
        i.is_multiple_of(3),
        i.is_multiple_of(2),
    ) {
        (true, _, true) | (false, false, _) => "requested",
        _ => "accepted",
    };
    write(&store, (0..1300).map(|i| task(i, first(i))).collect()).await;
    let mid = now_micros() + 1;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let later: Vec<_> = (0..1300)
        .filter(|&i: &usize| i.is_multiple_of(29) || i.is_multiple_of(13) && i.is_multiple_of(7))
        .map(|i| task(i, "in-progress"))
        .collect();
    write(&store, later).await;
    (store, mid)
}

pub(super) async fn write(store: &Store, bodies: Vec<serde_json::Value>) {
    let def = resource("Task").unwrap();
    store
        .transaction(system(), move |tx| {
            for body in &bodies {
                let id = body["id"].as_str().unwrap();
                let rows = index_rows(def, body);
                let text = body.to_string();
                if tx.exists("Task", id)? {
                    tx.update("Task", id, &|_, _| text.clone(), &rows, None, false)?;
                } else {
                    tx.create("Task", id, &|_, _| text.clone(), &rows)?;
                }
            }
            Ok::<_, Failure<Infallible>>(())
        })
        .await
        .unwrap();
}

/// How [`ids`] reads.
#[derive(Debug, Clone, Copy)]
enum How {
    /// As searches do, within these bounds.
    Chosen(Tuning),
    /// Always this plan.
    Fixed(Plan),
}

/// Small bounds, so that the 1,300 Tasks reach every path: the driver at once, the
/// walk that fills the page, the walk then the driver, the walk then walking on.
const SMALL: Tuning = Tuning {
    counted: 200,
    drives_at_once: 50,
    walk: 100,
};

/// The ids found for `query`, read in pages of `page` as the snapshot fill does.
async fn ids(store: &Store, query: &str, how: How, page: usize) -> Vec<String> {
    let criteria: Vec<Criterion> = parse_criteria(resource("Task").unwrap(), query, &[]).unwrap();
    let access = Access::system("system:plan-test");
    store
        .read(access, move |tx| {
            let conn = &mut *tx.conn;
            let mut all: Vec<String> = Vec::new();
            loop {
                let after = all.last().map(String::as_str);
                let more = match how {
                    How::Chosen(tuning) => {
                        ids_after_tuned(conn, "Task", &criteria, (after, None), page, tuning)?
                    }
                    How::Fixed(plan) => {
                        let range = Range {
                            after,
                            ..Range::default()
                        };
                        ids_in(conn, "Task", &criteria, plan, range, page)?
                    }
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

#[tokio::test]
async fn every_plan_finds_the_same_matches() {
    let (_dir, store, mid) = fixture().await;
    every_plan_finds_the_same_matches_in(&store, mid).await;
}

/// The same on PostgreSQL, where each test per row ends in ` OFFSET 0`.
#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn every_plan_finds_the_same_matches_on_postgres() {
    let (store, mid) = fixture_on_postgres().await;
    every_plan_finds_the_same_matches_in(&store, mid).await;
}

async fn every_plan_finds_the_same_matches_in(store: &Store, mid: i64) {
    let mut queries = vec![
        "owner=Organization/big&status=requested".to_owned(),
        "status=requested&owner=Organization/small".to_owned(),
        format!(
            "owner=Organization/big&status=requested&_lastUpdated=gt{}",
            iso(mid)
        ),
        format!(
            "owner=Organization/big&status=in-progress&_lastUpdated=gt{}",
            iso(mid)
        ),
        "owner=Organization/big&_lastUpdated=gt2000-01-01".to_owned(),
        "owner=Organization/none&status=requested".to_owned(),
        // Alternatives of two parameters are not one lookup.
        "status=requested,accepted&_id=t00013,t00026,t00039".to_owned(),
        "status:not=requested&owner=Organization/small".to_owned(),
        "status:missing=false".to_owned(),
        "_id=t00013,t00026,t00039,nothing".to_owned(),
        String::new(),
    ];
    queries.push(format!("_lastUpdated=le{}&owner:missing=false", iso(mid)));
    for query in queries {
        let reference = ids(store, &query, How::Fixed(Plan::Lookups), 5000).await;
        let mut sorted = reference.clone();
        sorted.sort();
        assert_eq!(reference, sorted, "{query}: id order");
        let criteria = parse_criteria(resource("Task").unwrap(), &query, &[]).unwrap();
        let mut hows = vec![
            How::Chosen(TUNING),
            How::Chosen(SMALL),
            How::Fixed(Plan::IdOrder),
        ];
        hows.extend((0..criteria.len()).map(|i| How::Fixed(Plan::Driven(i))));
        for how in hows {
            for page in [1, 7, 11, 1000] {
                let found = ids(store, &query, how, page).await;
                assert_eq!(found, reference, "{query}: {how:?}, pages of {page}");
            }
        }
        // Every match at once (conditional operations, jobs), driven or not.
        let all = store
            .read(Access::system("system:plan-test"), move |tx| {
                tx.find_ids("Task", &criteria)
            })
            .await
            .unwrap();
        assert_eq!(
            all.into_iter().collect::<Vec<_>>(),
            reference,
            "{query}: find_ids"
        );
    }
    // The fixture's counts, so the comparisons above compared something.
    let count =
        |q: &'static str| async move { ids(store, q, How::Fixed(Plan::Lookups), 5000).await.len() };
    assert_eq!(count("owner=Organization/small").await, 100);
    assert_eq!(
        count("owner=Organization/big&status=requested").await,
        (0..1300)
            .filter(|&i: &usize| !i.is_multiple_of(13)
                && !i.is_multiple_of(3)
                && !i.is_multiple_of(29))
            .count()
    );
}

/// A lookup tested on each row uses the index table's (resource_type, id) index: with
/// the (resource_type, param, value) index SQLite would read every row of the
/// parameter's value for each resource (100,000 stored referrals: 6 minutes instead
/// of a millisecond). And the walk reads the (type, id) index in order, stopping at
/// the page: no sorting (a sort reads every row of the range first).
#[tokio::test]
async fn a_walk_reads_in_id_order_and_tests_each_row_by_its_id() {
    let (_dir, store, mid) = fixture().await;
    let query = format!(
        "owner=Organization/big&status=requested&_lastUpdated=gt{}",
        iso(mid)
    );
    let criteria = parse_criteria(resource("Task").unwrap(), &query, &[]).unwrap();
    let access = Access::system("system:plan-test");
    let plan = store
        .read(access, move |tx| {
            let range = Range {
                after: Some("t00100"),
                upto: Some("t00900"),
                as_of: None,
            };
            let mut sql = Sql::new("EXPLAIN QUERY PLAN ");
            sql.append(ids_sql("Task", &criteria, Plan::IdOrder, range, 11));
            Ok(load::<PlanRow>(&mut *tx.conn, &sql)?)
        })
        .await
        .unwrap();
    let details: Vec<&str> = plan.iter().map(|r| r.detail.as_str()).collect();
    for index in ["search_reference_owner", "search_token_owner"] {
        assert!(
            details
                .iter()
                .any(|d| d.contains(index) && d.contains("id=?")),
            "{index} not used: {details:?}"
        );
    }
    assert!(
        details
            .iter()
            .any(|d| d.contains("sqlite_autoindex_resources_1") && d.contains("id>?")),
        "the walk reads the (type, id) index: {details:?}"
    );
    assert!(
        !details.iter().any(|d| d.contains("TEMP B-TREE")),
        "the walk does not sort: {details:?}"
    );
}

/// On PostgreSQL the walk reads the (type, id) primary key in order and tests each row
/// with a subplan on the index tables' (type, id) indexes: no join that reads every
/// match of a lookup first, and no sort.
#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn a_walk_on_postgres_tests_each_row_by_its_id() {
    let (store, _) = fixture_on_postgres().await;
    // (With a `_lastUpdated` bound PostgreSQL may rightly read its own index instead:
    // it has the statistics of that one column.)
    let query = "owner=Organization/big&status=requested";
    let criteria = parse_criteria(resource("Task").unwrap(), query, &[]).unwrap();
    let plan = store
        .read(Access::system("system:plan-test"), move |tx| {
            let range = Range {
                after: Some("t00100"),
                upto: Some("t00900"),
                as_of: None,
            };
            let mut sql = Sql::new("EXPLAIN ");
            sql.append(ids_sql("Task", &criteria, Plan::IdOrder, range, 11));
            Ok(load::<PgPlanRow>(&mut *tx.conn, &sql)?)
        })
        .await
        .unwrap();
    let text: Vec<&str> = plan.iter().map(|r| r.line.as_str()).collect();
    let has = |s: &str| text.iter().any(|l| l.contains(s));
    assert!(has("Index Scan using resources_pkey"), "{text:#?}");
    for index in ["search_reference_owner", "search_token_owner"] {
        assert!(has(index), "{index} not used: {text:#?}");
    }
    assert!(has("SubPlan"), "{text:#?}");
    for not in ["Join", "Hash", "Sort"] {
        assert!(!has(not), "{not} in {text:#?}");
    }
}

/// The owner as a local reference or as an absolute URL: one lookup, two conditions.
fn owner_or_url(owner: &str) -> Criterion {
    use crate::store::query::{Match, RefTarget};
    let reference = |target| Match::Reference {
        param: "owner".to_owned(),
        target,
    };
    Criterion::Any(vec![
        reference(RefTarget::Local {
            target_type: Some("Organization".to_owned()),
            id: owner.to_owned(),
        }),
        reference(RefTarget::Url(format!(
            "https://elsewhere.example/fhir/Organization/{owner}"
        ))),
    ])
}

/// A lookup of several conditions is counted as far as the cap, and exactly below it.
async fn counts_of_a_lookup_with_two_conditions(store: &Store) {
    let counted = |owner: &'static str, cap: usize| async move {
        store
            .read(Access::system("system:plan-test"), move |tx| {
                let criteria = [owner_or_url(owner)];
                Ok(fewest_rows(&mut *tx.conn, "Task", &criteria, cap)?)
            })
            .await
            .unwrap()
    };
    assert_eq!(counted("small", 5000).await, Some((0, 100)));
    assert_eq!(counted("big", 300).await, Some((0, 300)));
    assert_eq!(counted("none", 300).await, Some((0, 0)));
}

#[tokio::test]
async fn a_lookup_with_two_conditions_is_counted_to_its_cap() {
    let (_dir, store, _) = fixture().await;
    counts_of_a_lookup_with_two_conditions(&store).await;
}

/// On PostgreSQL the count of a lookup with two conditions stops at its cap: one index
/// scan per condition under the `LIMIT`, no `BitmapOr` (which reads every matching
/// row of each condition first).
#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn a_lookup_with_two_conditions_is_counted_without_a_bitmap_on_postgres() {
    let (store, _) = fixture_on_postgres().await;
    counts_of_a_lookup_with_two_conditions(&store).await;
    let plan = store
        .read(Access::system("system:plan-test"), move |tx| {
            let rows = counted_rows_of("Task", &owner_or_url("big")).unwrap();
            let mut sql = Sql::new("EXPLAIN SELECT COUNT(*) FROM (");
            sql.append(rows).limit(300).push(") counted");
            Ok(load::<PgPlanRow>(&mut *tx.conn, &sql)?)
        })
        .await
        .unwrap();
    let text: Vec<&str> = plan.iter().map(|r| r.line.as_str()).collect();
    assert!(text.iter().any(|l| l.contains("Append")), "{text:#?}");
    assert!(!text.iter().any(|l| l.contains("BitmapOr")), "{text:#?}");
}

#[derive(diesel::QueryableByName)]
struct PgPlanRow {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
    line: String,
}

#[derive(diesel::QueryableByName)]
struct PlanRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    detail: String,
}

fn iso(micros: i64) -> String {
    format_instant(micros)
}
