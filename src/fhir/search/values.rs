//! Search parameter values: tokens, strings, references and dates (search.html).

use crate::fhir::dates::date_range;
use crate::fhir::identifiers::normalize_system;
use crate::fhir::index::split_relative;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::text::normalize;
use crate::store::query::{DateMatch, DatePrefix, RefTarget, StringMode, SystemMatch};

/// Splits on `sep`, honouring the FHIR search escape `\` (`\,` `\|` `\$` `\\`).
pub fn split_unescaped(value: &str, sep: char) -> Vec<String> {
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

/// `system|code`, `|code` (no system), `system|` (any code of the system) or `code`;
/// identifier systems normalised. A bare `|` says nothing (no system and no code) and
/// more than one unescaped `|` is not a token: both are refused with the reason.
pub fn token(value: &str) -> Result<(SystemMatch, Option<String>), &'static str> {
    let parts = split_unescaped(value, '|');
    match parts.as_slice() {
        [code] => Ok((SystemMatch::Any, Some(code.clone()))),
        [system, code] if system.is_empty() && code.is_empty() => {
            Err("'|' alone names neither a system nor a code")
        }
        [system, code] => {
            let system = if system.is_empty() {
                SystemMatch::NoSystem
            } else {
                SystemMatch::Exactly(normalize_system(system).to_owned())
            };
            Ok((system, (!code.is_empty()).then(|| code.clone())))
        }
        _ => Err("a token is code, system|code, |code or system| (escape a literal '|' as '\\|')"),
    }
}

/// The normalised value and the match mode for a string modifier.
pub fn string(value: &str, modifier: Option<&str>) -> (String, StringMode) {
    let norm = normalize(value);
    let mode = match modifier {
        Some("exact") => StringMode::Exact(value.to_owned()),
        Some("contains") => StringMode::Contains,
        _ => StringMode::StartsWith,
    };
    (norm, mode)
}

/// A reference search value: `id`, `Type/id`, or an absolute URL (local when it starts
/// with this server's base URL). Returns the alternatives that match it.
pub fn reference(
    name: &str,
    value: &str,
    type_modifier: Option<&str>,
    base_url: Option<&str>,
) -> Result<Vec<RefTarget>, Issue> {
    let invalid = |why: &str| {
        Issue::error(
            IssueCode::Value,
            format!("Search parameter '{name}': {why}"),
        )
        .at(name.to_owned())
    };
    let local = |ty: &str, id: &str| -> Result<Vec<RefTarget>, Issue> {
        if type_modifier.is_some_and(|t| t != ty) {
            return Err(invalid(
                "the reference's type differs from the :Type modifier",
            ));
        }
        let mut alternatives = vec![RefTarget::Local {
            target_type: Some(ty.to_owned()),
            id: id.to_owned(),
        }];
        if let Some(base) = base_url {
            alternatives.push(RefTarget::Url(format!("{base}/{ty}/{id}")));
        }
        Ok(alternatives)
    };
    if value.contains(':') {
        let relative = base_url
            .and_then(|base| value.strip_prefix(base))
            .and_then(|rest| rest.strip_prefix('/'));
        return match relative.and_then(split_relative) {
            Some((ty, id)) => local(ty, id),
            None => Ok(vec![RefTarget::Url(value.to_owned())]),
        };
    }
    if value.contains('/') {
        let (ty, id) =
            split_relative(value).ok_or_else(|| invalid("expected id, Type/id or a URL"))?;
        return local(ty, id);
    }
    Ok(vec![RefTarget::Local {
        target_type: type_modifier.map(str::to_owned),
        id: value.to_owned(),
    }])
}

/// A date search value with its optional prefix. `Ok(None)`: a prefix this server does
/// not support (`ap`).
pub fn date(name: &str, value: &str) -> Result<Option<DateMatch>, Issue> {
    const PREFIXES: [(&str, DatePrefix); 8] = [
        ("eq", DatePrefix::Eq),
        ("ne", DatePrefix::Ne),
        ("gt", DatePrefix::Gt),
        ("lt", DatePrefix::Lt),
        ("ge", DatePrefix::Ge),
        ("le", DatePrefix::Le),
        ("sa", DatePrefix::Sa),
        ("eb", DatePrefix::Eb),
    ];
    if value.starts_with("ap") {
        return Ok(None);
    }
    let (prefix, rest) = PREFIXES
        .iter()
        .find(|(p, _)| value.starts_with(p))
        .map_or((DatePrefix::Eq, value), |(p, d)| (*d, &value[p.len()..]));
    let (low, high) = date_value(name, rest)?;
    Ok(Some(DateMatch { prefix, low, high }))
}

fn date_value(name: &str, rest: &str) -> Result<(i64, i64), Issue> {
    date_range(rest).ok_or_else(|| {
        Issue::error(
            IssueCode::Value,
            format!(
                "Search parameter '{name}': '{}' is not a date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime with zone)",
                rest.chars().take(40).collect::<String>()
            ),
        )
        .at(name.to_owned())
    })
}
