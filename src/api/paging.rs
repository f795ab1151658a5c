//! Result parameters shared by history and search: `_count` and the page cursor.

use actix_web::HttpRequest;

use crate::api::extract::RequestCtx;
use crate::error::ApiError;
use crate::fhir::bundle::Link;
use crate::fhir::outcome::{Issue, IssueCode};

pub const DEFAULT_COUNT: i64 = 50;
pub const MAX_COUNT: i64 = 1000;
/// The keyset cursor parameter in `next` links (opaque to clients).
pub const CURSOR: &str = "_cursor";

pub fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

pub fn value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `_count`: 1..; larger values are clamped to [`MAX_COUNT`].
pub fn count(pairs: &[(String, String)]) -> Result<i64, ApiError> {
    match count_from_zero(pairs)? {
        0 => Err(count_error("_count must be a positive integer")),
        n => Ok(n),
    }
}

/// `_count` where 0 means "no entries, the total only" (a first search page).
pub fn count_from_zero(pairs: &[(String, String)]) -> Result<i64, ApiError> {
    match value(pairs, "_count") {
        None => Ok(DEFAULT_COUNT),
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n.min(MAX_COUNT)),
            _ => Err(count_error("_count must be a whole number, 0 or more")),
        },
    }
}

fn count_error(message: &str) -> ApiError {
    ApiError::invalid(vec![Issue::error(IssueCode::Value, message).at("_count")])
}

/// Self and (when there is more) next links for the current request.
pub fn links(
    req: &HttpRequest,
    ctx: &RequestCtx,
    pairs: &[(String, String)],
    next_cursor: Option<String>,
) -> Vec<Link> {
    let path = req.path().strip_prefix("/fhir").unwrap_or(req.path());
    let url = |pairs: &[(String, String)]| {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        if query.is_empty() {
            format!("{}{path}", ctx.base_url)
        } else {
            format!("{}{path}?{query}", ctx.base_url)
        }
    };
    let mut links = vec![Link {
        relation: "self",
        url: url(pairs),
    }];
    if let Some(cursor) = next_cursor {
        let mut next: Vec<(String, String)> =
            pairs.iter().filter(|(k, _)| k != CURSOR).cloned().collect();
        next.push((CURSOR.to_owned(), cursor));
        links.push(Link {
            relation: "next",
            url: url(&next),
        });
    }
    links
}

pub fn refuse_unknown(pairs: &[(String, String)], allowed: &[&str]) -> Result<(), ApiError> {
    match pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some((k, _)) => Err(ApiError::invalid(vec![Issue::error(
            IssueCode::NotSupported,
            format!(
                "Unsupported parameter '{}'; supported: {}",
                k.chars().take(64).collect::<String>(),
                allowed.join(", ")
            ),
        )])),
    }
}
