//! Directory re-imports: `PUT Type/id` entries equal to the stored resource are left
//! out of the unit of work, so an unchanged file creates no versions.

use super::{Plan, Prepared};
use crate::fhir::transaction::{Method, Target};
use crate::store::{StoredVersion, Tx, TxError};

impl Plan {
    /// This plan without its `PUT Type/id` entries whose resource equals the stored
    /// current version (compared as JSON, `meta` aside): a re-import of an unchanged
    /// file creates no versions. Those entries are answered `200 OK` with the stored
    /// version, as an update that changed nothing. Entries other entries may reference
    /// by a `urn:uuid:` fullUrl stay.
    pub fn without_unchanged(&self, tx: &mut Tx<'_>) -> Result<Self, TxError> {
        let mut plan = self.clone();
        plan.prepared.clear();
        for p in &self.prepared {
            match unchanged_put(tx, p)? {
                Some(v) => {
                    plan.unchanged.insert(p.req.index, v);
                }
                None => plan.prepared.push(p.clone()),
            }
        }
        Ok(plan)
    }

    /// How many entries [`Plan::without_unchanged`] left out.
    pub fn unchanged(&self) -> usize {
        self.unchanged.len()
    }
}

/// The stored current version when `p` is a plain `PUT Type/id` of an equal resource.
fn unchanged_put(tx: &mut Tx<'_>, p: &Prepared) -> Result<Option<StoredVersion>, TxError> {
    let (
        Method::Put,
        Target::Instance {
            id, version: None, ..
        },
        Some(text),
        None,
    ) = (&p.req.method, &p.req.target, &p.req.resource, &p.if_match)
    else {
        return Ok(None);
    };
    if p.req
        .full_url
        .as_deref()
        .is_some_and(|u| u.starts_with("urn:"))
    {
        return Ok(None);
    }
    let without_meta = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("meta");
                }
                v
            })
    };
    let Some(stored) = tx.current(p.def.name, id)? else {
        return Ok(None);
    };
    let new = without_meta(text);
    let same = new.is_some() && stored.body.as_deref().map(without_meta) == Some(new);
    Ok(same.then_some(stored))
}
