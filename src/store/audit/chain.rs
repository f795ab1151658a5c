//! The audit trail's hash chain. Rows are inserted unchained in their writer's
//! transaction (no lock, no extra work on the request path); the sealer chains the
//! committed ones afterwards: under the lock of the one-row `audit_chain` head (so one
//! sealer at a time, also with several instances on one PostgreSQL), in `seq` order,
//! each row gets the next chain position, the previous row's hash and its own.
//!
//! The chain runs in sealing order, not strictly in `seq` order: on PostgreSQL a row
//! may commit after rows with a higher `seq` (a long transaction took its `seq` early).
//! It is then simply chained in a later round, at a later position, instead of the
//! sealer waiting for the lowest uncommitted `seq` (which PostgreSQL cannot tell, and
//! which a rolled-back insert leaves as a permanent gap). What a hash covers is fixed
//! once sealed, so an edited row breaks its hash, a deleted one the next row's link.

use diesel::prelude::*;
use sha2::{Digest, Sha256};

use super::AuditEntry;
use crate::store::db::DbConnection;
use crate::store::schema::{audit_chain, audit_event_patients, audit_events};

/// `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Rows sealed per transaction (each round holds the head's lock briefly).
const SEAL_BATCH: i64 = 500;

impl AuditEntry {
    /// SHA-256 (lowercase hex) of the row's fields at chain position `position` after
    /// a row whose hash is `prev_hash`. The canonical form is a JSON array of the
    /// fields in a fixed order (strings escaped by JSON's rules, absent fields `null`),
    /// so no two different rows serialise alike.
    pub fn chain_hash(&self, position: i64, prev_hash: &str) -> String {
        let canonical = serde_json::json!([
            "wor-hub-audit-1",
            position,
            self.seq,
            self.recorded,
            self.request_id,
            self.actor,
            self.organization,
            self.action,
            self.interaction,
            self.resource_type,
            self.resource_id,
            self.version_id,
            self.outcome,
            self.patients,
            prev_hash,
        ]);
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Whether some row waits to be chained (cheap: a partial index on unsealed rows).
pub fn has_unsealed(conn: &mut DbConnection) -> QueryResult<bool> {
    let one: Option<i64> = audit_events::table
        .filter(audit_events::hash.is_null())
        .select(audit_events::seq)
        .first(conn)
        .optional()?;
    Ok(one.is_some())
}

/// Chains up to [`SEAL_BATCH`] committed unsealed rows in one transaction; returns
/// how many. SQLite: the caller holds the store's writer lock.
pub fn seal_batch(conn: &mut DbConnection) -> QueryResult<usize> {
    conn.transaction(|c| {
        // Locks the head first (PostgreSQL: its row until commit; SQLite: the writer
        // lock, taken before any read so it never has to be upgraded).
        diesel::update(audit_chain::table.filter(audit_chain::id.eq(1)))
            .set(audit_chain::position.eq(audit_chain::position))
            .execute(c)?;
        let (mut position, mut prev): (i64, String) = audit_chain::table
            .filter(audit_chain::id.eq(1))
            .select((audit_chain::position, audit_chain::hash))
            .first(c)?;
        let rows: Vec<AuditEntry> = audit_events::table
            .filter(audit_events::hash.is_null())
            .filter(audit_events::chain_pos.is_null())
            .order(audit_events::seq)
            .limit(SEAL_BATCH)
            .select(AuditEntry::as_select())
            .load(c)?;
        for row in &rows {
            position += 1;
            let hash = row.chain_hash(position, &prev);
            diesel::update(audit_events::table.filter(audit_events::seq.eq(row.seq)))
                .set((
                    audit_events::chain_pos.eq(position),
                    audit_events::prev_hash.eq(&prev),
                    audit_events::hash.eq(&hash),
                ))
                .execute(c)?;
            prev = hash;
        }
        if !rows.is_empty() {
            diesel::update(audit_chain::table.filter(audit_chain::id.eq(1)))
                .set((
                    audit_chain::position.eq(position),
                    audit_chain::hash.eq(&prev),
                ))
                .execute(c)?;
        }
        Ok(rows.len())
    })
}

/// What `wor-hub audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainReport {
    /// Every chained row checked out; `unsealed` rows are not chained yet.
    Intact { verified: u64, unsealed: u64 },
    /// The first broken link, as a one-line message naming the row.
    Broken(String),
}

/// Rows read per query while walking the chain.
const WALK_BATCH: i64 = 5000;

/// Walks the chain from its start: every position present once, each row's
/// `prev_hash` the previous row's hash, each hash recomputed from the row's fields,
/// and the head's position and hash those of the last row.
pub fn verify(conn: &mut DbConnection) -> QueryResult<ChainReport> {
    let mut expected = 1_i64;
    let mut prev = GENESIS.to_owned();
    let mut verified = 0_u64;
    loop {
        let rows: Vec<AuditEntry> = audit_events::table
            .filter(audit_events::chain_pos.ge(expected))
            .order(audit_events::chain_pos)
            .limit(WALK_BATCH)
            .select(AuditEntry::as_select())
            .load(conn)?;
        let done = rows.len() < usize::try_from(WALK_BATCH).unwrap_or(usize::MAX);
        let indexed = patient_index(conn, &rows)?;
        for row in rows {
            if let Some(broken) = check(&row, expected, &prev) {
                return Ok(ChainReport::Broken(broken));
            }
            // `AuditEvent?patient=` reads the index: a row hidden from it is as good as
            // deleted for the patient asking who looked at their data.
            let listed: Vec<&str> = indexed
                .get(&row.seq)
                .map_or_else(Vec::new, |p| p.iter().map(String::as_str).collect());
            if listed != row.patient_list() {
                return Ok(ChainReport::Broken(format!(
                    "seq {}: its patients differ from audit_event_patients (index edited)",
                    row.seq
                )));
            }
            prev = row.hash.unwrap_or_default();
            expected += 1;
            verified += 1;
        }
        if done {
            break;
        }
    }
    let (head_position, head_hash): (i64, String) = audit_chain::table
        .filter(audit_chain::id.eq(1))
        .select((audit_chain::position, audit_chain::hash))
        .first(conn)?;
    let last = expected - 1;
    if head_position > last {
        return Ok(ChainReport::Broken(format!(
            "chain position {}: the last chained row is missing (row deleted)",
            last + 1
        )));
    }
    if head_position < last || head_hash != prev {
        return Ok(ChainReport::Broken(format!(
            "chain position {head_position}: the chain head does not match the last row \
             (audit_chain edited)"
        )));
    }
    // A row whose hash was removed but that keeps its position is caught above.
    let unsealed: i64 = audit_events::table
        .filter(audit_events::chain_pos.is_null())
        .count()
        .get_result(conn)?;
    Ok(ChainReport::Intact {
        verified,
        unsealed: u64::try_from(unsealed).unwrap_or(0),
    })
}

/// `audit_event_patients` of `rows`: seq -> patients, sorted.
fn patient_index(
    conn: &mut DbConnection,
    rows: &[AuditEntry],
) -> QueryResult<std::collections::HashMap<i64, Vec<String>>> {
    let mut out: std::collections::HashMap<i64, Vec<String>> = std::collections::HashMap::new();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    for chunk in seqs.chunks(1000) {
        let found: Vec<(i64, String)> = audit_event_patients::table
            .filter(audit_event_patients::seq.eq_any(chunk.to_vec()))
            .select((audit_event_patients::seq, audit_event_patients::patient))
            .load(conn)?;
        for (seq, patient) in found {
            out.entry(seq).or_default().push(patient);
        }
    }
    for patients in out.values_mut() {
        patients.sort();
    }
    Ok(out)
}

/// The first thing wrong with `row`, expected at `position` after a row hashed `prev`.
fn check(row: &AuditEntry, position: i64, prev: &str) -> Option<String> {
    let seq = row.seq;
    let at = row.chain_pos.unwrap_or_default();
    if at != position {
        return Some(format!(
            "seq {seq}: previous row missing (row deleted): chain position {at} follows {}",
            position - 1
        ));
    }
    if row.prev_hash.as_deref() != Some(prev) {
        return Some(format!(
            "seq {seq}: previous row missing or changed (its hash is not this row's prev_hash)"
        ));
    }
    match &row.hash {
        Some(hash) if *hash == row.chain_hash(position, prev) => None,
        _ => Some(format!("seq {seq}: hash mismatch (row edited)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> AuditEntry {
        AuditEntry {
            seq: 7,
            recorded: 1_700_000_000_000_000,
            request_id: "req-1".into(),
            actor: "party:Organization/o".into(),
            action: "R".into(),
            interaction: "read".into(),
            resource_type: "ServiceRequest".into(),
            resource_id: Some("sr".into()),
            version_id: Some(2),
            outcome: "success".into(),
            organization: Some("Organization/o".into()),
            patients: Some("Patient/p".into()),
            chain_pos: None,
            prev_hash: None,
            hash: None,
        }
    }

    #[test]
    fn the_hash_is_sha256_hex_and_stable() {
        let h = entry().chain_hash(1, GENESIS);
        assert_eq!(h.len(), 64);
        assert!(h
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(h, entry().chain_hash(1, GENESIS));
    }

    #[test]
    fn every_field_position_and_link_changes_the_hash() {
        let base = entry().chain_hash(1, GENESIS);
        let mut edits: Vec<AuditEntry> = Vec::new();
        let edit = |f: &dyn Fn(&mut AuditEntry)| {
            let mut e = entry();
            f(&mut e);
            e
        };
        edits.push(edit(&|e| e.seq = 8));
        edits.push(edit(&|e| e.recorded += 1));
        edits.push(edit(&|e| e.request_id.push('x')));
        edits.push(edit(&|e| e.actor = "anonymous".into()));
        edits.push(edit(&|e| e.organization = None));
        edits.push(edit(&|e| e.action = "U".into()));
        edits.push(edit(&|e| e.interaction = "vread".into()));
        edits.push(edit(&|e| e.resource_type = "Task".into()));
        edits.push(edit(&|e| e.resource_id = None));
        edits.push(edit(&|e| e.version_id = Some(3)));
        edits.push(edit(&|e| e.outcome = "not-found".into()));
        edits.push(edit(&|e| e.patients = Some("Patient/q".into())));
        for e in &edits {
            assert_ne!(e.chain_hash(1, GENESIS), base, "{e:?}");
        }
        assert_ne!(entry().chain_hash(2, GENESIS), base);
        assert_ne!(entry().chain_hash(1, &"1".repeat(64)), base);
        // Chain bookkeeping columns are not hashed into themselves.
        let mut sealed = entry();
        sealed.hash = Some(base.clone());
        sealed.chain_pos = Some(1);
        assert_eq!(sealed.chain_hash(1, GENESIS), base);
    }

    #[test]
    fn shifting_text_between_fields_changes_the_hash() {
        let mut a = entry();
        a.request_id = "ab".into();
        a.actor = "c".into();
        let mut b = entry();
        b.request_id = "a".into();
        b.actor = "bc".into();
        assert_ne!(a.chain_hash(1, GENESIS), b.chain_hash(1, GENESIS));
    }

    #[test]
    fn check_names_the_row_and_what_broke() {
        let mut row = entry();
        row.chain_pos = Some(3);
        row.prev_hash = Some("p".into());
        row.hash = Some(row.chain_hash(3, "p"));
        assert_eq!(check(&row, 3, "p"), None);
        assert_eq!(
            check(&row, 2, "p").unwrap(),
            "seq 7: previous row missing (row deleted): chain position 3 follows 1"
        );
        assert!(check(&row, 3, "q")
            .unwrap()
            .starts_with("seq 7: previous row missing"));
        row.outcome = "gone".into();
        assert_eq!(
            check(&row, 3, "p").unwrap(),
            "seq 7: hash mismatch (row edited)"
        );
    }
}
