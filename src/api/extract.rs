//! Request extraction: FHIR JSON bodies, request context, `Prefer` and `If-Match`.

use std::future::{ready, Future, Ready};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::web::Data;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

use crate::api::edge::{body_limit, read_body};
use crate::app::auth::AuthenticatedClient;
use crate::app::principal::Principal;
use crate::app::resources::WriteRequest;
use crate::app::write::idempotency;
use crate::error::ApiError;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::patch::{Format as PatchFormat, JSON_PATCH};
use crate::fhir::resource::IncomingResource;
use crate::referral::workflow::Party;
use crate::startup::AppState;
use crate::telemetry::RequestId;

/// A request body that is one FHIR JSON object within the configured size limit.
pub struct FhirBody {
    pub resource: IncomingResource,
    /// The body as received, for request fingerprints.
    pub raw: actix_web::web::Bytes,
}

fn unsupported_media_type(diagnostics: String) -> ApiError {
    ApiError::one(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Issue::error(IssueCode::NotSupported, diagnostics).at("Content-Type"),
    )
}

/// Accepts `application/fhir+json`, `application/json` and the DSTU2 form
/// `application/json+fhir`, with an optional UTF-8 charset and `fhirVersion=4.0`.
fn check_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(raw) = req.headers().get(header::CONTENT_TYPE) else {
        return Err(unsupported_media_type(
            "Missing Content-Type: send application/fhir+json".into(),
        ));
    };
    let raw = raw.to_str().unwrap_or_default().to_ascii_lowercase();
    let mut parts = raw.split(';').map(str::trim);
    let essence = parts.next().unwrap_or_default();
    let json = matches!(
        essence,
        "application/fhir+json" | "application/json" | "application/json+fhir"
    );
    if !json {
        let hint = if essence.contains("xml") {
            "XML is not supported"
        } else {
            "Unsupported media type"
        };
        return Err(unsupported_media_type(format!(
            "{hint} ('{}'): send application/fhir+json",
            essence.chars().take(64).collect::<String>()
        )));
    }
    for param in parts {
        // versioning.html#mt-version: a body of another FHIR version is refused (415).
        if let Some(version) = param
            .strip_prefix("fhirversion=")
            .map(|v| v.trim_matches('"'))
        {
            if !crate::api::negotiate::is_served_version(version) {
                return Err(unsupported_media_type(
                    crate::api::negotiate::version_refusal(version),
                ));
            }
        }
        if let Some(charset) = param.strip_prefix("charset=") {
            let charset = charset.trim_matches('"');
            if charset != "utf-8" && charset != "utf8" {
                return Err(unsupported_media_type(format!(
                    "Unsupported charset '{}': FHIR JSON is UTF-8",
                    charset.chars().take(32).collect::<String>()
                )));
            }
        }
    }
    Ok(())
}

impl FromRequest for FhirBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let checked = check_content_type(req).and_then(|()| body_limit(req));
        let payload = payload.take();
        Box::pin(async move {
            let raw = read_body(payload, checked?).await?;
            IncomingResource::parse(&raw)
                .map(|resource| FhirBody { resource, raw })
                .map_err(|issue| ApiError::invalid(vec![issue]))
        })
    }
}

/// A PATCH body (http.html#patch): JSON Patch (`application/json-patch+json`) or
/// FHIRPath Patch (a Parameters resource as FHIR JSON), within the size limit. The
/// use case parses it (a Bundle entry carries the same patches).
pub struct PatchBody {
    pub format: PatchFormat,
    pub raw: actix_web::web::Bytes,
}

/// The patch format the Content-Type names, or 415.
fn patch_format(req: &HttpRequest) -> Result<PatchFormat, ApiError> {
    let raw = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut parts = raw.split(';').map(str::trim);
    let essence = parts.next().unwrap_or_default();
    if essence == JSON_PATCH {
        let charset = parts.find_map(|p| p.strip_prefix("charset="));
        return match charset.map(|c| c.trim_matches('"')) {
            None | Some("utf-8" | "utf8") => Ok(PatchFormat::JsonPatch),
            Some(other) => Err(unsupported_media_type(format!(
                "Unsupported charset '{}': JSON Patch is UTF-8",
                other.chars().take(32).collect::<String>()
            ))),
        };
    }
    let fhir_json = matches!(
        essence,
        "application/fhir+json" | "application/json" | "application/json+fhir"
    );
    match check_content_type(req) {
        Ok(()) => Ok(PatchFormat::FhirPath),
        Err(e) if fhir_json => Err(e),
        Err(_) => Err(unsupported_media_type(format!(
            "PATCH takes {JSON_PATCH} (JSON Patch) or application/fhir+json (FHIRPath Patch, a Parameters resource), not '{}'",
            essence.chars().take(64).collect::<String>()
        ))),
    }
}

impl FromRequest for PatchBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let checked = patch_format(req).and_then(|f| Ok((f, body_limit(req)?)));
        let payload = payload.take();
        Box::pin(async move {
            let (format, limit) = checked?;
            let raw = read_body(payload, limit).await?;
            Ok(PatchBody { format, raw })
        })
    }
}

/// Per-request facts handlers need: who is asking (the principal, built here once
/// for every request) and the public base URL.
pub struct RequestCtx {
    pub principal: Principal,
    pub base_url: String,
}

impl RequestCtx {
    /// How a write from this request is answered and replayed.
    pub fn write(
        &self,
        pref: ReturnPref,
        method: &str,
        req: &HttpRequest,
        body: &[u8],
    ) -> WriteRequest {
        WriteRequest {
            base: self.base_url.clone(),
            pref,
            idempotency: idempotency(&self.principal, method, &req.uri().to_string(), body),
        }
    }
}

impl FromRequest for RequestCtx {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let rid = req.extensions().get::<RequestId>().cloned();
        let request_id = rid
            .as_ref()
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), |r| r.id.clone());
        let client_request_id = rid.filter(|r| r.from_client).map(|r| r.id);
        let state = req.app_data::<Data<AppState>>();
        let configured = state.and_then(|s| s.base_url.clone());
        // A bearer token's client (the /fhir middleware checked it): X-Acting-Party
        // is ignored, the client acts for its registered organisation.
        let client = req.extensions().get::<AuthenticatedClient>().cloned();
        let principal = if let Some(c) = client {
            Principal::client(
                request_id,
                client_request_id,
                &c.client_id,
                c.role,
                c.organization,
                c.scopes,
            )
        } else {
            let party = match acting_party(req) {
                Ok(party) => party,
                Err(e) => return ready(Err(e)),
            };
            // Open mode: an unnamed request from loopback may act as any party.
            let open = state.is_some_and(|s| s.open_mode)
                && req.peer_addr().is_some_and(|a| a.ip().is_loopback());
            Principal::from_request(request_id, client_request_id, party, open)
        };
        let base_url = match configured {
            Some(url) => url,
            None => match base_from_request(req) {
                Ok(url) => url,
                Err(e) => return ready(Err(e)),
            },
        };
        ready(Ok(Self {
            principal,
            base_url,
        }))
    }
}

/// The FHIR base from the request itself, when `--base-url` is not set: scheme and
/// host as actix reads them (`Forwarded`, `X-Forwarded-Proto`/`-Host`, `Host`). They
/// go into `Location` and every URL the server writes, so anything but an http(s)
/// scheme and a `host[:port]` is refused (400 naming the header) rather than echoed.
pub(crate) fn base_from_request(req: &HttpRequest) -> Result<String, ApiError> {
    let headers = req.headers();
    let forwarded = |key: &str| {
        headers
            .get_all(header::FORWARDED)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split([';', ',']))
            .any(|pair| {
                pair.trim()
                    .split_once('=')
                    .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(key))
            })
    };
    let host_header = if forwarded("host") {
        "Forwarded"
    } else if headers.contains_key("x-forwarded-host") {
        "X-Forwarded-Host"
    } else {
        "Host"
    };
    let scheme_header = if forwarded("proto") {
        "Forwarded"
    } else {
        "X-Forwarded-Proto"
    };
    // actix skips a Host it cannot read as text; refuse it instead.
    let unreadable = headers
        .get(header::HOST)
        .is_some_and(|h| h.to_str().is_err());
    let info = req.connection_info();
    let scheme = info.scheme().to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(bad_header(
            scheme_header,
            "the forwarded scheme must be http or https",
        ));
    }
    if unreadable || !valid_authority(info.host()) {
        return Err(bad_header(
            host_header,
            "must be host[:port] (a DNS name, IPv4 address or [IPv6] address, and a port); \
             set --base-url in production so the server does not depend on it",
        ));
    }
    Ok(format!("{scheme}://{}/fhir", info.host()))
}

fn bad_header(name: &str, why: &str) -> ApiError {
    ApiError::one(
        StatusCode::BAD_REQUEST,
        Issue::error(IssueCode::Value, format!("{name}: {why}")).at(name),
    )
}

/// `host[:port]` (RFC 3986 authority without user info): DNS labels of letters,
/// digits, `-` and `_`, an IPv4 address, or an IPv6 address in brackets.
pub(crate) fn valid_authority(authority: &str) -> bool {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let Some((ip, after)) = rest.split_once(']') else {
                return false;
            };
            if ip.parse::<std::net::Ipv6Addr>().is_err() {
                return false;
            }
            match after {
                "" => return true,
                p => ("", Some(p.strip_prefix(':').unwrap_or("x"))),
            }
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok()
    });
    // An IPv6 literal was checked above (it leaves `host` empty).
    let ipv6 = host.is_empty() && authority.starts_with('[');
    let name_ok = (1..=253).contains(&host.len())
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    let host_ok = ipv6 || name_ok;
    port_ok && host_ok
}

/// The request header naming the acting party (until client authentication exists).
pub const ACTING_PARTY: &str = "x-acting-party";

/// `X-Acting-Party: Organization/<id>` (a welfare organisation), `Practitioner/<id>`
/// or another `Type/id` (a referrer), or `coordinator`.
fn acting_party(req: &HttpRequest) -> Result<Option<Party>, ApiError> {
    let Some(raw) = req.headers().get(ACTING_PARTY) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::one(
            StatusCode::BAD_REQUEST,
            Issue::error(
                IssueCode::Invalid,
                "X-Acting-Party must be a reference such as Organization/<id> or Practitioner/<id>, or `coordinator`",
            )
            .at("X-Acting-Party"),
        )
    };
    let value = raw.to_str().map_err(|_| bad())?.trim();
    if value == "coordinator" {
        return Ok(Some(Party::Coordinator));
    }
    let valid = value.split_once('/').is_some_and(|(ty, id)| {
        crate::fhir::registry::resource(ty).is_some()
            && !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    });
    if valid {
        Ok(Some(Party::Reference(value.to_owned())))
    } else {
        Err(bad())
    }
}

pub use crate::app::reply::ReturnPref;

impl FromRequest for ReturnPref {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let mut pref = ReturnPref::default();
        for value in req.headers().get_all("prefer") {
            let Ok(value) = value.to_str() else { continue };
            for token in value.split([',', ';']).map(str::trim) {
                match token {
                    "return=minimal" => pref = ReturnPref::Minimal,
                    "return=representation" => pref = ReturnPref::Representation,
                    "return=OperationOutcome" => pref = ReturnPref::OperationOutcome,
                    _ => {}
                }
            }
        }
        ready(Ok(pref))
    }
}

pub use crate::app::resources::parse_etag;

/// `Prefer: handling=lenient` (search.html#errors): ignore unknown or unsupported
/// search parameters instead of refusing the search.
pub fn lenient(req: &HttpRequest) -> bool {
    req.headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|token| token.trim() == "handling=lenient")
}

/// `If-Match: W/"3"`: the version the client last saw.
pub struct IfMatch(pub Option<i64>);

impl FromRequest for IfMatch {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(raw) = req.headers().get(header::IF_MATCH) else {
            return ready(Ok(IfMatch(None)));
        };
        let parsed = raw.to_str().ok().and_then(parse_etag);
        ready(match parsed {
            Some(v) => Ok(IfMatch(Some(v))),
            None => Err(ApiError::one(
                StatusCode::BAD_REQUEST,
                Issue::error(
                    IssueCode::Invalid,
                    "If-Match must be a version ETag such as W/\"3\"",
                )
                .at("If-Match"),
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::valid_authority;

    #[test]
    fn authorities() {
        for ok in [
            "localhost",
            "127.0.0.1:8080",
            "hub.example.nl",
            "wor_hub:80",
            "[::1]",
            "[2001:db8::1]:443",
        ] {
            assert!(valid_authority(ok), "{ok}");
        }
        for bad in [
            "",
            "a\"b<script>",
            "hub.example.nl:",
            "hub:99999",
            "hub:80:80",
            "user@hub",
            "hub/x",
            "[::1",
            "[zz]",
            "[::1]x",
            "a..b",
            "hub example",
        ] {
            assert!(!valid_authority(bad), "{bad}");
        }
    }
}
