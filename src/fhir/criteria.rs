//! Search criteria from a query string (`If-None-Exist`, search URLs).

use crate::fhir::identifiers::normalize_system;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::registry::{ParamKind, ResourceDef};
use crate::store::{Criterion, SystemMatch, TokenMatch};

/// Parses `identifier=http://x|123&_id=a,b` against the parameters `def` registers.
/// Parameters named in `ignore` (result parameters such as `_count`) are skipped.
pub fn parse_criteria(
    def: &ResourceDef,
    query: &str,
    ignore: &[&str],
) -> Result<Vec<Criterion>, Issue> {
    let mut criteria = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if ignore.contains(&name.as_ref()) {
            continue;
        }
        let (base, modifier) = match name.split_once(':') {
            Some((b, m)) => (b, Some(m)),
            None => (name.as_ref(), None),
        };
        let Some(param) = def.search_param(base) else {
            return Err(Issue::error(
                IssueCode::NotSupported,
                format!(
                    "Unknown or unsupported search parameter '{}' for {}",
                    truncate(base),
                    def.name
                ),
            ));
        };
        if let Some(m) = modifier {
            return Err(Issue::error(
                IssueCode::NotSupported,
                format!(
                    "Modifier ':{}' is not supported on '{}'",
                    truncate(m),
                    param.name
                ),
            ));
        }
        let values = split_unescaped(&value, ',');
        if values.iter().any(String::is_empty) {
            return Err(Issue::error(
                IssueCode::Invalid,
                format!("Search parameter '{}' has an empty value", param.name),
            ));
        }
        criteria.push(match param.kind {
            ParamKind::Id => Criterion::Id(values),
            ParamKind::Identifier => {
                Criterion::Token(values.iter().map(|v| token_match(param.name, v)).collect())
            }
        });
    }
    Ok(criteria)
}

fn token_match(param: &str, value: &str) -> TokenMatch {
    let parts = split_unescaped(value, '|');
    let (system, code) = match parts.as_slice() {
        [code] => (SystemMatch::Any, Some(code.clone())),
        [system, code, ..] => {
            let system = if system.is_empty() {
                SystemMatch::NoSystem
            } else {
                SystemMatch::Exactly(normalize_system(system).to_owned())
            };
            let code = (!code.is_empty()).then(|| code.clone());
            (system, code)
        }
        [] => (SystemMatch::Any, None),
    };
    TokenMatch {
        param: param.to_owned(),
        system,
        code,
    }
}

/// Splits on `sep`, honouring the FHIR search escape `\` (`\,` `\|` `\\`).
fn split_unescaped(value: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    if next != sep {
                        current.push('\\');
                    }
                    current.push(next);
                }
            }
            c if c == sep => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    parts
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::registry::resource;

    #[test]
    fn token_forms() {
        let def = resource("Patient").unwrap();
        let c = parse_criteria(
            def,
            "identifier=http://fhir.nl/fhir/NamingSystem/bsn%7C999999011,|x,sys|,plain&_id=a",
            &[],
        )
        .unwrap();
        let Criterion::Token(t) = &c[0] else { panic!() };
        assert_eq!(
            t[0].system,
            SystemMatch::Exactly("http://fhir.nl/fhir/NamingSystem/bsn".into())
        );
        assert_eq!(t[0].code.as_deref(), Some("999999011"));
        assert_eq!(t[1].system, SystemMatch::NoSystem);
        assert_eq!(t[2].code, None);
        assert_eq!(t[3].system, SystemMatch::Any);
        assert_eq!(c[1], Criterion::Id(vec!["a".into()]));
    }

    #[test]
    fn unknown_parameter_is_refused() {
        let def = resource("Patient").unwrap();
        assert!(parse_criteria(def, "name=x", &[]).is_err());
        assert!(parse_criteria(def, "identifier:text=x", &[]).is_err());
        assert!(parse_criteria(def, "_count=5", &["_count"])
            .unwrap()
            .is_empty());
    }
}
