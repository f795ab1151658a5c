//! Searches as GET entries of a batch or transaction (`Patient?identifier=...`,
//! http.html#transaction): answered with a searchset Bundle as the entry's resource,
//! through the same store search as `GET /fhir/{type}` (the principal's read scope,
//! audited, paging snapshots whose links the search endpoint reads).

use std::collections::HashMap;

use serde_json::json;

use crate::app::error::AppError;
use crate::app::read::HANDLED;
use crate::fhir::bundle::{raw, Bundle, Entry, Link};
use crate::fhir::elements;
use crate::fhir::outcome::{operation_outcome, Issue, IssueCode};
use crate::fhir::registry::ResourceDef;
use crate::fhir::search::{parse_search, ParseOptions, SearchRequest, TotalMode};
use crate::store::query::{SearchSpec, SNAPSHOT_CAP};
use crate::store::{Failure, StoredVersion, Tx};

// As the search endpoint (`api::paging`): page size by default and at most.
const DEFAULT_COUNT: usize = 50;
const MAX_COUNT: usize = 1000;

/// A parsed search entry: the request and its page size.
struct Parsed {
    request: SearchRequest,
    count: usize,
}

fn parse(
    def: &ResourceDef,
    pairs: &[(String, String)],
    base: Option<&str>,
) -> Result<Parsed, AppError> {
    let count = match pairs.iter().find(|(k, _)| k == "_count") {
        None => DEFAULT_COUNT,
        Some((_, raw)) => match raw.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(MAX_COUNT),
            _ => {
                return Err(AppError::invalid(vec![Issue::error(
                    IssueCode::Value,
                    "_count must be a positive integer",
                )
                .at("_count")]))
            }
        },
    };
    let opts = ParseOptions {
        base_url: base,
        ..ParseOptions::default()
    };
    let request =
        parse_search(def, pairs, HANDLED, opts).map_err(|issue| AppError::invalid(vec![issue]))?;
    Ok(Parsed { request, count })
}

fn pairs_of(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// Checks a search entry before the unit of work starts (parameters, `_count`).
pub(super) fn check(def: &ResourceDef, query: &str) -> Result<(), AppError> {
    parse(def, &pairs_of(query), None).map(|_| ())
}

/// Runs the search `query` on `def` and returns the searchset Bundle. Values naming a
/// fullUrl of the Bundle (`Task?focus=urn:uuid:...`) search for what that entry wrote.
pub(super) fn run(
    tx: &mut Tx<'_>,
    def: &'static ResourceDef,
    query: &str,
    aliases: &HashMap<String, String>,
    base: &str,
) -> Result<String, Failure<AppError>> {
    let pairs: Vec<(String, String)> = pairs_of(query)
        .into_iter()
        .map(|(k, v)| {
            let v = v
                .split(',')
                .map(|one| aliases.get(one).map_or(one, String::as_str))
                .collect::<Vec<_>>()
                .join(",");
            (k, v)
        })
        .collect();
    let Parsed { request, count } = parse(def, &pairs, Some(base)).map_err(Failure::Abort)?;
    let mut self_pairs = request.kept.clone();
    if pairs.iter().any(|(k, _)| k == "_count") {
        self_pairs.push(("_count".into(), count.to_string()));
    }
    let self_url = url(base, def.name, &self_pairs);
    if request.summary_count {
        let total = tx.search_count(def.name, &request.criteria)?;
        let links = vec![Link {
            relation: "self",
            url: self_url,
        }];
        let entries = outcome_entry(&request.warnings).into_iter().collect();
        return Ok(Bundle::new("searchset", links, entries)
            .with_total(total)
            .to_json());
    }
    let spec = SearchSpec {
        resource_type: def.name.to_owned(),
        criteria: request.criteria.clone(),
        sort: request.sort.clone(),
        includes: request.includes.clone(),
        count,
        accurate_total: request.total == TotalMode::Accurate,
        query: form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&request.kept)
            .finish(),
    };
    let page = tx.search(&spec)?;
    let mut links = vec![Link {
        relation: "self",
        url: self_url,
    }];
    if let Some(sid) = &page.search_id {
        // The search endpoint reads later pages of the snapshot.
        let page_url = |offset: usize| {
            format!(
                "{base}/{}?_getpages={sid}&_offset={offset}&_count={count}",
                def.name
            )
        };
        links.push(Link {
            relation: "first",
            url: page_url(0),
        });
        if count < page.size {
            links.push(Link {
                relation: "next",
                url: page_url(count),
            });
        }
    }
    let mut issues = request.warnings.clone();
    if page.truncated {
        issues.push(Issue::warning(
            IssueCode::TooCostly,
            format!(
                "More than {SNAPSHOT_CAP} resources match; paging stops after the first \
                 {SNAPSHOT_CAP}: refine the search"
            ),
        ));
    }
    let subset = request.subset();
    let entry = |v: StoredVersion, mode: &str| Entry {
        full_url: format!("{base}/{}/{}", v.resource_type, v.id),
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
    if request.total != TotalMode::None {
        if let Some(total) = page.total {
            bundle = bundle.with_total(total);
        }
    }
    Ok(bundle.to_json())
}

fn url(base: &str, ty: &str, pairs: &[(String, String)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    if query.is_empty() {
        format!("{base}/{ty}")
    } else {
        format!("{base}/{ty}?{query}")
    }
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
