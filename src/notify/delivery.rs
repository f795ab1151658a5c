//! What a rest-hook delivery needs besides the body: its signature and the delay before a
//! retry.

use std::fmt::Write as _;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying [`signature`] when the Subscription has a signing secret.
pub const SIGNATURE_HEADER: &str = "X-Wor-Hub-Signature";

/// First retry after about a second, doubling up to this ceiling.
pub const BACKOFF_CAP: Duration = Duration::from_secs(15 * 60);

/// "sha256=" + lowercase hex of HMAC-SHA256(secret, body bytes exactly as sent).
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Delay before attempt `attempt` (1 = the first retry): 1 s doubling per attempt, capped at
/// 15 minutes, with jitter: uniformly in [base/2, base] for a random fraction `r` in [0, 1).
/// (Half the base is kept so that many failing subscriptions do not retry at once, and no
/// retry comes sooner than half its step.)
pub fn backoff(attempt: u32, r: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    let base = Duration::from_secs(1u64 << exponent).min(BACKOFF_CAP);
    let r = if r.is_finite() {
        r.clamp(0.0, 1.0)
    } else {
        0.0
    };
    base.mul_f64(0.5 + 0.5 * r)
}
