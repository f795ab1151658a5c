//! Support of the access tests: clients registered with the real binary and their
//! tokens, referrals sent as one GP practice, and a world of two practices, two welfare
//! organisations and a coordinator.

use std::io::Write as _;
use std::process::{Command, Stdio};

use reqwest::{Method, Response};
use serde_json::{json, Value};
use wor_hub::config::DatabaseUrl;

use crate::cli::BIN;
use crate::helpers::{load_sample, TestApp, FHIR_JSON, OWNER};

pub const GP_A: &str = "Organization/gp-a";
pub const GP_B: &str = "Organization/gp-b";
pub const OTHER: &str = "Organization/go-voor-jeugd";

const SECRET: &str = "access-test-secret-32-characters";

/// A registered client with its access token.
pub struct Client {
    pub organization: String,
    token: String,
}

/// Registers a client with the real binary (`wor-hub client add --secret-stdin`) on
/// the running server's database and gets a token (client_secret_basic, every scope
/// its role allows).
pub async fn register(app: &TestApp, id: &str, role: &str, organization: &str) -> Client {
    let db = match &app.database {
        DatabaseUrl::Sqlite(path) => path.to_string_lossy().into_owned(),
        DatabaseUrl::Postgres(url) => url.clone(),
    };
    let mut child = Command::new(BIN)
        .args([
            "client",
            "add",
            "--client-id",
            id,
            "--role",
            role,
            "--organization",
            organization,
        ])
        .args(["--secret-stdin", "--database-url", &db])
        .env_remove("WOR_HUB_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(SECRET.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let res = app
        .client
        .post(app.base.replace("/fhir", "/auth/token"))
        .basic_auth(id, Some(SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "system/*.cruds"),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let token = body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    // The server notices the first client within a second; from then on it needs tokens.
    for _ in 0..50 {
        let open = app.get("Patient").await.status() == 200;
        if !open {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Client {
        organization: organization.to_owned(),
        token,
    }
}

impl Client {
    pub async fn send(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Response {
        let mut req = app.request(method, path).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.header("Content-Type", FHIR_JSON).body(body.to_string());
        }
        req.send().await.unwrap()
    }

    /// PUT with If-Match from the resource's meta.versionId.
    pub async fn put_versioned(&self, app: &TestApp, path: &str, resource: &Value) -> Response {
        let version = resource["meta"]["versionId"].as_str().unwrap();
        app.request(Method::PUT, path)
            .bearer_auth(&self.token)
            .header("Content-Type", FHIR_JSON)
            .header("If-Match", format!("W/\"{version}\""))
            .body(resource.to_string())
            .send()
            .await
            .unwrap()
    }
}

/// A referral as GP `gp` sends it (Boskoop, 67: routed to [`OWNER`]), with an active
/// Consent when `consent`. Returns the ids of (ServiceRequest, Patient, Consent).
pub async fn refer_as(
    client: &Client,
    app: &TestApp,
    bsn: &str,
    consent: bool,
) -> (String, String, Option<String>) {
    let mut entries = vec![
        json!({"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
               "resource": {"resourceType": "Patient", "birthDate": "1959-04-02",
                            "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": bsn}],
                            "address": [{"use": "home", "district": "Alphen aan den Rijn", "postalCode": "2771 AB"}]},
               "request": {"method": "POST", "url": "Patient"}}),
        json!({"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000002",
               "resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                            "code": {"text": "Welzijn op Recept"},
                            "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"},
                            "requester": {"reference": client.organization},
                            "authoredOn": "2026-11-20"},
               "request": {"method": "POST", "url": "ServiceRequest"}}),
    ];
    if consent {
        entries.push(json!({"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000003",
            "resource": {"resourceType": "Consent", "status": "active",
                         "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
                         "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                         "patient": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"},
                         "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]}},
            "request": {"method": "POST", "url": "Consent"}}));
    }
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    let res = client.send(app, Method::POST, "", Some(&bundle)).await;
    assert_eq!(res.status(), 200, "referral accepted");
    let body: Value = res.json().await.unwrap();
    let id_of = |i: usize| {
        body["entry"][i]["response"]["location"]
            .as_str()
            .map(|l| l.split('/').nth_back(2).unwrap().to_owned())
    };
    (
        id_of(1).unwrap(),
        id_of(0).unwrap(),
        if consent { id_of(2) } else { None },
    )
}

pub async fn status(client: &Client, app: &TestApp, path: &str) -> u16 {
    client
        .send(app, Method::GET, path, None)
        .await
        .status()
        .as_u16()
}

pub async fn json_of(res: Response) -> Value {
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// `Type/id` of every entry of a searchset, matches and includes.
pub async fn found(client: &Client, app: &TestApp, query: &str) -> Vec<String> {
    let bundle = json_of(client.send(app, Method::GET, query, None).await).await;
    let mut out: Vec<String> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )
        })
        .collect();
    out.sort();
    out
}

pub async fn task_of(client: &Client, app: &TestApp, sr: &str) -> Value {
    let bundle = json_of(
        client
            .send(
                app,
                Method::GET,
                &format!("Task?focus=ServiceRequest/{sr}"),
                None,
            )
            .await,
    )
    .await;
    bundle["entry"][0]["resource"].clone()
}

pub struct World {
    pub app: TestApp,
    pub gp_a: Client,
    pub gp_b: Client,
    pub owner: Client,
    pub other: Client,
    pub coordinator: Client,
}

pub async fn world(app: TestApp) -> World {
    load_sample(&app).await;
    for org in [GP_A, GP_B] {
        let id = org.trim_start_matches("Organization/");
        let res = app
            .put(org, &json!({"resourceType": "Organization", "id": id, "name": format!("Huisartsenpraktijk {id}")}))
            .await;
        assert!(res.status().is_success());
    }
    World {
        gp_a: register(&app, "gp-a-his", "referrer", GP_A).await,
        gp_b: register(&app, "gp-b-his", "referrer", GP_B).await,
        owner: register(&app, "tom-backend", "performer", OWNER).await,
        other: register(&app, "go-backend", "performer", OTHER).await,
        coordinator: register(&app, "regio", "coordinator", OWNER).await,
        app,
    }
}
