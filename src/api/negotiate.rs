//! Content negotiation for every `/fhir` request (http.html#mime-type, #parameters):
//! `_format` and `Accept` must allow JSON (406 otherwise), a `fhirVersion` media-type
//! parameter must name R4 (versioning.html#mt-version: 406), and `_pretty=true` asks
//! for an indented body.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::HttpResponse;

use crate::error::ApiError;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::FHIR_JSON;

/// The JSON media types and `_format` short forms (http.html#mime-type).
pub const JSON_TYPES: &[&str] = &[
    "application/fhir+json",
    "application/json",
    "application/json+fhir",
    "json",
];

/// The `fhirVersion` media-type parameter value of this server's FHIR version: R4 is
/// `4.0` (major.minor; versioning.html#mt-version). `4.0.x` is taken as the same.
pub const FHIR_MIME_VERSION: &str = "4.0";

/// The response media type when the client named a `fhirVersion`.
const FHIR_JSON_VERSIONED: &str = "application/fhir+json; fhirVersion=4.0; charset=utf-8";

/// A media type's essence and its parameters (names lower-cased, values unquoted).
fn media_type(raw: &str) -> (String, Vec<(String, String)>) {
    let mut parts = raw.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_owned(),
            )
        })
        .collect();
    (essence, params)
}

/// The `fhirVersion` a media type names, if any.
pub fn fhir_version(params: &[(String, String)]) -> Option<&str> {
    params
        .iter()
        .find(|(k, _)| k == "fhirversion")
        .map(|(_, v)| v.as_str())
}

/// Whether a `fhirVersion` value names the version this server speaks.
pub fn is_served_version(version: &str) -> bool {
    version == FHIR_MIME_VERSION
        || version
            .strip_prefix(FHIR_MIME_VERSION)
            .is_some_and(|patch| patch.starts_with('.'))
}

/// The reason a `fhirVersion` is refused, naming what is served.
pub fn version_refusal(version: &str) -> String {
    format!(
        "fhirVersion={} is not served: this server speaks FHIR R4 only (fhirVersion={FHIR_MIME_VERSION})",
        version.chars().take(16).collect::<String>()
    )
}

/// What a request asks of the response.
struct Wanted {
    pretty: bool,
    /// The client named `fhirVersion=4.0`: say it back in the Content-Type.
    versioned: bool,
}

/// Checks `_format`, `Accept` and `_pretty`; the error says which one failed.
fn wanted(req: &ServiceRequest) -> Result<Wanted, ApiError> {
    let mut format = None;
    let mut pretty = None;
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        match &*k {
            "_format" if format.is_none() => format = Some(v.into_owned()),
            "_pretty" if pretty.is_none() => pretty = Some(v.into_owned()),
            _ => {}
        }
    }
    let pretty = match pretty.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::invalid(vec![Issue::error(
                IssueCode::Value,
                "_pretty takes true or false",
            )
            .at("_pretty")]))
        }
    };
    let not_acceptable = |message: String, at: &str| {
        ApiError::one(
            StatusCode::NOT_ACCEPTABLE,
            Issue::error(IssueCode::NotSupported, message).at(at),
        )
    };
    // `_format` overrides the Accept header (http.html#parameters).
    if let Some(format) = format {
        let (essence, params) = media_type(&format);
        if !JSON_TYPES.contains(&essence.as_str()) {
            return Err(not_acceptable(
                "Only JSON is supported: ask for _format=json or application/fhir+json".into(),
                "_format",
            ));
        }
        return match fhir_version(&params) {
            Some(v) if !is_served_version(v) => Err(not_acceptable(version_refusal(v), "_format")),
            named => Ok(Wanted {
                pretty,
                versioned: named.is_some(),
            }),
        };
    }
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(Wanted {
            pretty,
            versioned: false,
        });
    };
    let mut refused_version = None;
    for range in accept.split(',') {
        let (essence, params) = media_type(range);
        let json = essence.is_empty()
            || essence == "*/*"
            || essence == "application/*"
            || JSON_TYPES.contains(&essence.as_str());
        let excluded = params
            .iter()
            .any(|(k, v)| k == "q" && v.parse::<f32>().is_ok_and(|q| q <= 0.0));
        if !json || excluded {
            continue;
        }
        match fhir_version(&params) {
            Some(v) if !is_served_version(v) => refused_version = Some(v.to_owned()),
            named => {
                return Ok(Wanted {
                    pretty,
                    versioned: named.is_some(),
                })
            }
        }
    }
    Err(not_acceptable(
        match refused_version {
            Some(v) => version_refusal(&v),
            None => "Only JSON is supported: ask for application/fhir+json".into(),
        },
        "Accept",
    ))
}

/// The middleware: refuses what cannot be served (406), then shapes the response.
pub async fn negotiate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let (res, wanted) = match wanted(&req) {
        Ok(wanted) => (next.call(req).await?.map_into_boxed_body(), wanted),
        Err(err) => {
            let (req, _) = req.into_parts();
            let response = actix_web::ResponseError::error_response(&err);
            let res = ServiceResponse::new(req, response);
            let wanted = Wanted {
                pretty: false,
                versioned: false,
            };
            (res, wanted)
        }
    };
    shape(res, &wanted).await
}

/// `fhirVersion` in the Content-Type and `_pretty` indentation of FHIR JSON bodies.
async fn shape(
    mut res: ServiceResponse<BoxBody>,
    wanted: &Wanted,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let is_fhir_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == FHIR_JSON.as_bytes());
    if !is_fhir_json {
        return Ok(res);
    }
    if wanted.versioned {
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(FHIR_JSON_VERSIONED),
        );
    }
    if !wanted.pretty {
        return Ok(res);
    }
    let (req, response) = res.into_parts();
    let (head, body) = response.into_parts();
    let bytes = actix_web::body::to_bytes(body)
        .await
        .map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))?;
    let response: HttpResponse = match std::str::from_utf8(&bytes) {
        // Re-indents the text as it is: numbers such as 1.50 keep their digits.
        Ok(text) => head.set_body(BoxBody::new(jsonformat::format(
            text,
            jsonformat::Indentation::TwoSpace,
        ))),
        Err(_) => head.set_body(BoxBody::new(bytes)),
    };
    Ok(ServiceResponse::new(req, response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for ok in ["4.0", "4.0.1", "4.0.0"] {
            assert!(is_served_version(ok), "{ok}");
        }
        for bad in ["3.0", "5.0", "1.0", "4.01", "4", "4.3", ""] {
            assert!(!is_served_version(bad), "{bad}");
        }
        let (essence, params) =
            media_type("Application/FHIR+json; fhirVersion=\"3.0\"; charset=utf-8");
        assert_eq!(essence, "application/fhir+json");
        assert_eq!(fhir_version(&params), Some("3.0"));
    }
}
