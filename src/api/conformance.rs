//! The hub's conformance resources (`app::conformance`), read-only: read
//! `GET /fhir/{type}/{id}` and search-type `GET /fhir/{type}` (or `POST .../_search`)
//! for StructureDefinition, CodeSystem, ValueSet, SearchParameter,
//! OperationDefinition, MessageDefinition and Questionnaire; any write answers 405.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::api::crud::read_subset;
use crate::api::edge::RawBody;
use crate::api::extract::{lenient, RequestCtx};
use crate::api::{logical_id, paging};
use crate::app::conformance;
use crate::error::ApiError;
use crate::fhir::outcome::{Issue, IssueCode};

/// The URL segment of the types served, as an actix path pattern (`{type:...}`).
pub const TYPE_PATTERN: &str =
    "{type:CodeSystem|Measure|MessageDefinition|OperationDefinition|Questionnaire|SearchParameter|StructureDefinition|ValueSet}";

/// GET (or HEAD) /fhir/{type}/{id}, with `_summary` or `_elements`.
pub async fn read(
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (ty, id) = path.into_inner();
    // `CodeSystem/_history`, `CodeSystem/$validate`: interactions not served here.
    if id.starts_with(['_', '$']) {
        return not_served(req).await;
    }
    logical_id(&id)?;
    let subset = read_subset(&req)?;
    let reply = conformance::read(&ty, &id)?;
    Ok(match subset {
        Some(s) => reply.subsetted(&ty, &s),
        None => reply,
    }
    .into())
}

/// GET (or HEAD) /fhir/{type}?params
pub async fn search(
    path: web::Path<String>,
    req: HttpRequest,
    ctx: RequestCtx,
) -> Result<HttpResponse, ApiError> {
    let pairs = paging::query_pairs(&req);
    let reply = conformance::search(&path, &pairs, lenient(&req), &ctx.base_url)?;
    Ok(reply.into())
}

/// POST /fhir/{type}/_search: parameters in a form body, merged with the URL's.
pub async fn search_post(
    path: web::Path<String>,
    req: HttpRequest,
    ctx: RequestCtx,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let pairs = paging::form_pairs(&req, &body.0)?;
    let reply = conformance::search(&path, &pairs, lenient(&req), &ctx.base_url)?;
    Ok(reply.into())
}

/// Any write: these resources are the hub's own, served read-only.
pub async fn read_only(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let ty = req.match_info().get("type").unwrap_or_default();
    Err(ApiError::one(
        StatusCode::METHOD_NOT_ALLOWED,
        Issue::error(
            IssueCode::NotSupported,
            format!(
                "{ty} resources are the hub's own conformance resources, served read-only: \
                 {} is not allowed (read GET {ty}/[id], search GET {ty}?url=...)",
                req.method()
            ),
        ),
    ))
}

/// Other paths under these types (history, vread, operations): not served.
pub async fn not_served(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let ty = req.match_info().get("type").unwrap_or_default();
    Err(ApiError::not_found(format!(
        "{ty} resources are served read-only: read (GET {ty}/[id]) and search (GET {ty}?url=...) only"
    )))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pattern_names_every_type() {
        let inner = super::TYPE_PATTERN
            .strip_prefix("{type:")
            .and_then(|p| p.strip_suffix('}'))
            .unwrap();
        let types: Vec<&str> = inner.split('|').collect();
        assert_eq!(types, crate::app::conformance::TYPES);
    }
}
