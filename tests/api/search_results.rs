//! Search results: _include/_revinclude, _sort, _total, _summary=count, _elements,
//! POST _search, unknown parameters (strict and lenient), _count, and stable paging
//! under concurrent writes.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{expect_outcome, has_issue, link, TestApp};
use crate::helpers::{moved, put_task, the_task};
use crate::search::{found, id_of, ids, search, sorted, BSN};

backend_tests!(
    include_and_revinclude,
    sort_total_and_summary,
    elements_keep_stored_bytes,
    post_search_merges_url_and_body,
    unknown_parameters_strict_and_lenient,
    count_is_clamped,
    paging_is_stable_under_concurrent_inserts,
    page_links_are_checked,
);

async fn follow(app: &TestApp, url: &str) -> Value {
    let res = app.client.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200, "{url}");
    res.json().await.unwrap()
}

pub(crate) fn entries_with_mode(bundle: &Value, mode: &str) -> Vec<String> {
    let mut v: Vec<String> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["search"]["mode"] == mode)
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )
        })
        .collect();
    v.sort();
    v
}

async fn include_and_revinclude(app: TestApp) {
    let patient = id_of(&app.create(&json!({"resourceType": "Patient", "identifier": [{"system": BSN, "value": "999999011"}]})).await);
    let org = id_of(
        &app.create(&json!({"resourceType": "Organization", "name": "Tom in de buurt"}))
            .await,
    );
    let sr = id_of(
        &app.create(
            &json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "subject": {"reference": format!("Patient/{patient}")},
            "requester": {"reference": format!("Organization/{org}")}}),
        )
        .await,
    );
    // Two Tasks for the referral, as the workflow makes them: the hub's (no directory:
    // unroutable), assigned to the organisation, which rejects it; the hub's next one.
    let routed = the_task(&app, &sr).await;
    let t1 = id_of(&routed);
    let mut assigned = routed.clone();
    assigned["owner"] = json!({"reference": format!("Organization/{org}")});
    let res = put_task(&app, None, &assigned).await;
    assert_eq!(res.status(), 200);
    let assigned: Value = res.json().await.unwrap();
    let res = put_task(&app, None, &moved(&assigned, "rejected", None, Some("vol"))).await;
    assert_eq!(res.status(), 200);
    let open = found(
        &app,
        &format!("Task?focus=ServiceRequest/{sr}&status=requested"),
    )
    .await;
    assert_eq!(open.len(), 1, "{open:?}");
    let t2 = open[0].clone();
    assert_ne!(t1, t2);

    let b = search(
        &app,
        "Task?_include=Task:focus&_include=Task:patient&_include=Task:owner",
    )
    .await;
    assert_eq!(
        entries_with_mode(&b, "match"),
        sorted(vec![format!("Task/{t1}"), format!("Task/{t2}")])
    );
    // Each included resource once, although both Tasks point to it.
    assert_eq!(
        entries_with_mode(&b, "include"),
        [
            format!("Organization/{org}"),
            format!("Patient/{patient}"),
            format!("ServiceRequest/{sr}")
        ]
    );
    assert_eq!(b["total"], 2, "includes are not counted");
    let b = search(
        &app,
        "ServiceRequest?_include=ServiceRequest:patient&_include=ServiceRequest:requester",
    )
    .await;
    assert_eq!(
        entries_with_mode(&b, "include"),
        [format!("Organization/{org}"), format!("Patient/{patient}")]
    );
    let b = search(&app, "ServiceRequest?_revinclude=Task:focus").await;
    assert_eq!(
        entries_with_mode(&b, "match"),
        [format!("ServiceRequest/{sr}")]
    );
    assert_eq!(
        entries_with_mode(&b, "include"),
        sorted(vec![format!("Task/{t1}"), format!("Task/{t2}")])
    );
    let b = search(&app, "Task?_include=Task:owner:Patient").await;
    assert!(entries_with_mode(&b, "include").is_empty());
    for bad in [
        "Task?_include=Patient:organization",
        "Task?_include=Task:status",
        "Task?_include=*",
        "ServiceRequest?_revinclude=Task:owner",
    ] {
        let issues = expect_outcome(app.get(bad).await, 400).await;
        assert!(has_issue(&issues, "not-supported", None), "{bad}");
    }
}

async fn sort_total_and_summary(app: TestApp) {
    let patient = json!({"resourceType": "Patient", "id": "p"});
    assert_eq!(app.put("Patient/p", &patient).await.status(), 201);
    let mut by_authored = Vec::new();
    for day in ["2026-11-03", "2026-11-01", "2026-11-02"] {
        let id = id_of(
            &app.create(
                &json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                "subject": {"reference": "Patient/p"}, "authoredOn": day}),
            )
            .await,
        );
        by_authored.push((day, id));
    }
    let without = id_of(
        &app.create(
            &json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "subject": {"reference": "Patient/p"}}),
        )
        .await,
    );
    let created: Vec<String> = by_authored
        .iter()
        .map(|(_, id)| id.clone())
        .chain([without.clone()])
        .collect();
    by_authored.sort();
    let mut asc: Vec<String> = by_authored.iter().map(|(_, id)| id.clone()).collect();
    asc.push(without.clone());
    assert_eq!(
        ids(&search(&app, "ServiceRequest?_sort=authored").await),
        asc
    );
    let mut desc: Vec<String> = by_authored.iter().rev().map(|(_, id)| id.clone()).collect();
    desc.push(without.clone());
    assert_eq!(
        ids(&search(&app, "ServiceRequest?_sort=-authored").await),
        desc,
        "missing values sort last"
    );
    assert_eq!(
        ids(&search(&app, "ServiceRequest?_sort=_lastUpdated").await),
        created
    );
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    assert_eq!(
        ids(&search(&app, "ServiceRequest?_sort=-_lastUpdated").await),
        newest_first
    );
    assert_eq!(ids(&search(&app, "ServiceRequest?_sort=-_id").await), {
        let mut v = created.clone();
        v.sort();
        v.reverse();
        v
    });
    let issues = expect_outcome(app.get("ServiceRequest?_sort=status").await, 400).await;
    assert!(has_issue(&issues, "not-supported", Some("_sort")));

    // _total: a search in the default order that has more pages does not count its
    // matches unless asked (its first page reads only the page); one with `_sort`, or
    // one that fits its page, knows it.
    assert!(search(&app, "ServiceRequest?_count=1")
        .await
        .get("total")
        .is_none());
    assert_eq!(search(&app, "ServiceRequest?_count=10").await["total"], 4);
    assert_eq!(
        search(&app, "ServiceRequest?_sort=_id&_count=1").await["total"],
        4
    );
    assert_eq!(
        search(&app, "ServiceRequest?_total=accurate&_count=1").await["total"],
        4
    );
    assert!(search(&app, "ServiceRequest?_total=none")
        .await
        .get("total")
        .is_none());
    expect_outcome(app.get("ServiceRequest?_total=some").await, 400).await;
    // _summary=count: the total, no entries.
    let b = search(&app, "ServiceRequest?_summary=count&authored=2026-11").await;
    assert_eq!(b["total"], 3);
    assert!(b.get("entry").is_none(), "no empty arrays: {b}");
    let issues = expect_outcome(app.get("ServiceRequest?_summary=short").await, 400).await;
    assert!(has_issue(&issues, "value", Some("_summary")));

    // Without `_sort`: a search with a `_lastUpdated` lower bound (a poll for changes)
    // comes oldest change first, on every page; any other in id order.
    let first = created[0].clone();
    let path = format!("ServiceRequest/{first}");
    let mut changed: Value = app.get(&path).await.json().await.unwrap();
    changed["note"] = json!([{"text": "later"}]);
    assert_eq!(app.put(&path, &changed).await.status(), 200);
    let mut by_change: Vec<String> = created[1..].to_vec();
    by_change.push(first);
    let mut by_id = created.clone();
    by_id.sort();
    assert_ne!(by_change, by_id);
    let poll = "ServiceRequest?_lastUpdated=gt2000-01-01";
    assert_eq!(ids(&search(&app, poll).await), by_change);
    let mut paged = Vec::new();
    let mut page = search(&app, &format!("{poll}&_count=1")).await;
    loop {
        paged.extend(ids(&page));
        match link(&page, "next") {
            Some(next) => page = follow(&app, &next).await,
            None => break,
        }
    }
    assert_eq!(paged, by_change, "pages of one");
    assert_eq!(ids(&search(&app, "ServiceRequest").await), by_id);
    let before = "ServiceRequest?_lastUpdated=lt2100-01-01";
    assert_eq!(ids(&search(&app, before).await), by_id);
}

async fn elements_keep_stored_bytes(app: TestApp) {
    let text = r#"{"resourceType":"Patient","extension":[{"url":"http://example.org/x","valueDecimal":1.50}],"birthDate":"1958-04-17","name":[{"family":"Jansen"}],"meta":{"tag":[{"code":"t"}]}}"#;
    let res = app.post_text("Patient", text).await;
    assert_eq!(res.status(), 201);
    let stored = res.text().await.unwrap();
    let raw = app
        .client
        .get(app.url("Patient?_elements=extension,birthDate"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The kept elements' bytes appear as stored (1.50 stays 1.50).
    assert!(raw.contains(r#""extension":[{"url":"http://example.org/x","valueDecimal":1.50}],"birthDate":"1958-04-17""#), "{raw}");
    assert!(stored.contains(r#""valueDecimal":1.50"#));
    let b: Value = serde_json::from_str(&raw).unwrap();
    let r = &b["entry"][0]["resource"];
    assert!(r.get("name").is_none());
    assert_eq!(r["id"].as_str().unwrap().len(), 36);
    assert_eq!(r["meta"]["versionId"], "1");
    let tags: Vec<&str> = r["meta"]["tag"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["code"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["t", "SUBSETTED"]);
    expect_outcome(app.get("Patient?_elements=name.family").await, 400).await;
}

async fn post_search_merges_url_and_body(app: TestApp) {
    let a = id_of(&app.create(&json!({"resourceType": "Patient", "name": [{"family": "Jansen"}], "birthDate": "1958-04-17"})).await);
    app.create(&json!({"resourceType": "Patient", "name": [{"family": "Jansen"}], "birthDate": "1960-01-01"})).await;
    let res = app
        .request(Method::POST, "Patient/_search?family=jans")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("birthdate=1958")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let b: Value = res.json().await.unwrap();
    assert_eq!(ids(&b), [a.as_str()]);
    // The self link is the equivalent GET.
    let self_link = link(&b, "self").unwrap();
    assert!(
        self_link.ends_with("/Patient?family=jans&birthdate=1958"),
        "{self_link}"
    );
    assert_eq!(ids(&follow(&app, &self_link).await), [a]);
    let res = app
        .request(Method::POST, "Patient/_search")
        .header("Content-Type", "application/fhir+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    expect_outcome(res, 415).await;
    let res = app
        .request(Method::POST, "Patient/_search")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("nickname=x")
        .send()
        .await
        .unwrap();
    expect_outcome(res, 400).await;
}

async fn unknown_parameters_strict_and_lenient(app: TestApp) {
    app.create(&json!({"resourceType": "Patient", "name": [{"family": "Jansen"}]}))
        .await;
    let res = app.get("Patient?family=jansen&favourite-colour=blue").await;
    let issues = expect_outcome(res, 400).await;
    assert!(
        has_issue(&issues, "not-supported", Some("favourite-colour")),
        "{issues:?}"
    );
    assert!(issues[0]["diagnostics"]
        .as_str()
        .unwrap()
        .contains("favourite-colour"));
    for bad in [
        "Patient?family:text=x",
        "Patient?_has:Observation:patient:code=x",
        "Patient?_text=x",
    ] {
        expect_outcome(app.get(bad).await, 400).await;
    }

    let res = app
        .request(
            Method::GET,
            "Patient?family=jansen&favourite-colour=blue&family:text=x",
        )
        .header("Prefer", "handling=lenient")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let b: Value = res.json().await.unwrap();
    assert_eq!(ids(&b).len(), 1);
    let self_link = link(&b, "self").unwrap();
    assert!(self_link.ends_with("/Patient?family=jansen"), "{self_link}");
    let outcome = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["search"]["mode"] == "outcome")
        .unwrap();
    let issues = outcome["resource"]["issue"].as_array().unwrap();
    assert_eq!(issues.len(), 2);
    assert!(issues.iter().all(|i| i["severity"] == "warning"));
    // Malformed values are still errors.
    let res = app
        .request(Method::GET, "Patient?birthdate=yesterday")
        .header("Prefer", "handling=lenient")
        .send()
        .await
        .unwrap();
    expect_outcome(res, 400).await;
}

async fn count_is_clamped(app: TestApp) {
    app.create(&json!({"resourceType": "Location"})).await;
    let b = search(&app, "Location?_count=5000").await;
    assert!(link(&b, "self").unwrap().ends_with("/Location?_count=1000"));
    assert_eq!(b["total"], 1);
    for bad in ["Location?_count=-1", "Location?_count=x"] {
        let issues = expect_outcome(app.get(bad).await, 400).await;
        assert!(has_issue(&issues, "value", Some("_count")));
    }
}

async fn paging_is_stable_under_concurrent_inserts(app: TestApp) {
    let org = |i: usize| json!({"resourceType": "Organization", "name": format!("Welzijn {i}"), "active": true});
    let mut before = HashSet::new();
    for i in 0..12 {
        before.insert(id_of(&app.create(&org(i)).await));
    }
    // A writer inserting matching resources all the while.
    let writer = {
        let (client, url) = (app.client.clone(), app.url("Organization"));
        tokio::spawn(async move {
            for i in 100..115 {
                let res = client
                    .post(&url)
                    .header("Content-Type", "application/fhir+json")
                    .body(org(i).to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
            }
        })
    };
    let first = search(
        &app,
        "Organization?name=welzijn&active=true&_count=5&_total=accurate",
    )
    .await;
    let total = usize::try_from(first["total"].as_u64().unwrap()).unwrap();
    assert!(total >= 12);
    let mut seen = ids(&first);
    let mut pages = vec![first.clone()];
    let mut next = link(&first, "next");
    while let Some(url) = next {
        // Writes between pages too, deterministically.
        app.create(&org(999)).await;
        let page = follow(&app, &url).await;
        seen.extend(ids(&page));
        next = link(&page, "next");
        pages.push(page);
    }
    writer.await.unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an entry was repeated");
    assert_eq!(seen.len(), total, "an entry was skipped or added");
    assert!(
        before.iter().all(|id| unique.contains(id)),
        "a resource that existed before was skipped"
    );
    // Default order is by id, across pages.
    let mut ordered = seen.clone();
    ordered.sort();
    assert_eq!(seen, ordered);
    assert_eq!(pages.len(), total.div_ceil(5));
    // previous returns the earlier page unchanged.
    let prev = follow(&app, &link(&pages[1], "previous").unwrap()).await;
    assert_eq!(ids(&prev), ids(&pages[0]));
    assert!(link(&pages[0], "previous").is_none());
    // Later pages keep the total, and a resource deleted since is left out.
    assert_eq!(pages[1]["total"], first["total"]);
    let gone = ids(&pages[1])[0].clone();
    let res = app
        .request(Method::DELETE, &format!("Organization/{gone}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let again = follow(&app, &link(&pages[0], "next").unwrap()).await;
    assert_eq!(ids(&again), ids(&pages[1])[1..]);
    // A fresh search sees the new resources.
    assert!(
        found(&app, "Organization?name=welzijn&_count=1000")
            .await
            .len()
            > total
    );
}

async fn page_links_are_checked(app: TestApp) {
    for i in 0..3 {
        app.create(&json!({"resourceType": "Location", "name": format!("L{i}")}))
            .await;
    }
    let first = search(&app, "Location?_count=2").await;
    let next = link(&first, "next").unwrap();
    assert!(
        next.contains("_getpages=") && next.contains("_offset=2"),
        "{next}"
    );
    let second = follow(&app, &next).await;
    assert_eq!(ids(&second).len(), 1);
    assert!(link(&second, "next").is_none());
    // Extra parameters with _getpages, or _offset alone: 400.
    let res = app
        .client
        .get(format!("{next}&_id=x"))
        .send()
        .await
        .unwrap();
    expect_outcome(res, 400).await;
    expect_outcome(app.get("Location?_offset=2").await, 400).await;
    // Unknown (or expired) snapshot: 410; a snapshot of another type too.
    let unknown = format!("Location?_getpages={}&_offset=0", uuid::Uuid::new_v4());
    expect_outcome(app.get(&unknown).await, 410).await;
    let other_type = next.replace("/Location?", "/Patient?");
    let res = app.client.get(other_type).send().await.unwrap();
    expect_outcome(res, 410).await;
}
