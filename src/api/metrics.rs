//! GET /metrics (Prometheus text format, outside the FHIR base) and the middleware
//! that counts and times every request by its route pattern.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::metrics::{TEXT_FORMAT, UNMATCHED};
use crate::startup::AppState;

/// Every metric of this instance; no patient data (meant for the operator's network).
/// 404 when `--metrics false`.
pub async fn metrics(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !state.metrics {
        return super::not_found(req).await;
    }
    let text = crate::app::operations::metrics_text(&state.app).await?;
    Ok(HttpResponse::Ok().content_type(TEXT_FORMAT).body(text))
}

/// Middleware: counts and times each request, labelled by method, the matched route's
/// pattern (`/fhir/{type}/{id}`, never the path) and the status code.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = req
        .app_data::<web::Data<AppState>>()
        .filter(|s| s.metrics)
        .cloned()
    else {
        return next.call(req).await;
    };
    let started = Instant::now();
    let method = known_method(req.method());
    let result = next.call(req).await;
    let (route, status) = match &result {
        Ok(res) => (res.request().match_pattern(), res.status()),
        Err(e) => (None, e.as_response_error().status_code()),
    };
    let route = route.map(|r| without_regex(&r));
    state.app.metrics.observe_request(
        method,
        route.as_deref().unwrap_or(UNMATCHED),
        status.as_u16(),
        started.elapsed(),
    );
    result
}

/// The method as a label: the standard ones by name, any other as `other` (a client
/// chooses the method, and a label must come from a fixed vocabulary).
fn known_method(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A route pattern without its segments' regular expressions: `/fhir/{type:Bundle}/{id}`
/// is counted as `/fhir/{type}/{id}` (one interaction, a short label).
fn without_regex(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut depth = 0usize;
    let mut in_regex = false;
    for c in pattern.chars() {
        match c {
            '{' => {
                depth += 1;
                if !in_regex {
                    out.push(c);
                }
            }
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    in_regex = false;
                    out.push(c);
                }
            }
            ':' if depth == 1 => in_regex = true,
            _ if !in_regex => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::without_regex;

    #[test]
    fn route_labels_drop_the_segments_regular_expressions() {
        assert_eq!(without_regex("/fhir/{type}/{id}"), "/fhir/{type}/{id}");
        assert_eq!(
            without_regex("/fhir/{type:Bundle}/{id}"),
            "/fhir/{type}/{id}"
        );
        assert_eq!(
            without_regex("/fhir/{type:CodeSystem|ValueSet}/{id}/{rest:.*}"),
            "/fhir/{type}/{id}/{rest}"
        );
        assert_eq!(without_regex("/x/{n:[0-9]{2,3}}/y"), "/x/{n}/y");
        assert_eq!(
            without_regex("/Subscription/{id}/$status"),
            "/Subscription/{id}/$status"
        );
    }
}
