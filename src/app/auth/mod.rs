//! Client authentication's use cases (README "Authentication"): registering clients
//! (`wor-hub client add`, `[[clients]]` in the config), the token endpoint
//! ([`token`]), and resolving a bearer token to the client it was issued to. The
//! checks themselves are `crate::auth`'s; the rows are the store's.

pub mod token;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::app::principal::ClientRole;
use crate::auth::scope::ScopeSet;
use crate::auth::{assertion, secret};
use crate::config::{ClientConfig, ClientSecret};
use crate::store::{ClientRow, Store, StoreError};

/// The scopes a client of `role` is allowed when its registration names none.
pub fn default_scopes(role: ClientRole) -> &'static str {
    match role {
        ClientRole::Referrer => {
            "system/ServiceRequest.crus system/Task.rus system/Patient.crus system/Consent.crus \
             system/Organization.crs system/Practitioner.crs system/PractitionerRole.crs \
             system/HealthcareService.rs system/Location.rs system/Subscription.cruds \
             system/Observation.rs system/QuestionnaireResponse.rs system/Bundle.crs \
             system/Endpoint.cruds"
        }
        ClientRole::Performer => {
            "system/Task.rus system/ServiceRequest.rs system/Patient.rs system/Consent.rs \
             system/Organization.rs system/HealthcareService.rs system/Location.rs \
             system/Practitioner.rs system/PractitionerRole.rs system/Subscription.cruds \
             system/Observation.crus system/QuestionnaireResponse.crus"
        }
        ClientRole::Coordinator => "system/*.cruds",
        // Statistics only.
        ClientRole::Monitor => "system/MeasureReport.rs",
    }
}

/// A client to register: from `wor-hub client add` or the config file.
#[derive(Debug, Clone)]
pub struct Registration {
    pub client_id: String,
    pub role: ClientRole,
    /// `Organization/<id>`.
    pub organization: String,
    /// Allowed scopes; `None` for [`default_scopes`].
    pub scopes: Option<String>,
    pub jwks: Option<String>,
    pub secret: Option<ClientSecret>,
}

impl From<&ClientConfig> for Registration {
    fn from(c: &ClientConfig) -> Self {
        Self {
            client_id: c.client_id.clone(),
            role: c.role,
            organization: c.organization.clone(),
            scopes: c.scopes.clone(),
            jwks: c.jwks.clone(),
            secret: c.secret.clone(),
        }
    }
}

/// Why a registration is refused: a message for the operator (one line), or the store.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a registration and stores it (replacing one of the same id when `replace`).
/// Returns true when the client is new.
pub async fn register(
    store: &Store,
    r: &Registration,
    replace: bool,
) -> Result<bool, RegisterError> {
    let refuse = |m: String| RegisterError::Refused(m);
    if !crate::auth::valid_client_id(&r.client_id) {
        return Err(refuse(format!(
            "client id `{}`: use 1-128 characters of A-Z, a-z, 0-9, '-', '_', '.', ':' and '@'",
            r.client_id.chars().take(80).collect::<String>()
        )));
    }
    let organization = crate::auth::organization_reference(&r.organization).map_err(refuse)?;
    let org_id = organization.trim_start_matches("Organization/");
    // A monitor (municipality, GGD, insurer) need not be in the welfare directory.
    if r.role != ClientRole::Monitor && !store.organization_exists(org_id).await? {
        return Err(refuse(format!(
            "{organization} is not stored: import the directory first, or register a monitor"
        )));
    }
    let scopes = match &r.scopes {
        Some(text) => ScopeSet::parse(text).map_err(|e| refuse(e.to_string()))?,
        None => ScopeSet::parse(default_scopes(r.role)).map_err(|e| refuse(e.to_string()))?,
    };
    if scopes.is_empty() {
        return Err(refuse("a client needs at least one scope".into()));
    }
    if let Some(jwks) = &r.jwks {
        assertion::check_jwks(jwks).map_err(refuse)?;
    }
    let secret_hash = match &r.secret {
        None => None,
        Some(ClientSecret::Hash(h)) if secret::valid_hash(h) => Some(h.clone()),
        Some(ClientSecret::Hash(_)) => {
            return Err(refuse("the secret hash is not an Argon2 PHC string".into()))
        }
        Some(ClientSecret::Plain(s)) if s.len() < secret::MIN_SECRET_LEN => {
            return Err(refuse(format!(
                "the secret is shorter than {} characters",
                secret::MIN_SECRET_LEN
            )))
        }
        Some(ClientSecret::Plain(s)) => {
            let s = s.clone();
            Some(
                tokio::task::spawn_blocking(move || secret::hash_secret(&s))
                    .await
                    .map_err(|e| refuse(e.to_string()))?
                    .map_err(refuse)?,
            )
        }
    };
    if r.jwks.is_none() && secret_hash.is_none() {
        return Err(refuse(
            "a client needs its public keys (JWKS) or a secret".into(),
        ));
    }
    if !replace && store.client(&r.client_id).await?.is_some() {
        return Err(refuse(format!(
            "client {} is already registered: remove it first to change it",
            r.client_id
        )));
    }
    let row = ClientRow {
        client_id: r.client_id.clone(),
        role: r.role.code().to_owned(),
        organization,
        scopes: scopes.to_string(),
        jwks: r.jwks.clone(),
        secret_hash,
        created: crate::fhir::instant::now_micros(),
    };
    Ok(store.put_client(row).await?)
}

/// A client as listed: never its secret or keys, only the key ids.
pub fn listing(row: &ClientRow) -> serde_json::Value {
    let mut methods = Vec::new();
    if row.jwks.is_some() {
        methods.push("private_key_jwt");
    }
    if row.secret_hash.is_some() {
        methods.push("client_secret_basic");
    }
    serde_json::json!({
        "client_id": row.client_id,
        "role": row.role,
        "organization": row.organization,
        "scopes": row.scopes,
        "auth_methods": methods,
        "key_ids": row.jwks.as_deref().map(assertion::key_ids).unwrap_or_default(),
        "created": crate::fhir::instant::format_instant(row.created),
    })
}

/// The client an access token was issued to, as the request's principal needs it.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub client_id: String,
    pub role: ClientRole,
    pub organization: String,
    /// The token's scopes, narrowed to what the client is allowed now.
    pub scopes: Vec<String>,
}

/// The client of a valid (known, unexpired, not revoked) access token.
pub async fn authenticate(
    store: &Store,
    token: &str,
) -> Result<Option<AuthenticatedClient>, StoreError> {
    let hash = crate::auth::token_hash(token);
    let Some(grant) = store
        .token(&hash, crate::fhir::instant::now_micros())
        .await?
    else {
        return Ok(None);
    };
    let Some(role) = ClientRole::from_code(&grant.client.role) else {
        return Ok(None);
    };
    let allowed = ScopeSet::lenient(&grant.client.scopes.split_whitespace().collect::<Vec<_>>());
    let granted = ScopeSet::lenient(&grant.scopes.split_whitespace().collect::<Vec<_>>());
    Ok(Some(AuthenticatedClient {
        client_id: grant.client.client_id,
        role,
        organization: grant.client.organization,
        scopes: allowed.grant(&granted).words(),
    }))
}

/// Whether /fhir requests need a token: once any client is registered (in the
/// database, so a `client add` on another instance counts), or always on a server
/// that may not run open. A background task asks the database every second; requests
/// read the answer without waiting for the database (an unauthenticated server does
/// not query it per request, and a request's body is read without delay).
pub struct Gate {
    /// Never open (a non-loopback listen address without --allow-open-network).
    closed: bool,
    registered: Arc<AtomicBool>,
}

/// How often the background task asks whether clients are registered.
const GATE_REFRESH: Duration = Duration::from_secs(1);

impl Gate {
    /// `registered`: whether clients are registered now (asked at start-up).
    pub fn new(closed: bool, registered: bool) -> Self {
        Self {
            closed,
            registered: Arc::new(AtomicBool::new(registered)),
        }
    }

    /// Keeps the answer current (call once, on the runtime).
    pub fn spawn_refresh(&self, store: Store) {
        let registered = self.registered.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(GATE_REFRESH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match store.has_clients().await {
                    Ok(answer) => registered.store(answer, Ordering::Relaxed),
                    // Keep the last answer; the pool logs connection failures.
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot ask whether clients are registered")
                    }
                }
            }
        });
    }

    pub fn requires_token(&self) -> bool {
        self.closed || self.registered.load(Ordering::Relaxed)
    }
}
