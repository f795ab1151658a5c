//! `$route` and `wor-hub route explain`: the routing decision for a referral against
//! the stored directory, storing nothing but the audit record.

use serde_json::Value;

use crate::app::error::AppError;
use crate::app::principal::Principal;
use crate::app::routing::{explain, read_question};
use crate::app::App;
use crate::fhir::instant::now_micros;
use crate::referral::route::Decision;
use crate::referral::task::decision_parameters;
use crate::store::{AuditRecord, Failure};

/// The decision for `body` (Parameters, a ServiceRequest with its Patient contained, or
/// a transaction Bundle) and the `$route` Parameters answering it.
pub async fn explain_request(
    app: &App,
    principal: &Principal,
    body: Value,
    base: String,
) -> Result<(Decision, Value), AppError> {
    let result = app
        .store
        .transaction(principal.access(), move |tx| {
            let question = read_question(tx, &body, &base)?;
            let (decision, task) = explain(tx, &question, now_micros())?;
            tx.audit(AuditRecord {
                action: "E",
                interaction: "operation:route",
                resource_type: "ServiceRequest",
                resource_id: question.sr_id.as_deref(),
                version_id: None,
                outcome: "success",
            })?;
            let parameters = decision_parameters(&decision, task);
            Ok::<_, Failure<AppError>>((decision, parameters))
        })
        .await;
    Ok(result?)
}
