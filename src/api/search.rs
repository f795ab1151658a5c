//! GET /fhir/{type} and POST /fhir/{type}/_search: the search-type interaction
//! (Bundle type `searchset`). The first page runs the search and, when there are more
//! pages, the store keeps the ordered matches as a snapshot; `next`/`previous` links
//! name the snapshot (`_getpages`) and a position (`_offset`), so paging neither skips
//! nor repeats entries while resources are written.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::api::edge::RawBody;
use crate::api::extract::{lenient, RequestCtx};
use crate::api::{paging, resource_def, respond};
use crate::app::read;
use crate::app::searchset::{self, Search, GETPAGES, OFFSET};
use crate::error::ApiError;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::registry::ResourceDef;
use crate::fhir::search::ParseOptions;
use crate::startup::AppState;
use crate::store::query::SNAPSHOT_CAP;

pub async fn search(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    ctx: RequestCtx,
) -> Result<HttpResponse, ApiError> {
    let def = resource_def(&path)?;
    run(&state, def, &req, &ctx, paging::query_pairs(&req)).await
}

/// POST /fhir/{type}/_search: parameters in a form body, merged with the URL's.
pub async fn search_post(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    ctx: RequestCtx,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let def = resource_def(&path)?;
    let pairs = paging::form_pairs(&req, &body.0)?;
    run(&state, def, &req, &ctx, pairs).await
}

async fn run(
    state: &AppState,
    def: &'static ResourceDef,
    req: &HttpRequest,
    ctx: &RequestCtx,
    pairs: Vec<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    if pairs.iter().any(|(k, _)| k == GETPAGES || k == OFFSET) {
        let count = paging::count(&pairs)?;
        return later_page(state, def, ctx, &pairs, count).await;
    }
    let opts = ParseOptions {
        base_url: Some(&ctx.base_url),
        lenient: lenient(req),
        criteria_only: false,
    };
    let search = Search::parse(def, &pairs, opts)?;
    let bundle = if search.total_only() {
        let criteria = search.request.criteria.clone();
        let total = read::count(&state.app, &ctx.principal, def, criteria).await?;
        search.total_bundle(&ctx.base_url, def, total)
    } else {
        let page = read::search(&state.app, &ctx.principal, search.spec(def)).await?;
        search.bundle(&ctx.base_url, def, page)
    };
    Ok(respond::json(StatusCode::OK, bundle))
}

/// A page of a stored snapshot: `_getpages=<id>&_offset=<n>` (with `_count`), nothing else.
async fn later_page(
    state: &AppState,
    def: &'static ResourceDef,
    ctx: &RequestCtx,
    pairs: &[(String, String)],
    count: usize,
) -> Result<HttpResponse, ApiError> {
    let misuse = |what: &str| {
        ApiError::invalid(vec![Issue::error(
            IssueCode::Invalid,
            format!(
                "{what}: {GETPAGES} and {OFFSET} come from a Bundle's paging links and are \
                 accepted only together, with _count and nothing else"
            ),
        )
        .at(GETPAGES)])
    };
    if let Some((k, _)) = pairs
        .iter()
        .find(|(k, _)| ![GETPAGES, OFFSET, "_count", "_format", "_pretty"].contains(&k.as_str()))
    {
        return Err(misuse(&format!(
            "Unexpected parameter '{}'",
            k.chars().take(64).collect::<String>()
        )));
    }
    let search_id = paging::value(pairs, GETPAGES)
        .filter(|v| uuid::Uuid::parse_str(v).is_ok())
        .ok_or_else(|| misuse("Missing or malformed _getpages"))?
        .to_owned();
    let offset = match paging::value(pairs, OFFSET).map(str::parse::<usize>) {
        None => return Err(misuse("Missing _offset")),
        Some(Ok(n)) if n <= SNAPSHOT_CAP => n,
        Some(_) => {
            return Err(ApiError::invalid(vec![Issue::error(
                IssueCode::Value,
                format!(
                    "_offset must be a whole number from 0 to {SNAPSHOT_CAP} (the most matches a search keeps)"
                ),
            )
            .at(OFFSET)]))
        }
    };
    let expired = || {
        ApiError::gone(
            "These search results have expired (or never existed); repeat the search".to_owned(),
        )
    };
    let (parsed, page) = read::later_page(
        &state.app,
        &ctx.principal,
        def,
        search_id,
        offset,
        count,
        ctx.base_url.clone(),
    )
    .await?
    .ok_or_else(expired)?;
    let sid = page.search_id.clone().unwrap_or_default();
    let self_url = searchset::page_url(&ctx.base_url, def.name, &sid, offset, count);
    let bundle = searchset::bundle(&ctx.base_url, def, &parsed, page, count, self_url);
    Ok(respond::json(StatusCode::OK, bundle))
}
