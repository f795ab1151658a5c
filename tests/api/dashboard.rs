//! The statistics dashboard (`GET /reports/dashboard`) in a real browser: a known set
//! of referrals in two municipalities, rendered by headless Chromium (a screenshot and
//! the DOM it built), every chart found with its figures; the page's HTTP answer and a
//! refused parameter. Needs Chromium: see build.rs (`cfg(wor_hub_browser_tests)`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{
    expect_outcome, has_issue, load_sample, put_task, spawn, step, Backend, TestApp, BUSINESS,
    OWNER,
};
use crate::reports::{positive_health, refer_from};
use crate::routing::task_for;

const ENSCHEDE_OWNER: &str = "Organization/example-welzijn-enschede";
/// A practice name with markup in it: the page must show it as text.
const GROEN: &str = "Huisartsen <Groen> & Zn";

#[tokio::test]
#[cfg_attr(
    not(wor_hub_browser_tests),
    ignore = "install chromium (Debian: apt-get install chromium) to run the dashboard browser test"
)]
async fn dashboard_in_a_browser() {
    let app = spawn(Backend::Sqlite, |_| {}).await.unwrap();
    let app = &app;
    seed(app).await;
    let path = "../reports/dashboard?from=2026-09-01&to=2026-11-30";

    let res = app.get(path).await;
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "text/html; charset=utf-8");
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let html = res.text().await.unwrap();
    assert!(!html.contains("<script"), "no JavaScript");

    let issues = expect_outcome(app.get("../reports/dashboard?bogus=1").await, 400).await;
    assert!(
        has_issue(&issues, "invalid", Some("http.bogus")),
        "{issues:?}"
    );
    for refused in [
        "by=practice",
        "period=year",
        "_format=csv",
        "from=2026-13-01",
    ] {
        expect_outcome(
            app.get(&format!("../reports/dashboard?{refused}")).await,
            400,
        )
        .await;
    }

    let dir = tempfile::tempdir().unwrap();
    let url = app.url(path);
    let png = dir.path().join("dash.png");
    chromium(
        dir.path(),
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,2400",
            &url,
        ],
        None,
    )
    .await;
    let image = std::fs::read(&png).unwrap();
    assert!(
        image.len() > 10 * 1024,
        "screenshot of {} bytes",
        image.len()
    );
    assert!(image.starts_with(b"\x89PNG\r\n\x1a\n"));
    let dom_file = dir.path().join("dom.html");
    chromium(dir.path(), &["--dump-dom", &url], Some(&dom_file)).await;
    let dom = std::fs::read_to_string(&dom_file).unwrap();
    assert_figures(&dom);
    // The same page for Alphen only: its selector keeps both municipalities.
    let alphen = app
        .get("../reports/dashboard?from=2026-09-01&to=2026-11-30&municipality=GM0484")
        .await;
    assert_eq!(alphen.status(), 200);
    let alphen = alphen.text().await.unwrap();
    assert!(
        alphen.contains(r#"<option value="GM0484" selected>Alphen aan den Rijn</option>"#),
        "{alphen}"
    );
    assert!(alphen.contains(r#"<option value="GM0153">Enschede</option>"#));
    assert!(alphen.contains(">7 (100%)</text>"));
}

fn assert_figures(dom: &str) {
    let has = |s: &str| assert!(dom.contains(s), "missing {s:?} in the DOM:\n{dom}");
    for id in [
        "chart-monthly",
        "chart-funnel",
        "chart-contact",
        "chart-health",
    ] {
        has(&format!(r#"<svg id="{id}" role="img""#));
        has(&format!(r#"<title id="{id}-title">"#));
    }
    has(r#"<table id="table-matches">"#);
    // Referrals per month: Alphen's 7 in October, Enschede's 6 in November.
    has("okt 2026: Alphen aan den Rijn 7, Enschede 0; nov 2026: Alphen aan den Rijn 0, Enschede 6");
    has(">7</text>");
    has(">6</text>");
    has(">Alphen aan den Rijn</text>");
    // The funnel: 13 received and routed, 5 accepted, contacted and completed; the one
    // cancellation is below the minimum cell of 5.
    has("Ontvangen (received): 13 (100%)");
    has(">13 (100%)</text>");
    has("Geaccepteerd (accepted): 5 (38%)");
    has("Contact gelegd (contact made): 5 (38%)");
    has("Afgerond (completed): 5 (38%)");
    has("Geannuleerd (cancelled): –");
    has(r#"class="value suppressed">–</text>"#);
    has(r#"<p class="note" id="suppression">– = onderdrukt"#);
    has("minimum cell of 5");
    // Time to contact: Alphen's contacts came at once (a version's time is the store's
    // own clock, which a test cannot move); none in Enschede.
    has("Alphen aan den Rijn Mediaan (median): 0,0 dagen; Alphen aan den Rijn 90e percentiel (p90): 0,0 dagen");
    has("Enschede Mediaan (median): geen contact geregistreerd");
    // Positive Health: +3 on five dimensions, +5 on participation, five referrals.
    has("Lichaamsfuncties: +3,00 (n = 5)");
    has(">Meedoen</text>");
    has(">+5,00 (n = 5)</text>");
    // The matches, names as text (markup in a name stays text).
    has("<td>Alphen aan den Rijn</td><td>Huisartsen &lt;Groen&gt; &amp; Zn</td><td>Tom in de buurt</td><td class=\"n\">7</td>");
    has("<td>Enschede</td><td>Huisartsenpraktijk Zuid</td><td>Voorbeeld welzijnsorganisatie Enschede (example)</td><td class=\"n\">6</td>");
    assert!(
        !dom.to_lowercase().contains("<groen"),
        "a name became markup"
    );
    // The selector: a plain GET form with both municipalities.
    has(r#"<form method="get">"#);
    has(r#"<input type="date" name="from" value="2026-09-01""#);
    has(r#"<option value="GM0484">Alphen aan den Rijn</option>"#);
    has(r#"<option value="GM0153">Enschede</option>"#);
    has("@media print");
}

/// 7 referrals from practice Groen in Alphen aan den Rijn (October) and 6 from practice
/// Zuid in Enschede (November). Tom in de buurt accepts five with contact made and
/// completes them with Positive Health measured at intake and closing; Zuid cancels
/// one of its referrals.
async fn seed(app: &TestApp) {
    load_sample(app).await;
    for (id, name) in [
        ("practice-groen", GROEN),
        ("practice-zuid", "Huisartsenpraktijk Zuid"),
    ] {
        let org = json!({"resourceType": "Organization", "id": id, "active": true, "name": name});
        assert_eq!(
            app.put(&format!("Organization/{id}"), &org).await.status(),
            201
        );
    }
    let alphen = json!({"use": "home", "district": "Alphen aan den Rijn", "postalCode": "2771 AB"});
    let enschede =
        json!({"use": "home", "city": "Enschede", "district": "Enschede", "postalCode": "7511 AA"});
    let mut a = Vec::new();
    for _ in 0..7 {
        a.push(refer_from(app, "practice-groen", alphen.clone(), "2026-10-12").await);
    }
    let mut e = Vec::new();
    for _ in 0..6 {
        e.push(refer_from(app, "practice-zuid", enschede.clone(), "2026-11-03").await);
    }
    let mut contacted = Vec::new();
    for sr in a.iter().take(5) {
        let t = task_for(app, sr).await;
        assert_eq!(t["owner"]["reference"], OWNER);
        contacted.push(step(app, OWNER, &t, "accepted", Some("contact-made"), None).await);
    }
    for t in contacted {
        let t = step(app, OWNER, &t, "in-progress", Some("intake-held"), None).await;
        let who = t["for"]["reference"].as_str().unwrap().to_owned();
        let intake = positive_health(app, &who, "2026-10-20", [4, 4, 4, 4, 4, 4]).await;
        let closing = positive_health(app, &who, "2026-11-20", [7, 7, 7, 7, 9, 7]).await;
        let mut done = t.clone();
        done["status"] = json!("completed");
        done["businessStatus"] =
            json!({"coding": [{"system": BUSINESS, "code": "closed-goal-reached"}]});
        done["output"] = json!([
            {"type": {"text": "intake"}, "valueReference": {"reference": format!("QuestionnaireResponse/{intake}")}},
            {"type": {"text": "closing"}, "valueReference": {"reference": format!("QuestionnaireResponse/{closing}")}}
        ]);
        let res = put_task(app, Some(OWNER), &done).await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }
    let t = task_for(app, &e[0]).await;
    assert_eq!(t["owner"]["reference"], ENSCHEDE_OWNER);
    step(
        app,
        "Organization/practice-zuid",
        &t,
        "cancelled",
        None,
        Some("moved away"),
    )
    .await;
}

/// The browser: `CHROMIUM`, else `chromium` or `chromium-browser` on `PATH`.
fn browser() -> PathBuf {
    if let Some(c) = std::env::var_os("CHROMIUM").filter(|c| !c.is_empty()) {
        return PathBuf::from(c);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
        .find(|p| p.is_file())
        .expect("install chromium (Debian: apt-get install chromium) or set CHROMIUM")
}

/// Runs headless Chromium with `args` (its standard output to `stdout`), on a blocking
/// thread: the server answering it runs on this test's runtime. Fails after two minutes.
async fn chromium(dir: &Path, args: &[&str], stdout: Option<&Path>) {
    let profile = dir.join(format!("profile-{}", uuid::Uuid::new_v4().simple()));
    let mut command = Command::new(browser());
    command
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    command.stdout(match stdout {
        Some(file) => Stdio::from(std::fs::File::create(file).unwrap()),
        None => Stdio::null(),
    });
    let status = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("start chromium");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if started.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                panic!("chromium did not finish in two minutes");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    assert!(status.success(), "chromium {args:?}: {status}");
}
