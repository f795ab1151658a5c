//! The `wor-hub` command line: parse arguments, load settings, call the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use wor_hub::config::{ConfigArgs, Settings};
use wor_hub::startup::{open_store, Application};
use wor_hub::{telemetry, tools};

#[derive(Parser)]
#[command(
    name = "wor-hub",
    version,
    about = "FHIR R4 hub for Welzijn op Recept referrals"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the FHIR server (applies pending database migrations first).
    Serve(ConfigArgs),
    /// Apply pending database migrations and exit.
    Migrate(ConfigArgs),
    /// Rebuild the search index from the stored resources and exit (run it once,
    /// with the server stopped, on data stored before this version).
    Reindex(ConfigArgs),
    /// Manage the welfare directory.
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Explain routing decisions.
    #[command(subcommand)]
    Route(RouteCommand),
    /// Manage the CBS postcode table that maps a patient's postcode to a municipality.
    #[command(subcommand)]
    Postcodes(PostcodesCommand),
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Import a FHIR transaction Bundle of Organizations and HealthcareServices (all
    /// or nothing; PUT entries with fixed ids make a re-import update in place).
    Import {
        file: PathBuf,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Subcommand)]
enum RouteCommand {
    /// Print the routing decision for a referral against the stored directory,
    /// storing nothing: FILE is a transaction Bundle (as a GP system sends it), a
    /// ServiceRequest with its Patient contained, or `$route` Parameters.
    Explain {
        file: PathBuf,
        /// Print the `$route` Parameters resource instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Subcommand)]
enum PostcodesCommand {
    /// Replace the postcode table with a CSV file (PC4 or PC6 to municipality code;
    /// `;` or `,` separated, with a header row). Nothing changes if the file has an
    /// error (README: "Postcode table").
    Import {
        file: PathBuf,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match &cli.command {
        Command::Serve(a) | Command::Migrate(a) | Command::Reindex(a) => a,
        Command::Directory(DirectoryCommand::Import { config, .. })
        | Command::Route(RouteCommand::Explain { config, .. })
        | Command::Postcodes(PostcodesCommand::Import { config, .. }) => config,
    };
    let settings = match Settings::load(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wor-hub: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = telemetry::init(&settings.log, settings.log_format) {
        eprintln!("wor-hub: configuration error: {e}");
        return ExitCode::from(2);
    }
    let result = actix_web::rt::System::new().block_on(async move {
        match cli.command {
            Command::Serve(_) => {
                let app = Application::build(&settings)
                    .await
                    .map_err(|e| e.to_string())?;
                app.run_until_stopped().await.map_err(|e| e.to_string())
            }
            Command::Migrate(_) => open_store(&settings.database, 1)
                .await
                .map(|_| tracing::info!("migrations are up to date"))
                .map_err(|e| e.to_string()),
            Command::Reindex(_) => wor_hub::startup::reindex(&settings.database)
                .await
                .map(|n| tracing::info!(resources = n, "search index rebuilt"))
                .map_err(|e| e.to_string()),
            Command::Directory(DirectoryCommand::Import { file, .. }) => {
                let bytes = read(&file)?;
                let counts = tools::directory_import(&settings, &bytes).await?;
                println!(
                    "imported {}: {} created, {} updated, {} deleted",
                    file.display(),
                    counts.created,
                    counts.updated,
                    counts.deleted
                );
                Ok(())
            }
            Command::Route(RouteCommand::Explain { file, json, .. }) => {
                let bytes = read(&file)?;
                let (text, parameters) = tools::route_explain(&settings, &bytes).await?;
                if json {
                    println!("{parameters:#}");
                } else {
                    print!("{text}");
                }
                Ok(())
            }
            Command::Postcodes(PostcodesCommand::Import { file, .. }) => {
                let counts = tools::postcodes_import(&settings, &file).await?;
                println!(
                    "imported {} postcodes (PC6: {}, PC4: {}) from {}",
                    counts.pc6 + counts.pc4,
                    counts.pc6,
                    counts.pc4,
                    file.display()
                );
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "wor-hub stopped");
            eprintln!("wor-hub: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}
