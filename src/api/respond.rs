//! Sending what the application answered: a [`Reply`] becomes an HTTP response.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

pub use crate::app::reply::{etag, Reply};

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

/// A FHIR JSON body with this status.
pub fn json(status: StatusCode, body: String) -> HttpResponse {
    Reply::new(status.as_u16()).fhir(body).into()
}
