//! Parameters of an operation invoked by GET (the query) or POST (a Parameters body).

use actix_web::{web, FromRequest, HttpRequest};
use serde_json::Value;

use crate::api::extract::FhirBody;
use crate::api::paging;
use crate::api::validate::has_body;
use crate::app::error::AppError;
use crate::error::ApiError;
use crate::fhir::outcome::IssueCode;

/// The operation's parameters: the query, and a `Parameters` body's `valueString`,
/// `valueCode`, `valueDate`, `valueInteger`, `valueUnsignedInt` or `valuePositiveInt`
/// values.
pub async fn parameters(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs = paging::query_pairs(req);
    if !has_body(req) {
        return Ok(pairs);
    }
    let body = FhirBody::from_request(req, &mut payload.into_inner()).await?;
    let value = body.resource.value;
    if value.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(AppError::bad_request(
            IssueCode::Invalid,
            "The body of this operation is a Parameters resource",
        )
        .into());
    }
    for p in value
        .get("parameter")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        let text = [
            "valueString",
            "valueCode",
            "valueDate",
            "valueInteger",
            "valueUnsignedInt",
            "valuePositiveInt",
        ]
        .iter()
        .find_map(|k| p.get(*k))
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
        match text {
            Some(t) => pairs.push((name.to_owned(), t)),
            None => {
                return Err(AppError::bad_request(
                    IssueCode::Invalid,
                    format!("Parameter '{name}' has no value this operation reads"),
                )
                .into())
            }
        }
    }
    Ok(pairs)
}
