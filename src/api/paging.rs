//! Parameters shared by history and search: the query and form pairs, `_count`, the history cursor.

use actix_web::http::{header, StatusCode};
use actix_web::HttpRequest;

use crate::api::extract::RequestCtx;
use crate::app::searchset;
use crate::error::ApiError;
use crate::fhir::bundle::Link;
use crate::fhir::outcome::{Issue, IssueCode};

/// The keyset cursor parameter in `next` links (opaque to clients).
pub const CURSOR: &str = "_cursor";

pub fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

/// POST `_search`: the parameters of a form body, after the URL's; other bodies: 415.
pub fn form_pairs(req: &HttpRequest, body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(ApiError::one(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Issue::error(
                IssueCode::NotSupported,
                "POST _search takes application/x-www-form-urlencoded parameters",
            )
            .at("Content-Type"),
        ));
    }
    let mut pairs = query_pairs(req);
    pairs.extend(form_urlencoded::parse(body).into_owned());
    Ok(pairs)
}

pub use crate::app::searchset::value;

/// `_count` of a history or a later search page: 1..; larger values are clamped.
pub fn count(pairs: &[(String, String)]) -> Result<usize, ApiError> {
    Ok(searchset::count(value(pairs, "_count"), false)?)
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
