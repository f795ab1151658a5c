//! POST /fhir/{type}/$validate (http://hl7.org/fhir/R4/resource-operation-validate.html):
//! the same checks as create/update, nothing stored.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::Value;

use crate::api::extract::FhirBody;
use crate::api::{resource_def, respond};
use crate::app::resources::business_rules;
use crate::error::ApiError;
use crate::fhir::outcome::{operation_outcome, Issue, IssueCode};
use crate::fhir::validate::validate_resource;

/// The body is the resource itself, or a Parameters with `resource` (and optionally
/// `mode`). Answers 200 with the OperationOutcome of the validation, valid or not;
/// 4xx only when the request itself is malformed.
pub async fn validate(path: web::Path<String>, body: FhirBody) -> Result<HttpResponse, ApiError> {
    let def = resource_def(&path)?;
    let value = &body.resource.value;
    let (resource, mode) = if body.resource.resource_type() == Some("Parameters") {
        unwrap_parameters(value)?
    } else {
        (value, None)
    };
    let mut issues = validate_resource(def.name, resource);
    if !issues.iter().any(Issue::is_error) {
        issues = business_rules(def.name, resource);
    }
    if mode == Some("update") && resource.get("id").is_none() {
        issues.push(
            Issue::error(IssueCode::Required, "An update must carry the resource id")
                .at(format!("{}.id", def.name)),
        );
    }
    Ok(respond::json(
        StatusCode::OK,
        operation_outcome(&issues).to_string(),
    ))
}

fn unwrap_parameters(params: &Value) -> Result<(&Value, Option<&str>), ApiError> {
    let mut resource = None;
    let mut mode = None;
    let entries = params
        .get("parameter")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, p) in entries.iter().enumerate() {
        match p.get("name").and_then(Value::as_str) {
            Some("resource") => resource = p.get("resource"),
            Some("mode") => {
                let m = p.get("valueCode").and_then(Value::as_str);
                if !matches!(m, Some("create" | "update")) {
                    return Err(ApiError::invalid(vec![Issue::error(
                        IssueCode::NotSupported,
                        "mode must be 'create' or 'update'",
                    )
                    .at(format!("Parameters.parameter[{i}].valueCode"))]));
                }
                mode = m;
            }
            other => {
                return Err(ApiError::invalid(vec![Issue::error(
                    IssueCode::NotSupported,
                    format!(
                        "Unsupported $validate parameter '{}'",
                        other
                            .unwrap_or_default()
                            .chars()
                            .take(64)
                            .collect::<String>()
                    ),
                )
                .at(format!("Parameters.parameter[{i}].name"))]))
            }
        }
    }
    let resource = resource.ok_or_else(|| {
        ApiError::invalid(vec![Issue::error(
            IssueCode::Required,
            "Parameters must carry the resource to validate in parameter 'resource'",
        )
        .at("Parameters.parameter")])
    })?;
    Ok((resource, mode))
}
