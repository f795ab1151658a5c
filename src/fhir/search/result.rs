//! Result parameters: `_sort`, `_include`, `_revinclude`, `_total`, `_summary`, `_elements`.

use super::{truncate, unsupported, SearchRequest, TotalMode};
use crate::fhir::elements::{parse_elements, parse_summary, Summary};
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::registry::{self, ParamType, ResourceDef};
use crate::store::query::{Include, Sort, SortKey};

const RESULT_PARAMS: &[&str] = &[
    "_sort",
    "_include",
    "_revinclude",
    "_total",
    "_summary",
    "_elements",
];

pub(super) fn is_result_param(name: &str) -> bool {
    RESULT_PARAMS.contains(&name)
        || name.starts_with("_include:")
        || name.starts_with("_revinclude:")
}

fn invalid(name: &str, what: String) -> Issue {
    Issue::error(IssueCode::Value, what).at(name.to_owned())
}

pub(super) fn apply(
    def: &ResourceDef,
    name: &str,
    value: &str,
    req: &mut SearchRequest,
) -> Result<(), Issue> {
    match name {
        "_sort" => {
            for key in value.split(',') {
                let (descending, pname) = match key.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, key),
                };
                let key = match pname {
                    "_id" => SortKey::Id,
                    "_lastUpdated" => SortKey::LastUpdated,
                    p if def
                        .search_param(p)
                        .is_some_and(|d| d.ty == ParamType::Date && !d.paths.is_empty()) =>
                    {
                        SortKey::Date(p.to_owned())
                    }
                    other => {
                        return Err(unsupported(
                            name,
                            format!(
                                "Sorting by '{}' is not supported; use _id, _lastUpdated or a date parameter of {}",
                                truncate(other),
                                def.name
                            ),
                        ))
                    }
                };
                req.sort.push(Sort { key, descending });
            }
            Ok(())
        }
        "_include" | "_revinclude" => {
            let reverse = name == "_revinclude";
            let parts: Vec<&str> = value.split(':').collect();
            let (source, pname, target) = match parts.as_slice() {
                [s, p] => (*s, *p, None),
                [s, p, t] => (*s, *p, Some(*t)),
                _ => {
                    return Err(unsupported(
                        name,
                        format!(
                            "{name} takes Type:parameter[:targetType], not '{}'",
                            truncate(value)
                        ),
                    ))
                }
            };
            let refused = || {
                unsupported(
                    name,
                    format!(
                        "{name}={} is not supported for {}",
                        truncate(value),
                        def.name
                    ),
                )
            };
            let source_def = registry::resource(source).ok_or_else(refused)?;
            let param = source_def
                .search_param(pname)
                .filter(|p| p.ty == ParamType::Reference)
                .ok_or_else(refused)?;
            if reverse {
                if !param.targets_type(def.name) || target.is_some_and(|t| t != def.name) {
                    return Err(refused());
                }
            } else if source != def.name
                || ResourceDef::reference_targets(param).is_empty()
                || target.is_some_and(|t| registry::resource(t).is_none() || !param.targets_type(t))
            {
                return Err(refused());
            }
            req.includes.push(Include {
                reverse,
                source_type: source.to_owned(),
                param: pname.to_owned(),
                target_type: target.map(str::to_owned),
            });
            Ok(())
        }
        "_total" => {
            req.total = match value {
                "none" => TotalMode::None,
                "estimate" => TotalMode::Estimate,
                "accurate" => TotalMode::Accurate,
                _ => {
                    return Err(invalid(
                        name,
                        "_total takes none, estimate or accurate".into(),
                    ))
                }
            };
            Ok(())
        }
        "_summary" => {
            let summary = parse_summary(value)?;
            req.summary_count = summary == Summary::Count;
            req.summary = Some(summary);
            Ok(())
        }
        "_elements" => {
            req.elements = Some(parse_elements(value)?);
            Ok(())
        }
        _ => Err(unsupported(
            name,
            format!("Unsupported result parameter '{}'", truncate(name)),
        )),
    }
}
