//! The database a command works on: a PostgreSQL URL or a SQLite file, and a form of it
//! safe to log.

use std::path::PathBuf;

use super::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(ConfigError::invalid("database_url", "must not be empty"));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_owned()));
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .unwrap_or(raw);
        if path.contains("://") {
            return Err(ConfigError::invalid(
                "database_url",
                "unsupported scheme: use postgres://..., sqlite://PATH or a file path",
            ));
        }
        if path.is_empty() || path == ":memory:" {
            return Err(ConfigError::invalid(
                "database_url",
                "a SQLite database needs a file path (in-memory databases lose accepted referrals)",
            ));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }

    /// A form safe to log: the password of a PostgreSQL URL is masked.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => redact_password(url),
        }
    }
}

/// The URL of database `name` on the PostgreSQL server of `server_url` (same host,
/// credentials and parameters; only the database name differs). For tools and tests
/// that create a database of their own.
pub fn postgres_database_url(server_url: &str, name: &str) -> String {
    let (before_query, query) = match server_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server_url, String::new()),
    };
    let server = match before_query.rsplit_once('/') {
        Some((server, _db)) if server.contains("//") && !server.ends_with('/') => server,
        _ => before_query.trim_end_matches('/'),
    };
    format!("{server}/{name}{query}")
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}
