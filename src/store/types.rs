//! Data the store hands out and takes in.

/// One stored version. `body` is `None` for a delete.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    /// Microseconds since the Unix epoch.
    pub last_updated: i64,
    pub body: Option<String>,
}

#[derive(Debug)]
pub enum Lookup {
    Found(StoredVersion),
    /// The resource (or this version) is a deletion.
    Deleted(StoredVersion),
    NotFound,
}

#[derive(Debug)]
pub enum CreateOutcome {
    Created(StoredVersion),
    /// `If-None-Exist` matched exactly this resource; nothing was written.
    Matched(StoredVersion),
    /// `If-None-Exist` matched more than one resource.
    MultipleMatches,
}

#[derive(Debug)]
pub enum UpdateOutcome {
    Updated(StoredVersion),
    Created(StoredVersion),
    NotFound,
    VersionMismatch { current: i64 },
}

#[derive(Debug)]
pub enum DeleteOutcome {
    Deleted { version_id: i64 },
    AlreadyDeleted,
    NotFound,
    VersionMismatch { current: i64 },
}

/// A token index row of the current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub param: String,
    pub system: Option<String>,
    pub code: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemMatch {
    /// `code`: any system.
    Any,
    /// `|code`: no system.
    NoSystem,
    /// `system|code` or `system|`.
    Exactly(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMatch {
    pub param: String,
    pub system: SystemMatch,
    /// `None` for `system|` (any code in the system).
    pub code: Option<String>,
}

/// One search criterion; a resource must satisfy all criteria of a query. Each
/// criterion is an OR over its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Criterion {
    Id(Vec<String>),
    Token(Vec<TokenMatch>),
}

#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub resource_type: Option<String>,
    pub id: Option<String>,
    /// Versions written at or after this time (microseconds).
    pub since: Option<i64>,
    /// Keyset cursor: only versions with a smaller sequence number.
    pub before_seq: Option<i64>,
    pub count: i64,
}

#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub seq: i64,
    pub method: String,
    pub version: StoredVersion,
}

/// Everything a resource version contributes to the search index.
pub type IndexRows = Vec<TokenRow>;
