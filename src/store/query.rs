//! A parsed search, as the store runs it. `crate::fhir::search` builds these from query
//! strings; the store turns them into SQL over the index tables.

/// One search criterion; a resource must satisfy all criteria of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Criterion {
    /// Some alternative matches (comma-separated values are alternatives).
    Any(Vec<Match>),
    /// No alternative matches (`:not`); resources without a value match too.
    NoneOf(Vec<Match>),
    /// Every criterion holds (a chained target narrowed by a read scope).
    All(Vec<Criterion>),
    /// `:missing`: the parameter has no value (`missing = true`) or has one.
    Missing {
        table: IndexTable,
        param: String,
        missing: bool,
    },
    /// One of these organisations (`Organization/<id>`) may read the resource
    /// (`access_grants`) at this moment (microseconds): how a read scope narrows, never
    /// a client's own criterion.
    GrantedTo { organizations: Vec<String>, at: i64 },
}

/// The index table a parameter's rows live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexTable {
    Token,
    String,
    Reference,
    Date,
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
pub enum StringMode {
    /// The default: the normalised value starts with the normalised search value.
    StartsWith,
    /// `:contains`: the normalised value contains the normalised search value.
    Contains,
    /// `:exact`: the value as sent equals this.
    Exact(String),
}

/// Date prefixes (search.html#prefix), compared as ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatePrefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
}

/// A date search value: the prefix and the value's inclusive range in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateMatch {
    pub prefix: DatePrefix,
    pub low: i64,
    pub high: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefTarget {
    /// `id`, `Type/id` or `param:Type=id`.
    Local {
        target_type: Option<String>,
        id: String,
    },
    /// An absolute URL not on this server.
    Url(String),
    /// `:identifier`: the reference's own `Reference.identifier`.
    Identifier {
        system: SystemMatch,
        value: Option<String>,
    },
}

/// One alternative of a criterion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Id(String),
    LastUpdated(DateMatch),
    Token {
        param: String,
        system: SystemMatch,
        /// `None` for `system|` (any code in the system).
        code: Option<String>,
    },
    String {
        param: String,
        /// The normalised search value.
        norm: String,
        mode: StringMode,
    },
    Reference {
        param: String,
        target: RefTarget,
    },
    Date {
        param: String,
        value: DateMatch,
    },
    /// The reference `param` points to a `target_type` resource matching `criterion`.
    Chain {
        param: String,
        target_type: String,
        criterion: Box<Criterion>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    Id,
    LastUpdated,
    /// A date parameter, by the start of its (earliest) value.
    Date(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

/// `_include` (`reverse = false`: resources the matches reference through
/// `source_type:param`) or `_revinclude` (resources of `source_type` whose `param`
/// references a match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    pub reverse: bool,
    pub source_type: String,
    pub param: String,
    pub target_type: Option<String>,
}

/// What a first-page search runs.
#[derive(Debug, Clone)]
pub struct SearchSpec {
    pub resource_type: String,
    pub criteria: Vec<Criterion>,
    pub sort: Vec<Sort>,
    pub includes: Vec<Include>,
    /// Page size.
    pub count: usize,
    /// Whether to count all matches when there are more than the snapshot holds.
    pub accurate_total: bool,
    /// The canonical query, stored with the snapshot for later pages.
    pub query: String,
}

/// A page of search results.
#[derive(Debug, Clone)]
pub struct SearchPage {
    /// The snapshot holding the ordered matches, when there is more than one page.
    pub search_id: Option<String>,
    /// Position of the first entry within the snapshot.
    pub offset: usize,
    /// Matches held by the snapshot (at most [`SNAPSHOT_CAP`]).
    pub size: usize,
    /// The number of matches, when known.
    pub total: Option<u64>,
    /// There were more matches than [`SNAPSHOT_CAP`]; pages stop there.
    pub truncated: bool,
    pub matches: Vec<super::StoredVersion>,
    pub included: Vec<super::StoredVersion>,
}

/// A stored search snapshot's header.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    pub resource_type: String,
    pub query: String,
    pub size: usize,
    pub total: Option<u64>,
    /// A snapshot filled as its pages are read: the change clock its matches are read
    /// at (see [`crate::store::Tx::search_page`]). `None`: every entry is stored.
    pub as_of: Option<i64>,
}

impl SnapshotInfo {
    /// The search had more matches than the snapshot holds (the total is then unknown
    /// or larger than the size).
    pub fn truncated(&self) -> bool {
        self.total.is_none_or(|t| t > self.size as u64)
    }
}

/// Most matches a search snapshot holds; beyond that, paging stops and the Bundle says
/// so (refine the search). Ten thousand ids are cheap to hold and to write once.
pub const SNAPSHOT_CAP: usize = 10_000;

/// Snapshots older than this are gone (410); they are deleted when new ones are made.
pub const SNAPSHOT_TTL_MICROS: i64 = 3_600 * 1_000_000;
