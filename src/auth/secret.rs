//! Client secrets (client_secret_basic): only an Argon2id hash (PHC string) is stored.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::Argon2;
use ring::rand::SecureRandom as _;

/// Shortest secret accepted at registration: a guessable secret would make the
/// token endpoint a password oracle.
pub const MIN_SECRET_LEN: usize = 16;

/// The Argon2id PHC string of `secret`, with a random salt.
pub fn hash_secret(secret: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| "the system random number generator failed".to_owned())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `phc` is an Argon2 hash this server can check (a config file's `secret_hash`).
pub fn valid_hash(phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

/// Whether `secret` matches the stored hash (constant time in the hash comparison).
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let hash = hash_secret("correct horse battery staple").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(valid_hash(&hash));
        assert!(verify_secret("correct horse battery staple", &hash));
        assert!(!verify_secret("correct horse battery stapler", &hash));
        assert_ne!(hash, hash_secret("correct horse battery staple").unwrap());
        assert!(!valid_hash("5e884898da28047151d0e56f8dc6292773603d0d"));
        assert!(!verify_secret("x", "not a hash"));
    }
}
