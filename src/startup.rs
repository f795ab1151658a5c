//! Wiring: settings -> store -> HTTP server. Tests use exactly this path, on port 0.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::{from_fn, Compress};
use actix_web::{web, HttpServer};

use crate::app::directory::{import_directory, ImportOutcome, SAMPLE_DIRECTORY};
use crate::app::overdue::mark_overdue;
use crate::app::principal::Principal;
use crate::app::subscriptions;
use crate::app::App;
use crate::config::{DatabaseUrl, InitialDirectory, Settings};
use crate::fhir::instant::{format_instant, now_micros};
use crate::store::serving::{self, ServingLock};
use crate::store::{CommitCounter, Store, StoreError};
use crate::{api, telemetry};

/// Shared, read-only state of the running service: the application and what the
/// HTTP edge needs besides.
pub struct AppState {
    pub app: App,
    pub max_body_bytes: usize,
    pub base_url: Option<String>,
    /// When this instance started; the CapabilityStatement's date.
    pub started: String,
    /// See [`Settings::open_mode`].
    pub open_mode: bool,
    /// See [`Settings::body_timeout`].
    pub body_timeout: std::time::Duration,
    /// Whether /fhir requests need a bearer token (see [`crate::app::auth::Gate`]).
    pub gate: crate::app::auth::Gate,
    /// See [`Settings::access_token_lifetime`].
    pub access_token_lifetime: std::time::Duration,
    /// See [`Settings::metrics`]: `GET /metrics` is served.
    pub metrics: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the database {url}: {source}")]
    Database { url: String, source: StoreError },
    #[error("cannot load the initial directory {source_name}: {message}")]
    Directory {
        source_name: String,
        message: String,
    },
    /// The database is in use in a way that excludes this command (see
    /// [`crate::store::serving`]).
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    PlainHttp(String),
    /// A `[[clients]]` entry of the config file cannot be registered.
    #[error("cannot register client {client_id} from the config file: {message}")]
    Client { client_id: String, message: String },
    /// No client is registered and the listen address is not loopback.
    #[error("{0}")]
    Open(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

pub struct Application {
    port: u16,
    server: Server,
    commits: CommitCounter,
    /// Held while the server runs: `wor-hub reindex` refuses meanwhile.
    _serving: ServingLock,
}

impl Application {
    /// Opens the database (applying pending migrations), binds the listener and builds
    /// the server. The server runs when [`Application::run_until_stopped`] is awaited.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        if let Some(refusal) = crate::tls::plain_http_refusal(
            settings.listen,
            settings.tls.is_some(),
            settings.behind_proxy,
        ) {
            return Err(StartupError::PlainHttp(refusal));
        }
        let tls = settings
            .tls
            .as_ref()
            .map(crate::tls::server_config)
            .transpose()?;
        let serving = hold_lock(&settings.database, serving::hold_for_serving).await?;
        let store = open_store(&settings.database, settings.db_pool_size).await?;
        let app = App::new(store, settings);
        load_initial_directory(&app, settings).await?;
        let gate = authentication(&app.store, settings).await?;
        // Compile the per-type schema validators off the request path (~100 ms in a
        // debug build) so the first request of each type does not pay for it.
        tokio::task::spawn_blocking(|| {
            for def in crate::fhir::registry::RESOURCES {
                let _ = crate::fhir::validate::validate_resource(
                    def.name,
                    &serde_json::json!({ "resourceType": def.name }),
                );
            }
        });
        let listener = TcpListener::bind(settings.listen).map_err(|source| StartupError::Bind {
            addr: settings.listen,
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: settings.listen,
                source,
            })?
            .port();
        spawn_housekeeping(app.store.clone(), settings.request_retention);
        // Chains the audit rows committed since (cheap when there are none).
        app.store
            .spawn_audit_sealer(std::time::Duration::from_secs(1));
        spawn_overdue_marker(app.clone(), settings.overdue_check_interval);
        let base = settings.base_url.clone().unwrap_or_else(|| {
            let mut addr = settings.listen;
            addr.set_port(port);
            let scheme = if tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{addr}/fhir")
        });
        subscriptions::spawn_delivery(
            app.clone(),
            subscriptions::DeliverySettings::new(
                base,
                settings.notification_retry_horizon,
                settings.notification_lease,
            ),
        );
        let commits = app.store.commits();
        let state = web::Data::new(AppState {
            app,
            max_body_bytes: settings.max_body_bytes,
            base_url: settings.base_url.clone(),
            started: format_instant(now_micros()),
            open_mode: settings.open_mode,
            body_timeout: settings.body_timeout,
            gate,
            access_token_lifetime: settings.access_token_lifetime,
            metrics: settings.metrics,
        });
        let server = HttpServer::new(move || {
            actix_web::App::new()
                .app_data(state.clone())
                // Path and query errors become OperationOutcomes too.
                .app_data(web::PathConfig::default().error_handler(api::path_error))
                .app_data(web::QueryConfig::default().error_handler(api::query_error))
                .wrap(from_fn(api::edge::body_deadline))
                .wrap(Compress::default())
                // Outside Compress, whose 406 for an unsupported Accept-Encoding is text.
                .wrap(from_fn(api::edge::outcome_for_every_error))
                .wrap(from_fn(telemetry::request_context))
                // Outermost: counts every request with the status its client got.
                .wrap(from_fn(api::metrics::track))
                .configure(api::routes)
        })
        // The head of a request must arrive within --head-timeout (actix answers 408).
        .client_request_timeout(settings.head_timeout);
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config),
            None => server.listen(listener),
        }
        .map_err(|source| StartupError::Bind {
            addr: settings.listen,
            source,
        })?
        .run();
        tracing::info!(
            port,
            tls = settings.tls.is_some(),
            mutual_tls = settings.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
            database = %settings.database.redacted(),
            "wor-hub listening"
        );
        Ok(Self {
            port,
            server,
            commits,
            _serving: serving,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database transactions this instance has committed (reads and writes).
    pub fn commits(&self) -> CommitCounter {
        self.commits.clone()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Registers the config file's clients, then decides whether the server may run open
/// (no client registered): only on a loopback address, unless --allow-open-network.
async fn authentication(
    store: &Store,
    settings: &Settings,
) -> Result<crate::app::auth::Gate, StartupError> {
    use crate::app::auth::{register, Gate, RegisterError, Registration};
    for client in &settings.clients {
        register(store, &Registration::from(client), true)
            .await
            .map_err(|e| match e {
                RegisterError::Refused(message) => StartupError::Client {
                    client_id: client.client_id.clone(),
                    message,
                },
                RegisterError::Store(source) => StartupError::Database {
                    url: settings.database.redacted(),
                    source,
                },
            })?;
    }
    let registered = store
        .has_clients()
        .await
        .map_err(|source| StartupError::Database {
            url: settings.database.redacted(),
            source,
        })?;
    let loopback = settings.listen.ip().is_loopback();
    if !registered {
        if !loopback && !settings.allow_open_network {
            return Err(StartupError::Open(format!(
                "refusing to serve {} without client authentication: no client is registered; \
                 register one (wor-hub client add, or [[clients]] in the config file), listen on \
                 a loopback address, or set --allow-open-network true where nothing else can reach it",
                settings.listen
            )));
        }
        tracing::warn!(
            listen = %settings.listen,
            "no client is registered: the server is open (no authentication, X-Acting-Party names the party) until one is"
        );
    }
    // On a non-loopback address the server never runs open, even when the last
    // client is removed while it runs (unless explicitly allowed).
    let gate = Gate::new(!loopback && !settings.allow_open_network, registered);
    gate.spawn_refresh(store.clone());
    Ok(gate)
}

/// Takes a [`ServingLock`] off the async runtime (a PostgreSQL connection blocks).
async fn hold_lock(
    url: &DatabaseUrl,
    take: fn(&DatabaseUrl) -> Result<ServingLock, String>,
) -> Result<ServingLock, StartupError> {
    let owned = url.clone();
    tokio::task::spawn_blocking(move || take(&owned))
        .await
        .map_err(|e| StartupError::InUse(e.to_string()))?
        .map_err(StartupError::InUse)
}

pub async fn open_store(url: &DatabaseUrl, pool_size: u32) -> Result<Store, StartupError> {
    Store::open(url, pool_size)
        .await
        .map_err(|source| StartupError::Database {
            url: url.redacted(),
            source,
        })
}

/// The FHIR base for references in files the server loads itself.
pub fn file_base(settings: &Settings) -> String {
    settings
        .base_url
        .clone()
        .unwrap_or_else(|| format!("http://{}/fhir", settings.listen))
}

/// On an empty database, loads the configured initial directory.
async fn load_initial_directory(app: &App, settings: &Settings) -> Result<(), StartupError> {
    let (name, bytes) = match &settings.initial_directory {
        InitialDirectory::None => return Ok(()),
        InitialDirectory::Sample => ("sample".to_owned(), SAMPLE_DIRECTORY.as_bytes().to_vec()),
        InitialDirectory::File(path) => (
            path.display().to_string(),
            std::fs::read(path).map_err(|e| StartupError::Directory {
                source_name: path.display().to_string(),
                message: e.to_string(),
            })?,
        ),
    };
    match import_directory(
        app,
        &Principal::system("system:initial-directory"),
        &bytes,
        &file_base(settings),
        true,
    )
    .await
    {
        Ok(ImportOutcome::Imported(counts)) => {
            tracing::info!(
                directory = %name,
                created = counts.created,
                "empty database: initial directory loaded"
            );
            if settings.initial_directory == InitialDirectory::Sample {
                tracing::warn!("the sample directory holds example organisations: replace them before real use");
            }
            Ok(())
        }
        Ok(ImportOutcome::NotEmpty) => Ok(()),
        Err(e) => Err(StartupError::Directory {
            source_name: name,
            message: e.describe("; "),
        }),
    }
}

/// Deletes expired `X-Request-Id` records every ten minutes (replays already ignore
/// them; this keeps the table small).
fn spawn_housekeeping(store: Store, retention: std::time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            tick.tick().await;
            let keep = i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
            match store
                .purge_request_records(now_micros().saturating_sub(keep))
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired request records deleted"),
                Err(e) => tracing::warn!(error = %e, "purging request records failed"),
            }
        }
    });
}

/// Tags Tasks past the contact deadline `overdue`, every `interval`, without waiting
/// for a request. Several instances may run it on one database: each Task is updated
/// with its version, so a Task changed meanwhile is left for the next round.
fn spawn_overdue_marker(app: App, interval: std::time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let principal = Principal::system("system:contact-deadline");
            match mark_overdue(&app, &principal).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(marked = n, "Tasks past the contact deadline tagged overdue")
                }
                Err(e) => tracing::warn!(error = %e.describe("; "), "marking overdue Tasks failed"),
            }
        }
    });
}

/// `wor-hub reindex`: rebuilds the search index of every current resource from its
/// stored body (needed once for data stored before a search parameter existed).
/// `wor-hub reports rebuild`: recomputes the statistics projection from the stored
/// versions, with no server using the database. The referrals rebuilt.
pub async fn rebuild_reports(url: &DatabaseUrl) -> Result<u64, String> {
    let _rebuilding = hold_lock(url, serving::hold_for_reindex)
        .await
        .map_err(|e| e.to_string())?;
    let store = open_store(url, 1).await.map_err(|e| e.to_string())?;
    crate::app::reports::rebuild(&store)
        .await
        .map_err(|e| e.describe("\n"))
}

pub async fn reindex(url: &DatabaseUrl) -> Result<u64, StartupError> {
    let _reindexing = hold_lock(url, serving::hold_for_reindex).await?;
    let store = open_store(url, 1).await?;
    let rows_of: crate::store::RowsOf = std::sync::Arc::new(|ty: &str, body: &str| {
        let def = crate::fhir::registry::resource(ty)?;
        let value: serde_json::Value = serde_json::from_str(body).ok()?;
        Some(crate::fhir::index::index_rows(def, &value))
    });
    store
        .reindex(rows_of)
        .await
        .map_err(|source| StartupError::Database {
            url: url.redacted(),
            source,
        })
}
