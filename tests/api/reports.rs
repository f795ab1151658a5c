//! Referral statistics (README "Statistics"): a known set of referrals across two
//! municipalities, three practices and two periods, every figure asserted, the
//! suppression rule (with a secondary case), the CSV header, the MeasureReport against
//! the R4 schema, the rebuild giving the same figures, and who may read them.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{
    expect_outcome, has_issue, load_sample, spawn, step, Backend, TestApp, OWNER,
};
use crate::routing::{patient, refer, referral, task_for};

const ENSCHEDE_OWNER: &str = "Organization/example-welzijn-enschede";

#[tokio::test]
async fn statistics_on_sqlite() {
    statistics(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn statistics_on_postgres() {
    statistics(Backend::Postgres).await;
}

fn alphen() -> Value {
    json!({"use": "home", "district": "Alphen aan den Rijn", "postalCode": "2771 AB"})
}

fn enschede() -> Value {
    json!({"use": "home", "city": "Enschede", "district": "Enschede", "postalCode": "7511 AA"})
}

/// A referral from `practice` for an adult at `address`; its ServiceRequest id.
pub(crate) async fn refer_from(
    app: &TestApp,
    practice: &str,
    address: Value,
    date: &str,
) -> String {
    let mut sr = referral(date);
    sr["requester"] = json!({"reference": format!("Organization/{practice}")});
    refer(app, patient(Some("1960-05-01"), address), sr).await
}

async fn report(app: &TestApp, query: &str) -> Value {
    let res = app.get(&format!("../reports/referrals?{query}")).await;
    assert_eq!(res.status(), 200, "{query}");
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    res.json().await.unwrap()
}

fn row<'a>(report: &'a Value, key: &str, value: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"][key] == value)
        .unwrap_or_else(|| panic!("no row {key}={value}: {report}"))
}

/// 14 referrals: Alphen (GM0484) from practice A in February (6) and August (1,
/// unroutable: no municipality) and practice B in August (2); Enschede (GM0153) from
/// practice C in February (5).
async fn statistics(backend: Backend) {
    let clock = wor_hub::clock::Clock::default();
    let shared = clock.clone();
    let Some(app) = spawn(backend, move |s| {
        s.clock = shared;
        s.report_minimum_cell = 1;
    })
    .await
    else {
        return;
    };
    let app = &app;
    load_sample(app).await;
    for (id, name) in [
        ("practice-a", "Huisartsenpraktijk A"),
        ("practice-b", "Huisartsenpraktijk B"),
        ("practice-c", "Huisartsenpraktijk C"),
    ] {
        let org = json!({"resourceType": "Organization", "id": id, "active": true, "name": name});
        assert_eq!(
            app.put(&format!("Organization/{id}"), &org).await.status(),
            201
        );
    }
    let mut a = Vec::new();
    for _ in 0..6 {
        a.push(refer_from(app, "practice-a", alphen(), "2026-02-10").await);
    }
    let nowhere = json!({"use": "home", "city": "Nergenshuizen", "district": "Nergenshuizen"});
    refer_from(app, "practice-a", nowhere, "2026-08-11").await;
    for _ in 0..2 {
        refer_from(app, "practice-b", alphen(), "2026-08-10").await;
    }
    let mut c = Vec::new();
    for _ in 0..5 {
        c.push(refer_from(app, "practice-c", enschede(), "2026-02-12").await);
    }
    // A0: to completion, with Positive Health at intake (4) and closing (7, and 9 on
    // participation).
    let t = task_for(app, &a[0]).await;
    assert_eq!(t["owner"]["reference"], OWNER);
    let t = step(app, OWNER, &t, "accepted", Some("contact-made"), None).await;
    let t = step(app, OWNER, &t, "in-progress", Some("intake-held"), None).await;
    let who = t["for"]["reference"].as_str().unwrap().to_owned();
    let intake = positive_health(app, &who, "2026-02-20", [4, 4, 4, 4, 4, 4]).await;
    let closing = positive_health(app, &who, "2026-06-20", [7, 7, 7, 7, 9, 7]).await;
    let mut done = t.clone();
    done["status"] = json!("completed");
    done["businessStatus"] =
        json!({"coding": [{"system": crate::helpers::BUSINESS, "code": "closed-goal-reached"}]});
    done["output"] = json!([
        {"type": {"text": "intake"}, "valueReference": {"reference": format!("QuestionnaireResponse/{intake}")}},
        {"type": {"text": "closing"}, "valueReference": {"reference": format!("QuestionnaireResponse/{closing}")}}
    ]);
    let res = crate::helpers::put_task(app, Some(OWNER), &done).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    // A1: contact made; A2: accepted only; A3: rejected, then unroutable (every
    // organisation serving Alphen's adults rejected it).
    let t = task_for(app, &a[1]).await;
    step(app, OWNER, &t, "accepted", Some("contact-made"), None).await;
    let t = task_for(app, &a[2]).await;
    step(app, OWNER, &t, "accepted", None, None).await;
    let t = task_for(app, &a[3]).await;
    step(app, OWNER, &t, "rejected", None, Some("no capacity")).await;
    // C0: cancelled by its practice.
    let t = task_for(app, &c[0]).await;
    assert_eq!(t["owner"]["reference"], ENSCHEDE_OWNER);
    step(
        app,
        "Organization/practice-c",
        &t,
        "cancelled",
        None,
        Some("moved away"),
    )
    .await;

    // Fifteen days on, the open referrals without contact are overdue.
    clock.advance(Duration::from_secs(15 * 86_400));
    exact_figures(app).await;
    let strict = second_server(app, &clock, 5).await;
    suppressed_figures(&strict).await;
    formats(app).await;
    // A correction to the closing response counts at once (participation 9 -> 10).
    let mut corrected: Value = app
        .get(&format!("QuestionnaireResponse/{closing}"))
        .await
        .json()
        .await
        .unwrap();
    corrected["item"][4]["answer"][0]["valueInteger"] = json!(10);
    let res = app
        .put(&format!("QuestionnaireResponse/{closing}"), &corrected)
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let year = report(app, "from=2026-01-01&to=2026-12-31&period=year&by=").await;
    assert_eq!(
        year["total"]["positiveHealthChange"]["participation"],
        json!({"n": 1, "meanChange": 6.0})
    );
    // A rebuild from the stored versions gives the same figures.
    let query = "from=2026-01-01&to=2026-12-31&period=quarter&by=period,municipality,practice";
    let before = report(app, query).await;
    let store = wor_hub::store::Store::open(&app.database, 1).await.unwrap();
    assert_eq!(wor_hub::app::reports::rebuild(&store).await.unwrap(), 14);
    assert_eq!(report(app, query).await, before);
}

/// Another server on the same database, with a report minimum of `minimum`.
async fn second_server(app: &TestApp, clock: &wor_hub::clock::Clock, minimum: u64) -> TestApp {
    let mut settings = wor_hub::config::Settings::for_database(app.database.clone());
    settings.db_pool_size = 2;
    settings.report_minimum_cell = minimum;
    settings.clock = clock.clone();
    let server = wor_hub::startup::Application::build(&settings)
        .await
        .unwrap();
    let port = server.port();
    let commits = server.commits();
    tokio::spawn(server.run_until_stopped());
    TestApp {
        base: format!("http://127.0.0.1:{port}/fhir"),
        backend: app.backend,
        client: reqwest::Client::new(),
        _dir: None,
        pg_database: None,
        database: app.database.clone(),
        commits,
    }
}

fn counts(row: &Value) -> Vec<Value> {
    [
        "received",
        "routed",
        "unroutable",
        "accepted",
        "rejected",
        "rerouted",
        "cancelled",
        "completed",
        "failed",
        "overdue",
        "feedback",
    ]
    .iter()
    .map(|m| row[m].clone())
    .collect()
}

/// The server of the test shows every figure (minimum 1).
async fn exact_figures(app: &TestApp) {
    let year = report(
        app,
        "from=2026-01-01&to=2026-12-31&period=year&by=municipality",
    )
    .await;
    assert_eq!(year["minimumCell"], 1);
    assert_eq!(year["names"]["GM0484"], "Alphen aan den Rijn");
    assert_eq!(year["names"]["GM0153"], "Enschede");
    let a = row(&year, "municipality", "GM0484");
    assert_eq!(
        counts(a),
        [8, 8, 1, 3, 1, 1, 0, 1, 0, 6, 1].map(Value::from).to_vec(),
        "{a}"
    );
    assert_eq!(a["unroutableByReason"], json!({"all-rejected": 1}));
    assert_eq!(a["rejectedByReason"], json!({"unspecified": 1}));
    assert_eq!(a["feedbackShare"], 0.125);
    assert_eq!(a["days-to-contact"]["n"], 2);
    assert_eq!(a["days-to-contact"]["median"], 0.0);
    assert_eq!(a["days-to-intake"]["n"], 1);
    assert_eq!(a["days-to-completion"]["n"], 1);
    assert_eq!(
        a["positiveHealthChange"]["bodily-functions"],
        json!({"n": 1, "meanChange": 3.0})
    );
    assert_eq!(
        a["positiveHealthChange"]["participation"],
        json!({"n": 1, "meanChange": 5.0})
    );
    let e = row(&year, "municipality", "GM0153");
    assert_eq!(
        counts(e),
        [5, 5, 0, 0, 0, 0, 1, 0, 0, 4, 0].map(Value::from).to_vec(),
        "{e}"
    );
    assert_eq!(
        e["days-to-contact"],
        json!({"n": 0, "median": null, "p90": null})
    );
    let u = row(&year, "municipality", "unknown");
    assert_eq!(
        counts(u),
        [1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0].map(Value::from).to_vec(),
        "{u}"
    );
    assert_eq!(u["unroutableByReason"], json!({"no-municipality": 1}));
    assert_eq!(
        counts(&year["total"]),
        [14, 13, 2, 3, 1, 1, 1, 1, 0, 11, 1]
            .map(Value::from)
            .to_vec()
    );
    // The matches: which practices refer to whom, per municipality.
    assert_eq!(
        year["matches"],
        json!([
            {"municipality": "GM0153", "practice": "Organization/practice-c", "organization": ENSCHEDE_OWNER, "referrals": 5},
            {"municipality": "GM0484", "practice": "Organization/practice-a", "organization": OWNER, "referrals": 5},
            {"municipality": "GM0484", "practice": "Organization/practice-b", "organization": OWNER, "referrals": 2},
        ])
    );
    assert_eq!(
        year["names"]["Organization/practice-b"],
        "Huisartsenpraktijk B"
    );
    // Two periods, three practices.
    let q = report(
        app,
        "from=2026-01-01&to=2026-12-31&period=quarter&by=period,practice",
    )
    .await;
    let keyed: Vec<(Value, Value, Value)> = q["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"]["period"].clone(),
                r["key"]["practice"].clone(),
                r["received"].clone(),
            )
        })
        .collect();
    assert_eq!(
        keyed,
        [
            ("2026-Q1", "Organization/practice-a", 6),
            ("2026-Q1", "Organization/practice-c", 5),
            ("2026-Q3", "Organization/practice-a", 1),
            ("2026-Q3", "Organization/practice-b", 2),
        ]
        .map(|(p, pr, n)| (json!(p), json!(pr), json!(n)))
        .to_vec()
    );
    // One municipality, one half-year.
    let h = report(app, "from=2026-07-01&to=2026-12-31&period=half-year&by=age-group&municipality=Alphen aan den Rijn").await;
    assert_eq!(h["total"]["received"], 2);
    assert_eq!(row(&h, "age-group", "18-plus")["received"], 2);
}

/// A server with the default minimum of 5.
async fn suppressed_figures(app: &TestApp) {
    let year = report(
        app,
        "from=2026-01-01&to=2026-12-31&period=year&by=municipality",
    )
    .await;
    assert_eq!(year["minimumCell"], 5);
    let (a, e, u) = (
        row(&year, "municipality", "GM0484"),
        row(&year, "municipality", "GM0153"),
        row(&year, "municipality", "unknown"),
    );
    // Primary: the unknown municipality's 1. Secondary: Enschede's 5, the smallest
    // other count, or 14 - 8 - 5 would reveal the 1.
    assert_eq!(u["received"], Value::Null);
    assert_eq!(e["received"], Value::Null);
    assert_eq!(a["received"], 8);
    assert_eq!(year["total"]["received"], 14);
    // Routed: 8, 5 and 0; nothing to hide.
    assert_eq!(
        (
            a["routed"].clone(),
            e["routed"].clone(),
            u["routed"].clone()
        ),
        (json!(8), json!(5), json!(0))
    );
    // Overdue 6, 4, 1: both small ones primary, so no secondary needed.
    assert_eq!(
        (
            a["overdue"].clone(),
            e["overdue"].clone(),
            u["overdue"].clone()
        ),
        (json!(6), Value::Null, Value::Null)
    );
    assert_eq!(year["total"]["accepted"], Value::Null);
    assert_eq!(a["unroutableByReason"], json!({"all-rejected": null}));
    // Percentiles and means of fewer than 5 referrals are suppressed.
    assert_eq!(
        a["days-to-contact"],
        json!({"n": null, "median": null, "p90": null})
    );
    assert_eq!(
        a["positiveHealthChange"]["participation"],
        json!({"n": null, "meanChange": null})
    );
    assert_eq!(a["feedbackShare"], Value::Null);
    // Matches: practice B's 2 to Tom, and practice A's 5 to Tom with it.
    let shown: Vec<Value> = year["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["referrals"].clone())
        .collect();
    assert_eq!(shown, [json!(5), Value::Null, Value::Null]);
}

/// CSV, the MeasureReport, and refused parameters.
async fn formats(app: &TestApp) {
    let res = app.get("../reports/referrals?from=2026-01-01&to=2026-12-31&period=year&by=municipality&_format=csv").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = res.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "municipality,municipality_name,received,routed,unroutable,accepted,rejected,rerouted,cancelled,completed,failed,overdue,feedback,days_to_contact_median,days_to_contact_p90,days_to_intake_median,days_to_intake_p90,days_to_completion_median,days_to_completion_p90,feedback_share,health_change_bodily_functions,health_change_mental_wellbeing,health_change_meaningfulness,health_change_quality_of_life,health_change_participation,health_change_daily_functioning"
    );
    assert!(
        text.contains("\nGM0153,Enschede,5,5,0,0,0,0,1,0,0,4,0,"),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("total,,14,13,2,3,1,1,1,1,0,11,1,"),
        "{text}"
    );
    // The same by Accept.
    let res = app
        .request(Method::GET, "../reports/referrals?period=year")
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));

    let res = app.get("Measure/referral-statistics/$evaluate-measure?periodStart=2026-01-01&periodEnd=2026-12-31").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/fhir+json"));
    let mr: Value = res.json().await.unwrap();
    let problems = wor_hub::fhir::validate::validate_resource("MeasureReport", &mr);
    assert!(problems.iter().all(|i| !i.is_error()), "{problems:?}\n{mr}");
    assert_eq!(
        mr["measure"],
        "https://wor-hub.nl/fhir/Measure/referral-statistics"
    );
    assert_eq!(
        mr["period"],
        json!({"start": "2026-01-01", "end": "2026-12-31"})
    );
    let received = &mr["group"][0];
    assert_eq!(received["code"]["coding"][0]["code"], "received");
    assert_eq!(received["population"][0]["count"], 14);
    let strata = received["stratifier"][0]["stratum"].as_array().unwrap();
    let alphen = strata
        .iter()
        .find(|s| s["value"]["coding"][0]["code"] == "GM0484")
        .unwrap();
    assert_eq!(alphen["population"][0]["count"], 8);
    assert_eq!(
        alphen["value"]["coding"][0]["display"],
        "Alphen aan den Rijn"
    );

    // POST with a Parameters body; partial dates open and close their year (R4
    // $evaluate-measure: periodStart and periodEnd are dates of any precision).
    let parameters = json!({"resourceType": "Parameters", "parameter": [
        {"name": "periodStart", "valueDate": "2026"},
        {"name": "periodEnd", "valueDate": "2026"}]});
    let res = app
        .post(
            "Measure/referral-statistics/$evaluate-measure?_format=json",
            &parameters,
        )
        .await;
    assert_eq!(res.status(), 200);
    let posted: Value = res.json().await.unwrap();
    assert_eq!(
        posted["period"],
        json!({"start": "2026-01-01", "end": "2026-12-31"})
    );
    assert_eq!(posted["group"][0]["population"][0]["count"], 14);
    for (query, param) in [
        ("../reports/referrals?period=week", "http.period"),
        ("../reports/referrals?by=postcode", "http.by"),
        ("../reports/referrals?from=2026-13-01", "http.from"),
        ("../reports/referrals?municipality=Atlantis", "http.municipality"),
        ("../reports/referrals?patient=1", "http.patient"),
        ("Measure/referral-statistics/$evaluate-measure?periodStart=2026-01-01", "http.periodEnd"),
        ("Measure/referral-statistics/$evaluate-measure?periodStart=2026-01-01&periodEnd=2026-02-01&reportType=subject-list", "http.reportType"),
    ] {
        let issues = expect_outcome(app.get(query).await, 400).await;
        assert!(issues.iter().any(|i| i["expression"][0] == param), "{query}: {issues:?}");
    }
    let issues = expect_outcome(
        app.get("Measure/other/$evaluate-measure?periodStart=2026-01-01&periodEnd=2026-02-01")
            .await,
        404,
    )
    .await;
    assert!(has_issue(&issues, "not-found", None));
}

/// Stores a completed Positive Health response with these scores; its id.
pub(crate) async fn positive_health(
    app: &TestApp,
    patient: &str,
    authored: &str,
    scores: [i64; 6],
) -> String {
    let items: Vec<Value> = crate::outcome::DIMENSIONS
        .iter()
        .zip(scores)
        .map(|(l, v)| json!({"linkId": l, "answer": [{"valueInteger": v}]}))
        .collect();
    let qr = json!({
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "https://wor-hub.nl/fhir/Questionnaire/positive-health",
        "status": "completed",
        "subject": {"reference": patient},
        "authored": authored,
        "item": items
    });
    app.create(&qr).await["id"].as_str().unwrap().to_owned()
}
