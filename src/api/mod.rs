//! Thin actix handlers: extract (the principal, the body, the headers), call the
//! application (`crate::app`), respond.
//! Routes for `$operations` and `_history` are registered before `/{type}/{id}`.

mod crud;
pub mod edge;
pub mod extract;
/// The sample directory the server loads into an empty database (`deploy/`).
pub mod directory {
    pub use crate::app::directory::SAMPLE_DIRECTORY;
}
mod health;
mod history;
mod metadata;
mod paging;
mod respond;
mod route;
mod search;
mod transaction;
mod validate;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::ApiError;
use crate::fhir::capability::Served;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::registry::ResourceDef;

/// What this router serves; the CapabilityStatement is generated from it.
pub const SERVED: Served = Served {
    type_interactions: &[
        "read",
        "vread",
        "update",
        "delete",
        "history-instance",
        "history-type",
        "create",
        "search-type",
    ],
    system_interactions: &["transaction", "batch", "history-system"],
    type_operations: &[(
        "validate",
        "http://hl7.org/fhir/OperationDefinition/Resource-validate",
    )],
    resource_operations: &[(
        "ServiceRequest",
        "route",
        "https://wor-hub.nl/fhir/OperationDefinition/ServiceRequest-route",
    )],
    supported_profiles: &[(
        "HealthcareService",
        crate::referral::codes::PROFILE_HEALTHCARE_SERVICE,
    )],
    resource_documentation: &[
        (
            "Task",
            "Workflow (README 'Referral workflow'): updates require If-Match (412 without) and name the \
             acting party in the X-Acting-Party header (Organization/<id> of the owner, the requester's \
             reference, or coordinator; in open mode an unnamed loopback request acts as any party). The \
             owner moves requested -> received -> accepted | rejected, accepted -> in-progress, \
             in-progress <-> on-hold, in-progress -> completed | failed; the requester cancels (from \
             in-progress on, as a request the owner confirms). Other transitions: 409. statusReason is \
             required for rejected, cancelled, on-hold and failed. The owner may change only status, \
             statusReason, businessStatus, output, note, executionPeriod and lastModified (403 naming \
             the element otherwise). businessStatus is from \
             https://wor-hub.nl/fhir/CodeSystem/task-business-status. The ServiceRequest follows the \
             Task (completed -> completed; cancelled, failed -> revoked); a rejection re-routes to the \
             next eligible service (a new Task partOf the rejected one). Tasks past the contact \
             deadline carry the tag https://wor-hub.nl/fhir/CodeSystem/task-flag|overdue.",
        ),
        (
        "QuestionnaireResponse",
        "Answers to the Positive Health questionnaire https://wor-hub.nl/fhir/Questionnaire/positive-health \
         are checked on write (422 otherwise): only its six linkIds, each at most once, each answered \
         with one valueInteger from 0 to 10; a completed (or amended) response answers all six. \
         Tasks link them from Task.output (types positive-health-intake and positive-health-closing \
         of https://wor-hub.nl/fhir/CodeSystem/task-output-type); Task?_include=Task:output returns them.",
        ),
    ],
    update_create: true,
    conditional_create: true,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/fhir")
            .wrap(from_fn(negotiate))
            .service(
                web::resource(["", "/"])
                    .route(web::post().to(transaction::bundle))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/metadata")
                    .route(web::get().to(metadata::capabilities))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/_history")
                    .route(web::get().to(history::system))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/ServiceRequest/$route")
                    .route(web::post().to(route::route))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/{type}/$validate")
                    .route(web::post().to(validate::validate))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/{type}/_history")
                    .route(web::get().to(history::type_level))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/{type}/_search")
                    .route(web::post().to(search::search_post))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/{type}/{id}/_history")
                    .route(web::get().to(history::instance))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/{type}/{id}/_history/{vid}")
                    .route(web::get().to(crud::vread))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/{type}/{id}")
                    .route(web::get().to(crud::read))
                    .route(web::put().to(crud::update))
                    .route(web::delete().to(crud::delete))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/{type}")
                    .route(web::post().to(crud::create))
                    .route(web::get().to(search::search))
                    .default_service(web::to(method_not_allowed)),
            ),
    )
    .route("/health/live", web::get().to(health::live))
    .route("/health/ready", web::get().to(health::ready))
    .default_service(web::to(not_found));
}

/// The registered resource type named in the URL, or 404.
pub fn resource_def(name: &str) -> Result<&'static ResourceDef, ApiError> {
    Ok(crate::app::resources::resource_def(name)?)
}

/// A logical id from the URL, or 400.
pub fn logical_id(id: &str) -> Result<(), ApiError> {
    Ok(crate::app::resources::logical_id(id)?)
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "No endpoint {} {}; the FHIR base is /fhir",
        req.method(),
        req.path().chars().take(128).collect::<String>()
    )))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::one(
        StatusCode::METHOD_NOT_ALLOWED,
        Issue::error(
            IssueCode::NotSupported,
            format!("Method {} is not supported on this endpoint", req.method()),
        ),
    ))
}

pub fn path_error(err: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(IssueCode::Invalid, format!("Invalid path: {err}")).into()
}

pub fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(IssueCode::Invalid, format!("Invalid query: {err}")).into()
}

const JSON_TYPES: &[&str] = &[
    "application/fhir+json",
    "application/json",
    "application/json+fhir",
    "json",
];

/// Refuses, with 406, requests that want a format other than JSON (`_format` or `Accept`).
async fn negotiate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    let format = form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "_format")
        .map(|(_, v)| v.to_ascii_lowercase());
    let format_ok = format.as_deref().is_none_or(|f| {
        let essence = f.split(';').next().unwrap_or_default().trim();
        JSON_TYPES.contains(&essence)
    });
    let accept_ok = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|accept| {
            accept.split(',').any(|range| {
                let essence = range.split(';').next().unwrap_or_default().trim();
                essence.is_empty()
                    || essence == "*/*"
                    || essence == "application/*"
                    || JSON_TYPES.contains(&essence.to_ascii_lowercase().as_str())
            })
        });
    if format_ok && accept_ok {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let err = ApiError::one(
        StatusCode::NOT_ACCEPTABLE,
        Issue::error(
            IssueCode::NotSupported,
            "Only JSON is supported: ask for application/fhir+json",
        )
        .at(if format_ok { "Accept" } else { "_format" }),
    );
    let (req, _) = req.into_parts();
    Ok(
        ServiceResponse::new(req, actix_web::ResponseError::error_response(&err))
            .map_into_right_body(),
    )
}
