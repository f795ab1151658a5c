//! Client authentication (README "Authentication"): SMART Backend Services client
//! assertions, client secrets, opaque access tokens and SMART system scopes. Pure
//! domain: no HTTP types and no database; `app::auth` runs the token endpoint with it.

pub mod assertion;
pub mod scope;
pub mod secret;

use std::fmt;

use ring::rand::SecureRandom as _;
use sha2::Digest as _;

/// The token endpoint's path; its public URL is the assertion's expected `aud`.
pub const TOKEN_PATH: &str = "/auth/token";

/// `client_assertion_type` of a private_key_jwt assertion (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The one grant type: SMART Backend Services.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

/// The `error` codes of RFC 6749 §5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
}

impl OAuthErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
        }
    }
}

/// A refused token request: the RFC 6749 error and a description for the client's
/// developer (never a secret or an assertion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: OAuthErrorCode,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidClient, description)
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest, description)
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

/// A new opaque access token (256 random bits, base64url) and the SHA-256 (hex) the
/// database keeps of it.
pub fn new_access_token() -> Result<(String, String), String> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system random number generator failed".to_owned())?;
    use base64::Engine as _;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// The SHA-256 (hex) of an access token, as stored.
pub fn token_hash(token: &str) -> String {
    let digest = sha2::Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A client id: 1-128 characters of `A-Za-z0-9-_.:@`.
pub fn valid_client_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b))
}

/// `Organization/<id>` as a client's organisation (the id as FHIR allows it).
pub fn organization_reference(text: &str) -> Result<String, String> {
    let id = text
        .trim()
        .strip_prefix("Organization/")
        .unwrap_or_default();
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok {
        Ok(format!("Organization/{id}"))
    } else {
        Err(format!(
            "organization `{}` is not a reference Organization/<id>",
            text.chars().take(80).collect::<String>()
        ))
    }
}

/// The token endpoint's public URL for a FHIR base (`https://hub.example.nl/fhir` ->
/// `https://hub.example.nl/auth/token`): the server serves both from one origin, and
/// a base whose path ends in `/fhir` names its prefix.
pub fn token_url(fhir_base: &str) -> String {
    let base = fhir_base.trim_end_matches('/');
    let root = base.strip_suffix("/fhir").unwrap_or(base);
    format!("{root}{TOKEN_PATH}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_url_beside_the_fhir_base() {
        assert_eq!(
            token_url("https://hub.example.nl/fhir"),
            "https://hub.example.nl/auth/token"
        );
        assert_eq!(
            token_url("https://hub.example.nl/wor/fhir/"),
            "https://hub.example.nl/wor/auth/token"
        );
    }

    #[test]
    fn organization_references() {
        assert_eq!(
            organization_reference("Organization/tom-in-de-buurt").unwrap(),
            "Organization/tom-in-de-buurt"
        );
        assert!(organization_reference("Practitioner/x").is_err());
        assert!(organization_reference("Organization/").is_err());
        assert!(organization_reference("Organization/a b").is_err());
    }

    use super::*;

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let (a, hash_a) = new_access_token().unwrap();
        let (b, _) = new_access_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_a, token_hash(&a));
        assert_eq!(hash_a.len(), 64);
        assert!(!hash_a.contains(&a));
    }

    #[test]
    fn client_ids() {
        assert!(valid_client_id("gp-gateway.alphen"));
        assert!(!valid_client_id(""));
        assert!(!valid_client_id("a b"));
        assert!(!valid_client_id(&"x".repeat(129)));
    }
}
