//! Client authentication over HTTP (README "Authentication"): the token endpoint
//! (SMART Backend Services), bearer tokens on /fhir, the smart-configuration.

use jsonwebtoken::Algorithm;
use reqwest::Method;
use serde_json::{json, Value};

use crate::auth_support::*;
use crate::helpers::{expect_outcome, Backend, TestApp};

/// RS384 and ES384 assertions each get a token; it reads /fhir; the granted scope is
/// what was asked and allowed.
async fn signed_assertions_get_tokens_that_read_fhir(app: TestApp, keys: Keys) {
    let rs = sign(
        Algorithm::RS384,
        Some("rsa1"),
        &keys.rsa,
        &claims(&app, PERFORMER),
    );
    let res = with_assertion(&app, &rs, "system/Patient.rs system/Task.cruds").await;
    assert_eq!(res.headers()["cache-control"].to_str().unwrap(), "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer", "{body}");
    assert_eq!(body["expires_in"], 300);
    // Task.cruds asked, Task.rus allowed for a performer.
    assert_eq!(body["scope"], "system/Patient.rs system/Task.rus");
    let token = body["access_token"].as_str().unwrap();
    let res = get_with(&app, "Patient", token).await;
    assert_eq!(res.status(), 200);
    // The token carries no Organization scope: its use cases refuse (403).
    let res = get_with(&app, "Organization/tom-in-de-buurt", token).await;
    assert_eq!(res.status(), 403);
    let outcome: Value = res.json().await.unwrap();
    let said = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(said.contains("system/Organization.r"), "{said}");

    let es = sign(
        Algorithm::ES384,
        Some("ec1"),
        &keys.ec,
        &claims(&app, PERFORMER),
    );
    let token = access_token(with_assertion(&app, &es, "system/Task.rs").await).await;
    assert_eq!(get_with(&app, "Task", &token).await.status(), 200);

    // Without kid: the one key of the algorithm that verifies is taken.
    let no_kid = sign(Algorithm::ES384, None, &keys.ec, &claims(&app, PERFORMER));
    access_token(with_assertion(&app, &no_kid, "system/Task.rs").await).await;
}

/// Each broken assertion is refused with invalid_client (400) and gets no token.
async fn broken_assertions_are_refused(app: TestApp, keys: Keys) {
    let scope = "system/Task.rs";
    let rs = |c: &Value| sign(Algorithm::RS384, Some("rsa1"), &keys.rsa, c);
    let mut cases: Vec<(&str, String, &str)> = Vec::new();
    let mut c = claims(&app, PERFORMER);
    c["exp"] = json!(now() - 120);
    cases.push(("expired", rs(&c), "expired"));
    let mut c = claims(&app, PERFORMER);
    c["exp"] = json!(now() + 600);
    cases.push(("exp more than 5 minutes ahead", rs(&c), "five minutes"));
    let c = claims(&app, PERFORMER);
    cases.push((
        "forged",
        sign(Algorithm::RS384, Some("rsa1"), &keys.forger, &c),
        "signature",
    ));
    let mut c = claims(&app, PERFORMER);
    c["aud"] = json!("https://elsewhere.example/auth/token");
    cases.push(("wrong aud", rs(&c), "aud"));
    let mut c = claims(&app, PERFORMER);
    c["sub"] = json!("someone-else");
    cases.push(("iss is not sub", rs(&c), "sub"));
    let c = claims(&app, "nobody-registered");
    cases.push(("unknown client", rs(&c), "unknown client"));
    let mut c = claims(&app, PERFORMER);
    c.as_object_mut().unwrap().remove("jti");
    cases.push(("no jti", rs(&c), "jti"));
    let c = claims(&app, PERFORMER);
    cases.push((
        "unknown kid",
        sign(Algorithm::RS384, Some("rsa9"), &keys.rsa, &c),
        "kid",
    ));
    let c = claims(&app, PERFORMER);
    cases.push((
        "RS256",
        sign(Algorithm::RS256, Some("rsa1"), &keys.rsa, &c),
        "RS384 or ES384",
    ));
    for (what, assertion, needle) in cases {
        let text = oauth_error(
            with_assertion(&app, &assertion, scope).await,
            400,
            "invalid_client",
        )
        .await;
        assert!(text.contains(needle), "{what}: {text}");
    }

    // A replayed jti: the same assertion works once.
    let once = rs(&claims(&app, PERFORMER));
    access_token(with_assertion(&app, &once, scope).await).await;
    let text = oauth_error(
        with_assertion(&app, &once, scope).await,
        400,
        "invalid_client",
    )
    .await;
    assert!(text.contains("jti"), "{text}");
}

/// Malformed requests get the RFC 6749 error of their kind.
async fn malformed_requests_get_their_error(app: TestApp, keys: Keys) {
    let assertion = sign(
        Algorithm::RS384,
        Some("rsa1"),
        &keys.rsa,
        &claims(&app, PERFORMER),
    );
    let res = token_request(
        &app,
        &[
            ("scope", "system/Task.rs"),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    oauth_error(res, 400, "invalid_request").await;
    let res = token_request(
        &app,
        &[("grant_type", "password"), ("scope", "system/Task.rs")],
    )
    .await;
    oauth_error(res, 400, "unsupported_grant_type").await;
    let res = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "system/Task.rs"),
            ("client_assertion_type", "urn:example:other"),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    oauth_error(res, 400, "invalid_request").await;
    let res = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "system/Task.rs"),
        ],
    )
    .await;
    oauth_error(res, 400, "invalid_client").await;
    let res = app
        .client
        .post(token_url(&app))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    oauth_error(res, 400, "invalid_request").await;
}

/// A scope the client may not have, or no system scope at all: invalid_scope.
async fn scopes_outside_the_allowed_are_refused(app: TestApp, keys: Keys) {
    for scope in [
        "system/MeasureReport.rs",
        "system/Task.d",
        "patient/*.read",
        "system/Task.sr",
    ] {
        let a = sign(
            Algorithm::ES384,
            Some("ec1"),
            &keys.ec,
            &claims(&app, PERFORMER),
        );
        oauth_error(with_assertion(&app, &a, scope).await, 400, "invalid_scope").await;
    }
    // v1 forms map to v2, and a wildcard narrows to what is allowed.
    let a = sign(
        Algorithm::ES384,
        Some("ec1"),
        &keys.ec,
        &claims(&app, PERFORMER),
    );
    let body: Value = with_assertion(&app, &a, "system/Task.read")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["scope"], "system/Task.rs", "{body}");
    let a = sign(
        Algorithm::ES384,
        Some("ec1"),
        &keys.ec,
        &claims(&app, PERFORMER),
    );
    let body: Value = with_assertion(&app, &a, "system/*.d")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["scope"], "system/Subscription.d", "{body}");
}

/// With clients registered, /fhir needs a valid token; metadata and the
/// smart-configuration stay public; X-Acting-Party is ignored for a token's client.
async fn fhir_needs_a_bearer_token(app: TestApp, keys: Keys) {
    let res = app.get("Patient").await;
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer realm=\"wor-hub\""),
        "{challenge}"
    );
    let issues = expect_outcome(res, 401).await;
    assert_eq!(issues[0]["code"], "login");

    let res = get_with(&app, "Patient", "not-a-token").await;
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    expect_outcome(res, 401).await;

    // In open mode a named party would be honoured; here it is not enough.
    let res = app
        .request(Method::GET, "Patient")
        .header("X-Acting-Party", "coordinator")
        .send()
        .await
        .unwrap();
    expect_outcome(res, 401).await;

    assert_eq!(app.get("metadata").await.status(), 200);
    assert_eq!(
        app.get(".well-known/smart-configuration").await.status(),
        200
    );

    let a = sign(
        Algorithm::RS384,
        Some("rsa1"),
        &keys.rsa,
        &claims(&app, PERFORMER),
    );
    let token = access_token(with_assertion(&app, &a, "system/Patient.rs").await).await;
    // An X-Acting-Party open mode would refuse (400) is not even read.
    let res = app
        .request(Method::GET, "Patient")
        .bearer_auth(&token)
        .header("X-Acting-Party", "not a party!")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// client_secret_basic: only for a client registered with a secret.
async fn client_secret_basic_only_for_secret_clients(app: TestApp, _keys: Keys) {
    let form = [
        ("grant_type", "client_credentials"),
        ("scope", "system/Patient.rs"),
    ];
    let basic = |id: &str, secret: &str| {
        app.client
            .post(token_url(&app))
            .basic_auth(id, Some(secret))
            .form(&form)
    };
    let token = access_token(basic(SECRET_CLIENT, SECRET).send().await.unwrap()).await;
    assert_eq!(get_with(&app, "Patient", &token).await.status(), 200);

    for (id, secret) in [
        (SECRET_CLIENT, "a-wrong-secret-of-some-length"),
        (PERFORMER, SECRET),
        ("nobody", SECRET),
    ] {
        let res = basic(id, secret).send().await.unwrap();
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.starts_with("Basic"), "{challenge}");
        oauth_error(res, 401, "invalid_client").await;
    }
}

/// The smart-configuration at both addresses, and the CapabilityStatement's security.
async fn smart_configuration_describes_the_token_endpoint(app: TestApp, _keys: Keys) {
    let root = app.base.replace("/fhir", "");
    for url in [
        format!("{root}/.well-known/smart-configuration"),
        app.url(".well-known/smart-configuration"),
    ] {
        let res = app.client.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 200, "{url}");
        let conf: Value = res.json().await.unwrap();
        assert_eq!(conf["token_endpoint"], token_url(&app));
        assert_eq!(conf["grant_types_supported"], json!(["client_credentials"]));
        for (key, value) in [
            ("token_endpoint_auth_methods_supported", "private_key_jwt"),
            (
                "token_endpoint_auth_methods_supported",
                "client_secret_basic",
            ),
            ("token_endpoint_auth_signing_alg_values_supported", "RS384"),
            ("token_endpoint_auth_signing_alg_values_supported", "ES384"),
            ("capabilities", "client-confidential-asymmetric"),
            ("capabilities", "permission-v2"),
            ("scopes_supported", "system/Task.cruds"),
        ] {
            let list = conf[key].as_array().unwrap();
            assert!(list.iter().any(|v| v == value), "{key} lacks {value}");
        }
    }
    let statement: Value = app.get("metadata").await.json().await.unwrap();
    let security = &statement["rest"][0]["security"];
    assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
    let uris = &security["extension"][0];
    assert_eq!(
        uris["url"],
        "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    );
    assert_eq!(uris["extension"][0]["url"], "token");
    assert_eq!(uris["extension"][0]["valueUri"], token_url(&app));
}

crate::secured_tests!(
    signed_assertions_get_tokens_that_read_fhir,
    broken_assertions_are_refused,
    malformed_requests_get_their_error,
    scopes_outside_the_allowed_are_refused,
    fhir_needs_a_bearer_token,
    client_secret_basic_only_for_secret_clients,
    smart_configuration_describes_the_token_endpoint,
);

/// An access token stops working when it expires.
async fn expired_tokens_are_refused(backend: Backend) {
    let keys = keys();
    let app = spawn_secured(backend, &keys, std::time::Duration::from_secs(1)).await;
    let a = sign(
        Algorithm::ES384,
        Some("ec1"),
        &keys.ec,
        &claims(&app, PERFORMER),
    );
    let res = with_assertion(&app, &a, "system/Patient.rs").await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["expires_in"], 1);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(get_with(&app, "Patient", token).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let res = get_with(&app, "Patient", token).await;
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    expect_outcome(res, 401).await;
}

#[tokio::test]
async fn expired_tokens_are_refused_on_sqlite() {
    expired_tokens_are_refused(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn expired_tokens_are_refused_on_postgres() {
    expired_tokens_are_refused(Backend::Postgres).await;
}

/// Two instances on one database behind one public URL: a token from one works on the
/// other, and an assertion used at one is a replay at the other.
async fn instances_share_tokens_and_used_assertions(backend: Backend) {
    const PUBLIC: &str = "https://hub.example.nl/fhir";
    let keys = keys();
    let app = spawn_secured_with(backend, &keys, std::time::Duration::from_secs(300), |s| {
        s.base_url = Some(PUBLIC.into());
    })
    .await;
    let mut settings = wor_hub::config::Settings::for_database(app.database.clone());
    settings.db_pool_size = 2;
    settings.base_url = Some(PUBLIC.into());
    let second = wor_hub::startup::Application::build(&settings)
        .await
        .expect("second instance starts");
    let other = format!("http://127.0.0.1:{}", second.port());
    tokio::spawn(second.run_until_stopped());

    let mut c = claims(&app, PERFORMER);
    c["aud"] = json!("https://hub.example.nl/auth/token");
    let assertion = sign(Algorithm::RS384, Some("rsa1"), &keys.rsa, &c);
    let form = [
        ("grant_type", "client_credentials"),
        ("scope", "system/Patient.rs"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    let res = app
        .client
        .post(token_url(&app))
        .form(&form)
        .send()
        .await
        .unwrap();
    let token = access_token(res).await;
    let res = app
        .client
        .get(format!("{other}/fhir/Patient"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the other instance accepts the token");

    let res = app
        .client
        .post(format!("{other}/auth/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let text = oauth_error(res, 400, "invalid_client").await;
    assert!(text.contains("jti"), "{text}");
}

#[tokio::test]
async fn instances_share_tokens_and_used_assertions_on_sqlite() {
    instances_share_tokens_and_used_assertions(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(
    not(wor_hub_postgres_tests),
    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
)]
async fn instances_share_tokens_and_used_assertions_on_postgres() {
    instances_share_tokens_and_used_assertions(Backend::Postgres).await;
}
