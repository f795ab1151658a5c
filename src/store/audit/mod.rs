//! The audit trail as stored (NEN 7513): rows read back for `AuditEvent` reads and
//! searches, the sealer that chains them by hash, and the chain's verification.

pub mod chain;

use diesel::prelude::*;
use diesel::sql_types::Bool;

use super::db::{DbConnection, MultiBackend};
use super::schema::{audit_event_patients, audit_events};
use super::tx::{Tx, TxError};
use super::{Store, StoreError};

pub use chain::ChainReport;

/// One stored audit row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_events)]
pub struct AuditEntry {
    pub seq: i64,
    pub recorded: i64,
    pub request_id: String,
    pub actor: String,
    pub action: String,
    pub interaction: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub version_id: Option<i64>,
    pub outcome: String,
    pub organization: Option<String>,
    /// `Patient/<id>` separated by spaces.
    pub patients: Option<String>,
    pub chain_pos: Option<i64>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

impl AuditEntry {
    /// The patients concerned.
    pub fn patient_list(&self) -> Vec<&str> {
        self.patients
            .as_deref()
            .map(|p| p.split(' ').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }
}

/// A search of the audit trail: every given criterion holds (values of one criterion
/// are alternatives). Results in `seq` order, after `after`, at most `count + 1` (the
/// extra one tells a next page exists).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Rows with one of these sequence numbers (`Some(empty)`: none).
    pub seqs: Option<Vec<i64>>,
    /// `Patient/<id>`: rows concerning any of them.
    pub patients: Vec<String>,
    /// `recorded` within `[low, high]` (microseconds, each bound optional): every
    /// criterion holds, by one of its alternatives.
    pub recorded: Vec<Vec<(Option<i64>, Option<i64>)>>,
    /// Rows whose actor is one of `actors` or whose organisation one of `organizations`.
    pub actors: Vec<String>,
    pub organizations: Vec<String>,
    /// (type, id): the resource the row is about (every criterion holds, by one of its
    /// alternatives; no id: any of that type).
    pub entities: Vec<Vec<(String, Option<String>)>>,
    pub after: Option<i64>,
    pub count: i64,
}

type Condition = Box<dyn BoxableExpression<audit_events::table, MultiBackend, SqlType = Bool>>;

/// `a OR b OR ...` as a balanced tree: SQLite refuses expressions nested more than 1,000
/// deep, and a search may name 1,000 alternatives.
fn any_of(mut conditions: Vec<Condition>) -> Option<Condition> {
    if conditions.len() <= 1 {
        return conditions.pop();
    }
    let right = conditions.split_off(conditions.len() / 2);
    match (any_of(conditions), any_of(right)) {
        (Some(l), Some(r)) => Some(Box::new(l.or(r))),
        (one, other) => one.or(other),
    }
}

impl Tx<'_> {
    /// Audit rows matching `q` (the caller checks the principal may read them).
    pub fn audit_events(&mut self, q: &AuditQuery) -> Result<Vec<AuditEntry>, TxError> {
        let mut sql = audit_events::table
            .select(AuditEntry::as_select())
            .order(audit_events::seq)
            .limit(q.count.saturating_add(1))
            .into_boxed::<MultiBackend>();
        if let Some(seqs) = &q.seqs {
            sql = sql.filter(audit_events::seq.eq_any(seqs.clone()));
        }
        if let Some(after) = q.after {
            sql = sql.filter(audit_events::seq.gt(after));
        }
        if !q.patients.is_empty() {
            sql = sql.filter(
                audit_events::seq.eq_any(
                    audit_event_patients::table
                        .filter(audit_event_patients::patient.eq_any(q.patients.clone()))
                        .select(audit_event_patients::seq),
                ),
            );
        }
        for alternatives in &q.recorded {
            let each = alternatives.iter().map(|(low, high)| -> Condition {
                Box::new(
                    audit_events::recorded
                        .ge(low.unwrap_or(i64::MIN))
                        .and(audit_events::recorded.le(high.unwrap_or(i64::MAX))),
                )
            });
            if let Some(any) = any_of(each.collect()) {
                sql = sql.filter(any);
            }
        }
        if !q.actors.is_empty() || !q.organizations.is_empty() {
            sql = sql.filter(
                audit_events::actor
                    .eq_any(q.actors.clone())
                    .or(audit_events::organization
                        .eq_any(q.organizations.clone())
                        .assume_not_null()),
            );
        }
        for alternatives in &q.entities {
            let each = alternatives.iter().map(|(ty, id)| -> Condition {
                match id {
                    Some(id) => Box::new(
                        audit_events::resource_type
                            .eq(ty.clone())
                            .and(audit_events::resource_id.eq(id.clone()).assume_not_null()),
                    ),
                    None => Box::new(audit_events::resource_type.eq(ty.clone())),
                }
            });
            if let Some(any) = any_of(each.collect()) {
                sql = sql.filter(any);
            }
        }
        Ok(sql.load(self.conn)?)
    }
}

impl Store {
    /// Chains every committed unsealed audit row (see [`chain`]); returns how many.
    /// Cheap when there is nothing to do: one indexed look-up, no lock.
    pub async fn seal_audit(&self) -> Result<usize, StoreError> {
        if !self
            .with_conn(|conn| Ok(chain::has_unsealed(conn)?))
            .await?
        {
            return Ok(0);
        }
        self.with_writer(move |conn| {
            let mut sealed = 0;
            while chain::has_unsealed(conn)? {
                let n = chain::seal_batch(conn)?;
                sealed += n;
                if n == 0 {
                    // Unsealed rows remain that are not this sealer's to chain.
                    break;
                }
            }
            Ok(sealed)
        })
        .await
    }

    /// SQLite: moves the reads' journalled audit records into `audit_events` now (the
    /// mover does so within 200 ms anyway), so a query of the audit trail sees every
    /// access that was answered before it. Nothing to do on PostgreSQL, or when the
    /// journal is empty.
    pub async fn move_audit_journal(&self) -> Result<(), StoreError> {
        let Some(journal) = self.journal.clone() else {
            return Ok(());
        };
        if !journal.is_pending() {
            return Ok(());
        }
        self.with_writer(move |conn| {
            // Not counted in `commits`, as the journal mover's moves are not.
            journal
                .move_into(conn)
                .map(|_| ())
                .map_err(StoreError::Internal)
        })
        .await
    }

    /// Moves journalled records in, chains every row, then walks the chain.
    pub async fn verify_audit(&self) -> Result<ChainReport, StoreError> {
        self.move_audit_journal().await?;
        self.seal_audit().await?;
        self.with_conn(|conn: &mut DbConnection| Ok(chain::verify(conn)?))
            .await
    }

    /// Seals the audit trail every `period` while the store is in use (the server).
    pub fn spawn_audit_sealer(&self, period: std::time::Duration) {
        let store = self.clone();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(period).await;
                match store.seal_audit().await {
                    Ok(_) => failing = false,
                    // Logged once per failing stretch, not every period.
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "sealing the audit trail failed");
                    }
                    Err(_) => {}
                }
            }
        });
    }
}
