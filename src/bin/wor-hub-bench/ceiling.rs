//! The storage ceiling: the same rows written straight to the database, with the
//! server's durability settings and no HTTP, so each service figure is also a ratio.

use std::convert::Infallible;
use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::r2d2::ManageConnection;
use serde_json::Value;
use wor_hub::config::DatabaseUrl;
use wor_hub::store::{Access, Failure, IndexRows, Store};

use crate::load::{load, Limit, Outcome};
use crate::REFERRAL;

pub(crate) struct Ceiling {
    pub(crate) commits: Outcome,
    pub(crate) units_c1: Outcome,
    pub(crate) units_c8: Outcome,
}

/// The storage ceiling on `url`, a fresh database of the same backend, opened with the
/// server's own connection settings (SQLite: WAL, synchronous=FULL; PostgreSQL:
/// synchronous_commit as the server has it).
pub(crate) async fn storage_ceiling(url: DatabaseUrl, limit: Limit) -> Result<Ceiling, String> {
    let store = Store::open(&url, 8)
        .await
        .map_err(|e| format!("storage ceiling: cannot open the store: {e}"))?;

    // Single-row durable commits on one connection.
    let row = REFERRAL.replace('\'', "''");
    let conn = tokio::task::spawn_blocking(move || {
        let mut conn = wor_hub::store::db::Manager::new(url)
            .connect()
            .map_err(|e| format!("storage ceiling: cannot connect: {e}"))?;
        conn.batch_execute("CREATE TABLE bench_commit (n BIGINT PRIMARY KEY, body TEXT NOT NULL)")
            .map_err(|e| format!("storage ceiling: {e}"))?;
        Ok::<_, String>(std::sync::Mutex::new(conn))
    })
    .await
    .map_err(|e| e.to_string())??;
    let conn = Arc::new(conn);
    // The first commits grow the new database's files: 20 of them before measuring.
    let commit = move |i: u64| {
        let (conn, row) = (conn.clone(), row.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let mut conn = conn.lock().map_err(|e| e.to_string())?;
                conn.batch_execute(&format!(
                    "BEGIN; INSERT INTO bench_commit (n, body) VALUES ({i}, '{row}'); COMMIT;"
                ))
                .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())?
        }
    };
    let commit = Arc::new(commit);
    let op = commit.clone();
    load(1, Limit::Count(20), move |i| op(i + u64::from(u32::MAX))).await;
    let op = commit.clone();
    let commits = load(1, limit, move |i| op(i)).await;

    // Units of work of the store API: a referral's five resources, nothing else.
    let fixture: Value =
        serde_json::from_str(REFERRAL).map_err(|e| format!("the fixture is not JSON: {e}"))?;
    let resources: Arc<Vec<(String, Value)>> = Arc::new(
        fixture
            .get("entry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let r = e.get("resource")?;
                Some((r.get("resourceType")?.as_str()?.to_owned(), r.clone()))
            })
            .collect(),
    );
    let unit = move |_: u64| {
        let store = store.clone();
        let writes: Vec<(String, String, String)> = resources
            .iter()
            .map(|(ty, r)| {
                let id = wor_hub::fhir::resource::new_logical_id();
                let mut r = r.clone();
                r["id"] = Value::String(id.clone());
                (ty.clone(), id, r.to_string())
            })
            .collect();
        async move {
            store
                .transaction(Access::system("system:wor-hub-bench"), move |tx| {
                    for (ty, id, body) in &writes {
                        tx.create(ty, id, &|_, _| body.clone(), &IndexRows::default())?;
                    }
                    Ok::<_, Failure<Infallible>>(())
                })
                .await
                .map_err(|e| format!("{e:?}"))
        }
    };
    let unit = Arc::new(unit);
    let op = unit.clone();
    load(1, Limit::Count(20), move |i| op(i)).await;
    let op = unit.clone();
    let units_c1 = load(1, limit, move |i| op(i)).await;
    let op = unit.clone();
    let units_c8 = load(8, limit, move |i| op(i)).await;
    Ok(Ceiling {
        commits,
        units_c1,
        units_c8,
    })
}
