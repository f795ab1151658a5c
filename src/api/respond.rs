//! Response building: ETag, Last-Modified, Location, Prefer. Writes produce a [`Reply`],
//! which can be stored and replayed for `X-Request-Id` idempotency.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};

use crate::api::extract::ReturnPref;
use crate::fhir::instant::format_http_date;
use crate::fhir::outcome::{operation_outcome, Issue};
use crate::fhir::FHIR_JSON;
use crate::store::StoredVersion;

/// A complete response: status, headers and body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl Reply {
    pub fn new(status: StatusCode) -> Self {
        Self {
            status: status.as_u16(),
            headers: Vec::new(),
            body: None,
        }
    }

    #[must_use]
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// A FHIR JSON body.
    #[must_use]
    pub fn fhir(self, body: String) -> Self {
        let mut reply = self.header(header::CONTENT_TYPE.as_str(), FHIR_JSON);
        reply.body = Some(body);
        reply
    }
}

impl From<Reply> for HttpResponse {
    fn from(reply: Reply) -> Self {
        let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
        let mut builder = HttpResponse::build(status);
        for (name, value) in reply.headers {
            builder.insert_header((name, value));
        }
        match reply.body {
            Some(body) => builder.body(body),
            None => builder.finish(),
        }
    }
}

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
    Reply::new(status).fhir(body).into()
}

/// An OperationOutcome with one information issue.
pub fn information(status: StatusCode, message: String) -> Reply {
    Reply::new(status).fhir(operation_outcome(&[Issue::information(message)]).to_string())
}

/// A stored version as the response to read, create or update.
pub fn resource(
    status: StatusCode,
    v: &StoredVersion,
    base_url: &str,
    pref: ReturnPref,
    with_location: bool,
) -> Reply {
    let mut reply = Reply::new(status)
        .header(header::ETAG.as_str(), etag(v.version_id))
        .header(
            header::LAST_MODIFIED.as_str(),
            format_http_date(v.last_updated),
        );
    if with_location {
        reply = reply.header(header::LOCATION.as_str(), version_url(base_url, v));
    }
    match pref {
        ReturnPref::Minimal => reply,
        ReturnPref::Representation => reply.fhir(v.body.clone().unwrap_or_default()),
        ReturnPref::OperationOutcome => {
            let what = format!(
                "{}/{} version {} ({})",
                v.resource_type,
                v.id,
                v.version_id,
                status.canonical_reason().unwrap_or("OK")
            );
            let body = information(status, what).body.unwrap_or_default();
            reply.fhir(body)
        }
    }
}
