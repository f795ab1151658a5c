//! The `wor-hub` command line: parse arguments, load settings, call the library.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use wor_hub::config::{ConfigArgs, DatabaseArgs, FileArgs, Settings};
use wor_hub::startup::{open_store, Application};
use wor_hub::{telemetry, tools};

#[derive(Parser)]
#[command(
    name = "wor-hub",
    version,
    about = "FHIR R4 hub for Welzijn op Recept referrals",
    after_help = "Examples:\n  wor-hub serve --database-url postgres://wor@db.internal/wor\n  \
                  wor-hub route explain referral.json\n  wor-hub serve --help"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the FHIR server (applies pending database migrations first).
    #[command(after_help = "Example:\n  wor-hub serve --listen 0.0.0.0:8080 \
        --database-url postgres://wor@db.internal/wor --base-url https://hub.example.nl/fhir")]
    Serve(ConfigArgs),
    /// Apply pending database migrations and exit.
    #[command(
        after_help = "Example:\n  wor-hub migrate --database-url postgres://wor@db.internal/wor"
    )]
    Migrate(DatabaseArgs),
    /// Rebuild the search index from the stored resources and exit (run it once on
    /// data stored before this version). Refuses while a server uses the database.
    #[command(
        after_help = "Example (every server on the database stopped first):\n  \
                            wor-hub reindex --database-url wor-hub.db"
    )]
    Reindex(DatabaseArgs),
    /// Manage the welfare directory.
    #[command(
        subcommand,
        after_help = "Example:\n  wor-hub directory import deploy/directory.sample.json"
    )]
    Directory(DirectoryCommand),
    /// Explain routing decisions.
    #[command(
        subcommand,
        after_help = "Example:\n  wor-hub route explain tests/fixtures/referral-transaction.json"
    )]
    Route(RouteCommand),
    /// Manage the CBS postcode table that maps a patient's postcode to a municipality.
    #[command(
        subcommand,
        after_help = "Example:\n  wor-hub postcodes import postcodes-2023.csv"
    )]
    Postcodes(PostcodesCommand),
    /// The audit trail (NEN 7513).
    #[command(
        subcommand,
        after_help = "Example:\n  wor-hub audit verify --database-url postgres://wor@db.internal/wor"
    )]
    Audit(AuditCommand),
    /// The referral statistics (README "Statistics").
    #[command(
        subcommand,
        after_help = "Example (every server on the database stopped first):\n  \
                      wor-hub reports rebuild --database-url wor-hub.db"
    )]
    Reports(ReportsCommand),
    /// Manage the clients that may get access tokens (README "Authentication"). Once
    /// one is registered every /fhir request needs a bearer token; changes take effect
    /// on running servers at once.
    #[command(
        subcommand,
        after_help = "Example:\n  wor-hub client add --client-id gp-alphen --role referrer \
                      --organization Organization/huisartsen-alphen --jwks-file gp-alphen.jwks.json"
    )]
    Client(ClientCommand),
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client with its public keys (private_key_jwt, RS384 or ES384) or a
    /// secret read from standard input (client_secret_basic).
    #[command(after_help = "Examples:\n  \
        wor-hub client add --client-id gp-alphen --role referrer \
        --organization Organization/huisartsen-alphen --jwks-file gp-alphen.jwks.json\n  \
        head -c 32 /dev/urandom | base64 | tee secret.txt | wor-hub client add --client-id tom \
        --role performer --organization Organization/tom-in-de-buurt --secret-stdin")]
    Add {
        /// The client id (`iss` and `sub` of its assertions).
        #[arg(long, value_name = "ID")]
        client_id: String,
        #[arg(long, value_parser = ["referrer", "performer", "coordinator", "monitor"])]
        role: String,
        /// The organisation the client acts for; it must be stored (except for a monitor).
        #[arg(long, value_name = "Organization/ID")]
        organization: String,
        /// The client's public keys, a JSON Web Key Set file.
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with = "secret_stdin",
            required_unless_present = "secret_stdin"
        )]
        jwks_file: Option<PathBuf>,
        /// Read the client secret (at least 16 characters) from standard input; only
        /// its Argon2 hash is stored.
        #[arg(long)]
        secret_stdin: bool,
        /// Allowed SMART system scopes, e.g. "system/Task.rus system/Patient.rs"
        /// [default: the role's scopes, README "Authentication"].
        #[arg(long, value_name = "SCOPES")]
        scopes: Option<String>,
        #[command(flatten)]
        config: DatabaseArgs,
    },
    /// List the registered clients, one JSON object a line (key ids, never keys or
    /// secrets).
    #[command(after_help = "Example:\n  wor-hub client list --database-url wor-hub.db")]
    List {
        #[command(flatten)]
        config: DatabaseArgs,
    },
    /// Remove a client; its access tokens stop working at once.
    #[command(after_help = "Example:\n  wor-hub client remove --client-id gp-alphen")]
    Remove {
        #[arg(long, value_name = "ID")]
        client_id: String,
        #[command(flatten)]
        config: DatabaseArgs,
    },
}

#[derive(Subcommand)]
enum ReportsCommand {
    /// Recompute the statistics projection from the stored versions of every referral
    /// and exit (after restoring a backup, or to check the projection). Refuses while a
    /// server uses the database.
    #[command(after_help = "Example:\n  wor-hub reports rebuild --database-url wor-hub.db")]
    Rebuild(DatabaseArgs),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Chain the rows not chained yet, then walk the hash chain from its start: exit 0
    /// with the number of rows verified, or exit 1 naming the first broken link (a row
    /// edited or deleted).
    #[command(
        after_help = "Example:\n  wor-hub audit verify --database-url postgres://wor@db.internal/wor"
    )]
    Verify(DatabaseArgs),
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Import a FHIR transaction Bundle of Organizations and HealthcareServices (all
    /// or nothing; PUT entries with fixed ids make a re-import update in place).
    #[command(
        after_help = "Example:\n  wor-hub directory import deploy/directory.sample.json \
                            --database-url postgres://wor@db.internal/wor"
    )]
    Import {
        file: PathBuf,
        #[command(flatten)]
        config: FileArgs,
    },
}

#[derive(Subcommand)]
enum RouteCommand {
    /// Print the routing decision for a referral against the stored directory,
    /// storing nothing: FILE is a transaction Bundle (as a GP system sends it), a
    /// ServiceRequest with its Patient contained, or `$route` Parameters.
    #[command(after_help = "Examples:\n  \
                            wor-hub route explain tests/fixtures/referral-transaction.json\n  \
                            wor-hub route explain --json referral.json | head -20")]
    Explain {
        file: PathBuf,
        /// Print the `$route` Parameters resource instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: FileArgs,
    },
}

#[derive(Subcommand)]
enum PostcodesCommand {
    /// Replace the postcode table with a CSV file (PC4 or PC6 to municipality code;
    /// `;` or `,` separated, with a header row). Nothing changes if the file has an
    /// error (README: "Postcode table").
    #[command(
        after_help = "Example:\n  wor-hub postcodes import postcodes-2023.csv \
                            --database-url postgres://wor@db.internal/wor"
    )]
    Import {
        file: PathBuf,
        #[command(flatten)]
        config: DatabaseArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args: ConfigArgs = match &cli.command {
        Command::Serve(a) => a.clone(),
        Command::Migrate(a)
        | Command::Reindex(a)
        | Command::Audit(AuditCommand::Verify(a))
        | Command::Reports(ReportsCommand::Rebuild(a))
        | Command::Postcodes(PostcodesCommand::Import { config: a, .. })
        | Command::Client(
            ClientCommand::Add { config: a, .. }
            | ClientCommand::List { config: a }
            | ClientCommand::Remove { config: a, .. },
        ) => a.into(),
        Command::Directory(DirectoryCommand::Import { config, .. })
        | Command::Route(RouteCommand::Explain { config, .. }) => config.into(),
    };
    let settings = match Settings::load(&args) {
        Ok(s) => s,
        Err(e) => return fail(&format!("configuration error: {e}"), 2),
    };
    if let Err(e) = telemetry::init(&settings.log, settings.log_format) {
        return fail(&format!("configuration error: {e}"), 2);
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
                out(&format!(
                    "imported {}: {} created, {} updated, {} deleted, {} unchanged\n",
                    file.display(),
                    counts.created,
                    counts.updated,
                    counts.deleted,
                    counts.unchanged
                ))
            }
            Command::Route(RouteCommand::Explain { file, json, .. }) => {
                let bytes = read(&file)?;
                let (text, parameters) = tools::route_explain(&settings, &bytes).await?;
                if json {
                    out(&format!("{parameters:#}\n"))
                } else {
                    out(&text)
                }
            }
            Command::Reports(ReportsCommand::Rebuild(_)) => {
                let n = wor_hub::startup::rebuild_reports(&settings.database).await?;
                out(&format!("statistics rebuilt: {n} referrals\n"))
            }
            Command::Audit(AuditCommand::Verify(_)) => {
                out(&format!("{}\n", tools::audit_verify(&settings).await?))
            }
            Command::Client(ClientCommand::Add {
                client_id,
                role,
                organization,
                jwks_file,
                secret_stdin,
                scopes,
                ..
            }) => {
                let secret = if secret_stdin {
                    Some(read_secret()?)
                } else {
                    None
                };
                let add = tools::ClientAdd {
                    client_id,
                    role,
                    organization,
                    scopes,
                    jwks_file,
                    secret,
                };
                out(&tools::client_add(&settings, add).await?)
            }
            Command::Client(ClientCommand::List { .. }) => {
                out(&tools::client_list(&settings).await?)
            }
            Command::Client(ClientCommand::Remove { client_id, .. }) => {
                out(&tools::client_remove(&settings, &client_id).await?)
            }
            Command::Postcodes(PostcodesCommand::Import { file, .. }) => {
                let counts = tools::postcodes_import(&settings, &file).await?;
                out(&format!(
                    "imported {} postcodes (PC6: {}, PC4: {}) from {}\n",
                    counts.pc6 + counts.pc4,
                    counts.pc6,
                    counts.pc4,
                    file.display()
                ))
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e, 1),
    }
}

/// A start-up or command error: one line on stderr (messages from the database
/// client can span lines), no log event repeating it, and the exit code.
fn fail(message: &str, code: u8) -> ExitCode {
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    // Not eprintln!: it panics when stderr is closed.
    let _ = writeln!(std::io::stderr(), "wor-hub: {line}");
    ExitCode::from(code)
}

/// Writes a command's output. A reader that stopped early (`| head`) is not an error:
/// the rest is simply not wanted, so a closed pipe ends the command quietly instead of
/// panicking as `print!` does.
fn out(text: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write the output: {e}"))
        }
        _ => Ok(()),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The client secret from standard input: its first line, without the line end.
fn read_secret() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the secret from standard input: {e}"))?;
    let secret = line.trim_end_matches(['\n', '\r']).to_owned();
    if secret.is_empty() {
        return Err("--secret-stdin: standard input holds no secret".into());
    }
    Ok(secret)
}
