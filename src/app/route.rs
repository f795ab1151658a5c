//! `$route` and `wor-hub route explain`: the routing decision for a referral against
//! the stored directory, storing nothing but the audit record.
//!
//! A transaction or batch Bundle is decided as the server would decide it on this
//! database: the Bundle runs in a unit of work that is rolled back (its conditional
//! creates matching stored resources, as `POST /fhir` would), and the decision is read
//! from what it stored. A Bundle the server would refuse is refused with the same error.

use std::convert::Infallible;

use serde_json::Value;

use crate::app::bundle::Plan;
use crate::app::error::AppError;
use crate::app::principal::Principal;
use crate::app::reply::ReturnPref;
use crate::app::routing::{explain, read_question, stored_question};
use crate::app::workflow::Workflow;
use crate::app::App;
use crate::fhir::instant::now_micros;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::references::parse_local;
use crate::referral::route::Decision;
use crate::referral::task::decision_parameters;
use crate::store::{AuditRecord, Failure, Tx, WriteError};

/// The decision for `body` (Parameters, a ServiceRequest with its Patient contained, or
/// a transaction or batch Bundle) and the `$route` Parameters answering it.
pub async fn explain_request(
    app: &App,
    principal: &Principal,
    body: Value,
    base: String,
) -> Result<(Decision, Value), AppError> {
    crate::app::access::require(principal, "ServiceRequest", crate::app::access::Need::Read)?;
    if matches!(
        body.get("type").and_then(Value::as_str),
        Some("transaction" | "batch")
    ) && body.get("resourceType").and_then(Value::as_str) == Some("Bundle")
    {
        let decided = explain_bundle(app, principal, body, base).await?;
        audit(app, principal, None).await?;
        return Ok(decided);
    }
    let result = app
        .store
        .transaction(principal.access(), move |tx| {
            let question = read_question(tx, &body, &base)?;
            let (decision, task) = explain(tx, &question, now_micros())?;
            audit_in(tx, question.sr_id.as_deref())?;
            let parameters = decision_parameters(&decision, task);
            Ok::<_, Failure<AppError>>((decision, parameters))
        })
        .await;
    Ok(result?)
}

/// How the rolled-back run of a Bundle ended.
enum Dry {
    Decided(Box<(Decision, Value)>),
    Refused(AppError),
}

async fn explain_bundle(
    app: &App,
    principal: &Principal,
    body: Value,
    base: String,
) -> Result<(Decision, Value), AppError> {
    let raw = serde_json::to_vec(&body).map_err(|e| AppError::internal(&e))?;
    let plan = Plan::new(&body, &raw, app.max_bundle_entries)?;
    let workflow = Workflow::new(app, principal);
    let result = app
        .store
        .transaction(
            principal.access(),
            move |tx| -> Result<Infallible, Failure<Dry>> {
                match decide_bundle(tx, &plan, &workflow, &base) {
                    Ok(decided) => Err(Failure::Abort(Dry::Decided(Box::new(decided)))),
                    Err(Failure::Abort(e)) => Err(Failure::Abort(Dry::Refused(e))),
                    Err(Failure::Tx(e)) => Err(Failure::Tx(e)),
                }
            },
        )
        .await;
    match result {
        Ok(never) => match never {},
        Err(WriteError::Abort(Dry::Decided(decided))) => Ok(*decided),
        Err(WriteError::Abort(Dry::Refused(mut e))) => {
            for issue in &mut e.issues {
                issue.diagnostics = format!(
                    "The server would refuse this Bundle, so it routes nothing: {}",
                    issue.diagnostics
                );
            }
            Err(e)
        }
        Err(WriteError::Store(e)) => Err(e.into()),
    }
}

/// Runs the Bundle (the caller rolls it back) and decides on the ServiceRequest it
/// stored, with the Patient it stored or matched.
fn decide_bundle(
    tx: &mut Tx<'_>,
    plan: &Plan,
    workflow: &Workflow,
    base: &str,
) -> Result<(Decision, Value), Failure<AppError>> {
    let reply = plan.run(tx, base, ReturnPref::Minimal, Some(workflow))?;
    let response: Value = reply
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or_default();
    // Each response entry: (Type/id, status).
    let outcomes: Vec<(String, String)> = response
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            // `location` is `{base}/Type/id/_history/n`.
            let location = e.pointer("/response/location")?.as_str()?;
            let (ty, id) = parse_local(location, base)?;
            let reference = format!("{ty}/{id}");
            let status = e.pointer("/response/status")?.as_str()?.to_owned();
            Some((reference, status))
        })
        .collect();
    let Some((sr, sr_status)) = outcomes
        .iter()
        .find(|(r, _)| r.starts_with("ServiceRequest/"))
    else {
        return Err(Failure::Abort(AppError::invalid(vec![Issue::error(
            IssueCode::Invalid,
            "The Bundle holds no ServiceRequest, so it routes nothing",
        )
        .at("Bundle.entry")])));
    };
    let stored = |reference: &str| {
        outcomes
            .iter()
            .any(|(r, s)| r == reference && !s.starts_with("201"))
    };
    let mut question = stored_question(tx, sr, base, "Bundle.entry")?;
    // What the Bundle created is rolled back: its ids would name nothing. Stored
    // resources its conditional creates matched stay named.
    let sr_matched = !sr_status.starts_with("201");
    if !sr_matched {
        question.sr_id = None;
    }
    question.patient_ref = question.patient_ref.take().filter(|p| stored(p));
    let (mut decision, task) = explain(tx, &question, now_micros())?;
    if let Some(patient) = &question.patient_ref {
        decision.steps.insert(
            0,
            format!(
                "patient: the Bundle's conditional create matched the stored {patient}; its stored data is used"
            ),
        );
    }
    if sr_matched {
        decision.steps.insert(
            0,
            format!(
                "referral: the Bundle's conditional create matched the stored {sr}, so the server would route nothing new; this is the decision for {sr} on the directory as it is now"
            ),
        );
    }
    let parameters = decision_parameters(&decision, task);
    Ok((decision, parameters))
}

fn audit_in(tx: &mut Tx<'_>, sr_id: Option<&str>) -> Result<(), crate::store::TxError> {
    tx.audit(AuditRecord {
        action: "E",
        interaction: "operation:route",
        resource_type: "ServiceRequest",
        resource_id: sr_id,
        version_id: None,
        outcome: "success",
    })
}

/// The audit record of a decision whose own unit of work was rolled back.
async fn audit(app: &App, principal: &Principal, sr_id: Option<String>) -> Result<(), AppError> {
    app.store
        .read(principal.access(), move |tx| audit_in(tx, sr_id.as_deref()))
        .await?;
    Ok(())
}
