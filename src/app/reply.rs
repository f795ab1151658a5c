//! What a use case answers: a complete reply (status, headers, body) that the write
//! runner stores for `X-Request-Id` replay and the HTTP edge sends as it is. Building
//! one needs no HTTP library: statuses are numbers, headers are names and values.

use serde::{Deserialize, Serialize};

use crate::fhir::elements::{self, Subset};
use crate::fhir::instant::format_http_date;
use crate::fhir::outcome::{operation_outcome, Issue};
use crate::fhir::FHIR_JSON;
use crate::store::StoredVersion;

/// The statuses of successful replies (failures are an [`super::error::AppError`]).
pub mod status {
    pub const OK: u16 = 200;
    pub const CREATED: u16 = 201;
    pub const NO_CONTENT: u16 = 204;

    /// The reason phrase: `Created`.
    pub fn reason(code: u16) -> &'static str {
        match code {
            OK => "OK",
            CREATED => "Created",
            NO_CONTENT => "No Content",
            _ => "",
        }
    }

    /// `201 Created`, as a Bundle entry's `response.status` says it.
    pub fn line(code: u16) -> String {
        format!("{code} {}", reason(code)).trim_end().to_owned()
    }
}

/// `Prefer: return=...` (http.html#return).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReturnPref {
    Minimal,
    #[default]
    Representation,
    OperationOutcome,
}

/// A complete response: status, headers and body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl Reply {
    pub fn new(status: u16) -> Self {
        Self {
            status,
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
        let mut reply = self.header("content-type", FHIR_JSON);
        reply.body = Some(body);
        reply
    }
}

impl Reply {
    /// The body cut down as `_summary` or `_elements` ask (read and vread).
    #[must_use]
    pub fn subsetted(mut self, resource_type: &str, subset: &Subset) -> Self {
        if let Some(body) = self.body.take() {
            self.body = Some(elements::apply(&body, resource_type, subset).unwrap_or(body));
        }
        self
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

/// An OperationOutcome with one information issue.
pub fn information(status: u16, message: String) -> Reply {
    Reply::new(status).fhir(operation_outcome(&[Issue::information(message)]).to_string())
}

/// A stored version as the response to read, create or update.
pub fn resource(
    status: u16,
    v: &StoredVersion,
    base_url: &str,
    pref: ReturnPref,
    with_location: bool,
) -> Reply {
    let mut reply = Reply::new(status)
        .header("etag", etag(v.version_id))
        .header("last-modified", format_http_date(v.last_updated));
    if with_location {
        reply = reply.header("location", version_url(base_url, v));
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
                status::reason(status)
            );
            let body = information(status, what).body.unwrap_or_default();
            reply.fhir(body)
        }
    }
}
