//! Search and history: each request is one read unit of work through the store's
//! door (narrowed to the principal's read scope, audited in the same transaction).

use crate::app::access::{require, Need};
use crate::app::error::AppError;
use crate::app::principal::Principal;
use crate::app::App;
use crate::fhir::registry::ResourceDef;
use crate::fhir::search::{parse_search, ParseOptions, SearchRequest};
use crate::store::query::{SearchPage, SearchSpec};
use crate::store::{Criterion, HistoryQuery, HistoryRow};

/// A first page (a snapshot of the ordered matches is stored when more pages follow).
pub async fn search(
    app: &App,
    principal: &Principal,
    spec: SearchSpec,
) -> Result<SearchPage, AppError> {
    require(principal, &spec.resource_type, Need::Search)?;
    Ok(app
        .store
        .read(principal.access(), move |tx| tx.search(&spec))
        .await?)
}

/// `_summary=count`.
pub async fn count(
    app: &App,
    principal: &Principal,
    def: &'static ResourceDef,
    criteria: Vec<Criterion>,
) -> Result<u64, AppError> {
    require(principal, def.name, Need::Search)?;
    Ok(app
        .store
        .read(principal.access(), move |tx| {
            tx.search_count(def.name, &criteria)
        })
        .await?)
}

/// Parameters the search handler reads itself; the parser skips them.
pub const HANDLED: &[&str] = &["_count", "_format", "_pretty"];

/// A later page of the snapshot `search_id`, with the search it came from (for its
/// result parameters). `None` when the snapshot expired, never existed, or belongs to
/// another type.
pub async fn later_page(
    app: &App,
    principal: &Principal,
    def: &'static ResourceDef,
    search_id: String,
    offset: usize,
    count: usize,
    base: String,
) -> Result<Option<(SearchRequest, SearchPage)>, AppError> {
    require(principal, def.name, Need::Search)?;
    let read = |search_id: String, base: String| {
        move |tx: &mut crate::store::Tx<'_>| {
            let Some(info) = tx
                .snapshot(&search_id)?
                .filter(|i| i.resource_type == def.name)
            else {
                return Ok(Ok(None));
            };
            let stored: Vec<(String, String)> = form_urlencoded::parse(info.query.as_bytes())
                .into_owned()
                .collect();
            let opts = ParseOptions {
                base_url: Some(&base),
                ..ParseOptions::default()
            };
            let parsed = match parse_search(def, &stored, HANDLED, opts) {
                Ok(p) => p,
                Err(issue) => return Ok(Err(AppError::invalid(vec![issue]))),
            };
            let page = tx.search_page(
                &search_id,
                offset,
                count,
                (&parsed.criteria, &parsed.sort),
                &parsed.includes,
            )?;
            Ok(Ok(page.map(|p| (parsed, p))))
        }
    };
    let found = app
        .store
        .read(principal.access(), read(search_id.clone(), base.clone()))
        .await??;
    if found.is_some() {
        return Ok(found);
    }
    // The first page queued its snapshot without waiting for it (`Store::read`).
    app.store.settle().await?;
    app.store
        .read(principal.access(), read(search_id, base))
        .await?
}

/// Instance, type or system history.
pub async fn history(
    app: &App,
    principal: &Principal,
    query: HistoryQuery,
) -> Result<Vec<HistoryRow>, AppError> {
    if let Some(ty) = &query.resource_type {
        let need = if query.id.is_some() {
            Need::Read
        } else {
            Need::Search
        };
        require(principal, ty, need)?;
    }
    Ok(app
        .store
        .read(principal.access(), move |tx| tx.history(&query))
        .await?)
}
