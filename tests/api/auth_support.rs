//! Client authentication test support: keys, assertions, a server with registered
//! clients. The RSA keys in tests/fixtures/auth/ were made for these tests only
//! (`openssl genpkey -algorithm RSA`); the P-384 key is generated per run with ring.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, Response};
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P384_SHA384_FIXED_SIGNING};
use serde_json::{json, Value};
use wor_hub::app::principal::ClientRole;
use wor_hub::config::{ClientConfig, ClientSecret, InitialDirectory, Settings};

use crate::helpers::{spawn, Backend, TestApp};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/auth");
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// A performer of the sample directory with an RSA and a P-384 key.
pub const PERFORMER: &str = "tom-backend";
/// A referrer authenticating with a secret only.
pub const SECRET_CLIENT: &str = "gp-secret";
pub const SECRET: &str = "a-test-secret-of-32-characters!!";

pub struct Keys {
    pub rsa: EncodingKey,
    pub forger: EncodingKey,
    pub ec: EncodingKey,
    /// The public JWKS of the performer: `rsa1` and `ec1`.
    pub jwks: String,
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn keys() -> Keys {
    let pem = |name: &str| std::fs::read(format!("{FIXTURES}/{name}")).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    // An uncompressed point: 0x04, x (48 bytes), y (48 bytes).
    let point = pair.public_key().as_ref();
    let ec_jwk = json!({"kty": "EC", "crv": "P-384", "kid": "ec1", "use": "sig",
                        "x": b64(&point[1..49]), "y": b64(&point[49..97])});
    let rsa_jwks: Value =
        serde_json::from_slice(&pem("rsa-client.jwks.json")).expect("JWKS fixture");
    let jwks = json!({"keys": [rsa_jwks["keys"][0].clone(), ec_jwk]});
    Keys {
        rsa: EncodingKey::from_rsa_pem(&pem("rsa-client.pem")).unwrap(),
        forger: EncodingKey::from_rsa_pem(&pem("rsa-forger.pem")).unwrap(),
        ec: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwks: jwks.to_string(),
    }
}

pub fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// Claims of a valid assertion of `client` for `app`'s token endpoint.
pub fn claims(app: &TestApp, client: &str) -> Value {
    json!({
        "iss": client, "sub": client, "aud": token_url(app),
        "exp": now() + 240, "jti": uuid::Uuid::new_v4().to_string(),
    })
}

pub fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

pub fn token_url(app: &TestApp) -> String {
    app.base.replace("/fhir", "/auth/token")
}

/// Posts a token request with these form fields.
pub async fn token_request(app: &TestApp, form: &[(&str, &str)]) -> Response {
    app.client
        .post(token_url(app))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// A private_key_jwt token request with `assertion` for `scope`.
pub async fn with_assertion(app: &TestApp, assertion: &str, scope: &str) -> Response {
    token_request(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ],
    )
    .await
}

/// The access token of a successful token response.
pub async fn access_token(res: Response) -> String {
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Asserts an RFC 6749 error response and returns its description.
pub async fn oauth_error(res: Response, status: u16, error: &str) -> String {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["cache-control"].to_str().unwrap(), "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    body["error_description"].as_str().unwrap().to_owned()
}

pub async fn get_with(app: &TestApp, path: &str, token: &str) -> Response {
    app.request(Method::GET, path)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The server with the sample directory and two registered clients (from the config,
/// as `[[clients]]` registers them); `lifetime` of its access tokens.
pub async fn spawn_secured(backend: Backend, keys: &Keys, lifetime: Duration) -> TestApp {
    spawn_secured_with(backend, keys, lifetime, |_| {}).await
}

/// [`spawn_secured`] with more settings.
pub async fn spawn_secured_with(
    backend: Backend,
    keys: &Keys,
    lifetime: Duration,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let jwks = keys.jwks.clone();
    spawn(backend, move |s: &mut Settings| {
        tweak(s);
        s.initial_directory = InitialDirectory::Sample;
        s.access_token_lifetime = lifetime;
        s.clients = vec![
            ClientConfig {
                client_id: PERFORMER.into(),
                role: ClientRole::Performer,
                organization: "Organization/tom-in-de-buurt".into(),
                scopes: None,
                jwks: Some(jwks),
                secret: None,
            },
            ClientConfig {
                client_id: SECRET_CLIENT.into(),
                role: ClientRole::Referrer,
                organization: "Organization/tom-in-de-buurt".into(),
                scopes: Some("system/Patient.crus system/Task.rs".into()),
                jwks: None,
                secret: Some(ClientSecret::Plain(SECRET.into())),
            },
        ];
    })
    .await
    .expect("app")
}

/// One `#[tokio::test]` per backend for each `async fn(TestApp, Keys)`, on
/// [`spawn_secured`] with 5-minute tokens.
#[macro_export]
macro_rules! secured_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let keys = $crate::auth_support::keys();
                    let app = $crate::auth_support::spawn_secured(
                        $crate::helpers::Backend::Sqlite, &keys, std::time::Duration::from_secs(300)).await;
                    super::$name(app, keys).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                #[cfg_attr(
                    not(wor_hub_postgres_tests),
                    ignore = "set WOR_HUB_TEST_POSTGRES_URL to run on PostgreSQL"
                )]
                async fn $name() {
                    let keys = $crate::auth_support::keys();
                    let app = $crate::auth_support::spawn_secured(
                        $crate::helpers::Backend::Postgres, &keys, std::time::Duration::from_secs(300)).await;
                    super::$name(app, keys).await;
                }
            )*
        }
    };
}
