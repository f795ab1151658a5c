//! The unit of work: one database transaction in which a request's writes, their index
//! rows and their audit records land together, or not at all.

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel::sql_types::Text;

use super::access::{Access, Visible};
use super::db::DbConnection;
use super::journal::AuditRow;
use super::query::Criterion;
use super::schema::{resource_versions, resources};
use super::types::{DeleteOutcome, IndexRows, Lookup, StoredVersion, UpdateOutcome};
use super::{index, search};
use crate::fhir::patient_of::patients_of;

pub(super) mod batch;
mod deferred;
mod error;
mod hook;
mod rows;
mod unit;

pub use error::{Failure, TxError, WriteError};
pub use hook::{Change, WriteHook};
pub(in crate::store) use unit::{run, LockWait, SQLITE_TAKE_WRITE_LOCK};

/// Operations inside one transaction.
pub struct Tx<'a> {
    pub(super) conn: &'a mut DbConnection,
    pub(super) access: &'a Access,
    /// The change-feed timestamp of this transaction's versions, once taken.
    pub(super) stamp: Option<i64>,
    /// Set for a read-only unit of work: audit records are collected here (for the
    /// journal), and search snapshots to store after it; other writes are refused
    /// with [`TxError::NeedsWriter`].
    pub(super) collected: Option<Collected>,
    /// What runs after each version this unit of work writes (the outbox).
    hook: Option<&'a dyn WriteHook>,
    /// Set by [`Tx::wake_after_commit`]: the hook's `committed` runs after the commit.
    wake: Option<&'a std::cell::Cell<bool>>,
    /// What the hook deferred to the end of this unit of work (see [`Tx::defer`]).
    deferred: Option<&'a std::cell::RefCell<BTreeSet<String>>>,
    /// The keys of [`Tx::lock`] this transaction holds (PostgreSQL), so a key is
    /// locked once (one round trip) however often the unit asks for it.
    locked: BTreeSet<String>,
}

/// What a read-only unit of work leaves to be written after it.
#[derive(Default)]
pub(in crate::store) struct Collected {
    /// Audit records, for the journal.
    pub audit: Vec<AuditRow>,
    /// First pages' search snapshots, to store (in a unit of work of their own) before
    /// the read answers.
    pub snapshots: Vec<search::NewSnapshot>,
}

/// An audit record's facts (FHIR AuditEvent action C/R/U/D/E).
pub struct AuditRecord<'a> {
    pub action: &'a str,
    pub interaction: &'a str,
    pub resource_type: &'a str,
    pub resource_id: Option<&'a str>,
    pub version_id: Option<i64>,
    pub outcome: &'a str,
}

pub(crate) fn now_micros() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

impl<'a> Tx<'a> {
    pub(super) fn new(
        conn: &'a mut DbConnection,
        access: &'a Access,
        hook: Option<&'a dyn WriteHook>,
    ) -> Self {
        Self {
            conn,
            access,
            stamp: None,
            collected: None,
            hook,
            wake: None,
            deferred: None,
            locked: BTreeSet::new(),
        }
    }

    /// The access this unit of work runs with.
    pub fn access(&self) -> &Access {
        self.access
    }

    /// Makes every statement of this (read) transaction see the same snapshot: a page
    /// of search results then shows the versions it was sorted by. SQLite's
    /// transactions always read one snapshot; PostgreSQL's default (read committed)
    /// takes one per statement, so the read asks for repeatable read, as its first
    /// statement.
    pub(super) fn one_snapshot(&mut self) -> Result<(), TxError> {
        if let DbConnection::Postgres(pg) = &mut *self.conn {
            use diesel::connection::SimpleConnection;
            pg.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")?;
        }
        Ok(())
    }

    /// Refuses a write in a read-only unit of work.
    pub(super) fn writing(&self) -> Result<(), TxError> {
        match self.collected {
            Some(_) => Err(TxError::NeedsWriter),
            None => Ok(()),
        }
    }
}

impl Tx<'_> {
    /// Serialises units of work that use the same key until this transaction ends
    /// (conditional creates on the same criteria, replays of one request id).
    /// SQLite needs nothing: its writers are already serialised.
    pub fn lock(&mut self, key: &str) -> Result<(), TxError> {
        if let DbConnection::Postgres(pg) = &mut *self.conn {
            if self.locked.contains(key) {
                return Ok(());
            }
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind::<Text, _>(key)
                .execute(pg)?;
            self.locked.insert(key.to_owned());
        }
        Ok(())
    }

    /// Whether this transaction holds `key` (taken with [`Tx::lock`] on PostgreSQL).
    pub(crate) fn holds(&self, key: &str) -> bool {
        self.locked.contains(key)
    }

    /// The audit record of an access, written in this transaction (or, in a read-only
    /// unit of work, collected for the journal). A Patient is its own patient; an
    /// access that concerns other patients names them with [`Tx::audit_about`].
    pub fn audit(&mut self, rec: AuditRecord<'_>) -> Result<(), TxError> {
        let patients = if rec.resource_type == "Patient" {
            patients_of("Patient", rec.resource_id, None)
        } else {
            Vec::new()
        };
        self.audit_about(rec, patients)
    }

    /// The audit record of an access that concerns `patients` (`Patient/<id>`).
    pub fn audit_about(
        &mut self,
        rec: AuditRecord<'_>,
        mut patients: Vec<String>,
    ) -> Result<(), TxError> {
        patients.sort();
        patients.dedup();
        let row = AuditRow {
            recorded: now_micros(),
            request_id: self.access.request_id.clone(),
            actor: self.access.actor.clone(),
            action: rec.action.to_owned(),
            interaction: rec.interaction.to_owned(),
            resource_type: rec.resource_type.to_owned(),
            resource_id: rec.resource_id.map(str::to_owned),
            version_id: rec.version_id,
            outcome: rec.outcome.to_owned(),
            organization: self.access.organization.clone(),
            patients,
        };
        match &mut self.collected {
            Some(collected) => collected.audit.push(row),
            None => AuditRow::insert(std::slice::from_ref(&row), self.conn)?,
        }
        Ok(())
    }

    /// Whether the read scope lets this unit of work see `ty/id`.
    pub fn visible(&mut self, ty: &str, id: &str) -> Result<bool, TxError> {
        self.settle_for_scope()?;
        Ok(match self.access.scope.of(ty) {
            Visible::All => true,
            Visible::Nothing => false,
            Visible::Matching(criteria) => {
                let mut all = criteria.to_vec();
                all.push(Criterion::Any(vec![super::query::Match::Id(id.to_owned())]));
                !search::find_ids(self.conn, ty, &all)?.is_empty()
            }
        })
    }

    /// Runs `f` in a savepoint: its writes are undone if it fails, the enclosing
    /// transaction goes on (batch entries).
    pub fn savepoint<T, E>(
        &mut self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, Failure<E>>,
    ) -> Result<T, Failure<E>> {
        let (access, hook, wake, deferred) = (self.access, self.hook, self.wake, self.deferred);
        // Deferred work settled inside a savepoint that rolls back is undone with it,
        // so what was deferred before it is deferred again.
        let deferred_before = deferred.map(|d| d.borrow().clone());
        let mut collected = self.collected.take();
        // A rolled-back savepoint also undoes (and on PostgreSQL unlocks) a stamp taken
        // inside it: only a committed savepoint's stamp is kept.
        let mut stamp = self.stamp;
        // Locks taken inside a savepoint that rolls back are released with it.
        let mut locked = self.locked.clone();
        let result = self.conn.transaction(|c| {
            let mut inner = Tx {
                conn: c,
                access,
                stamp,
                collected: collected.take(),
                hook,
                // A rolled-back savepoint's wake-up is harmless: the worker finds nothing.
                wake,
                deferred,
                locked: std::mem::take(&mut locked),
            };
            let result = f(&mut inner);
            stamp = inner.stamp;
            locked = std::mem::take(&mut inner.locked);
            collected = inner.collected;
            result
        });
        if result.is_ok() {
            self.stamp = stamp;
            self.locked = locked;
        } else if let (Some(d), Some(before)) = (deferred, deferred_before) {
            d.borrow_mut().extend(before);
        }
        self.collected = collected;
        result
    }

    /// The current version number and deleted flag.
    fn head(&mut self, ty: &str, id: &str) -> Result<Option<(i64, bool)>, TxError> {
        Ok(rows::head(self.conn, ty, id)?)
    }

    /// Whether the resource exists and is not deleted (reads no body).
    pub fn exists(&mut self, ty: &str, id: &str) -> Result<bool, TxError> {
        Ok(matches!(self.head(ty, id)?, Some((_, false))))
    }

    /// The latest version (a deletion has no body), if the resource ever existed.
    pub fn current(&mut self, ty: &str, id: &str) -> Result<Option<StoredVersion>, TxError> {
        Ok(rows::current(self.conn, ty, id)?)
    }

    /// Version `version_id` of a resource, read for the server's own use (no audit
    /// record: the caller is a write's own bookkeeping, not a client's read).
    pub fn version_of(
        &mut self,
        ty: &str,
        id: &str,
        version_id: i64,
    ) -> Result<Option<StoredVersion>, TxError> {
        Ok(rows::version(self.conn, ty, id, version_id)?)
    }

    /// Whether the database holds any resource at all (live or deleted).
    pub fn has_resources(&mut self) -> Result<bool, TxError> {
        let one: Option<String> = resources::table
            .select(resources::id)
            .first(self.conn)
            .optional()?;
        Ok(one.is_some())
    }

    /// The current bodies of every live resource of `ty` (small types only: the
    /// directory's services and organisations).
    pub fn current_of_type(&mut self, ty: &str) -> Result<Vec<StoredVersion>, TxError> {
        Ok(rows::heads_with_bodies(self.conn, ty, None)?)
    }

    /// `(id, version, lastUpdated)` of every live resource of `ty`, by id; with `ids`,
    /// of those only. Reads no body: what a cache of their contents checks.
    pub fn heads_of_type(
        &mut self,
        ty: &str,
        ids: Option<&[String]>,
    ) -> Result<Vec<(String, i64, i64)>, TxError> {
        let mut query = resources::table
            .filter(resources::resource_type.eq(ty))
            .filter(resources::deleted.eq(false))
            .order(resources::id)
            .select((
                resources::id,
                resources::version_id,
                resources::last_updated,
            ))
            .into_boxed::<super::db::MultiBackend>();
        if let Some(ids) = ids {
            query = query.filter(resources::id.eq_any(ids.to_vec()));
        }
        Ok(query.load(self.conn)?)
    }

    /// Read (`version = None`) or vread inside the unit of work.
    pub fn read(&mut self, ty: &str, id: &str, version_id: Option<i64>) -> Result<Lookup, TxError> {
        // A resource outside the read scope does not exist for this reader.
        let (v, lookup) = if self.visible(ty, id)? {
            let found = match version_id {
                Some(v) => rows::version(self.conn, ty, id, v)?,
                None => rows::current(self.conn, ty, id)?,
            };
            let v = found.as_ref().map(|f| f.version_id).or(version_id);
            let lookup = match found {
                None => Lookup::NotFound,
                Some(found) if found.body.is_none() => Lookup::Deleted(found),
                Some(found) => Lookup::Found(found),
            };
            (v, lookup)
        } else {
            (version_id, Lookup::NotFound)
        };
        let patients = match &lookup {
            Lookup::Found(found) => patients_of(ty, Some(id), found.body.as_deref()),
            _ => patients_of(ty, Some(id), None),
        };
        self.audit_about(
            AuditRecord {
                action: "R",
                interaction: if version_id.is_some() {
                    "vread"
                } else {
                    "read"
                },
                resource_type: ty,
                resource_id: Some(id),
                version_id: v,
                outcome: match &lookup {
                    Lookup::Found(_) => "success",
                    Lookup::Deleted(_) => "gone",
                    Lookup::NotFound => "not-found",
                },
            },
            patients,
        )?;
        Ok(lookup)
    }

    /// Ids of current resources of `ty` matching all criteria: the search engine's
    /// matching, inside this unit of work (conditional create, update and delete).
    pub fn find_ids(
        &mut self,
        ty: &str,
        criteria: &[Criterion],
    ) -> Result<BTreeSet<String>, TxError> {
        Ok(search::find_ids(self.conn, ty, criteria)?)
    }

    fn insert_version(
        &mut self,
        v: &StoredVersion,
        method: &str,
        rows: Option<Option<&IndexRows>>,
    ) -> Result<(), TxError> {
        diesel::insert_into(resource_versions::table)
            .values((
                resource_versions::resource_type.eq(&v.resource_type),
                resource_versions::id.eq(&v.id),
                resource_versions::version_id.eq(v.version_id),
                resource_versions::last_updated.eq(v.last_updated),
                resource_versions::method.eq(method),
                resource_versions::body.eq(&v.body),
            ))
            .execute(self.conn)?;
        // `None`: the index rows are written already.
        if let Some(rows) = rows {
            index::replace_rows(self.conn, &v.resource_type, &v.id, rows)?;
        }
        Ok(())
    }

    fn set_head(
        &mut self,
        ty: &str,
        id: &str,
        expected: i64,
        at: i64,
        deleted: bool,
    ) -> Result<(), TxError> {
        let changed = diesel::update(
            resources::table
                .filter(resources::resource_type.eq(ty))
                .filter(resources::id.eq(id))
                .filter(resources::version_id.eq(expected)),
        )
        .set((
            resources::version_id.eq(expected + 1),
            resources::last_updated.eq(at),
            resources::deleted.eq(deleted),
        ))
        .execute(self.conn)?;
        if changed == 0 {
            return Err(TxError::Retry);
        }
        Ok(())
    }

    fn insert_head(&mut self, ty: &str, id: &str, at: i64) -> Result<(), TxError> {
        diesel::insert_into(resources::table)
            .values((
                resources::resource_type.eq(ty),
                resources::id.eq(id),
                resources::version_id.eq(1_i64),
                resources::last_updated.eq(at),
                resources::deleted.eq(false),
            ))
            .execute(self.conn)?;
        Ok(())
    }

    /// Version 1 of a new resource, its body `render(1, stamp)`.
    pub fn create(
        &mut self,
        ty: &str,
        id: &str,
        render: &dyn Fn(i64, i64) -> String,
        rows: &IndexRows,
    ) -> Result<StoredVersion, TxError> {
        // A new resource has no index rows to replace, and they do not depend on the
        // stamp: written before it, they keep the change clock's serialised stretch
        // (stamp to commit) short.
        self.writing()?;
        index::insert_rows(self.conn, ty, id, rows)?;
        let at = self.stamp()?;
        self.insert_head(ty, id, at)?;
        let body = render(1, at);
        let stored = StoredVersion {
            resource_type: ty.to_owned(),
            id: id.to_owned(),
            version_id: 1,
            last_updated: at,
            body: Some(body),
        };
        self.insert_version(&stored, "POST", None)?;
        self.after_write(&stored, Change::Create)?;
        Ok(stored)
    }

    /// A new version with the body `render(version_id, stamp)`; creates the resource
    /// when it does not exist and `allow_create` (update-as-create).
    pub fn update(
        &mut self,
        ty: &str,
        id: &str,
        render: &dyn Fn(i64, i64) -> String,
        rows: &IndexRows,
        if_match: Option<i64>,
        allow_create: bool,
    ) -> Result<UpdateOutcome, TxError> {
        let head = self.head(ty, id)?;
        match head {
            None if if_match.is_some() || !allow_create => return Ok(UpdateOutcome::NotFound),
            Some((v, _)) if if_match.is_some_and(|expected| expected != v) => {
                return Ok(UpdateOutcome::VersionMismatch { current: v });
            }
            _ => {}
        }
        let at = self.stamp()?;
        let (new_version, created) = match head {
            None => {
                self.insert_head(ty, id, at)?;
                (1, true)
            }
            Some((v, _)) => {
                self.set_head(ty, id, v, at, false)?;
                (v + 1, false)
            }
        };
        let stored = StoredVersion {
            resource_type: ty.to_owned(),
            id: id.to_owned(),
            version_id: new_version,
            last_updated: at,
            body: Some(render(new_version, at)),
        };
        self.insert_version(&stored, "PUT", Some(Some(rows)))?;
        let change = if created {
            Change::UpdateAsCreate
        } else {
            Change::Update
        };
        self.after_write(&stored, change)?;
        Ok(if created {
            UpdateOutcome::Created(stored)
        } else {
            UpdateOutcome::Updated(stored)
        })
    }

    /// Soft delete: a new version without body.
    pub fn delete(
        &mut self,
        ty: &str,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<DeleteOutcome, TxError> {
        let Some((v, deleted)) = self.head(ty, id)? else {
            return Ok(DeleteOutcome::NotFound);
        };
        if let Some(expected) = if_match {
            if expected != v {
                return Ok(DeleteOutcome::VersionMismatch { current: v });
            }
        }
        if deleted {
            return Ok(DeleteOutcome::AlreadyDeleted);
        }
        let at = self.stamp()?;
        self.set_head(ty, id, v, at, true)?;
        let stored = StoredVersion {
            resource_type: ty.to_owned(),
            id: id.to_owned(),
            version_id: v + 1,
            last_updated: at,
            body: None,
        };
        self.insert_version(&stored, "DELETE", Some(None))?;
        self.after_write(&stored, Change::Delete)?;
        Ok(DeleteOutcome::Deleted { version_id: v + 1 })
    }
}

/// A read-only unit of work (SQLite): one transaction that writes nothing; its audit
/// records and search snapshots are returned, to be written after it.
pub(super) fn run_read_only<T>(
    conn: &mut DbConnection,
    access: &Access,
    f: &dyn Fn(&mut Tx<'_>) -> Result<T, TxError>,
) -> Result<(T, Collected), TxError> {
    conn.transaction::<_, TxError, _>(|c| {
        let mut tx = Tx::new(c, access, None);
        tx.collected = Some(Collected::default());
        let value = f(&mut tx)?;
        Ok((value, tx.collected.take().unwrap_or_default()))
    })
}
