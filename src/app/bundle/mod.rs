//! POST /fhir: transaction and batch Bundles (http.html#transaction).
//!
//! A transaction is one unit of work: entries run in the spec's order (DELETE, POST,
//! PUT, GET), `urn:uuid:` fullUrls are resolved to the assigned ids in every
//! reference, and any failing entry rolls everything back with an OperationOutcome
//! naming the entry. A batch runs each entry in its own savepoint.

mod patch;
mod response;
mod search;
mod target;
mod unchanged;

use std::collections::{HashMap, HashSet};

use self::response::{response, Done, Results};
use self::target::{decide_target, delete};
use crate::app::error::{AppError, ErrorKind};
use crate::app::principal::Principal;
use crate::app::reply::{self, status, Reply, ReturnPref};
use crate::app::resources::{
    check_body_id, check_valid, logical_id, parse_etag, resource_def, WriteRequest,
};
use crate::app::routing::route_created;
use crate::app::workflow::{check_task_create, check_task_delete, update_task, Workflow};
use crate::app::write::{check_references, run_write};
use crate::app::App;
use crate::fhir::criteria::parse_criteria;
use crate::fhir::index::index_rows;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::references::{local_references, reference_strings};
use crate::fhir::registry::ResourceDef;
use crate::fhir::resource::IncomingResource;
use crate::fhir::transaction::{self, BundleKind, EntryRequest, Method, Target};
use crate::fhir::validate::validate_resource;
use crate::store::{conditional_lock_key, Criterion, Failure, Lookup, Tx, UpdateOutcome};

/// An entry checked before the unit of work starts.
#[derive(Clone)]
struct Prepared {
    req: EntryRequest,
    def: &'static ResourceDef,
    /// `ifNoneExist` (POST) or the criteria of `Type?criteria` (PUT/DELETE).
    criteria: Option<Vec<Criterion>>,
    if_match: Option<i64>,
    /// The patch of a PATCH entry.
    patch: Option<crate::fhir::patch::PatchDoc>,
}

/// Runs a transaction or batch Bundle posted to the base: one unit of work (with
/// `X-Request-Id` replay), Task entries under the workflow rules.
pub async fn post(
    app: &App,
    principal: &Principal,
    incoming: &IncomingResource,
    raw: &[u8],
    req: WriteRequest,
) -> Result<Reply, AppError> {
    let plan = Plan::new(&incoming.value, raw, app.max_bundle_entries)?;
    plan.require(principal)?;
    let wf = Workflow::new(app, principal);
    let (base, pref) = (req.base, req.pref);
    run_write(app, principal, req.idempotency, move |tx| {
        plan.run(tx, &base, pref, Some(&wf))
    })
    .await
}

/// A transaction or batch Bundle checked as far as it can be without the database.
#[derive(Clone)]
pub struct Plan {
    kind: BundleKind,
    prepared: Vec<Prepared>,
    early_failures: HashMap<usize, AppError>,
    /// Entries left out by [`Plan::without_unchanged`], answered with the stored version.
    unchanged: HashMap<usize, crate::store::StoredVersion>,
}

impl Plan {
    /// `resource` is the parsed Bundle, `raw` its bytes (entries are taken from the raw
    /// text so each stored resource keeps the client's bytes).
    pub fn new(
        resource: &serde_json::Value,
        raw: &[u8],
        max_entries: usize,
    ) -> Result<Self, AppError> {
        let entries = resource
            .get("entry")
            .and_then(serde_json::Value::as_array)
            .map_or(0, Vec::len);
        if entries > max_entries {
            return Err(AppError::one(
                ErrorKind::TooLarge,
                Issue::error(
                    IssueCode::TooLong,
                    format!(
                        "The Bundle has {entries} entries; this server takes at most {max_entries} per transaction or batch: split it"
                    ),
                )
                .at("Bundle.entry"),
            ));
        }
        // The Bundle's own structure; each entry's resource is validated on its own in
        // `prepare`, so a batch can fail one entry and go on with the others.
        let mut shell = resource.clone();
        if let Some(entries) = shell.get_mut("entry").and_then(|e| e.as_array_mut()) {
            for entry in entries.iter_mut().filter_map(|e| e.as_object_mut()) {
                if entry.remove("resource").is_some_and(|r| !r.is_object()) {
                    return Err(AppError::bad_request(
                        IssueCode::Structure,
                        "Bundle.entry.resource must be a resource (a JSON object)",
                    ));
                }
            }
        }
        let issues = validate_resource("Bundle", &shell);
        if issues.iter().any(Issue::is_error) {
            return Err(AppError::invalid(issues));
        }
        let (kind, entries) = transaction::parse(raw).map_err(AppError::invalid)?;
        let mut prepared = Vec::with_capacity(entries.len());
        let mut early_failures = HashMap::new();
        for entry in entries {
            match prepare(entry.clone()) {
                Ok(p) => prepared.push(p),
                Err(e) if kind == BundleKind::Batch => {
                    early_failures.insert(entry.index, e);
                }
                Err(e) => return Err(e),
            }
        }
        check_full_urls(&prepared)?;
        Ok(Self {
            kind,
            prepared,
            early_failures,
            unchanged: HashMap::new(),
        })
    }

    /// The resource type each entry acts on, by entry index.
    pub fn entry_types(&self) -> impl Iterator<Item = (usize, &'static str)> + '_ {
        self.prepared.iter().map(|p| (p.req.index, p.def.name))
    }

    /// Refuses (403, naming the entry) a Bundle with an entry the token's scopes do
    /// not grant.
    pub fn require(&self, principal: &Principal) -> Result<(), AppError> {
        use crate::app::access::{require, Need};
        for p in &self.prepared {
            let need = match (&p.req.method, &p.req.target) {
                (Method::Post, _) => Need::Create,
                (Method::Put | Method::Patch, _) => Need::Update,
                (Method::Delete, _) => Need::Delete,
                (Method::Get, Target::Instance { .. }) => Need::Read,
                (Method::Get, _) => Need::Search,
            };
            require(principal, p.def.name, need).map_err(|e| entry_error(p.req.index, e))?;
        }
        Ok(())
    }

    pub fn is_transaction(&self) -> bool {
        self.kind == BundleKind::Transaction
    }

    /// Runs the entries in this unit of work and builds the response Bundle. Updates of
    /// existing Tasks follow the workflow rules of `wf`; without it they are refused.
    pub fn run(
        &self,
        tx: &mut Tx<'_>,
        base: &str,
        pref: ReturnPref,
        wf: Option<&Workflow>,
    ) -> Result<Reply, Failure<AppError>> {
        let total = self.prepared.len() + self.early_failures.len() + self.unchanged.len();
        let mut results = execute(tx, self.kind, &self.prepared, base, wf)?;
        for (index, v) in &self.unchanged {
            results.insert(*index, Ok(Done::Version(status::OK, v.clone())));
        }
        for (index, err) in &self.early_failures {
            results.insert(*index, Err(err.clone()));
        }
        Ok(response(self.kind, total, results, base, pref))
    }
}

/// Per-entry checks that need no database: type, validation, ids, criteria.
fn prepare(req: EntryRequest) -> Result<Prepared, AppError> {
    let index = req.index;
    let def = resource_def(req.target.resource_type()).map_err(|e| entry_error(index, e))?;
    let fail = |e: AppError| entry_error(index, e);
    if def.name == "Bundle" && req.method != Method::Get {
        return Err(fail(AppError::bad_request(
            IssueCode::NotSupported,
            "Documents are stored only by POST /fhir/Bundle, never as Bundle entries",
        )));
    }
    if let Target::Instance { id, .. } = &req.target {
        logical_id(id).map_err(fail)?;
    }
    let if_match = match &req.if_match {
        None => None,
        Some(raw) => Some(parse_etag(raw).ok_or_else(|| {
            fail(AppError::bad_request(
                IssueCode::Invalid,
                "ifMatch must be a version ETag such as W/\"3\"",
            ))
        })?),
    };
    let criteria_of = |query: &str| {
        parse_criteria(def, query, &[]).map_err(|issue| fail(AppError::invalid(vec![issue])))
    };
    let criteria = match (&req.method, &req.target, &req.if_none_exist) {
        (Method::Post, Target::Type(_), Some(q)) => Some(criteria_of(q)?),
        (Method::Post, Target::Type(_), None) => None,
        (Method::Put | Method::Delete, Target::Conditional { query, .. }, _) => {
            Some(criteria_of(query)?)
        }
        (Method::Put | Method::Delete | Method::Get, Target::Instance { .. }, _) => None,
        (Method::Patch, Target::Instance { version: None, .. }, _) => None,
        // A search (http.html#transaction): parameters checked now, run after the writes.
        (Method::Get, Target::Type(_), _) => None,
        (Method::Get, Target::Conditional { query, .. }, _) => {
            search::check(def, query).map_err(fail)?;
            None
        }
        _ => {
            return Err(fail(AppError::bad_request(
                IssueCode::NotSupported,
                "This combination of method and url is not supported in a Bundle",
            )))
        }
    };
    if matches!(&criteria, Some(c) if c.is_empty()) {
        return Err(fail(AppError::bad_request(
            IssueCode::Required,
            "Conditional entries need search criteria",
        )));
    }
    let patch = match req.method {
        Method::Patch => Some(patch::prepare(def, &req).map_err(fail)?),
        _ => None,
    };
    if let Some(text) = req.resource.as_ref().filter(|_| patch.is_none()) {
        let resource = IncomingResource::parse(text.as_bytes())
            .map_err(|issue| fail(AppError::invalid(vec![issue])))?;
        check_valid(def.name, &resource.value).map_err(fail)?;
        crate::app::subscriptions::no_secret_in_bundle(def.name, &resource.value).map_err(fail)?;
        if let (Method::Put, Target::Instance { id, .. }) = (&req.method, &req.target) {
            check_body_id(def.name, id, &resource.value).map_err(fail)?;
        }
    }
    Ok(Prepared {
        req,
        def,
        criteria,
        if_match,
        patch,
    })
}

fn check_full_urls(entries: &[Prepared]) -> Result<(), AppError> {
    let mut seen = HashSet::new();
    for e in entries {
        if let Some(url) = &e.req.full_url {
            if !seen.insert(url.as_str()) {
                return Err(entry_error(
                    e.req.index,
                    AppError::bad_request(IssueCode::Duplicate, "Duplicate fullUrl in the Bundle"),
                ));
            }
        }
    }
    Ok(())
}

/// Names the entry in every issue: expressions move under `Bundle.entry[i]`.
fn entry_error(index: usize, mut err: AppError) -> AppError {
    for issue in &mut err.issues {
        issue.diagnostics = format!("Bundle.entry[{index}]: {}", issue.diagnostics);
        issue.expression = Some(match issue.expression.take() {
            None => format!("Bundle.entry[{index}]"),
            // Request headers: If-Match is the entry's ifMatch; the others (the acting
            // party) belong to the whole Bundle request.
            Some(e) if e == "If-Match" => format!("Bundle.entry[{index}].request.ifMatch"),
            Some(e) if e.starts_with("X-") => e,
            Some(e) if e.starts_with(|c: char| c.is_ascii_uppercase()) => {
                let rest = e.find(['.', '[']).map_or("", |p| &e[p..]);
                format!("Bundle.entry[{index}].resource{rest}")
            }
            Some(e) => format!("Bundle.entry[{index}].request.{e}"),
        });
    }
    err
}

/// Runs the entries; a transaction stops at the first failure, a batch records it.
fn execute(
    tx: &mut Tx<'_>,
    kind: BundleKind,
    entries: &[Prepared],
    base: &str,
    wf: Option<&Workflow>,
) -> Result<Results, Failure<AppError>> {
    let mut order: Vec<&Prepared> = entries.iter().collect();
    order.sort_by_key(|e| e.req.method);
    // Conditional creates and updates lock their criteria (those that need it, see
    // `Tx::conditional_ids`); take all those locks first, sorted, so concurrent Bundles
    // never hold them in opposite orders.
    let mut keys = Vec::new();
    for e in entries {
        if let (Method::Post | Method::Put, Some(criteria)) = (&e.req.method, &e.criteria) {
            if tx.needs_conditional_lock(e.def.name, criteria)? {
                keys.push(conditional_lock_key(e.def.name, criteria));
            }
        }
    }
    tx.lock_in_order(keys)?;
    let mut results = Results::new();
    // Where each entry writes: (type, id), decided before anything is written so
    // references between entries can be resolved.
    let mut targets: HashMap<usize, (String, bool)> = HashMap::new();
    let mut aliases: HashMap<String, String> = HashMap::new();
    let record = |results: &mut Results,
                  index: usize,
                  outcome: Result<Done, Failure<AppError>>|
     -> Result<(), Failure<AppError>> {
        match outcome {
            Ok(done) => {
                results.insert(index, Ok(done));
                Ok(())
            }
            Err(Failure::Abort(e)) if kind == BundleKind::Batch => {
                results.insert(index, Err(entry_error(index, e)));
                Ok(())
            }
            Err(Failure::Abort(e)) => Err(Failure::Abort(entry_error(index, e))),
            Err(other) => Err(other),
        }
    };
    for e in &order {
        let index = e.req.index;
        let outcome = match e.req.method {
            Method::Delete => in_entry(tx, kind, |tx| {
                if e.def.name == "Task" {
                    check_task_delete(wf.and_then(|w| w.party.as_ref())).map_err(Failure::Abort)?;
                }
                delete(tx, e)
            }),
            Method::Post | Method::Put => match in_entry(tx, kind, |tx| decide_target(tx, e)) {
                Ok(((id, created), None)) => {
                    if let Some(url) = &e.req.full_url {
                        aliases.insert(url.clone(), format!("{}/{id}", e.def.name));
                    }
                    targets.insert(index, (id, created));
                    continue;
                }
                Ok((_, Some(done))) => {
                    // A conditional create that matched: references to its fullUrl
                    // resolve to the existing resource.
                    if let (Some(url), Done::Version(_, v)) = (&e.req.full_url, &done) {
                        aliases.insert(url.clone(), format!("{}/{}", e.def.name, v.id));
                    }
                    Ok(done)
                }
                Err(err) => Err(err),
            },
            // After every write, below.
            Method::Get => continue,
            // Patched with the PUTs, once every entry's id is known.
            Method::Patch => {
                if let Target::Instance { id, .. } = &e.req.target {
                    targets.insert(index, (id.clone(), false));
                }
                continue;
            }
        };
        record(&mut results, index, outcome)?;
    }
    let pending: HashSet<(String, String)> = order
        .iter()
        .filter_map(|e| {
            targets
                .get(&e.req.index)
                .map(|(id, _)| (e.def.name.to_owned(), id.clone()))
        })
        .collect();
    let writing = Writing {
        aliases: &aliases,
        pending: &pending,
        base,
        wf,
    };
    // Referrals are routed once every entry is written (their Patient may come later
    // in the Bundle); in a batch, each with its own entry.
    let mut to_route = Vec::new();
    for e in &order {
        let Some((id, created)) = targets.get(&e.req.index) else {
            continue;
        };
        let outcome = in_entry(tx, kind, |tx| {
            let done = match e.req.method {
                Method::Patch => patch::write(tx, e, id, &writing)?,
                _ => write(tx, e, id, *created, &writing)?,
            };
            if let Some(sr) = created_referral(&done) {
                match kind {
                    BundleKind::Batch => route_created(tx, id, &sr, base)?,
                    BundleKind::Transaction => to_route.push((e.req.index, id.clone(), sr)),
                }
            }
            Ok(done)
        });
        record(&mut results, e.req.index, outcome)?;
    }
    for (index, id, sr) in to_route {
        route_created(tx, &id, &sr, base).map_err(|f| match f {
            Failure::Abort(e) => Failure::Abort(entry_error(index, e)),
            other => other,
        })?;
    }
    // GET entries last, as the spec orders them (DELETE, POST, PUT, GET): they read
    // what this Bundle wrote, the Tasks its referrals were routed to included.
    for e in order.iter().filter(|e| e.req.method == Method::Get) {
        let outcome = in_entry(tx, kind, |tx| get(tx, e, &aliases, base));
        record(&mut results, e.req.index, outcome)?;
    }
    Ok(results)
}

/// The body of a ServiceRequest this entry created.
fn created_referral(done: &Done) -> Option<serde_json::Value> {
    match done {
        Done::Version(status::CREATED, v) if v.resource_type == "ServiceRequest" => {
            v.body.as_deref().and_then(|b| serde_json::from_str(b).ok())
        }
        _ => None,
    }
}

/// Runs one entry: directly in a transaction, in a savepoint in a batch.
fn in_entry<T>(
    tx: &mut Tx<'_>,
    kind: BundleKind,
    f: impl FnOnce(&mut Tx<'_>) -> Result<T, Failure<AppError>>,
) -> Result<T, Failure<AppError>> {
    match kind {
        BundleKind::Transaction => f(tx),
        BundleKind::Batch => tx.savepoint(f),
    }
}

/// What the writes of a Bundle share: the ids its entries resolve to.
struct Writing<'a> {
    /// `urn:uuid:` fullUrls and the `Type/id` each entry was given.
    aliases: &'a HashMap<String, String>,
    /// The resources the Bundle writes (references to them need not exist yet).
    pending: &'a HashSet<(String, String)>,
    base: &'a str,
    wf: Option<&'a Workflow>,
}

/// Resolves `urn:uuid` references, checks references, and writes the entry.
fn write(
    tx: &mut Tx<'_>,
    e: &Prepared,
    id: &str,
    created: bool,
    w: &Writing<'_>,
) -> Result<Done, Failure<AppError>> {
    let Writing {
        aliases,
        pending,
        base,
        wf,
    } = *w;
    let ty = e.def.name;
    let text = transaction::replace_string_literals(
        e.req.resource.as_deref().unwrap_or_default(),
        aliases,
    );
    let resource = IncomingResource::parse(text.as_bytes())
        .map_err(|issue| Failure::Abort(AppError::invalid(vec![issue])))?;
    if let Some((path, r)) = reference_strings(ty, &resource.value)
        .into_iter()
        .find(|(_, r)| r.starts_with("urn:uuid:"))
    {
        return Err(Failure::Abort(AppError::invalid(vec![Issue::error(
            IssueCode::NotFound,
            format!("Reference '{r}' names no entry of this Bundle"),
        )
        .at(path)])));
    }
    let refs = local_references(ty, &resource.value, base);
    let pending = |t: &str, i: &str| pending.contains(&(t.to_owned(), i.to_owned()));
    if ty == "Task" {
        let Some(wf) = wf else {
            return Err(Failure::Abort(AppError::bad_request(
                IssueCode::NotSupported,
                "Tasks are not written here",
            )));
        };
        if created {
            check_task_create(tx, wf, &resource, base)?;
        } else {
            let checks = |tx: &mut Tx<'_>| check_references(tx, &refs, &pending);
            if let Some(v) = update_task(tx, wf, id, &resource, e.if_match, base, checks)? {
                return Ok(Done::Version(status::OK, v));
            }
        }
    }
    check_references(tx, &refs, &pending)?;
    let rows = index_rows(e.def, &resource.value);
    if created {
        let v = tx.create(ty, id, &|v, at| resource.render(id, v, at), &rows)?;
        return Ok(Done::Version(status::CREATED, v));
    }
    let render = |v, at| resource.render(id, v, at);
    match tx.update(ty, id, &render, &rows, e.if_match, true)? {
        UpdateOutcome::Updated(v) => Ok(Done::Version(status::OK, v)),
        UpdateOutcome::Created(v) => Ok(Done::Version(status::CREATED, v)),
        UpdateOutcome::NotFound => Err(Failure::Abort(AppError::precondition_failed(format!(
            "ifMatch was given but {ty}/{id} does not exist"
        )))),
        UpdateOutcome::VersionMismatch { current } => {
            Err(Failure::Abort(AppError::precondition_failed(format!(
                "ifMatch does not match the current version of {ty}/{id}, which is {}",
                reply::etag(current)
            ))))
        }
    }
}

/// A read, vread or search entry.
fn get(
    tx: &mut Tx<'_>,
    e: &Prepared,
    aliases: &HashMap<String, String>,
    base: &str,
) -> Result<Done, Failure<AppError>> {
    let (id, version) = match &e.req.target {
        Target::Instance { id, version, .. } => (id, version),
        Target::Type(_) => return Ok(Done::Search(search::run(tx, e.def, "", aliases, base)?)),
        Target::Conditional { query, .. } => {
            return Ok(Done::Search(search::run(tx, e.def, query, aliases, base)?))
        }
    };
    let ty = e.def.name;
    let lookup = match version {
        None => tx.read(ty, id, None)?,
        Some(v) => match v.parse::<i64>() {
            Ok(v) => tx.read(ty, id, Some(v))?,
            Err(_) => Lookup::NotFound,
        },
    };
    match lookup {
        Lookup::Found(v) => Ok(Done::Read(v)),
        Lookup::Deleted(_) => Err(Failure::Abort(AppError::gone(format!(
            "{ty}/{id} was deleted"
        )))),
        Lookup::NotFound => Err(Failure::Abort(AppError::not_found(format!(
            "{ty}/{id} does not exist"
        )))),
    }
}
