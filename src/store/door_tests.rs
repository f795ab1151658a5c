//! The store's door, below HTTP: a read scope narrows reads, vreads, searches, counts,
//! chained parameters, `_include`/`_revinclude`, later pages and history (with
//! `ReadScope::All` as the control); and a unit of work keeps the caller's tracing span.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Value};
use tracing::Instrument;

use super::query::{Include, SearchPage, SearchSpec};
use super::{
    Access, AuditContext, Criterion, Failure, HistoryQuery, IndexRows, Lookup, ReadScope, Store,
    Tx, TxError,
};
use crate::config::DatabaseUrl;
use crate::fhir::criteria::parse_criteria;
use crate::fhir::index::index_rows;
use crate::fhir::registry::resource;
use crate::fhir::search::{parse_search, ParseOptions};

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&DatabaseUrl::Sqlite(dir.path().join("hub.db")), 2)
        .await
        .unwrap();
    (dir, store)
}

fn system() -> AuditContext {
    AuditContext {
        request_id: "door-test".into(),
        actor: "system:door-test".into(),
    }
}

/// Index rows as the server makes them (types it does not serve get none).
fn rows_of(body: &Value) -> IndexRows {
    let ty = body["resourceType"].as_str().unwrap();
    resource(ty).map_or_else(IndexRows::default, |def| index_rows(def, body))
}

/// Stores `body` under its `id`: version 1, or a new version when it exists.
async fn put(store: &Store, body: Value) {
    let ty = body["resourceType"].as_str().unwrap().to_owned();
    let id = body["id"].as_str().unwrap().to_owned();
    let rows = rows_of(&body);
    let text = body.to_string();
    store
        .transaction(system(), move |tx| {
            if tx.exists(&ty, &id)? {
                tx.update(&ty, &id, &|_, _| text.clone(), &rows, None, false)?;
            } else {
                tx.create(&ty, &id, &|_, _| text.clone(), &rows)?;
            }
            Ok::<_, Failure<Infallible>>(())
        })
        .await
        .unwrap();
}

/// Patients a and b (two versions each), a Task for each, a Practitioner and an
/// Observation (a type the server does not serve; the store does not mind).
async fn fixture() -> (tempfile::TempDir, Store) {
    let (dir, store) = open().await;
    for body in [
        json!({"resourceType": "Patient", "id": "a", "name": [{"family": "Aa"}]}),
        json!({"resourceType": "Patient", "id": "b", "name": [{"family": "Bb"}]}),
        json!({"resourceType": "Patient", "id": "a", "name": [{"family": "Aa2"}]}),
        json!({"resourceType": "Patient", "id": "b", "name": [{"family": "Bb2"}]}),
        json!({"resourceType": "Task", "id": "ta", "status": "requested", "intent": "order",
               "for": {"reference": "Patient/a"}}),
        json!({"resourceType": "Task", "id": "tb", "status": "requested", "intent": "order",
               "for": {"reference": "Patient/b"}}),
        json!({"resourceType": "Practitioner", "id": "p1", "name": [{"family": "Pp"}]}),
        json!({"resourceType": "Observation", "id": "o1", "status": "final"}),
    ] {
        put(&store, body).await;
    }
    (dir, store)
}

fn access(scope: &ReadScope) -> Access {
    Access {
        request_id: "door-test-read".into(),
        actor: "party:door-test".into(),
        organization: None,
        scope: scope.clone(),
    }
}

/// `Patient` limited to `_id=a`, every `Task`, nothing else.
fn only_patient_a() -> ReadScope {
    let patient = resource("Patient").unwrap();
    let mut types = BTreeMap::new();
    types.insert(
        "Patient".to_owned(),
        parse_criteria(patient, "_id=a", &[]).unwrap(),
    );
    types.insert("Task".to_owned(), Vec::new());
    ReadScope::Only(Arc::new(types))
}

async fn read<T, F>(store: &Store, scope: &ReadScope, f: F) -> T
where
    T: Send + 'static,
    F: Fn(&mut Tx<'_>) -> Result<T, TxError> + Send + 'static,
{
    store.read(access(scope), f).await.unwrap()
}

async fn lookup(store: &Store, scope: &ReadScope, ty: &str, id: &str, v: Option<i64>) -> Lookup {
    let (ty, id) = (ty.to_owned(), id.to_owned());
    read(store, scope, move |tx| tx.read(&ty, &id, v)).await
}

fn found(l: &Lookup) -> bool {
    matches!(l, Lookup::Found(_))
}

fn spec(ty: &str, criteria: Vec<Criterion>, includes: Vec<Include>, count: usize) -> SearchSpec {
    SearchSpec {
        resource_type: ty.to_owned(),
        criteria,
        sort: Vec::new(),
        includes,
        count,
        accurate_total: false,
        query: String::new(),
    }
}

/// A first page, once its paging snapshot (queued, not waited for) is stored.
async fn search(store: &Store, scope: &ReadScope, spec: SearchSpec) -> SearchPage {
    let page = read(store, scope, move |tx| tx.search(&spec)).await;
    store.settle().await.unwrap();
    page
}

/// Ids of a page's matches and of what it included, as `Type/id`, sorted.
fn ids(page: &SearchPage) -> (Vec<String>, Vec<String>) {
    let key = |v: &super::StoredVersion| format!("{}/{}", v.resource_type, v.id);
    let sorted = |vs: &[super::StoredVersion]| {
        let set: BTreeSet<String> = vs.iter().map(key).collect();
        set.into_iter().collect::<Vec<_>>()
    };
    (sorted(&page.matches), sorted(&page.included))
}

/// Criteria as the search parser builds them from a query string.
fn criteria(ty: &str, query: &str) -> Vec<Criterion> {
    parse_criteria(resource(ty).unwrap(), query, &[]).unwrap()
}

fn includes(ty: &str, name: &str, value: &str) -> Vec<Include> {
    let pairs = [(name.to_owned(), value.to_owned())];
    parse_search(resource(ty).unwrap(), &pairs, &[], ParseOptions::default())
        .unwrap()
        .includes
}

async fn count(store: &Store, scope: &ReadScope, ty: &str, query: &str) -> u64 {
    let (ty, c) = (ty.to_owned(), criteria(ty, query));
    read(store, scope, move |tx| tx.search_count(&ty, &c)).await
}

/// History rows as `Type/id/version`, newest first.
async fn history(
    store: &Store,
    scope: &ReadScope,
    ty: Option<&str>,
    id: Option<&str>,
) -> Vec<String> {
    let q = HistoryQuery {
        resource_type: ty.map(str::to_owned),
        id: id.map(str::to_owned),
        since: None,
        at: None,
        before_seq: None,
        count: 100,
    };
    read(store, scope, move |tx| tx.history(&q))
        .await
        .iter()
        .map(|r| {
            let v = &r.version;
            format!("{}/{}/{}", v.resource_type, v.id, v.version_id)
        })
        .collect()
}

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn a_read_scope_hides_resources_from_reads_and_vreads() {
    let (_dir, store) = fixture().await;
    let only = only_patient_a();
    let all = ReadScope::All;

    assert!(found(&lookup(&store, &only, "Patient", "a", None).await));
    assert!(found(&lookup(&store, &only, "Patient", "a", Some(1)).await));
    assert!(matches!(
        lookup(&store, &only, "Patient", "b", None).await,
        Lookup::NotFound
    ));
    assert!(matches!(
        lookup(&store, &only, "Patient", "b", Some(1)).await,
        Lookup::NotFound
    ));
    assert!(found(&lookup(&store, &only, "Task", "tb", None).await));
    for (ty, id) in [("Practitioner", "p1"), ("Observation", "o1")] {
        assert!(
            matches!(lookup(&store, &only, ty, id, None).await, Lookup::NotFound),
            "{ty}/{id}"
        );
    }

    // Control: everything is there for ReadScope::All.
    for (ty, id) in [
        ("Patient", "a"),
        ("Patient", "b"),
        ("Task", "tb"),
        ("Practitioner", "p1"),
        ("Observation", "o1"),
    ] {
        assert!(
            found(&lookup(&store, &all, ty, id, None).await),
            "{ty}/{id}"
        );
    }
    assert!(found(&lookup(&store, &all, "Patient", "b", Some(1)).await));
}

#[tokio::test]
async fn a_read_scope_narrows_searches_and_counts() {
    let (_dir, store) = fixture().await;
    let only = only_patient_a();
    let all = ReadScope::All;

    let page = search(&store, &only, spec("Patient", Vec::new(), Vec::new(), 50)).await;
    assert_eq!(ids(&page).0, strings(&["Patient/a"]));
    assert_eq!(page.total, Some(1));
    let by_id = spec("Patient", criteria("Patient", "_id=b"), Vec::new(), 50);
    assert!(search(&store, &only, by_id).await.matches.is_empty());
    assert_eq!(count(&store, &only, "Patient", "").await, 1);
    assert_eq!(count(&store, &only, "Patient", "_id=b").await, 0);
    assert_eq!(count(&store, &only, "Task", "").await, 2);

    // Types the scope does not list: nothing.
    for ty in ["Practitioner", "Observation"] {
        let page = search(&store, &only, spec(ty, Vec::new(), Vec::new(), 50)).await;
        assert!(page.matches.is_empty(), "{ty}");
        assert_eq!(page.total, Some(0), "{ty}");
        let ty_owned = ty.to_owned();
        let n = read(&store, &only, move |tx| tx.search_count(&ty_owned, &[])).await;
        assert_eq!(n, 0, "{ty}");
    }

    // Control.
    let page = search(&store, &all, spec("Patient", Vec::new(), Vec::new(), 50)).await;
    assert_eq!(ids(&page).0, strings(&["Patient/a", "Patient/b"]));
    let by_id = spec("Patient", criteria("Patient", "_id=b"), Vec::new(), 50);
    assert_eq!(
        ids(&search(&store, &all, by_id).await).0,
        strings(&["Patient/b"])
    );
    assert_eq!(count(&store, &all, "Patient", "").await, 2);
    for ty in ["Practitioner", "Observation"] {
        let page = search(&store, &all, spec(ty, Vec::new(), Vec::new(), 50)).await;
        assert_eq!(page.matches.len(), 1, "{ty}");
        let ty_owned = ty.to_owned();
        let n = read(&store, &all, move |tx| tx.search_count(&ty_owned, &[])).await;
        assert_eq!(n, 1, "{ty}");
    }
}

#[tokio::test]
async fn a_hidden_resource_does_not_make_a_chain_match() {
    let (_dir, store) = fixture().await;
    let only = only_patient_a();
    let all = ReadScope::All;
    let task = |query: &str| spec("Task", criteria("Task", query), Vec::new(), 50);

    // `patient` may point to Patient only; `subject` to any type (the chain then has
    // an alternative per type, the unlisted ones invisible).
    for (query, scoped, control) in [
        ("patient._id=b", &[][..], &["Task/tb"][..]),
        ("patient._id=a", &["Task/ta"][..], &["Task/ta"][..]),
        ("subject._id=b", &[][..], &["Task/tb"][..]),
        ("subject:Patient._id=b", &[][..], &["Task/tb"][..]),
        ("patient.name=bb2", &[][..], &["Task/tb"][..]),
        ("patient.name=aa2", &["Task/ta"][..], &["Task/ta"][..]),
    ] {
        assert_eq!(
            ids(&search(&store, &only, task(query)).await).0,
            strings(scoped),
            "{query} within the scope"
        );
        assert_eq!(
            ids(&search(&store, &all, task(query)).await).0,
            strings(control),
            "{query} with ReadScope::All"
        );
    }
    assert_eq!(count(&store, &only, "Task", "patient._id=b").await, 0);
    assert_eq!(count(&store, &all, "Task", "patient._id=b").await, 1);
}

#[tokio::test]
async fn a_read_scope_narrows_includes_and_revincludes() {
    let (_dir, store) = fixture().await;
    let only = only_patient_a();
    let all = ReadScope::All;

    let include = || {
        spec(
            "Task",
            Vec::new(),
            includes("Task", "_include", "Task:patient"),
            50,
        )
    };
    let page = search(&store, &only, include()).await;
    assert_eq!(ids(&page).0, strings(&["Task/ta", "Task/tb"]));
    assert_eq!(ids(&page).1, strings(&["Patient/a"]));
    let page = search(&store, &all, include()).await;
    assert_eq!(ids(&page).1, strings(&["Patient/a", "Patient/b"]));

    let revinclude = || {
        spec(
            "Patient",
            Vec::new(),
            includes("Patient", "_revinclude", "Task:patient"),
            50,
        )
    };
    let page = search(&store, &only, revinclude()).await;
    assert_eq!(ids(&page), (strings(&["Patient/a"]), strings(&["Task/ta"])));
    // Tasks unlisted: the revinclude adds nothing.
    let mut types = BTreeMap::new();
    types.insert("Patient".to_owned(), Vec::new());
    let patients_only = ReadScope::Only(Arc::new(types));
    let page = search(&store, &patients_only, revinclude()).await;
    assert_eq!(ids(&page).0, strings(&["Patient/a", "Patient/b"]));
    assert!(page.included.is_empty(), "{:?}", ids(&page).1);
    let page = search(&store, &all, revinclude()).await;
    assert_eq!(ids(&page).1, strings(&["Task/ta", "Task/tb"]));
}

#[tokio::test]
async fn a_later_page_leaves_out_what_the_scope_hides() {
    let (_dir, store) = fixture().await;
    let only = only_patient_a();
    let all = ReadScope::All;
    // A snapshot of both Patients (one per page), made with ReadScope::All.
    let first = search(&store, &all, spec("Patient", Vec::new(), Vec::new(), 1)).await;
    let sid = first.search_id.clone().expect("a snapshot");
    let page = |scope: &ReadScope| {
        let sid = sid.clone();
        let scope = scope.clone();
        let store = store.clone();
        async move {
            read(&store, &scope, move |tx| {
                tx.search_page(&sid, 0, 2, (&[], &[]), &[])
            })
            .await
            .expect("the snapshot")
        }
    };
    assert_eq!(ids(&page(&only).await).0, strings(&["Patient/a"]));
    assert_eq!(
        ids(&page(&all).await).0,
        strings(&["Patient/a", "Patient/b"])
    );
}

/// A first page answers before its snapshot is stored; `Store::settle` waits for it.
#[tokio::test]
#[allow(clippy::await_holding_lock)] // holds the group's lock on purpose
async fn settle_waits_for_the_snapshot_a_first_page_queued() {
    let (_dir, store) = fixture().await;
    let all = ReadScope::All;
    let later = |sid: String| {
        let store = store.clone();
        async move {
            read(&store, &ReadScope::All, move |tx| {
                tx.search_page(&sid, 1, 1, (&[], &[]), &[])
            })
            .await
        }
    };
    // The group's runner cannot run while the test holds its lock.
    let held = store.group.0.lock().unwrap();
    let first = read(&store, &all, move |tx| {
        tx.search(&spec("Patient", Vec::new(), Vec::new(), 1))
    })
    .await;
    let sid = first.search_id.clone().expect("a next page");
    assert!(later(sid.clone()).await.is_none(), "not stored yet");
    let settled = tokio::spawn({
        let store = store.clone();
        async move { store.settle().await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !settled.is_finished(),
        "settle waits for the queued snapshot"
    );
    drop(held);
    settled.await.unwrap().unwrap();
    let page = later(sid).await.expect("the snapshot, once settled");
    assert_eq!(ids(&page).0, strings(&["Patient/b"]));
}

#[tokio::test]
async fn a_read_scope_narrows_history() {
    let (_dir, store) = fixture().await;
    let only = only_patient_a();
    let all = ReadScope::All;

    assert_eq!(
        history(&store, &only, Some("Patient"), None).await,
        strings(&["Patient/a/2", "Patient/a/1"])
    );
    assert!(history(&store, &only, Some("Patient"), Some("b"))
        .await
        .is_empty());
    assert_eq!(
        history(&store, &only, Some("Patient"), Some("a")).await,
        strings(&["Patient/a/2", "Patient/a/1"])
    );
    for ty in ["Practitioner", "Observation"] {
        assert!(
            history(&store, &only, Some(ty), None).await.is_empty(),
            "{ty}"
        );
    }
    assert_eq!(
        history(&store, &only, None, None).await,
        strings(&["Task/tb/1", "Task/ta/1", "Patient/a/2", "Patient/a/1"])
    );

    // Control.
    assert_eq!(
        history(&store, &all, Some("Patient"), None).await,
        strings(&["Patient/b/2", "Patient/a/2", "Patient/b/1", "Patient/a/1"])
    );
    assert_eq!(history(&store, &all, None, None).await.len(), 8);
}

/// History pages of `count` under a narrowed scope: hidden versions do not use up a
/// page, so pages are full and paging reaches every visible version.
#[tokio::test]
async fn history_pages_are_full_under_a_narrowed_scope() {
    let (_dir, store) = fixture().await;
    let only = only_patient_a();
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let q = HistoryQuery {
            resource_type: Some("Patient".into()),
            id: None,
            since: None,
            at: None,
            before_seq: before,
            count: 1,
        };
        let mut rows = read(&store, &only, move |tx| tx.history(&q)).await;
        // count + 1 rows when another page follows, as the handler reads it.
        let more = rows.len() > 1;
        rows.truncate(1);
        let Some(last) = rows.last() else { break };
        before = Some(last.seq);
        seen.push(format!("{}/{}", last.version.id, last.version.version_id));
        if !more {
            break;
        }
    }
    assert_eq!(seen, strings(&["a/2", "a/1"]));
}

/// The captured log lines of the process-wide subscriber, installed once: JSON lines
/// with the current span, from this module only (other tests' events are not formatted).
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buffer.clone());
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "wor_hub::store::door_tests=trace",
            ))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("the lib tests install no other global subscriber");
        buffer
    })
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured lines that contain `marker` (at least one).
fn lines_with(marker: &str) -> Vec<String> {
    let bytes = captured_logs().lock().unwrap().clone();
    let text = String::from_utf8(bytes).unwrap();
    let lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains(marker))
        .map(str::to_owned)
        .collect();
    assert!(!lines.is_empty(), "no log line with {marker:?} in:\n{text}");
    lines
}

#[tokio::test]
async fn a_unit_of_work_keeps_the_callers_span() {
    captured_logs();
    let (_dir, store) = open().await;
    let span = tracing::info_span!("request", request_id = "span-test-123");

    // The subscriber records the span's fields on an event in the span at all.
    async { tracing::error!("door test: before the unit of work") }
        .instrument(span.clone())
        .await;
    for line in lines_with("door test: before the unit of work") {
        assert!(line.contains("span-test-123"), "{line}");
    }

    store
        .transaction(system(), |_tx| {
            tracing::error!("inside the unit of work");
            Ok::<_, Failure<Infallible>>(())
        })
        .instrument(span.clone())
        .await
        .unwrap();
    for line in lines_with("inside the unit of work") {
        assert!(line.contains("span-test-123"), "{line}");
    }

    store
        .read(access(&ReadScope::All), |_tx| {
            tracing::error!("inside the read door");
            Ok(())
        })
        .instrument(span)
        .await
        .unwrap();
    for line in lines_with("inside the read door") {
        assert!(line.contains("span-test-123"), "{line}");
    }
}

mod grants;
