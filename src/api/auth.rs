//! `POST /auth/token` (SMART Backend Services token endpoint),
//! `GET /.well-known/smart-configuration`, and the bearer-token check on /fhir.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{Bytes, Data};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

use crate::app::auth::token::{self, TokenFailure, TokenRequest};
use crate::app::auth::{authenticate, AuthenticatedClient};
use crate::auth::{assertion, OAuthError, OAuthErrorCode};
use crate::error::ApiError;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::startup::AppState;

/// The public URL of the token endpoint, beside the FHIR base.
fn token_url(req: &HttpRequest, state: &AppState) -> Result<String, ApiError> {
    let base = match &state.base_url {
        Some(url) => url.clone(),
        None => crate::api::extract::base_from_request(req)?,
    };
    Ok(crate::auth::token_url(&base))
}

fn no_store(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    builder
}

fn oauth_error(err: &OAuthError, basic_used: bool) -> HttpResponse {
    let unauthorized = basic_used && err.code == OAuthErrorCode::InvalidClient;
    let status = if unauthorized {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut builder = no_store(HttpResponse::build(status));
    if unauthorized {
        builder.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"wor-hub\""));
    }
    builder
        .content_type("application/json")
        .body(json!({"error": err.code.as_str(), "error_description": err.description}).to_string())
}

/// `client_id:secret` of an `Authorization: Basic` header as sent (RFC 6749 §2.3.1
/// form-urlencodes both; the use case also tries them decoded); `Err` when the header
/// is Basic but unreadable.
fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default();
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    use base64::Engine as _;
    let bad = || OAuthError::invalid_client("the Basic credentials are not base64 of id:secret");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    Ok(Some((id.to_owned(), secret.to_owned())))
}

/// The form parameters, each at most once (RFC 6749 §3.2).
fn token_request(req: &HttpRequest, body: &Bytes) -> Result<TokenRequest, OAuthError> {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';').next().is_some_and(|e| {
                e.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form {
        return Err(OAuthError::invalid_request(
            "send the token request as application/x-www-form-urlencoded",
        ));
    }
    let mut out = TokenRequest {
        basic: basic_credentials(req)?,
        ..TokenRequest::default()
    };
    for (key, value) in form_urlencoded::parse(body) {
        let slot = match key.as_ref() {
            "grant_type" => &mut out.grant_type,
            "scope" => &mut out.scope,
            "client_id" => &mut out.client_id,
            "client_assertion_type" => &mut out.client_assertion_type,
            "client_assertion" => &mut out.client_assertion,
            _ => continue,
        };
        if slot.is_some() {
            return Err(OAuthError::invalid_request(format!(
                "{key} is given more than once"
            )));
        }
        *slot = Some(value.into_owned());
    }
    Ok(out)
}

/// `POST /auth/token`.
pub async fn token(
    req: HttpRequest,
    body: Bytes,
    state: Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let basic_used = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() > 6 && v[..6].eq_ignore_ascii_case("basic "));
    let request = match token_request(&req, &body) {
        Ok(r) => r,
        Err(e) => return Ok(oauth_error(&e, basic_used)),
    };
    let url = token_url(&req, &state)?;
    match token::issue(&state.app, request, &url, state.access_token_lifetime).await {
        Ok(issued) => Ok(no_store(HttpResponse::Ok())
            .content_type("application/json")
            .body(
                json!({
                    "access_token": issued.access_token,
                    "token_type": "bearer",
                    "expires_in": issued.expires_in,
                    "scope": issued.scope,
                })
                .to_string(),
            )),
        Err(TokenFailure::OAuth(e)) => {
            tracing::info!(error = %e.code.as_str(), "token request refused");
            Ok(oauth_error(&e, basic_used))
        }
        Err(TokenFailure::Store(e)) => Err(e.into()),
        Err(TokenFailure::Audit(e)) => Err(e.into()),
    }
}

/// `GET /.well-known/smart-configuration` (and under /fhir): how to get a token.
pub async fn smart_configuration(
    req: HttpRequest,
    state: Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let url = token_url(&req, &state)?;
    let mut scopes = vec!["system/*.cruds".to_owned(), "system/*.rs".to_owned()];
    scopes.extend(
        crate::fhir::registry::RESOURCES
            .iter()
            .map(|def| format!("system/{}.cruds", def.name)),
    );
    Ok(HttpResponse::Ok().content_type("application/json").body(
        json!({
            "token_endpoint": url,
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
            "token_endpoint_auth_signing_alg_values_supported": assertion::ALGORITHMS,
            "grant_types_supported": [crate::auth::CLIENT_CREDENTIALS],
            "scopes_supported": scopes,
            "capabilities": [
                "client-confidential-asymmetric",
                "client-confidential-symmetric",
                "permission-v2",
                "permission-v1"
            ],
        })
        .to_string(),
    ))
}

/// 401 for a /fhir request without a valid token (RFC 6750 §3): an OperationOutcome
/// and `WWW-Authenticate: Bearer`, with `error="invalid_token"` when a token was sent.
fn unauthorized(presented: bool) -> HttpResponse {
    let text = if presented {
        "The access token is invalid, expired or revoked: get a new one from /auth/token"
    } else {
        "Authentication required: send Authorization: Bearer <access token from /auth/token>"
    };
    let mut res = ApiError::one(
        StatusCode::UNAUTHORIZED,
        Issue::error(IssueCode::Login, text).at("Authorization"),
    )
    .error_response();
    let challenge = if presented {
        "Bearer realm=\"wor-hub\", error=\"invalid_token\""
    } else {
        "Bearer realm=\"wor-hub\""
    };
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static(challenge),
    );
    res
}

/// Paths under /fhir anyone may read: how to authenticate.
fn public(path: &str) -> bool {
    matches!(
        path,
        "/fhir/metadata" | "/fhir/.well-known/smart-configuration"
    )
}

/// Middleware on /fhir: a bearer token's client goes into the request extensions
/// ([`AuthenticatedClient`], which the request's principal is built from); without a
/// valid token the request is refused once any client is registered.
pub async fn bearer(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if public(req.path()) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let Some(state) = req.app_data::<Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let refuse = |req: ServiceRequest, presented: bool| {
        let (req, _) = req.into_parts();
        Ok(ServiceResponse::new(req, unauthorized(presented)).map_into_right_body())
    };
    match token {
        Some(token) => match authenticate(&state.app.store, &token).await {
            Ok(Some(client)) => {
                req.extensions_mut().insert::<AuthenticatedClient>(client);
            }
            Ok(None) => return refuse(req, true),
            Err(e) => return Err(ApiError::from(e).into()),
        },
        None if state.gate.requires_token() => return refuse(req, false),
        None => {}
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}
