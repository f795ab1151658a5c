//! Operator commands that work on the database directly: `wor-hub directory import`,
//! `wor-hub route explain`, `wor-hub postcodes import` and `wor-hub audit verify`.
//! `main.rs` parses the arguments and prints.

use std::fmt::Write as _;

use crate::app::directory::{import_directory, ImportCounts, ImportOutcome};
use crate::app::postcodes::PostcodeCounts;
use crate::app::principal::Principal;
use crate::app::{postcodes, route, App};
use crate::config::Settings;
use crate::fhir::resource::IncomingResource;
use crate::referral::route::Decision;
use crate::referral::task::summary;
use crate::startup::{file_base, open_store};
use crate::store::ChainReport;

/// The application on the configured database, for one command.
async fn open_app(settings: &Settings) -> Result<App, String> {
    let store = open_store(&settings.database, 1)
        .await
        .map_err(|e| e.to_string())?;
    Ok(App::new(store, settings))
}

/// `wor-hub directory import FILE`: the Bundle's entries in one transaction.
pub async fn directory_import(settings: &Settings, bytes: &[u8]) -> Result<ImportCounts, String> {
    let app = open_app(settings).await?;
    let principal = Principal::system("cli:directory-import");
    match import_directory(&app, &principal, bytes, &file_base(settings), false).await {
        Ok(ImportOutcome::Imported(counts)) => Ok(counts),
        Ok(ImportOutcome::NotEmpty) => Ok(ImportCounts::default()),
        Err(e) => Err(e.describe("\n")),
    }
}

/// `wor-hub audit verify`: seals what is not chained yet, then walks the chain. `Ok`:
/// the line to print; `Err`: the first broken link.
pub async fn audit_verify(settings: &Settings) -> Result<String, String> {
    let store = open_store(&settings.database, 1)
        .await
        .map_err(|e| e.to_string())?;
    match store.verify_audit().await.map_err(|e| e.to_string())? {
        ChainReport::Intact { verified, unsealed } => Ok(format!(
            "audit trail intact: {verified} rows verified, {unsealed} not yet sealed"
        )),
        ChainReport::Broken(link) => Err(format!("audit trail broken: {link}")),
    }
}

/// `wor-hub route explain FILE`: the decision for a referral against the stored
/// directory, as text and as the `$route` Parameters. Nothing is stored but audit.
pub async fn route_explain(
    settings: &Settings,
    bytes: &[u8],
) -> Result<(String, serde_json::Value), String> {
    let input = IncomingResource::parse(bytes).map_err(|i| i.diagnostics)?;
    let app = open_app(settings).await?;
    let principal = Principal::system("cli:route-explain");
    let (decision, parameters) =
        route::explain_request(&app, &principal, input.value, file_base(settings))
            .await
            .map_err(|e| e.describe("\n"))?;
    Ok((as_text(&decision), parameters))
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

/// `wor-hub postcodes import FILE`: the whole file is checked before the table is
/// replaced, so an error stores nothing.
pub async fn postcodes_import(
    settings: &Settings,
    file: &std::path::Path,
) -> Result<PostcodeCounts, String> {
    let shown = file.display();
    let reader = std::fs::File::open(file).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let app = open_app(settings).await?;
    postcodes::import(&app, reader, shown.to_string())
        .await
        .map_err(|e| format!("{shown}: {}", e.describe("; ")))
}

/// What `wor-hub client add` registers.
pub struct ClientAdd {
    pub client_id: String,
    pub role: String,
    pub organization: String,
    pub scopes: Option<String>,
    pub jwks_file: Option<std::path::PathBuf>,
    /// The secret, read from standard input.
    pub secret: Option<String>,
}

/// `wor-hub client add`: registers a client; a running server sees it at once.
pub async fn client_add(settings: &Settings, add: ClientAdd) -> Result<String, String> {
    use crate::app::auth::{register, Registration};
    use crate::app::principal::ClientRole;
    let role = ClientRole::from_code(&add.role)
        .ok_or("--role: use referrer, performer, coordinator or monitor")?;
    let jwks = match &add.jwks_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let registration = Registration {
        client_id: add.client_id.clone(),
        role,
        organization: add.organization,
        scopes: add.scopes,
        jwks,
        secret: add.secret.map(crate::config::ClientSecret::Plain),
    };
    let store = open_store(&settings.database, 1)
        .await
        .map_err(|e| e.to_string())?;
    register(&store, &registration, false)
        .await
        .map_err(|e| e.to_string())?;
    let row = store
        .client(&add.client_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the client was not stored")?;
    Ok(format!(
        "registered client {} ({} for {}); scopes: {}\n",
        row.client_id, row.role, row.organization, row.scopes
    ))
}

/// `wor-hub client list`: one JSON object a line; key ids, never keys or secrets.
pub async fn client_list(settings: &Settings) -> Result<String, String> {
    let store = open_store(&settings.database, 1)
        .await
        .map_err(|e| e.to_string())?;
    let rows = store.clients().await.map_err(|e| e.to_string())?;
    Ok(rows.iter().fold(String::new(), |mut out, row| {
        let _ = writeln!(out, "{}", crate::app::auth::listing(row));
        out
    }))
}

/// `wor-hub client remove`: the client and its access tokens, at once.
pub async fn client_remove(settings: &Settings, client_id: &str) -> Result<String, String> {
    let store = open_store(&settings.database, 1)
        .await
        .map_err(|e| e.to_string())?;
    if store
        .remove_client(client_id)
        .await
        .map_err(|e| e.to_string())?
    {
        Ok(format!(
            "removed client {client_id}; its access tokens are revoked\n"
        ))
    } else {
        Err(format!("no client {client_id} is registered"))
    }
}
