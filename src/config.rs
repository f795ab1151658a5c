//! Typed settings: defaults < config file < environment < command-line flags.
//!
//! This is the only module that reads the environment (through clap's `env`).
//! Everything is validated once, at start-up, into [`Settings`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod clients;
mod database;
mod initial_directory;
pub use clients::{ClientConfig, ClientSecret};
pub use database::{postgres_database_url, DatabaseUrl};
pub use initial_directory::InitialDirectory;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE: &str = "wor-hub.db";
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most entries a transaction or batch Bundle may hold.
pub const DEFAULT_MAX_BUNDLE_ENTRIES: usize = 1000;
pub const DEFAULT_POOL_SIZE: u32 = 8;
pub const DEFAULT_REQUEST_RETENTION: &str = "24h";
pub const DEFAULT_CONTACT_DEADLINE: &str = "14days";
/// How long notifications of a Subscription are retried before it goes to `error`.
pub const DEFAULT_NOTIFICATION_RETRY_HORIZON: &str = "72h";
/// How long an instance's claim on a Subscription's deliveries holds.
pub const DEFAULT_NOTIFICATION_LEASE: &str = "2m";
pub const DEFAULT_OVERDUE_CHECK_INTERVAL: &str = "10m";
/// The whole request body must arrive within this time after its head (else 408).
pub const DEFAULT_BODY_TIMEOUT: &str = "30s";
/// The request head (request line and headers) must arrive within this time (else 408).
pub const DEFAULT_HEAD_TIMEOUT: &str = "5s";
/// How long an access token from `/auth/token` is valid.
pub const DEFAULT_ACCESS_TOKEN_LIFETIME: &str = "5m";

/// The flags of `serve`: every setting. Each flag can also be given as an environment
/// variable or in the config file.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ConfigArgs {
    /// TOML config file; its keys are the long flag names with `_` for `-`.
    #[arg(long, env = "WOR_HUB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address and port to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "WOR_HUB_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// `postgres://...` for PostgreSQL, otherwise a SQLite file path or `sqlite://PATH`
    /// [default: wor-hub.db in the working directory].
    #[arg(long, env = "WOR_HUB_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Largest accepted request body in bytes [default: 1048576].
    #[arg(long, env = "WOR_HUB_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Most entries in a transaction or batch Bundle; larger ones get 413 [default: 1000].
    #[arg(long, env = "WOR_HUB_MAX_BUNDLE_ENTRIES", value_name = "N")]
    pub max_bundle_entries: Option<usize>,
    /// Public URL of the FHIR base as clients see it, e.g. `https://hub.example.nl/fhir`
    /// [default: derived from each request's Host].
    #[arg(long, env = "WOR_HUB_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,
    /// Database connections in the pool [default: 8].
    #[arg(long, env = "WOR_HUB_DB_POOL_SIZE", value_name = "N")]
    pub db_pool_size: Option<u32>,
    /// Log filter, e.g. `info` or `wor_hub=debug,info` [default: info].
    #[arg(long, env = "WOR_HUB_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// Log line format: `json` or `text` [default: json].
    #[arg(long, env = "WOR_HUB_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// How long a write with `X-Request-Id` is remembered for replay, e.g. `24h`, `30m`
    /// [default: 24h].
    #[arg(long, env = "WOR_HUB_REQUEST_RETENTION", value_name = "DURATION")]
    pub request_retention: Option<String>,
    /// Directory loaded when the server starts on an empty database: `sample` (the
    /// example directory shipped in deploy/), `none`, or the path of a FHIR transaction
    /// Bundle [default: sample].
    #[arg(
        long,
        env = "WOR_HUB_INITIAL_DIRECTORY",
        value_name = "sample|none|FILE"
    )]
    pub initial_directory: Option<String>,
    /// How long a welfare organisation has to contact the patient, counted from the
    /// Task's authoredOn; later Tasks are tagged `overdue` [default: 14days].
    #[arg(long, env = "WOR_HUB_CONTACT_DEADLINE", value_name = "DURATION")]
    pub contact_deadline: Option<String>,
    /// How often the background job looks for Tasks past the contact deadline
    /// [default: 10m].
    #[arg(long, env = "WOR_HUB_OVERDUE_CHECK_INTERVAL", value_name = "DURATION")]
    pub overdue_check_interval: Option<String>,
    /// How long the notifications of a Subscription are retried (exponential backoff)
    /// before it goes to `error` [default: 72h].
    #[arg(
        long,
        env = "WOR_HUB_NOTIFICATION_RETRY_HORIZON",
        value_name = "DURATION"
    )]
    pub notification_retry_horizon: Option<String>,
    /// How long an instance's claim on a Subscription's deliveries holds: when an
    /// instance dies mid-delivery, another takes over after this. Longer than the
    /// longest delivery (timeouts are at most 60 s) [default: 2m].
    #[arg(long, env = "WOR_HUB_NOTIFICATION_LEASE", value_name = "DURATION")]
    pub notification_lease: Option<String>,
    /// Open mode applies only while no client is registered (README "Authentication"):
    /// then requests are not authenticated and name their party in `X-Acting-Party`;
    /// `true` lets a request from a loopback address that names no party act as any
    /// party, `false` requires the header on every Task update. Once a client is
    /// registered every /fhir request needs a bearer token and this does nothing
    /// [default: true].
    #[arg(long, env = "WOR_HUB_OPEN_MODE", value_name = "BOOL")]
    pub open_mode: Option<bool>,
    /// Without any registered client the server is unauthenticated, so `serve` refuses
    /// a non-loopback --listen address. `true` allows it anyway: only where something
    /// else keeps others out (a container port published on loopback only, or a
    /// gateway that authenticates) [default: false].
    #[arg(long, env = "WOR_HUB_ALLOW_OPEN_NETWORK", value_name = "BOOL")]
    pub allow_open_network: Option<bool>,
    /// How long an access token issued by /auth/token is valid, e.g. `5m` [default: 5m].
    #[arg(long, env = "WOR_HUB_ACCESS_TOKEN_LIFETIME", value_name = "DURATION")]
    pub access_token_lifetime: Option<String>,
    /// How long a client may take to send a request body, counted from the end of its
    /// head; a slower body gets 408 [default: 30s].
    #[arg(long, env = "WOR_HUB_BODY_TIMEOUT", value_name = "DURATION")]
    pub body_timeout: Option<String>,
    /// How long a client may take to send the request line and headers of its first
    /// request on a connection; slower ones get 408 [default: 5s].
    #[arg(long, env = "WOR_HUB_HEAD_TIMEOUT", value_name = "DURATION")]
    pub head_timeout: Option<String>,
    /// PEM certificate chain (server certificate first): serve HTTPS (TLS 1.2 and 1.3)
    /// instead of plain HTTP. Needs --tls-key [default: none].
    #[arg(long, env = "WOR_HUB_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert [default: none].
    #[arg(long, env = "WOR_HUB_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM bundle of the CAs client certificates must chain to: with it every client
    /// presents a certificate (mutual TLS). Needs --tls-cert [default: none].
    #[arg(long, env = "WOR_HUB_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// `true` when a proxy in front terminates TLS: plain HTTP is then also served on a
    /// non-loopback address. Without TLS and without it, the server listens only on
    /// loopback [default: false].
    #[arg(long, env = "WOR_HUB_BEHIND_PROXY", value_name = "BOOL")]
    pub behind_proxy: Option<bool>,
    /// `GET /metrics`, the Prometheus metrics (README "Metrics"): no patient data, for
    /// the operator's network; `false` answers it with 404 [default: true].
    #[arg(long, env = "WOR_HUB_METRICS", value_name = "BOOL")]
    pub metrics: Option<bool>,
    /// Statistics: counts from 1 to N-1 are suppressed in every report, with the
    /// cells that would reveal them (README "Statistics") [default: 5].
    #[arg(long, env = "WOR_HUB_REPORT_MINIMUM_CELL", value_name = "N")]
    pub report_minimum_cell: Option<u64>,
}

/// The flags of the commands that work on the database without serving it (`migrate`,
/// `reindex`, `postcodes import`): the server's other flags would do nothing there, so
/// their `--help` does not list them. The config file is read whole, as for `serve`.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// TOML config file; its keys are the long flag names with `_` for `-`.
    #[arg(long, env = "WOR_HUB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// `postgres://...` for PostgreSQL, otherwise a SQLite file path or `sqlite://PATH`
    /// [default: wor-hub.db in the working directory].
    #[arg(long, env = "WOR_HUB_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Log filter, e.g. `info` or `wor_hub=debug,info` [default: info].
    #[arg(long, env = "WOR_HUB_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// Log line format: `json` or `text` [default: json].
    #[arg(long, env = "WOR_HUB_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
}

/// [`DatabaseArgs`] plus `--base-url`, for the commands that read FHIR files whose
/// references are resolved against the hub's base (`directory import`, `route explain`).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct FileArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Public URL of the FHIR base, e.g. `https://hub.example.nl/fhir`, that absolute
    /// references in the file are read against [default: http://LISTEN/fhir].
    #[arg(long, env = "WOR_HUB_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,
}

impl From<&DatabaseArgs> for ConfigArgs {
    fn from(a: &DatabaseArgs) -> Self {
        Self {
            config: a.config.clone(),
            database_url: a.database_url.clone(),
            log: a.log.clone(),
            log_format: a.log_format.clone(),
            ..Self::default()
        }
    }
}

impl From<&FileArgs> for ConfigArgs {
    fn from(a: &FileArgs) -> Self {
        Self {
            base_url: a.base_url.clone(),
            ..Self::from(&a.database)
        }
    }
}

/// The config file: the same keys as the flags, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    max_body_bytes: Option<usize>,
    max_bundle_entries: Option<usize>,
    base_url: Option<String>,
    db_pool_size: Option<u32>,
    log: Option<String>,
    log_format: Option<String>,
    request_retention: Option<String>,
    initial_directory: Option<String>,
    contact_deadline: Option<String>,
    overdue_check_interval: Option<String>,
    notification_retry_horizon: Option<String>,
    notification_lease: Option<String>,
    open_mode: Option<bool>,
    allow_open_network: Option<bool>,
    access_token_lifetime: Option<String>,
    body_timeout: Option<String>,
    head_timeout: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    behind_proxy: Option<bool>,
    metrics: Option<bool>,
    report_minimum_cell: Option<u64>,
    /// `[[clients]]`: clients registered (or updated) at start-up.
    clients: Option<Vec<clients::FileClient>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Validated settings: construct with [`Settings::load`] (or directly in tests).
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database: DatabaseUrl,
    pub max_body_bytes: usize,
    /// Most entries in a transaction or batch Bundle (413 beyond).
    pub max_bundle_entries: usize,
    /// Without trailing slash.
    pub base_url: Option<String>,
    pub db_pool_size: u32,
    pub log: String,
    pub log_format: LogFormat,
    pub request_retention: std::time::Duration,
    pub initial_directory: InitialDirectory,
    /// Task contact deadline, counted from Task.authoredOn.
    pub contact_deadline: std::time::Duration,
    pub overdue_check_interval: std::time::Duration,
    /// See [`ConfigArgs::notification_retry_horizon`].
    pub notification_retry_horizon: std::time::Duration,
    /// See [`ConfigArgs::notification_lease`].
    pub notification_lease: std::time::Duration,
    /// See [`ConfigArgs::open_mode`].
    pub open_mode: bool,
    /// See [`ConfigArgs::allow_open_network`].
    pub allow_open_network: bool,
    /// See [`ConfigArgs::access_token_lifetime`].
    pub access_token_lifetime: std::time::Duration,
    /// `[[clients]]` of the config file, registered at start-up.
    pub clients: Vec<ClientConfig>,
    /// See [`ConfigArgs::body_timeout`].
    pub body_timeout: std::time::Duration,
    /// See [`ConfigArgs::head_timeout`].
    pub head_timeout: std::time::Duration,
    /// HTTPS (see [`ConfigArgs::tls_cert`]); `None`: plain HTTP.
    pub tls: Option<crate::tls::TlsSettings>,
    /// See [`ConfigArgs::behind_proxy`].
    pub behind_proxy: bool,
    /// See [`ConfigArgs::metrics`].
    pub metrics: bool,
    /// Smallest count a report shows (README "Statistics").
    pub report_minimum_cell: u64,
    /// The clock deadlines are measured by (tests move it forward).
    pub clock: crate::clock::Clock,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(key: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            key,
            message: message.into(),
        }
    }
}

impl Settings {
    /// Merges flags/env (already combined by clap) over the config file over defaults,
    /// and validates the result.
    pub fn load(args: &ConfigArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let pick = |flag: &Option<String>, file: Option<String>| flag.clone().or(file);

        let listen_raw = pick(&args.listen, file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = listen_raw.parse::<SocketAddr>().map_err(|e| {
            ConfigError::invalid("listen", format!("`{listen_raw}` is not ADDR:PORT ({e})"))
        })?;

        let db_raw =
            pick(&args.database_url, file.database_url).unwrap_or_else(|| DEFAULT_DATABASE.into());
        let database = DatabaseUrl::parse(&db_raw)?;

        let max_body_bytes = args
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "max_body_bytes",
                "must be at least 1024",
            ));
        }

        let max_bundle_entries = args
            .max_bundle_entries
            .or(file.max_bundle_entries)
            .unwrap_or(DEFAULT_MAX_BUNDLE_ENTRIES);
        if max_bundle_entries == 0 {
            return Err(ConfigError::invalid(
                "max_bundle_entries",
                "must be at least 1",
            ));
        }

        let report_minimum_cell = args
            .report_minimum_cell
            .or(file.report_minimum_cell)
            .unwrap_or(5);
        if report_minimum_cell == 0 {
            return Err(ConfigError::invalid(
                "report_minimum_cell",
                "must be at least 1 (1 shows every count)",
            ));
        }

        let base_url = match pick(&args.base_url, file.base_url) {
            None => None,
            Some(url) => Some(validate_base_url(&url)?),
        };

        let db_pool_size = args
            .db_pool_size
            .or(file.db_pool_size)
            .unwrap_or(DEFAULT_POOL_SIZE);
        if !(1..=256).contains(&db_pool_size) {
            return Err(ConfigError::invalid(
                "db_pool_size",
                "must be between 1 and 256",
            ));
        }

        let log = pick(&args.log, file.log).unwrap_or_else(|| "info".into());
        let log_format = match pick(&args.log_format, file.log_format).as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "log_format",
                    format!("`{other}`: use json or text"),
                ))
            }
        };

        let request_retention = duration(
            "request_retention",
            pick(&args.request_retention, file.request_retention),
            DEFAULT_REQUEST_RETENTION,
        )?;
        let contact_deadline = duration(
            "contact_deadline",
            pick(&args.contact_deadline, file.contact_deadline),
            DEFAULT_CONTACT_DEADLINE,
        )?;
        let overdue_check_interval = duration(
            "overdue_check_interval",
            pick(&args.overdue_check_interval, file.overdue_check_interval),
            DEFAULT_OVERDUE_CHECK_INTERVAL,
        )?;
        let notification_retry_horizon = duration(
            "notification_retry_horizon",
            pick(
                &args.notification_retry_horizon,
                file.notification_retry_horizon,
            ),
            DEFAULT_NOTIFICATION_RETRY_HORIZON,
        )?;
        let notification_lease = duration(
            "notification_lease",
            pick(&args.notification_lease, file.notification_lease),
            DEFAULT_NOTIFICATION_LEASE,
        )?;

        let body_timeout = duration(
            "body_timeout",
            pick(&args.body_timeout, file.body_timeout),
            DEFAULT_BODY_TIMEOUT,
        )?;
        let head_timeout = duration(
            "head_timeout",
            pick(&args.head_timeout, file.head_timeout),
            DEFAULT_HEAD_TIMEOUT,
        )?;

        let tls = tls_settings(
            args.tls_cert.clone().or(file.tls_cert),
            args.tls_key.clone().or(file.tls_key),
            args.tls_client_ca.clone().or(file.tls_client_ca),
        )?;
        let access_token_lifetime = duration(
            "access_token_lifetime",
            pick(&args.access_token_lifetime, file.access_token_lifetime),
            DEFAULT_ACCESS_TOKEN_LIFETIME,
        )?;
        let clients = match (&file.clients, &args.config) {
            (Some(list), Some(path)) => clients::load(list, path)?,
            _ => Vec::new(),
        };

        let initial_directory = match pick(&args.initial_directory, file.initial_directory) {
            None => InitialDirectory::Sample,
            Some(raw) => InitialDirectory::parse(&raw)?,
        };

        Ok(Self {
            listen,
            database,
            max_body_bytes,
            max_bundle_entries,
            base_url,
            db_pool_size,
            log,
            log_format,
            request_retention,
            initial_directory,
            contact_deadline,
            overdue_check_interval,
            notification_retry_horizon,
            notification_lease,
            open_mode: args.open_mode.or(file.open_mode).unwrap_or(true),
            allow_open_network: args
                .allow_open_network
                .or(file.allow_open_network)
                .unwrap_or(false),
            access_token_lifetime,
            clients,
            body_timeout,
            head_timeout,
            tls,
            behind_proxy: args.behind_proxy.or(file.behind_proxy).unwrap_or(false),
            metrics: args.metrics.or(file.metrics).unwrap_or(true),
            report_minimum_cell,
            clock: crate::clock::Clock::default(),
        })
    }

    /// Settings for tests and tools: loopback on a random port, the given database,
    /// no initial directory.
    pub fn for_database(database: DatabaseUrl) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_bundle_entries: DEFAULT_MAX_BUNDLE_ENTRIES,
            base_url: None,
            db_pool_size: DEFAULT_POOL_SIZE,
            log: "info".into(),
            log_format: LogFormat::Json,
            request_retention: std::time::Duration::from_secs(24 * 3600),
            initial_directory: InitialDirectory::None,
            contact_deadline: std::time::Duration::from_secs(14 * 86_400),
            overdue_check_interval: std::time::Duration::from_secs(600),
            notification_retry_horizon: std::time::Duration::from_secs(72 * 3600),
            notification_lease: std::time::Duration::from_secs(120),
            open_mode: true,
            allow_open_network: false,
            access_token_lifetime: std::time::Duration::from_secs(300),
            clients: Vec::new(),
            body_timeout: std::time::Duration::from_secs(30),
            head_timeout: std::time::Duration::from_secs(5),
            tls: None,
            behind_proxy: false,
            metrics: true,
            report_minimum_cell: 5,
            clock: crate::clock::Clock::default(),
        }
    }
}

/// `--tls-cert` and `--tls-key` go together; `--tls-client-ca` needs them.
fn tls_settings(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
) -> Result<Option<crate::tls::TlsSettings>, ConfigError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(crate::tls::TlsSettings {
            cert,
            key,
            client_ca,
        })),
        (None, None) if client_ca.is_some() => Err(ConfigError::invalid(
            "tls_client_ca",
            "mutual TLS needs tls_cert and tls_key",
        )),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::invalid("tls_key", "tls_cert needs tls_key")),
        (None, Some(_)) => Err(ConfigError::invalid("tls_cert", "tls_key needs tls_cert")),
    }
}

/// A positive duration such as `24h`, `90m` or `14days`.
fn duration(
    key: &'static str,
    raw: Option<String>,
    default: &str,
) -> Result<std::time::Duration, ConfigError> {
    let raw = raw.unwrap_or_else(|| default.into());
    humantime::parse_duration(&raw)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            ConfigError::invalid(
                key,
                format!("`{raw}` is not a duration such as 24h, 90m or 14days"),
            )
        })
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn validate_base_url(url: &str) -> Result<String, ConfigError> {
    let trimmed = url.trim().trim_end_matches('/');
    let ok = (trimmed.starts_with("http://") || trimmed.starts_with("https://"))
        && trimmed.len() > "https://".len()
        && !trimmed.contains(['?', '#', ' ']);
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(ConfigError::invalid(
            "base_url",
            format!("`{url}` is not an absolute http(s) URL without query"),
        ))
    }
}

#[cfg(test)]
mod tests;
