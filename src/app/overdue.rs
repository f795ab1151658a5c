//! The contact-deadline job: tags Tasks past the deadline `overdue`, every round
//! (`startup::spawn_overdue_marker`), in bounded units of work.

use crate::app::error::AppError;
use crate::app::principal::Principal;
use crate::app::workflow::{body_of, flag_overdue, internal, new_version};
use crate::app::App;
use crate::fhir::criteria::parse_criteria;
use crate::fhir::instant::format_instant;
use crate::fhir::registry;
use crate::fhir::resource::IncomingResource;
use crate::referral::codes::CS_TASK_FLAG;
use crate::store::UpdateOutcome;

/// Tasks the contact-deadline job tags per unit of work: the writer is free for intake
/// between units (one unit over every overdue Task held it for as long as they took).
const OVERDUE_PER_UNIT: usize = 200;

/// One round of the contact-deadline job: tags every Task past the deadline
/// `overdue` (a new version each), in units of work of [`OVERDUE_PER_UNIT`] Tasks in
/// id order. Returns how many it tagged.
pub async fn mark_overdue(app: &App, principal: &Principal) -> Result<usize, AppError> {
    mark_overdue_in_units(app, principal, OVERDUE_PER_UNIT).await
}

async fn mark_overdue_in_units(
    app: &App,
    principal: &Principal,
    per_unit: usize,
) -> Result<usize, AppError> {
    let now = app.clock.now_micros();
    let deadline = app.contact_deadline;
    let cutoff = format_instant(now.saturating_sub(deadline));
    let mut marked = 0;
    let mut after: Option<String> = None;
    loop {
        let (from, cutoff) = (after.clone(), cutoff.clone());
        let (n, last) = app
            .store
            .transaction(principal.access(), move |tx| {
                let def =
                    registry::resource("Task").ok_or_else(|| internal(&"no Task definition"))?;
                let criteria = parse_criteria(
                    def,
                    &format!(
                        "status=requested,received,accepted&authored-on=lt{cutoff}&_tag:not={CS_TASK_FLAG}|overdue"
                    ),
                    &[],
                )
                .map_err(|i| internal(&i.diagnostics))?;
                let ids: Vec<String> = tx
                    .find_ids("Task", &criteria)?
                    .into_iter()
                    .filter(|id| from.as_deref().is_none_or(|f| id.as_str() > f))
                    .take(per_unit)
                    .collect();
                let mut marked = 0;
                for id in &ids {
                    let Some(current) = tx.current("Task", id)? else {
                        continue;
                    };
                    let Some(mut task) = body_of(&current) else {
                        continue;
                    };
                    if !flag_overdue(&mut task, now, deadline) {
                        continue;
                    }
                    let text = serde_json::to_vec(&task).map_err(|e| internal(&e))?;
                    let tagged =
                        IncomingResource::parse(&text).map_err(|i| internal(&i.diagnostics))?;
                    // A Task another instance or client changed meanwhile waits for the
                    // next round.
                    if let UpdateOutcome::Updated(_) =
                        new_version(tx, "Task", id, &tagged, current.version_id)?
                    {
                        marked += 1;
                    }
                }
                let more = ids.len() == per_unit;
                Ok((marked, ids.last().filter(|_| more).cloned()))
            })
            .await?;
        marked += n;
        match last {
            Some(last) => after = Some(last),
            None => return Ok(marked),
        }
    }
}

#[cfg(test)]
#[path = "overdue_tests.rs"]
mod tests;
