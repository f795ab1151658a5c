//! The optional signing secret of a Subscription: read once, never shown again.

use serde_json::Value;

/// This hub's extension on `Subscription.channel`: the HMAC-SHA256 signing secret.
pub const EXT_SIGNING_SECRET: &str =
    "https://wor-hub.nl/fhir/StructureDefinition/subscription-signing-secret";
/// What a read shows instead of the signing secret; sent back, it keeps the stored secret.
pub const SECRET_MASK: &str = "********";
pub const MIN_SECRET_CHARS: usize = 32;

/// Replaces the signing secret in a Subscription body by [`SECRET_MASK`], so that a stored
/// body and every read show that a secret is set but never the secret itself. Returns
/// whether a secret was replaced.
pub fn redact_secret(value: &mut Value) -> bool {
    let Some(extensions) = value
        .pointer_mut("/channel/extension")
        .and_then(Value::as_array_mut)
    else {
        return false;
    };
    let mut redacted = false;
    for ext in extensions {
        if ext.get("url").and_then(Value::as_str) != Some(EXT_SIGNING_SECRET) {
            continue;
        }
        let Some(obj) = ext.as_object_mut() else {
            continue;
        };
        if obj.get("valueString").and_then(Value::as_str) == Some(SECRET_MASK) {
            continue;
        }
        // Whatever value[x] was sent goes: only the mask remains.
        obj.retain(|k, _| !k.starts_with("value"));
        obj.insert("valueString".to_owned(), Value::from(SECRET_MASK));
        redacted = true;
    }
    redacted
}
