//! GET /fhir/{type} and POST /fhir/{type}/_search: the search-type interaction
//! (Bundle type `searchset`). The first page runs the search and, when there are more
//! pages, the store keeps the ordered matches as a snapshot; `next`/`previous` links
//! name the snapshot (`_getpages`) and a position (`_offset`), so paging neither skips
//! nor repeats entries while resources are written.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::api::edge::RawBody;
use crate::api::extract::{lenient, RequestCtx};
use crate::api::{paging, resource_def, respond};
use crate::error::ApiError;
use crate::fhir::bundle::{raw, Bundle, Entry, Link};
use crate::fhir::elements;
use crate::fhir::outcome::{operation_outcome, Issue, IssueCode};
use crate::fhir::registry::ResourceDef;
use crate::fhir::search::{parse_search, ParseOptions, SearchRequest, TotalMode};
use crate::startup::AppState;
use crate::store::query::{SearchPage, SearchSpec, SNAPSHOT_CAP};
use crate::store::StoredVersion;

/// The snapshot a page link reads, and the position of its first entry.
const GETPAGES: &str = "_getpages";
const OFFSET: &str = "_offset";
use crate::app::read::{self, HANDLED};

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
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(ApiError::one(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Issue::error(
                IssueCode::NotSupported,
                "POST _search takes application/x-www-form-urlencoded parameters",
            )
            .at("Content-Type"),
        ));
    }
    let mut pairs = paging::query_pairs(&req);
    pairs.extend(form_urlencoded::parse(&body.0).into_owned());
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
        let count = usize::try_from(paging::count(&pairs)?).unwrap_or(1);
        return later_page(state, def, ctx, &pairs, count).await;
    }
    // `_count=0` asks for the total only (search.html#count).
    let count = usize::try_from(paging::count_from_zero(&pairs)?).unwrap_or(1);
    let opts = ParseOptions {
        base_url: Some(&ctx.base_url),
        lenient: lenient(req),
        criteria_only: false,
    };
    let parsed =
        parse_search(def, &pairs, HANDLED, opts).map_err(|issue| ApiError::invalid(vec![issue]))?;
    let mut self_pairs = parsed.kept.clone();
    if paging::value(&pairs, "_count").is_some() {
        self_pairs.push(("_count".into(), count.to_string()));
    }
    let self_url = url(ctx, def.name, &self_pairs);
    if parsed.summary_count || count == 0 {
        let total = read::count(&state.app, &ctx.principal, def, parsed.criteria.clone()).await?;
        let entries = outcome_entry(&parsed.warnings).into_iter().collect();
        let links = vec![Link {
            relation: "self",
            url: self_url,
        }];
        return Ok(respond::json(
            StatusCode::OK,
            Bundle::new("searchset", links, entries)
                .with_total(total)
                .to_json(),
        ));
    }
    let spec = SearchSpec {
        resource_type: def.name.to_owned(),
        criteria: parsed.criteria.clone(),
        sort: parsed.sort.clone(),
        includes: parsed.includes.clone(),
        count,
        accurate_total: parsed.total == TotalMode::Accurate,
        query: form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&parsed.kept)
            .finish(),
    };
    let page = read::search(&state.app, &ctx.principal, spec).await?;
    Ok(render(ctx, def, &parsed, page, count, self_url))
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
    let self_url = page_url(ctx, def.name, &info_id(&page), offset, count);
    Ok(render(ctx, def, &parsed, page, count, self_url))
}

fn info_id(page: &SearchPage) -> String {
    page.search_id.clone().unwrap_or_default()
}

fn url(ctx: &RequestCtx, ty: &str, pairs: &[(String, String)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    if query.is_empty() {
        format!("{}/{ty}", ctx.base_url)
    } else {
        format!("{}/{ty}?{query}", ctx.base_url)
    }
}

fn page_url(ctx: &RequestCtx, ty: &str, search_id: &str, offset: usize, count: usize) -> String {
    format!(
        "{}/{ty}?{GETPAGES}={search_id}&{OFFSET}={offset}&_count={count}",
        ctx.base_url
    )
}

fn render(
    ctx: &RequestCtx,
    def: &ResourceDef,
    parsed: &SearchRequest,
    page: SearchPage,
    count: usize,
    self_url: String,
) -> HttpResponse {
    let mut links = vec![Link {
        relation: "self",
        url: self_url,
    }];
    if let Some(sid) = &page.search_id {
        links.push(Link {
            relation: "first",
            url: page_url(ctx, def.name, sid, 0, count),
        });
        if page.offset > 0 {
            links.push(Link {
                relation: "previous",
                url: page_url(ctx, def.name, sid, page.offset.saturating_sub(count), count),
            });
        }
        if page.offset + count < page.size {
            links.push(Link {
                relation: "next",
                url: page_url(ctx, def.name, sid, page.offset + count, count),
            });
        }
    }
    let mut issues = parsed.warnings.clone();
    if page.truncated {
        issues.push(Issue::warning(
            IssueCode::TooCostly,
            format!(
                "More than {SNAPSHOT_CAP} resources match; paging stops after the first \
                 {SNAPSHOT_CAP}: refine the search"
            ),
        ));
    }
    let subset = parsed.subset();
    let entry = |v: StoredVersion, mode: &str| Entry {
        full_url: format!("{}/{}/{}", ctx.base_url, v.resource_type, v.id),
        resource: v
            .body
            .map(|b| match &subset {
                Some(s) => elements::apply(&b, &v.resource_type, s).unwrap_or(b),
                None => b,
            })
            .and_then(raw),
        search: Some(json!({ "mode": mode })),
        request: None,
        response: None,
    };
    let mut entries: Vec<Entry> = page
        .matches
        .into_iter()
        .map(|v| entry(v, "match"))
        .collect();
    entries.extend(page.included.into_iter().map(|v| entry(v, "include")));
    entries.extend(outcome_entry(&issues));
    let mut bundle = Bundle::new("searchset", links, entries);
    if parsed.total != TotalMode::None {
        if let Some(total) = page.total {
            bundle = bundle.with_total(total);
        }
    }
    respond::json(StatusCode::OK, bundle.to_json())
}

/// Warnings (ignored parameters, truncated results) as an OperationOutcome entry.
fn outcome_entry(issues: &[Issue]) -> Option<Entry> {
    if issues.is_empty() {
        return None;
    }
    Some(Entry {
        full_url: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        resource: raw(operation_outcome(issues).to_string()),
        search: Some(json!({ "mode": "outcome" })),
        request: None,
        response: None,
    })
}
