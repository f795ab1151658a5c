//! The statements that read one resource's rows: its head (current version number and
//! deleted flag), one version, and the current version with its body.
//!
//! Each is loaded, not `first()`: a bound LIMIT makes SQLite prepare the statement
//! again at every execution (its planner reads the bound value), and these run for
//! every read and write.

use diesel::prelude::*;

use crate::store::db::{DbConnection, MultiBackend};
use crate::store::schema::{resource_versions, resources};
use crate::store::types::StoredVersion;

/// The current version number and deleted flag.
pub(super) fn head(
    conn: &mut DbConnection,
    ty: &str,
    id: &str,
) -> QueryResult<Option<(i64, bool)>> {
    let rows: Vec<(i64, bool)> = resources::table
        .filter(resources::resource_type.eq(ty))
        .filter(resources::id.eq(id))
        .select((resources::version_id, resources::deleted))
        .load(conn)?;
    Ok(rows.into_iter().next())
}

/// Version `version_id` of a resource.
pub(super) fn version(
    conn: &mut DbConnection,
    ty: &str,
    id: &str,
    version_id: i64,
) -> QueryResult<Option<StoredVersion>> {
    let rows: Vec<(i64, Option<String>)> = resource_versions::table
        .filter(resource_versions::resource_type.eq(ty))
        .filter(resource_versions::id.eq(id))
        .filter(resource_versions::version_id.eq(version_id))
        .select((resource_versions::last_updated, resource_versions::body))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .next()
        .map(|(last_updated, body)| stored(ty, id, version_id, last_updated, body)))
}

/// The latest version (a deletion's has no body), in one statement: the head joined
/// to its version (on PostgreSQL each statement is a round trip; a referral's unit of
/// work reads about ten resources, and a read by id is one).
pub(super) fn current(
    conn: &mut DbConnection,
    ty: &str,
    id: &str,
) -> QueryResult<Option<StoredVersion>> {
    Ok(heads_with_bodies(conn, ty, Some(id))?.into_iter().next())
}

/// The current versions of `ty` with their bodies: of `id` (live or deleted), or
/// without an id of every live resource of the type, in id order.
pub(super) fn heads_with_bodies(
    conn: &mut DbConnection,
    ty: &str,
    id: Option<&str>,
) -> QueryResult<Vec<StoredVersion>> {
    let mut query = resources::table
        .inner_join(
            resource_versions::table.on(resource_versions::resource_type
                .eq(resources::resource_type)
                .and(resource_versions::id.eq(resources::id))
                .and(resource_versions::version_id.eq(resources::version_id))),
        )
        .filter(resources::resource_type.eq(ty))
        .select((
            resources::id,
            resources::version_id,
            resource_versions::last_updated,
            resource_versions::body,
        ))
        .into_boxed::<MultiBackend>();
    query = match id {
        Some(id) => query.filter(resources::id.eq(id.to_owned())),
        None => query
            .filter(resources::deleted.eq(false))
            .order(resources::id),
    };
    let rows: Vec<(String, i64, i64, Option<String>)> = query.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, version_id, last_updated, body)| stored(ty, &id, version_id, last_updated, body))
        .collect())
}

fn stored(
    ty: &str,
    id: &str,
    version_id: i64,
    last_updated: i64,
    body: Option<String>,
) -> StoredVersion {
    StoredVersion {
        resource_type: ty.to_owned(),
        id: id.to_owned(),
        version_id,
        last_updated,
        body,
    }
}
