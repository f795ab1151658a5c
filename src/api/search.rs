//! GET /fhir/{type}: the search-type interaction (Bundle type `searchset`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::api::extract::RequestCtx;
use crate::api::{paging, resource_def, respond};
use crate::error::ApiError;
use crate::fhir::bundle::{raw, Bundle, Entry};
use crate::fhir::criteria::parse_criteria;
use crate::startup::AppState;

pub async fn search(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    ctx: RequestCtx,
) -> Result<HttpResponse, ApiError> {
    let def = resource_def(&path)?;
    let pairs = paging::query_pairs(&req);
    let count = paging::count(&pairs)?;
    let criteria = parse_criteria(
        def,
        req.query_string(),
        &["_count", "_format", paging::CURSOR],
    )
    .map_err(|issue| ApiError::invalid(vec![issue]))?;
    let after = paging::value(&pairs, paging::CURSOR).map(str::to_owned);
    let (mut found, total) = state
        .store
        .search(ctx.audit(), def.name.to_owned(), criteria, after, count)
        .await?;
    let page = usize::try_from(count).unwrap_or(usize::MAX);
    let more = found.len() > page;
    found.truncate(page);
    let next = more.then(|| found.last().map(|v| v.id.clone())).flatten();
    let links = paging::links(&req, &ctx, &pairs, next);
    let entries = found
        .into_iter()
        .map(|v| Entry {
            full_url: format!("{}/{}/{}", ctx.base_url, v.resource_type, v.id),
            resource: v.body.and_then(raw),
            search: Some(json!({ "mode": "match" })),
            request: None,
            response: None,
        })
        .collect();
    Ok(respond::json(
        StatusCode::OK,
        Bundle::new("searchset", links, entries)
            .with_total(total)
            .to_json(),
    ))
}
