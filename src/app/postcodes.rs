//! The operator's CBS postcode table (`wor-hub postcodes import FILE`).

use crate::app::error::AppError;
use crate::app::App;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::referral::postcode_table::parse_postcode_csv;

/// Rows stored by an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostcodeCounts {
    pub pc6: usize,
    pub pc4: usize,
}

/// Parses the whole file before touching the database, then replaces the table in one
/// transaction, so an error stores nothing.
pub async fn import(
    app: &App,
    file: impl std::io::Read,
    source: String,
) -> Result<PostcodeCounts, AppError> {
    let rows = parse_postcode_csv(file)
        .map_err(|e| AppError::invalid(vec![Issue::error(IssueCode::Invalid, e.to_string())]))?;
    let pc6 = rows
        .iter()
        .filter(|(postcode, _)| postcode.len() == 6)
        .count();
    let stored = app.store.replace_postcodes(rows, source).await?;
    tracing::info!(postcodes = stored, pc6, "postcode table replaced");
    Ok(PostcodeCounts {
        pc6,
        pc4: stored.saturating_sub(pc6),
    })
}
