//! The after-write hook: what every version written brings with it in its own unit of
//! work (the audit record, and what the application registers: the notification
//! outbox).

use super::{AuditRecord, Tx, TxError};
use crate::fhir::patient_of::patients_of;
use crate::store::types::StoredVersion;

/// Side effects of writes that live outside the store (the notification outbox): the
/// application registers one with [`crate::store::Store::with_hook`]. `after_write` runs in the
/// unit of work of every version written, after its audit record, so what it writes
/// commits with the version or not at all.
pub trait WriteHook: Send + Sync {
    fn after_write(
        &self,
        tx: &mut Tx<'_>,
        written: &StoredVersion,
        change: Change,
    ) -> Result<(), TxError>;
    /// Runs the work `after_write` deferred with [`Tx::defer`], each key once: before
    /// the unit of work commits, or earlier (see [`Tx::settle_deferred`]).
    fn settle(
        &self,
        tx: &mut Tx<'_>,
        keys: std::collections::BTreeSet<String>,
    ) -> Result<(), TxError> {
        let _ = (tx, keys);
        Ok(())
    }
    /// A unit of work in which `after_write` called [`Tx::wake_after_commit`] committed.
    fn committed(&self);
}

/// What a write did to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Create,
    /// `PUT` of a resource that did not exist.
    UpdateAsCreate,
    Update,
    Delete,
}

impl Tx<'_> {
    /// The patients version `version_id` of `ty/id` concerns (its body read for it,
    /// unless it is a Patient); none when the version is unknown.
    pub fn patients_of_version(
        &mut self,
        ty: &str,
        id: &str,
        version_id: i64,
    ) -> Result<Vec<String>, TxError> {
        if ty == "Patient" {
            return Ok(patients_of(ty, Some(id), None));
        }
        let body = super::rows::version(self.conn, ty, id, version_id)?.and_then(|v| v.body);
        Ok(patients_of(ty, Some(id), body.as_deref()))
    }

    /// Asks for the hook's `committed` once this unit of work has committed (the
    /// delivery worker wakes up for the events just written).
    pub fn wake_after_commit(&self) {
        if let Some(wake) = self.wake {
            wake.set(true);
        }
    }

    /// The after-write hook: the side-effect rows of a version just written, in the
    /// same transaction, so they commit with it or not at all. Every version passes
    /// here (create, update, delete; from requests, Bundles, routing, the workflow and
    /// jobs): the audit record, then the registered [`WriteHook`] (the notification
    /// outbox; statistics projections belong there too).
    pub(super) fn after_write(&mut self, v: &StoredVersion, change: Change) -> Result<(), TxError> {
        let (action, interaction) = match change {
            Change::Create => ("C", "create"),
            Change::UpdateAsCreate => ("C", "update"),
            Change::Update => ("U", "update"),
            Change::Delete => ("D", "delete"),
        };
        // A deletion has no body: its patient is the deleted version's.
        let patients = match (&v.body, change) {
            (None, Change::Delete) if v.version_id > 1 => {
                self.patients_of_version(&v.resource_type, &v.id, v.version_id - 1)?
            }
            (body, _) => patients_of(&v.resource_type, Some(&v.id), body.as_deref()),
        };
        self.audit_about(
            AuditRecord {
                action,
                interaction,
                resource_type: &v.resource_type,
                resource_id: Some(&v.id),
                version_id: Some(v.version_id),
                outcome: "success",
            },
            patients,
        )?;
        match self.hook {
            Some(hook) => hook.after_write(self, v, change),
            None => Ok(()),
        }
    }
}
