//! The searchset Bundle (search.html), one builder for `GET /fhir/{type}` and for search
//! entries of a batch or transaction: `_count`, the self and paging links, the match and
//! include entries (subsetted by `_summary`/`_elements`), warnings as an outcome entry.
//! Paging links name a stored snapshot (`_getpages`) and a position (`_offset`); the
//! search endpoint reads them.

use serde_json::json;

use crate::app::error::AppError;
use crate::app::read::HANDLED;
use crate::fhir::bundle::{raw, Bundle, Entry, Link};
use crate::fhir::elements;
use crate::fhir::outcome::{operation_outcome, Issue, IssueCode};
use crate::fhir::registry::ResourceDef;
use crate::fhir::search::{parse_search, ParseOptions, SearchRequest, TotalMode};
use crate::store::query::{SearchPage, SearchSpec, SNAPSHOT_CAP};
use crate::store::StoredVersion;

/// The snapshot a page link reads, and the position of its first entry.
pub const GETPAGES: &str = "_getpages";
pub const OFFSET: &str = "_offset";
/// Page size by default and at most (search and history).
pub const DEFAULT_COUNT: usize = 50;
pub const MAX_COUNT: usize = 1000;

/// `_count` (its value `raw`, if given): the page size, clamped to [`MAX_COUNT`]. 0 asks
/// for the total only (search.html#count), which only a first search page accepts (`zero`).
pub fn count(raw: Option<&str>, zero: bool) -> Result<usize, AppError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_COUNT);
    };
    // Parsed as i64, the database's integer: larger numbers are refused, not clamped.
    match raw.parse::<i64>().map(usize::try_from) {
        Ok(Ok(n)) if n > 0 || zero => Ok(n.min(MAX_COUNT)),
        _ if zero => Err(count_error("_count must be a whole number, 0 or more")),
        _ => Err(count_error("_count must be a positive integer")),
    }
}

/// The value of the first parameter `name`.
pub fn value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn count_error(message: &str) -> AppError {
    AppError::invalid(vec![Issue::error(IssueCode::Value, message).at("_count")])
}

/// A first search page: the parsed request and its page size.
pub struct Search {
    pub request: SearchRequest,
    pub count: usize,
    /// Whether the client named `_count` (the self link repeats it).
    count_given: bool,
}

impl Search {
    /// Parses the parameters of a first page (`_count` included).
    pub fn parse(
        def: &ResourceDef,
        pairs: &[(String, String)],
        opts: ParseOptions<'_>,
    ) -> Result<Self, AppError> {
        let count = count(value(pairs, "_count"), true)?;
        let request = parse_search(def, pairs, HANDLED, opts)
            .map_err(|issue| AppError::invalid(vec![issue]))?;
        Ok(Self {
            request,
            count,
            count_given: value(pairs, "_count").is_some(),
        })
    }

    /// `_summary=count` or `_count=0`: the total only, no entries.
    pub fn total_only(&self) -> bool {
        self.request.summary_count || self.count == 0
    }

    /// The self link: the parameters the search used.
    pub fn self_url(&self, base: &str, def: &ResourceDef) -> String {
        let mut pairs = self.request.kept.clone();
        if self.count_given {
            pairs.push(("_count".into(), self.count.to_string()));
        }
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        if query.is_empty() {
            format!("{base}/{}", def.name)
        } else {
            format!("{base}/{}?{query}", def.name)
        }
    }

    /// What the store runs for the first page.
    pub fn spec(&self, def: &ResourceDef) -> SearchSpec {
        SearchSpec {
            resource_type: def.name.to_owned(),
            criteria: self.request.criteria.clone(),
            sort: self.request.sort.clone(),
            includes: self.request.includes.clone(),
            count: self.count,
            accurate_total: self.request.total == TotalMode::Accurate,
            query: form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&self.request.kept)
                .finish(),
        }
    }

    /// The Bundle of a total-only search.
    pub fn total_bundle(&self, base: &str, def: &ResourceDef, total: u64) -> String {
        let links = vec![Link {
            relation: "self",
            url: self.self_url(base, def),
        }];
        let entries = outcome_entry(&self.request.warnings).into_iter().collect();
        Bundle::new("searchset", links, entries)
            .with_total(total)
            .to_json()
    }

    /// The Bundle of the first page.
    pub fn bundle(&self, base: &str, def: &ResourceDef, page: SearchPage) -> String {
        let self_url = self.self_url(base, def);
        bundle(base, def, &self.request, page, self.count, self_url)
    }
}

/// The link to the page of snapshot `search_id` starting at `offset`.
pub fn page_url(base: &str, ty: &str, search_id: &str, offset: usize, count: usize) -> String {
    format!("{base}/{ty}?{GETPAGES}={search_id}&{OFFSET}={offset}&_count={count}")
}

/// The searchset Bundle of a page (first or later) of `request`.
pub fn bundle(
    base: &str,
    def: &ResourceDef,
    request: &SearchRequest,
    page: SearchPage,
    count: usize,
    self_url: String,
) -> String {
    let mut links = vec![Link {
        relation: "self",
        url: self_url,
    }];
    if let Some(sid) = &page.search_id {
        let link = |relation, offset| Link {
            relation,
            url: page_url(base, def.name, sid, offset, count),
        };
        links.push(link("first", 0));
        if page.offset > 0 {
            links.push(link("previous", page.offset.saturating_sub(count)));
        }
        if page.offset + count < page.size {
            links.push(link("next", page.offset + count));
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
    bundle.to_json()
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
