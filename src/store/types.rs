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

#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub resource_type: Option<String>,
    pub id: Option<String>,
    /// Versions written at or after this time (microseconds).
    pub since: Option<i64>,
    /// `_at`: versions that were current at some moment of this inclusive range
    /// (microseconds; `i64::MIN`/`MAX` for an open end).
    pub at: Option<(i64, i64)>,
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

/// A token index row: `system|code` of an Identifier, Coding, code or boolean.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokenRow {
    pub param: String,
    pub system: Option<String>,
    pub code: String,
}

/// A string index row: the normalised form (lower case, no accents) and the value as sent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StringRow {
    pub param: String,
    pub norm: String,
    pub exact: String,
}

/// A reference index row: a local literal reference (`target_type`/`target_id`), an
/// absolute URL, and/or the logical reference `Reference.identifier`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReferenceRow {
    pub param: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub url: Option<String>,
    pub ident_system: Option<String>,
    pub ident_value: Option<String>,
}

/// A date index row: the value as an inclusive range of microseconds (UTC).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateRow {
    pub param: String,
    pub low: i64,
    pub high: i64,
}

/// Everything a resource version contributes to the search index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexRows {
    pub tokens: Vec<TokenRow>,
    pub strings: Vec<StringRow>,
    pub references: Vec<ReferenceRow>,
    pub dates: Vec<DateRow>,
}
