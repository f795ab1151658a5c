//! `[[clients]]` in the config file: clients registered (or updated) at start-up, as
//! `wor-hub client add` registers them (README "Authentication"). A secret is never
//! written in the file: it holds an Argon2 hash (`secret_hash`) or names the
//! environment variable holding the secret (`secret_env`).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use crate::app::principal::ClientRole;
use crate::auth::{assertion, scope::ScopeSet, secret};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileClient {
    client_id: String,
    role: String,
    organization: String,
    scopes: Option<String>,
    /// A JWKS file, relative to the config file's directory.
    jwks_file: Option<PathBuf>,
    /// A JWKS inline, as JSON text.
    jwks: Option<String>,
    secret_hash: Option<String>,
    secret_env: Option<String>,
}

/// A client's secret from the config: an Argon2 hash, or the secret itself (read from
/// the environment), hashed when it is registered. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientSecret {
    Hash(String),
    Plain(String),
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hash(_) => f.write_str("Hash(***)"),
            Self::Plain(_) => f.write_str("Plain(***)"),
        }
    }
}

/// A validated `[[clients]]` entry.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub client_id: String,
    pub role: ClientRole,
    /// `Organization/<id>`.
    pub organization: String,
    /// Allowed scopes, canonical; `None` for the role's defaults.
    pub scopes: Option<String>,
    /// The JWKS text (public keys).
    pub jwks: Option<String>,
    pub secret: Option<ClientSecret>,
}

fn bad(message: String) -> ConfigError {
    ConfigError::invalid("clients", message)
}

pub(super) fn load(list: &[FileClient], config: &Path) -> Result<Vec<ClientConfig>, ConfigError> {
    let mut seen = HashSet::new();
    list.iter()
        .map(|c| {
            if !seen.insert(c.client_id.clone()) {
                return Err(bad(format!("client `{}` is listed twice", c.client_id)));
            }
            one(c, config)
        })
        .collect()
}

fn one(c: &FileClient, config: &Path) -> Result<ClientConfig, ConfigError> {
    let id = &c.client_id;
    if !crate::auth::valid_client_id(id) {
        return Err(bad(format!(
            "client_id `{id}`: use 1-128 characters of A-Z, a-z, 0-9, '-', '_', '.', ':' and '@'"
        )));
    }
    let role = ClientRole::from_code(&c.role).ok_or_else(|| {
        bad(format!(
            "client `{id}`: role `{}`: use referrer, performer, coordinator or monitor",
            c.role
        ))
    })?;
    let scopes = match &c.scopes {
        None => None,
        Some(text) => Some(
            ScopeSet::parse(text)
                .map_err(|e| bad(format!("client `{id}`: {e}")))?
                .to_string(),
        ),
    };
    let jwks = match (&c.jwks, &c.jwks_file) {
        (Some(_), Some(_)) => {
            return Err(bad(format!(
                "client `{id}`: give jwks or jwks_file, not both"
            )))
        }
        (Some(text), None) => Some(text.clone()),
        (None, Some(file)) => {
            let path = config.parent().unwrap_or(Path::new(".")).join(file);
            Some(std::fs::read_to_string(&path).map_err(|e| {
                bad(format!(
                    "client `{id}`: cannot read {}: {e}",
                    path.display()
                ))
            })?)
        }
        (None, None) => None,
    };
    if let Some(text) = &jwks {
        assertion::check_jwks(text).map_err(|e| bad(format!("client `{id}`: {e}")))?;
    }
    let secret = match (&c.secret_hash, &c.secret_env) {
        (Some(_), Some(_)) => {
            return Err(bad(format!(
                "client `{id}`: give secret_hash or secret_env, not both"
            )))
        }
        (Some(hash), None) if secret::valid_hash(hash) => Some(ClientSecret::Hash(hash.clone())),
        (Some(_), None) => {
            return Err(bad(format!(
                "client `{id}`: secret_hash must be an Argon2 PHC string ($argon2id$...)"
            )))
        }
        (None, Some(var)) => {
            let value = std::env::var(var).map_err(|_| {
                bad(format!(
                    "client `{id}`: environment variable {var} is not set"
                ))
            })?;
            if value.len() < secret::MIN_SECRET_LEN {
                return Err(bad(format!(
                    "client `{id}`: the secret in {var} is shorter than {} characters",
                    secret::MIN_SECRET_LEN
                )));
            }
            Some(ClientSecret::Plain(value))
        }
        (None, None) => None,
    };
    if jwks.is_none() && secret.is_none() {
        return Err(bad(format!(
            "client `{id}`: give its public keys (jwks or jwks_file) or a secret (secret_hash or secret_env)"
        )));
    }
    Ok(ClientConfig {
        client_id: id.clone(),
        role,
        organization: crate::auth::organization_reference(&c.organization)
            .map_err(|e| bad(format!("client `{id}`: {e}")))?,
        scopes,
        jwks,
        secret,
    })
}
