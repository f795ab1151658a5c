//! Searches as GET entries of a batch or transaction (`Patient?identifier=...`,
//! http.html#transaction): answered with a searchset Bundle as the entry's resource,
//! through the same store search and Bundle builder as `GET /fhir/{type}` (the
//! principal's read scope, audited, paging snapshots whose links the search endpoint reads).

use std::collections::HashMap;

use crate::app::error::AppError;
use crate::app::searchset::Search;
use crate::fhir::registry::ResourceDef;
use crate::fhir::search::ParseOptions;
use crate::store::{Failure, Tx};

fn pairs_of(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// Checks a search entry before the unit of work starts (parameters, `_count`).
pub(super) fn check(def: &ResourceDef, query: &str) -> Result<(), AppError> {
    Search::parse(def, &pairs_of(query), ParseOptions::default()).map(|_| ())
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
    let opts = ParseOptions {
        base_url: Some(base),
        ..ParseOptions::default()
    };
    let search = Search::parse(def, &pairs, opts).map_err(Failure::Abort)?;
    if search.total_only() {
        let total = tx.search_count(def.name, &search.request.criteria)?;
        return Ok(search.total_bundle(base, def, total));
    }
    let page = tx.search(&search.spec(def))?;
    Ok(search.bundle(base, def, page))
}
