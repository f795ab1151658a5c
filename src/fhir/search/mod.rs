//! Search requests: query parameters parsed against the registry into store criteria
//! (search parameters, modifiers, chains) and result parameters (`_sort`, `_include`,
//! `_total`, `_summary`, `_elements`).

mod result;
pub mod values;

use crate::fhir::elements::{self, Subset, Summary};
use crate::fhir::outcome::{Issue, IssueCode, Severity};
use crate::fhir::registry::{self, ParamType, ResourceDef, SearchParamDef};
use crate::store::query::{Criterion, Include, IndexTable, Match, RefTarget, Sort, SystemMatch};

/// `_total` (search.html#total).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TotalMode {
    None,
    #[default]
    Estimate,
    Accurate,
}

#[derive(Debug, Default)]
pub struct SearchRequest {
    pub criteria: Vec<Criterion>,
    pub sort: Vec<Sort>,
    pub includes: Vec<Include>,
    pub total: TotalMode,
    /// `_summary=count`: the total only.
    pub summary_count: bool,
    /// `_summary` as asked.
    pub summary: Option<Summary>,
    /// `_elements`: the top-level elements to return (plus the mandatory ones).
    pub elements: Option<Vec<String>>,
    /// The accepted parameters as sent, in order: the self link and later pages repeat them.
    pub kept: Vec<(String, String)>,
    /// With lenient handling: the parameters that were ignored, as warnings.
    pub warnings: Vec<Issue>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions<'a> {
    /// This server's base URL (`http://host/fhir`), to read absolute references to it.
    pub base_url: Option<&'a str>,
    /// `Prefer: handling=lenient`: ignore unknown or unsupported parameters.
    pub lenient: bool,
    /// Only search parameters (conditional operations): result parameters are refused.
    pub criteria_only: bool,
}

/// Parses `(name, value)` pairs for a search on `def`; pairs named in `ignore` are
/// handled by the caller. The error names the parameter in diagnostics and expression.
pub fn parse_search(
    def: &ResourceDef,
    pairs: &[(String, String)],
    ignore: &[&str],
    opts: ParseOptions<'_>,
) -> Result<SearchRequest, Issue> {
    let mut req = SearchRequest::default();
    // PostgreSQL text cannot hold NUL (SQLite can): refuse it everywhere, for every
    // parameter, so both backends answer alike and nothing reaches the database.
    if let Some((name, _)) = pairs
        .iter()
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
    {
        let shown = truncate(&name.replace('\0', "\\0"));
        return Err(Issue::error(
            IssueCode::Value,
            format!("Search parameter '{shown}' contains a NUL character (%00), which no value may hold"),
        )
        .at(shown));
    }
    let mut values = 0usize;
    for (n, (name, value)) in pairs.iter().enumerate() {
        if ignore.contains(&name.as_str()) {
            continue;
        }
        // Each value becomes bind variables of one SQL statement: bound the search
        // well below SQLite's limit (32,766) and below what a page can usefully ask.
        values = values.saturating_add(value.split(',').count());
        if n >= MAX_PARAMETERS || values > MAX_VALUES {
            return Err(Issue::error(
                IssueCode::TooCostly,
                format!(
                    "A search takes at most {MAX_PARAMETERS} parameters with at most {MAX_VALUES} values in all: split it into several searches"
                ),
            )
            .at(truncate(name)));
        }
        let outcome = if result::is_result_param(name) && !opts.criteria_only {
            result::apply(def, name, value, &mut req)
        } else {
            criterion(def, name, value, opts, true).map(|c| req.criteria.push(c))
        };
        match outcome {
            Ok(()) => req.kept.push((name.clone(), value.clone())),
            Err(issue) if opts.lenient && issue.code == IssueCode::NotSupported => {
                req.warnings.push(Issue {
                    severity: Severity::Warning,
                    diagnostics: format!("Ignored: {}", issue.diagnostics),
                    ..issue
                });
            }
            Err(issue) => return Err(issue),
        }
    }
    elements::combine(req.summary, req.elements.clone())?;
    Ok(req)
}

impl SearchRequest {
    /// How the returned resources are cut down (`_summary`, `_elements`).
    pub fn subset(&self) -> Option<Subset> {
        elements::combine(self.summary, self.elements.clone())
            .ok()
            .flatten()
    }
}

/// Most parameters in one search (URL and `_search` body together).
pub const MAX_PARAMETERS: usize = 100;
/// Most values (comma-separated alternatives counted one by one) in one search.
pub const MAX_VALUES: usize = 1000;

pub(crate) fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

pub(crate) fn unsupported(name: &str, what: String) -> Issue {
    Issue::error(IssueCode::NotSupported, what).at(truncate(name))
}

fn invalid(name: &str, what: String) -> Issue {
    Issue::error(IssueCode::Value, what).at(truncate(name))
}

fn table_of(ty: ParamType) -> IndexTable {
    match ty {
        ParamType::Token | ParamType::Uri => IndexTable::Token,
        ParamType::String => IndexTable::String,
        ParamType::Reference => IndexTable::Reference,
        ParamType::Date => IndexTable::Date,
    }
}

/// One search parameter (`name[:modifier]` or the chain `ref[:Type].param[:modifier]`).
fn criterion(
    def: &ResourceDef,
    name: &str,
    value: &str,
    opts: ParseOptions<'_>,
    may_chain: bool,
) -> Result<Criterion, Issue> {
    let (head, chained) = match name.split_once('.') {
        Some((h, c)) => (h, Some(c)),
        None => (name, None),
    };
    let (base, modifier) = match head.split_once(':') {
        Some((b, m)) => (b, Some(m)),
        None => (head, None),
    };
    let Some(param) = def.search_param(base) else {
        return Err(unsupported(
            name,
            format!(
                "Unknown or unsupported search parameter '{}' for {}",
                truncate(name),
                def.name
            ),
        ));
    };
    if let Some(inner) = chained {
        if !may_chain || param.ty != ParamType::Reference {
            return Err(unsupported(
                name,
                format!(
                    "Chaining '{}': only one level, on a reference parameter",
                    truncate(name)
                ),
            ));
        }
        return chain(def, name, param, modifier, inner, value, opts);
    }
    if value.is_empty() {
        return Err(invalid(
            name,
            format!("Search parameter '{}' has an empty value", truncate(name)),
        ));
    }
    if modifier == Some("missing") && param.paths.is_empty() {
        return Err(unsupported(
            name,
            format!("':missing' is not supported on '{}'", param.name),
        ));
    }
    if modifier == Some("missing") {
        let missing = match value {
            "true" => true,
            "false" => false,
            _ => {
                return Err(invalid(
                    name,
                    format!("'{}:missing' takes true or false", param.name),
                ))
            }
        };
        return Ok(Criterion::Missing {
            table: table_of(param.ty),
            param: param.name.to_owned(),
            missing,
        });
    }
    let values = values::split_unescaped(value, ',');
    if values.iter().any(String::is_empty) {
        return Err(invalid(
            name,
            format!("Search parameter '{}' has an empty value", truncate(name)),
        ));
    }
    let bad_modifier = |m: &str| {
        Err(unsupported(
            name,
            format!(
                "Modifier ':{}' is not supported on '{}' ({})",
                truncate(m),
                param.name,
                param.ty.as_str()
            ),
        ))
    };
    let p = param.name.to_owned();
    let mut alternatives = Vec::new();
    match (param.ty, modifier) {
        (ParamType::Token, None | Some("not")) => {
            for v in &values {
                alternatives.push(if param.name == "_id" {
                    Match::Id(v.clone())
                } else {
                    let (system, code) = values::token(v).map_err(|why| bad_token(name, why))?;
                    Match::Token {
                        param: p.clone(),
                        system,
                        code,
                    }
                });
            }
            if modifier == Some("not") {
                if param.name == "_id" {
                    return bad_modifier("not");
                }
                return Ok(Criterion::NoneOf(alternatives));
            }
        }
        (ParamType::Uri, None) => {
            for v in &values {
                alternatives.push(Match::Token {
                    param: p.clone(),
                    system: SystemMatch::NoSystem,
                    code: Some(v.clone()),
                });
            }
        }
        (ParamType::String, None | Some("exact" | "contains")) => {
            for v in &values {
                let (norm, mode) = values::string(v, modifier);
                alternatives.push(Match::String {
                    param: p.clone(),
                    norm,
                    mode,
                });
            }
        }
        (ParamType::Date, None) => {
            for v in &values {
                let Some(value) = values::date(name, v)? else {
                    return Err(unsupported(
                        name,
                        format!(
                            "Search parameter '{}': unsupported prefix in '{}'",
                            param.name,
                            truncate(v)
                        ),
                    ));
                };
                alternatives.push(if param.name == "_lastUpdated" {
                    Match::LastUpdated(value)
                } else {
                    Match::Date {
                        param: p.clone(),
                        value,
                    }
                });
            }
        }
        (ParamType::Reference, Some("identifier")) => {
            for v in &values {
                alternatives.extend(by_identifier(name, param, v)?);
            }
        }
        (ParamType::Reference, m) => {
            if let Some(t) = m {
                if registry::resource(t).is_none() || !param.targets_type(t) {
                    return bad_modifier(t);
                }
            }
            for v in &values {
                for target in values::reference(name, v, m, opts.base_url)? {
                    alternatives.push(Match::Reference {
                        param: p.clone(),
                        target,
                    });
                }
            }
        }
        (_, Some(m)) => return bad_modifier(m),
    }
    Ok(Criterion::Any(alternatives))
}

/// `param:identifier=system|value`: references carrying that identifier, and references
/// to resources that have it (what users mean: "the Task for the patient with BSN x").
fn by_identifier(name: &str, param: &SearchParamDef, value: &str) -> Result<Vec<Match>, Issue> {
    let (system, code) = values::token(value).map_err(|why| bad_token(name, why))?;
    let mut out = vec![Match::Reference {
        param: param.name.to_owned(),
        target: RefTarget::Identifier {
            system: system.clone(),
            value: code.clone(),
        },
    }];
    for target in ResourceDef::reference_targets(param) {
        if target.search_param("identifier").is_some() {
            out.push(Match::Chain {
                param: param.name.to_owned(),
                target_type: target.name.to_owned(),
                criterion: Box::new(Criterion::Any(vec![Match::Token {
                    param: "identifier".into(),
                    system: system.clone(),
                    code: code.clone(),
                }])),
            });
        }
    }
    Ok(out)
}

fn bad_token(name: &str, why: &str) -> Issue {
    invalid(
        name,
        format!("Search parameter '{}': {why}", truncate(name)),
    )
}

/// `ref[:Type].inner=value`: resources whose `ref` points to a resource matching `inner`.
fn chain(
    def: &ResourceDef,
    name: &str,
    param: &SearchParamDef,
    type_modifier: Option<&str>,
    inner: &str,
    value: &str,
    opts: ParseOptions<'_>,
) -> Result<Criterion, Issue> {
    let targets: Vec<&ResourceDef> = match type_modifier {
        Some(t) => match registry::resource(t) {
            Some(r) if param.targets_type(t) => vec![r],
            _ => {
                return Err(unsupported(
                    name,
                    format!("'{}' cannot point to '{}' here", param.name, truncate(t)),
                ))
            }
        },
        None => ResourceDef::reference_targets(param),
    };
    let inner_base = inner.split(':').next().unwrap_or(inner);
    let mut alternatives = Vec::new();
    for target in targets {
        if target.search_param(inner_base).is_none() {
            continue;
        }
        let criterion = criterion(target, inner, value, opts, false).map_err(|issue| Issue {
            expression: Some(truncate(name)),
            ..issue
        })?;
        alternatives.push(Match::Chain {
            param: param.name.to_owned(),
            target_type: target.name.to_owned(),
            criterion: Box::new(criterion),
        });
    }
    if alternatives.is_empty() {
        return Err(unsupported(
            name,
            format!(
                "Chained parameter '{}': no type '{}' of {} may point to has a parameter '{}'",
                truncate(name),
                param.name,
                def.name,
                truncate(inner_base)
            ),
        ));
    }
    Ok(Criterion::Any(alternatives))
}
