//! SMART Backend Services client assertions (private_key_jwt, RFC 7523): a JWT signed
//! RS384 or ES384 with a key of the client's registered JWKS, `iss` = `sub` = the
//! client id, `aud` = the token URL, `exp` at most five minutes ahead, and a `jti`
//! (whose single use the caller records). jsonwebtoken does the cryptography.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::OAuthError;

/// Clock skew tolerated between the client and this server, in seconds.
pub const LEEWAY_SECS: i64 = 30;

/// The furthest ahead an assertion's `exp` may lie (SMART: no more than five minutes).
pub const MAX_LIFETIME_SECS: i64 = 300;

/// The signature algorithms accepted (SMART Backend Services requires both).
pub const ALGORITHMS: [&str; 2] = ["RS384", "ES384"];

/// A verified assertion: what the caller records against replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub jti: String,
    /// Seconds since the Unix epoch.
    pub exp: i64,
}

#[derive(Deserialize)]
struct Claims {
    exp: i64,
    jti: Option<String>,
}

/// The `iss` of an assertion, read without checking anything: it names the client
/// whose keys then verify the assertion.
pub fn unverified_issuer(assertion: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["iss"].as_str().map(str::to_owned)
}

/// Checks a JWKS given at registration: public RSA or P-384 keys only, each usable.
/// Returns the key ids (`-` for a key without one).
pub fn check_jwks(text: &str) -> Result<Vec<String>, String> {
    let raw: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
    let keys = raw["keys"]
        .as_array()
        .ok_or("a JWKS is an object with a `keys` array")?;
    if keys.is_empty() {
        return Err("the JWKS holds no key".into());
    }
    if keys.iter().any(|k| k.get("d").is_some()) {
        return Err("the JWKS holds a private key: register the public keys only".into());
    }
    let set: JwkSet =
        serde_json::from_value(raw.clone()).map_err(|e| format!("the JWKS is not valid: {e}"))?;
    let mut kids = Vec::new();
    for key in &set.keys {
        if algorithm_of(key).is_none() {
            return Err(format!(
                "key {} is neither RSA nor EC P-384 (this server verifies RS384 and ES384)",
                key.common.key_id.as_deref().unwrap_or("without kid")
            ));
        }
        DecodingKey::from_jwk(key).map_err(|e| format!("unusable key: {e}"))?;
        kids.push(key.common.key_id.clone().unwrap_or_else(|| "-".into()));
    }
    Ok(kids)
}

/// The key ids of a stored JWKS, for listings.
pub fn key_ids(text: &str) -> Vec<String> {
    serde_json::from_str::<JwkSet>(text)
        .map(|set| {
            set.keys
                .iter()
                .map(|k| k.common.key_id.clone().unwrap_or_else(|| "-".into()))
                .collect()
        })
        .unwrap_or_default()
}

/// The one algorithm a key verifies here.
fn algorithm_of(key: &Jwk) -> Option<Algorithm> {
    let by_type = match &key.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS384,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P384 => {
            Algorithm::ES384
        }
        _ => return None,
    };
    match key.common.key_algorithm {
        None => Some(by_type),
        Some(KeyAlgorithm::RS384) if by_type == Algorithm::RS384 => Some(by_type),
        Some(KeyAlgorithm::ES384) if by_type == Algorithm::ES384 => Some(by_type),
        Some(_) => None,
    }
}

/// Verifies `assertion` for `client_id` against its registered `jwks`, expecting
/// `aud` = `token_url`, at `now` (seconds since the Unix epoch).
pub fn verify(
    assertion: &str,
    client_id: &str,
    jwks: &str,
    token_url: &str,
    now: i64,
) -> Result<Verified, OAuthError> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| {
        OAuthError::invalid_client(format!(
            "client_assertion is not a JWT signed RS384 or ES384 ({e})"
        ))
    })?;
    if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
        return Err(OAuthError::invalid_client(format!(
            "client_assertion is signed {:?}; use RS384 or ES384",
            header.alg
        )));
    }
    let set: JwkSet = serde_json::from_str(jwks)
        .map_err(|_| OAuthError::invalid_client("the client's registered JWKS is unusable"))?;
    let fits = |k: &&Jwk| algorithm_of(k) == Some(header.alg);
    let mut candidates: Vec<&Jwk> = set
        .keys
        .iter()
        .filter(fits)
        .filter(|k| header.kid.is_none() || k.common.key_id == header.kid)
        .collect();
    if candidates.is_empty() && header.kid.is_some() {
        // A JWKS registered without key ids: its keys of the algorithm are tried.
        candidates = set
            .keys
            .iter()
            .filter(fits)
            .filter(|k| k.common.key_id.is_none())
            .collect();
    }
    if candidates.is_empty() {
        return Err(OAuthError::invalid_client(match &header.kid {
            Some(kid) => format!(
                "no {:?} key with kid `{}` is registered for this client",
                header.alg,
                kid.chars().take(64).collect::<String>()
            ),
            None => format!("no {:?} key is registered for this client", header.alg),
        }));
    }
    let mut validation = Validation::new(header.alg);
    validation.leeway = LEEWAY_SECS.unsigned_abs();
    validation.set_audience(&[token_url]);
    validation.set_issuer(&[client_id]);
    validation.sub = Some(client_id.to_owned());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let mut last = None;
    for key in candidates {
        let Ok(decoding) = DecodingKey::from_jwk(key) else {
            continue;
        };
        match jsonwebtoken::decode::<Claims>(assertion, &decoding, &validation) {
            Ok(data) => return check_claims(data.claims, now),
            Err(e) => last = Some(e),
        }
    }
    Err(OAuthError::invalid_client(describe(last)))
}

fn check_claims(claims: Claims, now: i64) -> Result<Verified, OAuthError> {
    if claims.exp > now + MAX_LIFETIME_SECS + LEEWAY_SECS {
        return Err(OAuthError::invalid_client(
            "client_assertion exp is more than five minutes in the future",
        ));
    }
    if claims.exp < now - LEEWAY_SECS {
        return Err(OAuthError::invalid_client("client_assertion has expired"));
    }
    let jti = claims
        .jti
        .filter(|j| (1..=255).contains(&j.len()))
        .ok_or_else(|| OAuthError::invalid_client("client_assertion has no jti"))?;
    Ok(Verified {
        jti,
        exp: claims.exp,
    })
}

fn describe(err: Option<jsonwebtoken::errors::Error>) -> String {
    let Some(err) = err else {
        return "no registered key of this client verifies client_assertion".into();
    };
    match err.kind() {
        ErrorKind::InvalidSignature => {
            "client_assertion's signature does not verify with the client's registered keys".into()
        }
        ErrorKind::ExpiredSignature => "client_assertion has expired".into(),
        ErrorKind::InvalidAudience => {
            "client_assertion aud is not this token endpoint's URL".into()
        }
        ErrorKind::InvalidIssuer => "client_assertion iss is not the client id".into(),
        ErrorKind::InvalidSubject => "client_assertion sub is not the client id (iss)".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("client_assertion has no {claim}"),
        ErrorKind::ImmatureSignature => "client_assertion is not valid yet (nbf)".into(),
        _ => "client_assertion is not a valid JWT".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P384_SHA384_FIXED_SIGNING};

    const URL: &str = "https://hub.example.nl/auth/token";

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A P-384 key: its signing key and its public JWK (without kid).
    fn ec_key() -> (EncodingKey, serde_json::Value) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref();
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-384",
            "x": b64(&point[1..49]), "y": b64(&point[49..97])});
        (EncodingKey::from_ec_der(pkcs8.as_ref()), jwk)
    }

    fn assertion(key: &EncodingKey, kid: Option<&str>, exp: i64, jti: &str) -> String {
        let mut header = Header::new(Algorithm::ES384);
        header.kid = kid.map(str::to_owned);
        let claims =
            serde_json::json!({"iss": "gp", "sub": "gp", "aud": URL, "exp": exp, "jti": jti});
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    #[test]
    fn a_jwks_without_kids_verifies_by_trying_its_keys() {
        let (key, jwk) = ec_key();
        let (_, other) = ec_key();
        let jwks = serde_json::json!({"keys": [other, jwk]}).to_string();
        let now = 1_800_000_000;
        for kid in [None, Some("k-the-client-chose")] {
            let jwt = assertion(&key, kid, now + 60, "j1");
            assert_eq!(unverified_issuer(&jwt).as_deref(), Some("gp"));
            let verified = verify(&jwt, "gp", &jwks, URL, now).unwrap();
            assert_eq!(verified.jti, "j1");
        }
        let (stranger, _) = ec_key();
        let err = verify(
            &assertion(&stranger, None, now + 60, "j2"),
            "gp",
            &jwks,
            URL,
            now,
        )
        .unwrap_err();
        assert_eq!(err.code, crate::auth::OAuthErrorCode::InvalidClient);
        let err = verify(
            &assertion(&key, None, now + 60, "j3"),
            "gp",
            &jwks,
            URL,
            now + 200,
        )
        .unwrap_err();
        assert!(err.description.contains("expired"), "{err}");
        let err = verify(
            &assertion(&key, None, now + 400, "j4"),
            "gp",
            &jwks,
            URL,
            now,
        )
        .unwrap_err();
        assert!(err.description.contains("five minutes"), "{err}");
    }

    #[test]
    fn registered_jwks_hold_public_usable_keys_only() {
        let (_, jwk) = ec_key();
        let ok = serde_json::json!({"keys": [jwk.clone()]}).to_string();
        assert_eq!(check_jwks(&ok).unwrap(), vec!["-".to_owned()]);
        let mut private = jwk.clone();
        private["d"] = serde_json::json!("secret");
        let err = check_jwks(&serde_json::json!({"keys": [private]}).to_string()).unwrap_err();
        assert!(err.contains("private"), "{err}");
        let mut p256 = jwk;
        p256["crv"] = serde_json::json!("P-256");
        assert!(check_jwks(&serde_json::json!({"keys": [p256]}).to_string()).is_err());
        assert!(check_jwks("{\"keys\": []}").is_err());
        assert!(check_jwks("not json").is_err());
    }
}
