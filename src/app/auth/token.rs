//! The token endpoint's use case (SMART Backend Services, RFC 6749 §4.4): a client
//! authenticates with a signed assertion (private_key_jwt) or its secret
//! (client_secret_basic) and gets a short-lived opaque access token for the scopes it
//! asked for and is allowed.

use std::time::Duration;

use crate::app::principal::{ClientRole, Principal};
use crate::auth::scope::ScopeSet;
use crate::auth::{assertion, secret, OAuthError, OAuthErrorCode, CLIENT_CREDENTIALS, JWT_BEARER};
use crate::store::{ClientRow, NewToken, Store, StoreError};

/// A token request as the form and the `Authorization` header gave it.
#[derive(Default)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub client_assertion_type: Option<String>,
    pub client_assertion: Option<String>,
    /// HTTP Basic credentials (client id, secret).
    pub basic: Option<(String, String)>,
}

/// An issued access token.
#[derive(Debug)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u64,
    pub scope: String,
}

/// Why no token: the client's mistake (RFC 6749 §5.2), or the database.
#[derive(Debug)]
pub enum TokenFailure {
    /// The audit record of the grant could not be written: no token.
    Audit(crate::app::error::AppError),
    OAuth(OAuthError),
    Store(StoreError),
}

impl From<OAuthError> for TokenFailure {
    fn from(e: OAuthError) -> Self {
        Self::OAuth(e)
    }
}

impl From<StoreError> for TokenFailure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Authenticates the client and issues a token valid for `lifetime`. `token_url` is
/// this endpoint's public URL (the assertion's audience).
pub async fn issue(
    app: &crate::app::App,
    req: TokenRequest,
    token_url: &str,
    lifetime: Duration,
) -> Result<IssuedToken, TokenFailure> {
    match req.grant_type.as_deref() {
        None => return Err(OAuthError::invalid_request("grant_type is required").into()),
        Some(CLIENT_CREDENTIALS) => {}
        Some(other) => {
            return Err(OAuthError::new(
                OAuthErrorCode::UnsupportedGrantType,
                format!(
                    "grant_type `{}` is not supported: use client_credentials",
                    other.chars().take(64).collect::<String>()
                ),
            )
            .into())
        }
    }
    let store = &app.store;
    let client = authenticate_client(store, &req, token_url).await?;
    let requested = req
        .scope
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| OAuthError::invalid_request("scope is required"))?;
    let requested = ScopeSet::parse(requested)
        .map_err(|e| OAuthError::new(OAuthErrorCode::InvalidScope, e.to_string()))?;
    let allowed = ScopeSet::lenient(&client.scopes.split_whitespace().collect::<Vec<_>>());
    let granted = allowed.grant(&requested);
    if granted.is_empty() {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidScope,
            "none of the requested scopes is allowed for this client",
        )
        .into());
    }
    let (access_token, token_hash) =
        crate::auth::new_access_token().map_err(StoreError::Internal)?;
    let expires_in = lifetime.as_secs().max(1);
    let now = crate::fhir::instant::now_micros();
    store
        .save_token(NewToken {
            token_hash,
            client_id: client.client_id.clone(),
            scopes: granted.to_string(),
            expires: now.saturating_add(crate::app::micros(lifetime)),
        })
        .await?;
    // NEN 7513: the grant of access to patient data is itself on the audit trail.
    if let Some(role) = ClientRole::from_code(&client.role) {
        let principal = Principal::client(
            uuid::Uuid::new_v4().to_string(),
            None,
            &client.client_id,
            role,
            client.organization.clone(),
            Vec::new(),
        );
        crate::app::audit::token_grant(app, &principal, true)
            .await
            .map_err(TokenFailure::Audit)?;
    }
    tracing::info!(client_id = %client.client_id, scope = %granted, expires_in, "access token issued");
    Ok(IssuedToken {
        access_token,
        expires_in,
        scope: granted.to_string(),
    })
}

/// The registered client the request authenticates as, by exactly one method.
async fn authenticate_client(
    store: &Store,
    req: &TokenRequest,
    token_url: &str,
) -> Result<ClientRow, TokenFailure> {
    match (&req.basic, &req.client_assertion) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "use one client authentication method: a client_assertion or HTTP Basic",
        )
        .into()),
        (Some((id, secret)), None) => basic(store, id, secret).await,
        (None, Some(jwt)) => private_key_jwt(store, req, jwt, token_url).await,
        (None, None) => Err(OAuthError::invalid_client(
            "no client authentication: send a client_assertion (private_key_jwt) or HTTP Basic credentials",
        )
        .into()),
    }
}

/// RFC 6749 §2.3.1 form-urlencodes id and secret inside Basic; many clients (curl -u)
/// do not. Both readings are tried.
fn form_decoded(raw: &str) -> String {
    form_urlencoded::parse(format!("v={}", raw.replace('&', "%26")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// An Argon2 hash no secret matches, checked for unknown client ids.
fn unknown_client_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let random = crate::auth::new_access_token().unwrap_or_default().0;
        secret::hash_secret(&random).unwrap_or_default()
    })
}

async fn basic(store: &Store, id: &str, given: &str) -> Result<ClientRow, TokenFailure> {
    let refused = || OAuthError::invalid_client("unknown client or wrong secret");
    let client = match store.client(id).await? {
        Some(c) => Some(c),
        None => store.client(&form_decoded(id)).await?,
    };
    let Some(client) = client else {
        // As slow as a wrong secret: the answer's timing does not tell which ids exist.
        let given = given.to_owned();
        let _ = tokio::task::spawn_blocking(move || {
            secret::verify_secret(&given, unknown_client_hash())
        })
        .await;
        return Err(refused().into());
    };
    let Some(hash) = client.secret_hash.clone() else {
        return Err(OAuthError::invalid_client(
            "this client is registered without a secret: authenticate with a client_assertion",
        )
        .into());
    };
    let given = given.to_owned();
    let ok = tokio::task::spawn_blocking(move || {
        secret::verify_secret(&given, &hash) || {
            let decoded = form_decoded(&given);
            decoded != given && secret::verify_secret(&decoded, &hash)
        }
    })
    .await
    .map_err(|e| StoreError::Internal(e.to_string()))?;
    if ok {
        Ok(client)
    } else {
        Err(refused().into())
    }
}

async fn private_key_jwt(
    store: &Store,
    req: &TokenRequest,
    jwt: &str,
    token_url: &str,
) -> Result<ClientRow, TokenFailure> {
    if req.client_assertion_type.as_deref() != Some(JWT_BEARER) {
        return Err(OAuthError::invalid_request(format!(
            "client_assertion_type must be {JWT_BEARER}"
        ))
        .into());
    }
    let issuer = assertion::unverified_issuer(jwt)
        .ok_or_else(|| OAuthError::invalid_client("client_assertion is not a JWT with an iss"))?;
    if req.client_id.as_deref().is_some_and(|id| id != issuer) {
        return Err(OAuthError::invalid_client("client_id is not the assertion's iss").into());
    }
    let client = store
        .client(&issuer)
        .await?
        .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
    let Some(jwks) = client.jwks.as_deref() else {
        return Err(OAuthError::invalid_client(
            "this client is registered without public keys: authenticate with HTTP Basic",
        )
        .into());
    };
    let now = crate::fhir::instant::now_micros() / 1_000_000;
    let verified = assertion::verify(jwt, &client.client_id, jwks, token_url, now)?;
    // Kept until the assertion could no longer be accepted anyway.
    let keep_until = (verified.exp + assertion::LEEWAY_SECS).saturating_mul(1_000_000);
    if !store
        .use_jti(&client.client_id, &verified.jti, keep_until)
        .await?
    {
        return Err(OAuthError::invalid_client(
            "client_assertion jti was used before: sign a new assertion for each request",
        )
        .into());
    }
    Ok(client)
}
