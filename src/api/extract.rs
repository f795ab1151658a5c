//! Request extraction: FHIR JSON bodies, request context, `Prefer` and `If-Match`.

use std::future::{ready, Future, Ready};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::web::{BytesMut, Data};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;

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

fn too_large(limit: usize) -> ApiError {
    ApiError::one(
        StatusCode::PAYLOAD_TOO_LARGE,
        Issue::error(
            IssueCode::TooLong,
            format!("The body exceeds the limit of {limit} bytes"),
        ),
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
        let limit = req
            .app_data::<Data<AppState>>()
            .map_or(crate::config::DEFAULT_MAX_BODY_BYTES, |s| s.max_body_bytes);
        let checked = check_content_type(req).and_then(|()| {
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            match declared {
                Some(len) if len > limit => Err(too_large(limit)),
                _ => Ok(()),
            }
        });
        let mut payload = payload.take();
        Box::pin(async move {
            checked?;
            let mut body = BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::bad_request(
                        IssueCode::Structure,
                        format!("The body could not be read: {e}"),
                    )
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                body.extend_from_slice(&chunk);
            }
            let raw = body.freeze();
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
        let limit = req
            .app_data::<Data<AppState>>()
            .map_or(crate::config::DEFAULT_MAX_BODY_BYTES, |s| s.max_body_bytes);
        let format = patch_format(req);
        let mut payload = payload.take();
        Box::pin(async move {
            let format = format?;
            let mut body = BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::bad_request(
                        IssueCode::Structure,
                        format!("The body could not be read: {e}"),
                    )
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(PatchBody {
                format,
                raw: body.freeze(),
            })
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
        let party = match acting_party(req) {
            Ok(party) => party,
            Err(e) => return ready(Err(e)),
        };
        // Open mode: an unnamed request from loopback may act as any party.
        let open = state.is_some_and(|s| s.open_mode)
            && req.peer_addr().is_some_and(|a| a.ip().is_loopback());
        let principal = Principal::from_request(request_id, client_request_id, party, open);
        let base_url = configured.unwrap_or_else(|| {
            let info = req.connection_info();
            format!("{}://{}/fhir", info.scheme(), info.host())
        });
        ready(Ok(Self {
            principal,
            base_url,
        }))
    }
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
