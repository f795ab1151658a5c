//! History interactions: instance, type and system level (Bundle type `history`), with
//! `_count`, `_since` and `_at`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::api::extract::RequestCtx;
use crate::api::{paging, resource_def, respond, type_and_id};
use crate::app::read;
use crate::error::ApiError;
use crate::fhir::bundle::{raw, Bundle, Entry};
use crate::fhir::dates::date_range;
use crate::fhir::instant::{format_instant, parse_instant};
use crate::fhir::outcome::{Issue, IssueCode};
use crate::startup::AppState;
use crate::store::{HistoryQuery, HistoryRow};

/// GET /fhir/_history
pub async fn system(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestCtx,
) -> Result<HttpResponse, ApiError> {
    history(&state, &req, &ctx, None, None).await
}

/// GET /fhir/{type}/_history
pub async fn type_level(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    ctx: RequestCtx,
) -> Result<HttpResponse, ApiError> {
    let def = resource_def(&path)?;
    history(&state, &req, &ctx, Some(def.name), None).await
}

/// GET /fhir/{type}/{id}/_history
pub async fn instance(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    ctx: RequestCtx,
) -> Result<HttpResponse, ApiError> {
    let (def, id) = type_and_id(path.into_inner())?;
    history(&state, &req, &ctx, Some(def.name), Some(id)).await
}

async fn history(
    state: &AppState,
    req: &HttpRequest,
    ctx: &RequestCtx,
    resource_type: Option<&str>,
    id: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let pairs = paging::query_pairs(req);
    paging::refuse_unknown(
        &pairs,
        &[
            "_count",
            "_since",
            "_at",
            "_format",
            "_pretty",
            paging::CURSOR,
        ],
    )?;
    let count = paging::count(&pairs)?;
    let since = match paging::value(&pairs, "_since") {
        None => None,
        Some(raw) => Some(parse_instant(raw).ok_or_else(|| {
            ApiError::invalid(vec![Issue::error(
                IssueCode::Value,
                "_since must be an instant with time zone, e.g. 2026-11-20T10:00:00Z",
            )
            .at("_since")])
        })?),
    };
    let at = at(&pairs)?;
    let before_seq = match paging::value(&pairs, paging::CURSOR) {
        None => None,
        Some(raw) => Some(
            raw.parse::<i64>()
                .map_err(|_| ApiError::bad_request(IssueCode::Value, "Invalid page cursor"))?,
        ),
    };
    let first_page = before_seq.is_none() && since.is_none() && at.is_none();
    let mut rows = read::history(
        &state.app,
        &ctx.principal,
        HistoryQuery {
            resource_type: resource_type.map(str::to_owned),
            id: id.clone(),
            since,
            at,
            before_seq,
            count: i64::try_from(count).unwrap_or(i64::MAX),
        },
    )
    .await?;
    if let (Some(ty), Some(id)) = (resource_type, &id) {
        if rows.is_empty() && first_page {
            return Err(ApiError::not_found(format!("{ty}/{id} does not exist")));
        }
    }
    let more = rows.len() > count;
    rows.truncate(count);
    let next = more
        .then(|| rows.last().map(|r| r.seq.to_string()))
        .flatten();
    let links = paging::links(req, ctx, &pairs, next);
    let entries = rows.into_iter().map(|row| entry(ctx, row)).collect();
    Ok(respond::json(
        StatusCode::OK,
        Bundle::new("history", links, entries).to_json(),
    ))
}

/// `_at=<date>` (history.html): the versions current at some moment of that period,
/// a date, month, year or dateTime; `ge`/`gt`/`le`/`lt` open it on one side.
fn at(pairs: &[(String, String)]) -> Result<Option<(i64, i64)>, ApiError> {
    let mut values = pairs.iter().filter(|(k, _)| k == "_at").map(|(_, v)| v);
    let Some(raw) = values.next() else {
        return Ok(None);
    };
    let invalid = |message: &str| {
        ApiError::invalid(vec![
            Issue::error(IssueCode::Value, message.to_owned()).at("_at")
        ])
    };
    if values.next().is_some() {
        return Err(invalid("Give _at once"));
    }
    let (prefix, value) = match raw.get(..2) {
        Some(p @ ("eq" | "ge" | "gt" | "le" | "lt")) => (p, &raw[2..]),
        _ => ("eq", raw.as_str()),
    };
    let (low, high) = date_range(value).ok_or_else(|| {
        invalid(
            "_at takes a date, month, year or dateTime with zone (e.g. 2026-11-20 or \
             2026-11-20T10:00:00Z), optionally prefixed by ge, gt, le or lt",
        )
    })?;
    Ok(Some(match prefix {
        "ge" => (low, i64::MAX),
        "gt" => (high.saturating_add(1), i64::MAX),
        "le" => (i64::MIN, high),
        "lt" => (i64::MIN, low.saturating_sub(1)),
        _ => (low, high),
    }))
}

fn entry(ctx: &RequestCtx, row: HistoryRow) -> Entry {
    let v = row.version;
    let status = match (row.method.as_str(), v.version_id) {
        ("DELETE", _) => "204 No Content",
        (_, 1) => "201 Created",
        _ => "200 OK",
    };
    let url = if row.method == "POST" {
        v.resource_type.clone()
    } else {
        format!("{}/{}", v.resource_type, v.id)
    };
    Entry {
        full_url: format!("{}/{}/{}", ctx.base_url, v.resource_type, v.id),
        resource: v.body.and_then(raw),
        search: None,
        request: Some(json!({ "method": row.method, "url": url })),
        response: Some(json!({
            "status": status,
            "etag": respond::etag(v.version_id),
            "lastModified": format_instant(v.last_updated),
        })),
    }
}
