//! Response building for stored resources: ETag, Last-Modified, Location, Prefer.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;

use crate::api::extract::ReturnPref;
use crate::fhir::instant::format_http_date;
use crate::fhir::outcome::{operation_outcome, Issue};
use crate::fhir::FHIR_JSON;
use crate::store::StoredVersion;

pub fn etag(version_id: i64) -> String {
    format!("W/\"{version_id}\"")
}

pub fn version_url(base_url: &str, v: &StoredVersion) -> String {
    format!(
        "{base_url}/{}/{}/_history/{}",
        v.resource_type, v.id, v.version_id
    )
}

pub fn json(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, FHIR_JSON))
        .body(body)
}

/// A stored version as the response to read, create or update.
pub fn resource(
    status: StatusCode,
    v: &StoredVersion,
    base_url: &str,
    pref: ReturnPref,
    with_location: bool,
) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    builder
        .insert_header((header::ETAG, etag(v.version_id)))
        .insert_header((header::LAST_MODIFIED, format_http_date(v.last_updated)));
    if with_location {
        builder.insert_header((header::LOCATION, version_url(base_url, v)));
    }
    match pref {
        ReturnPref::Minimal => builder.finish(),
        ReturnPref::Representation => builder
            .insert_header((header::CONTENT_TYPE, FHIR_JSON))
            .body(v.body.clone().unwrap_or_default()),
        ReturnPref::OperationOutcome => {
            let what = format!(
                "{}/{} version {} ({})",
                v.resource_type,
                v.id,
                v.version_id,
                status.canonical_reason().unwrap_or("OK")
            );
            builder
                .insert_header((header::CONTENT_TYPE, FHIR_JSON))
                .body(operation_outcome(&[Issue::information(what)]).to_string())
        }
    }
}
