//! Search snapshots: a search's ordered matches, stored once, read by later pages.

use diesel::prelude::*;

use super::sql::{execute, Sql};
use crate::store::db::DbConnection;
use crate::store::query::{SnapshotInfo, SNAPSHOT_TTL_MICROS};
use crate::store::schema::{search_snapshot_entries, search_snapshots};
use crate::store::tx::{now_micros, Tx, TxError};

/// Rows per multi-row INSERT (three binds each, well under SQLite's bind limit).
const CHUNK: usize = 300;

/// What a new snapshot holds: the ordered ids stored now (every match, or the first
/// page's of a lazily filled one), how many matches it stands for, and, when lazily
/// filled, the change clock its matches are read at.
pub(crate) struct NewSnapshot {
    pub search_id: String,
    pub resource_type: String,
    pub query: String,
    pub ids: Vec<String>,
    pub size: usize,
    pub total: Option<u64>,
    pub as_of: Option<i64>,
}

impl Tx<'_> {
    /// Stores a snapshot, and deletes expired ones. A read-only unit of work keeps it
    /// for its caller to store before the read answers (see `Store::read`).
    pub(crate) fn save_snapshot(&mut self, new: NewSnapshot) -> Result<(), TxError> {
        if let Some(collected) = &mut self.collected {
            collected.snapshots.push(new);
            return Ok(());
        }
        self.store_snapshot(&new)
    }

    /// Stores a snapshot now, and deletes expired ones.
    pub(crate) fn store_snapshot(&mut self, new: &NewSnapshot) -> Result<(), TxError> {
        self.writing()?;
        let now = now_micros();
        let expired = now - SNAPSHOT_TTL_MICROS;
        let mut purge = Sql::new(
            "DELETE FROM search_snapshot_entries WHERE search_id IN \
             (SELECT search_id FROM search_snapshots WHERE created < ",
        );
        purge.int(expired).push(")");
        execute(self.conn, &purge)?;
        diesel::delete(search_snapshots::table.filter(search_snapshots::created.lt(expired)))
            .execute(self.conn)?;
        diesel::insert_into(search_snapshots::table)
            .values((
                search_snapshots::search_id.eq(&new.search_id),
                search_snapshots::resource_type.eq(&new.resource_type),
                search_snapshots::query.eq(&new.query),
                search_snapshots::size.eq(i64::try_from(new.size).unwrap_or(i64::MAX)),
                search_snapshots::total.eq(new.total.and_then(|t| i64::try_from(t).ok())),
                search_snapshots::created.eq(now),
                search_snapshots::owner.eq(&self.access.actor),
                search_snapshots::as_of.eq(new.as_of),
            ))
            .execute(self.conn)?;
        self.append_entries(&new.search_id, 0, &new.ids)
    }

    /// Stores `ids` at positions `from..` of snapshot `search_id`.
    pub(crate) fn append_entries(
        &mut self,
        search_id: &str,
        from: usize,
        ids: &[String],
    ) -> Result<(), TxError> {
        self.writing()?;
        for (chunk_no, chunk) in ids.chunks(CHUNK).enumerate() {
            let mut sql =
                Sql::new("INSERT INTO search_snapshot_entries (search_id, position, id) VALUES ");
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                let position = from + chunk_no * CHUNK + i;
                sql.push("(")
                    .text_bind(search_id)
                    .push(", ")
                    .int(i64::try_from(position).unwrap_or(i64::MAX))
                    .push(", ")
                    .text_bind(id)
                    .push(")");
            }
            execute(self.conn, &sql)?;
        }
        Ok(())
    }
}

/// How many entries snapshot `search_id` holds so far, and the id of the last one.
pub(super) fn held(
    conn: &mut DbConnection,
    search_id: &str,
) -> QueryResult<(usize, Option<String>)> {
    let last: Option<(i64, String)> = search_snapshot_entries::table
        .filter(search_snapshot_entries::search_id.eq(search_id))
        .order(search_snapshot_entries::position.desc())
        .select((
            search_snapshot_entries::position,
            search_snapshot_entries::id,
        ))
        .first(conn)
        .optional()?;
    Ok(match last {
        Some((position, id)) => (usize::try_from(position).map_or(0, |p| p + 1), Some(id)),
        None => (0, None),
    })
}

/// The header of an unexpired snapshot.
pub(super) fn info(
    conn: &mut DbConnection,
    search_id: &str,
    owner: &str,
) -> QueryResult<Option<SnapshotInfo>> {
    type Row = (String, String, i64, Option<i64>, i64, Option<i64>);
    let row: Option<Row> = search_snapshots::table
        .filter(search_snapshots::search_id.eq(search_id))
        .filter(
            search_snapshots::owner
                .eq(owner)
                .or(search_snapshots::owner.is_null()),
        )
        .select((
            search_snapshots::resource_type,
            search_snapshots::query,
            search_snapshots::size,
            search_snapshots::total,
            search_snapshots::created,
            search_snapshots::as_of,
        ))
        .first(conn)
        .optional()?;
    Ok(row
        .filter(|(_, _, _, _, created, _)| *created >= now_micros() - SNAPSHOT_TTL_MICROS)
        .map(
            |(resource_type, query, size, total, _, as_of)| SnapshotInfo {
                resource_type,
                query,
                size: usize::try_from(size).unwrap_or(0),
                total: total.and_then(|t| u64::try_from(t).ok()),
                as_of,
            },
        ))
}

/// The ids at positions `offset..offset + count`.
pub(super) fn ids(
    conn: &mut DbConnection,
    search_id: &str,
    offset: usize,
    count: usize,
) -> QueryResult<Vec<String>> {
    let from = i64::try_from(offset).unwrap_or(i64::MAX);
    let to = from.saturating_add(i64::try_from(count).unwrap_or(i64::MAX));
    search_snapshot_entries::table
        .filter(search_snapshot_entries::search_id.eq(search_id))
        .filter(search_snapshot_entries::position.ge(from))
        .filter(search_snapshot_entries::position.lt(to))
        .order(search_snapshot_entries::position.asc())
        .select(search_snapshot_entries::id)
        .load(conn)
}
