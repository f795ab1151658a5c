//! The store's door narrowed by `access_grants` rows (`Criterion::GrantedTo`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use super::*;

/// Rows of `access_grants` narrow like any criteria: `Organization/x` reads Patient a
/// and Task ta (granted), not b or tb; a withheld row grants nothing.
#[tokio::test]
async fn grants_narrow_reads_searches_and_chains() {
    use crate::store::{Grant, Relation};
    let (_dir, store) = fixture().await;
    let grant = |ty: &str, id: &str, relation| Grant {
        organization: "Organization/x".into(),
        resource_type: ty.into(),
        resource_id: id.into(),
        relation,
        valid_from: None,
        valid_until: None,
    };
    let rows = vec![
        grant("Patient", "a", Relation::Performer),
        grant("Task", "ta", Relation::Referrer),
        grant("Patient", "b", Relation::Withheld),
    ];
    store
        .transaction(system(), move |tx| {
            tx.replace_grants("ServiceRequest/s", &rows)?;
            Ok::<_, Failure<Infallible>>(())
        })
        .await
        .unwrap();
    let granted = || {
        vec![Criterion::GrantedTo {
            organizations: vec!["Organization/x".into()],
            at: 0,
        }]
    };
    let mut types = BTreeMap::new();
    types.insert("Patient".to_owned(), granted());
    types.insert("Task".to_owned(), granted());
    let x = ReadScope::Only(Arc::new(types));
    assert!(found(&lookup(&store, &x, "Patient", "a", None).await));
    assert!(!found(&lookup(&store, &x, "Patient", "b", None).await));
    assert!(found(&lookup(&store, &x, "Task", "ta", None).await));
    assert!(!found(&lookup(&store, &x, "Task", "tb", None).await));
    assert_eq!(count(&store, &x, "Patient", "").await, 1);
    assert_eq!(count(&store, &x, "Task", "patient.name=Bb").await, 0);
    assert_eq!(count(&store, &x, "Task", "patient.name=Aa").await, 1);
    let page = search(
        &store,
        &x,
        spec(
            "Task",
            Vec::new(),
            includes("Task", "_include", "Task:patient"),
            50,
        ),
    )
    .await;
    assert_eq!(ids(&page), (strings(&["Task/ta"]), strings(&["Patient/a"])));
    assert_eq!(history(&store, &x, Some("Patient"), None).await.len(), 2);
    // Another organisation reads none of it; the rows are replaced as a whole.
    let mut types = BTreeMap::new();
    types.insert(
        "Patient".to_owned(),
        vec![Criterion::GrantedTo {
            organizations: vec!["Organization/y".into()],
            at: 0,
        }],
    );
    let y = ReadScope::Only(Arc::new(types));
    assert_eq!(count(&store, &y, "Patient", "").await, 0);
    store
        .transaction(system(), |tx| {
            tx.replace_grants("ServiceRequest/s", &[])?;
            Ok::<_, Failure<Infallible>>(())
        })
        .await
        .unwrap();
    assert_eq!(count(&store, &x, "Patient", "").await, 0);
}
