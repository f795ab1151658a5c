//! Search snapshots: a search's ordered matches, stored once, read by later pages.

use diesel::prelude::*;

use super::sql::{execute, Sql};
use crate::store::db::DbConnection;
use crate::store::query::{SnapshotInfo, SNAPSHOT_TTL_MICROS};
use crate::store::schema::{search_snapshot_entries, search_snapshots};
use crate::store::tx::{now_micros, Tx, TxError};

/// Rows per multi-row INSERT (three binds each, well under SQLite's bind limit).
const CHUNK: usize = 300;

impl Tx<'_> {
    /// Stores the ordered `ids` under `search_id`, and deletes expired snapshots.
    pub(crate) fn save_snapshot(
        &mut self,
        search_id: &str,
        resource_type: &str,
        query: &str,
        ids: &[String],
        total: Option<u64>,
    ) -> Result<(), TxError> {
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
                search_snapshots::search_id.eq(search_id),
                search_snapshots::resource_type.eq(resource_type),
                search_snapshots::query.eq(query),
                search_snapshots::size.eq(i64::try_from(ids.len()).unwrap_or(i64::MAX)),
                search_snapshots::total.eq(total.and_then(|t| i64::try_from(t).ok())),
                search_snapshots::created.eq(now),
                search_snapshots::owner.eq(&self.access.actor),
            ))
            .execute(self.conn)?;
        for (chunk_no, chunk) in ids.chunks(CHUNK).enumerate() {
            let mut sql =
                Sql::new("INSERT INTO search_snapshot_entries (search_id, position, id) VALUES ");
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                let position = chunk_no * CHUNK + i;
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

/// The header of an unexpired snapshot.
pub(super) fn info(
    conn: &mut DbConnection,
    search_id: &str,
    owner: &str,
) -> QueryResult<Option<SnapshotInfo>> {
    let row: Option<(String, String, i64, Option<i64>, i64)> = search_snapshots::table
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
        ))
        .first(conn)
        .optional()?;
    Ok(row
        .filter(|(_, _, _, _, created)| *created >= now_micros() - SNAPSHOT_TTL_MICROS)
        .map(|(resource_type, query, size, total, _)| SnapshotInfo {
            resource_type,
            query,
            size: usize::try_from(size).unwrap_or(0),
            total: total.and_then(|t| u64::try_from(t).ok()),
        }))
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
