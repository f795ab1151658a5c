//! Operator commands that work on the database directly: `wor-hub directory import`,
//! `wor-hub route explain` and `wor-hub postcodes import`. `main.rs` parses the
//! arguments and prints.

use std::fmt::Write as _;

use crate::api::directory::{import_directory, ImportCounts, ImportOutcome};
use crate::api::routing::{explain, read_question};
use crate::config::Settings;
use crate::fhir::instant::now_micros;
use crate::fhir::resource::IncomingResource;
use crate::referral::postcode_table::parse_postcode_csv;
use crate::referral::route::Decision;
use crate::referral::task::{decision_parameters, summary};
use crate::startup::{file_base, open_store};
use crate::store::{AuditContext, WriteError};

/// `wor-hub directory import FILE`: the Bundle's entries in one transaction.
pub async fn directory_import(settings: &Settings, bytes: &[u8]) -> Result<ImportCounts, String> {
    let store = open_store(&settings.database, 1)
        .await
        .map_err(|e| e.to_string())?;
    match import_directory(
        &store,
        bytes,
        &file_base(settings),
        false,
        "cli:directory-import",
    )
    .await
    {
        Ok(ImportOutcome::Imported(counts)) => Ok(counts),
        Ok(ImportOutcome::NotEmpty) => Ok(ImportCounts::default()),
        Err(e) => Err(e.describe("\n")),
    }
}

/// `wor-hub route explain FILE`: the decision for a referral against the stored
/// directory, as text and as the `$route` Parameters. Nothing is stored but audit.
pub async fn route_explain(
    settings: &Settings,
    bytes: &[u8],
) -> Result<(String, serde_json::Value), String> {
    let input = IncomingResource::parse(bytes).map_err(|i| i.diagnostics)?;
    let store = open_store(&settings.database, 1)
        .await
        .map_err(|e| e.to_string())?;
    let base = file_base(settings);
    let ctx = AuditContext {
        request_id: uuid::Uuid::new_v4().to_string(),
        actor: "cli:route-explain".into(),
    };
    let value = input.value;
    let result = store
        .transaction(ctx, move |tx| {
            let question = read_question(tx, &value, &base)?;
            explain(tx, &question, now_micros())
        })
        .await;
    match result {
        Ok((decision, task)) => Ok((as_text(&decision), decision_parameters(&decision, task))),
        Err(WriteError::Store(e)) => Err(e.to_string()),
        Err(WriteError::Abort(e)) => Err(e.describe("\n")),
    }
}

fn as_text(d: &Decision) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", summary(d));
    let _ = writeln!(
        out,
        "outcome:       {}",
        if d.chosen.is_some() {
            "routed"
        } else {
            "unroutable"
        }
    );
    if let Some(c) = &d.chosen {
        let _ = writeln!(
            out,
            "organisation:  {} (Organization/{})",
            c.organization_name.as_deref().unwrap_or("-"),
            c.organization
        );
        let _ = writeln!(
            out,
            "service:       {} (HealthcareService/{})",
            c.service_name.as_deref().unwrap_or("-"),
            c.service
        );
    }
    if let Some(r) = d.unroutable {
        let _ = writeln!(out, "reason:        {} ({})", r.display(), r.code());
    }
    let _ = writeln!(out, "referral date: {}", d.reference_date);
    if let Some(g) = d.age_group {
        let _ = writeln!(out, "age group:     {}", g.code());
    }
    if let Some(m) = d.municipality {
        let _ = writeln!(
            out,
            "municipality:  {} {} (found by {})",
            m.code,
            m.name,
            d.municipality_source.code()
        );
    }
    for (id, name) in &d.candidates {
        let _ = writeln!(
            out,
            "candidate:     HealthcareService/{id}{}",
            name.as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
    }
    if let Some(rule) = &d.rule {
        let _ = writeln!(out, "rule:          {rule}");
    }
    let _ = writeln!(out, "steps:");
    for s in &d.steps {
        let _ = writeln!(out, "  - {s}");
    }
    out
}

/// Rows stored by `wor-hub postcodes import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostcodeCounts {
    pub pc6: usize,
    pub pc4: usize,
}

/// `wor-hub postcodes import FILE`: parses the whole file before touching the
/// database, then replaces the table in one transaction, so an error stores nothing.
pub async fn postcodes_import(
    settings: &Settings,
    file: &std::path::Path,
) -> Result<PostcodeCounts, String> {
    let shown = file.display();
    let rows = std::fs::File::open(file)
        .map_err(|e| format!("cannot read {shown}: {e}"))
        .and_then(|f| parse_postcode_csv(f).map_err(|e| format!("{shown}: {e}")))?;
    let pc6 = rows
        .iter()
        .filter(|(postcode, _)| postcode.len() == 6)
        .count();
    let store = open_store(&settings.database, 1)
        .await
        .map_err(|e| e.to_string())?;
    let stored = store
        .replace_postcodes(rows, shown.to_string())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(postcodes = stored, pc6, "postcode table replaced");
    Ok(PostcodeCounts {
        pc6,
        pc4: stored.saturating_sub(pc6),
    })
}
