//! Routing through the real binary: the README's default start (sample directory on an
//! empty database), `wor-hub directory import` and `wor-hub route explain`.

use std::process::Command;

use serde_json::Value;

use crate::cli::{Server, BIN};

const FIXTURE: &str = include_str!("../fixtures/referral-transaction.json");

#[tokio::test]
async fn the_fixture_on_a_fresh_default_server_is_owned_by_tom_in_de_buurt() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("hub.db"));
    let client = reqwest::Client::new();
    let res = client
        .post(&server.base)
        .header("Content-Type", "application/fhir+json")
        .body(FIXTURE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let tasks: Value = client
        .get(format!("{}/Task", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tasks["total"], 1, "{tasks}");
    let task = &tasks["entry"][0]["resource"];
    assert_eq!(task["owner"]["display"], "Tom in de buurt");
    assert_eq!(task["owner"]["reference"], "Organization/tom-in-de-buurt");
    // The operator removes an example entry; a restart must not bring it back (the
    // initial directory is loaded into an empty database only).
    let example = format!("{}/HealthcareService/example-wor-enschede", server.base);
    assert_eq!(client.delete(&example).send().await.unwrap().status(), 204);
    server.kill();
    let server = Server::start(&dir.path().join("hub.db"));
    let example = format!("{}/HealthcareService/example-wor-enschede", server.base);
    assert_eq!(client.get(&example).send().await.unwrap().status(), 410);
    server.kill();
}

fn wor_hub(args: &[&str], db: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg("--database-url")
        .arg(db)
        .env_remove("WOR_HUB_CONFIG")
        .output()
        .expect("run wor-hub")
}

#[test]
fn directory_import_and_route_explain() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/directory.sample.json");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/referral-transaction.json"
    );

    // Without a directory the fixture is unroutable: no service.
    let out = wor_hub(&["route", "explain", fixture], &db);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("outcome:       unroutable"), "{text}");

    let out = wor_hub(&["directory", "import", sample], &db);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("32 created"));
    // Importing the same file again changes nothing: no new versions.
    let out = wor_hub(&["directory", "import", sample], &db);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("0 created, 0 updated, 0 deleted, 32 unchanged"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // One entry changed: that one is updated in place (PUT with fixed ids).
    let mut changed: Value =
        serde_json::from_str(&std::fs::read_to_string(sample).unwrap()).unwrap();
    let entries = changed["entry"].as_array_mut().unwrap();
    let service = entries
        .iter_mut()
        .find(|e| e["resource"]["resourceType"] == "HealthcareService")
        .unwrap();
    service["resource"]["comment"] = "Telefonisch bereikbaar op werkdagen".into();
    let changed_file = dir.path().join("changed.json");
    std::fs::write(&changed_file, changed.to_string()).unwrap();
    let out = wor_hub(
        &["directory", "import", changed_file.to_str().unwrap()],
        &db,
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("0 created, 1 updated, 0 deleted, 31 unchanged"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let out = wor_hub(&["route", "explain", fixture], &db);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("organisation:  Tom in de buurt (Organization/tom-in-de-buurt)"),
        "{text}"
    );
    assert!(
        text.contains("municipality:  GM0484 Alphen aan den Rijn (found by district-name)"),
        "{text}"
    );
    let out = wor_hub(&["route", "explain", "--json", fixture], &db);
    let params: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(params["resourceType"], "Parameters");

    // A directory file with patient data is refused, and nothing changes.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, FIXTURE).unwrap();
    let out = wor_hub(&["directory", "import", bad.to_str().unwrap()], &db);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Bundle.entry[0]: ") && err.contains("not Patient"),
        "{err}"
    );
    let out = wor_hub(&["route", "explain", fixture], &db);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Tom in de buurt"));
}
