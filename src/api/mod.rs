//! Thin actix handlers: extract (the principal, the body, the headers), call the
//! application (`crate::app`), respond.
//! Routes for `$operations` and `_history` are registered before `/{type}/{id}`.

mod audit;
mod auth;
mod conformance;
mod crud;
pub mod edge;
pub mod extract;
/// The sample directory the server loads into an empty database (`deploy/`).
pub mod directory {
    pub use crate::app::directory::SAMPLE_DIRECTORY;
}
mod health;
mod history;
mod message;
mod metadata;
pub mod metrics;
pub(crate) mod negotiate;
mod operation;
mod paging;
mod patch;
mod reports;
mod respond;
mod route;
mod search;
mod subscription;
mod transaction;
mod validate;

use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::ApiError;
use crate::fhir::capability::{Messaging, ReadOnlyType, Served};
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::registry::ResourceDef;

/// What this router serves; the CapabilityStatement is generated from it.
pub const SERVED: Served = Served {
    type_interactions: &[
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "history-instance",
        "history-type",
        "create",
        "search-type",
    ],
    system_interactions: &["transaction", "batch", "history-system"],
    system_operations: &[(
        "process-message",
        "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message",
    )],
    type_operations: &[(
        "validate",
        "http://hl7.org/fhir/OperationDefinition/Resource-validate",
    )],
    resource_operations: &[
        (
            "Measure",
            "evaluate-measure",
            "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure",
        ),
        (
            "ServiceRequest",
            "route",
            "https://wor-hub.nl/fhir/OperationDefinition/ServiceRequest-route",
        ),
        (
            "Subscription",
            "status",
            "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status",
        ),
        (
            "Subscription",
            "events",
            "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events",
        ),
    ],
    supported_profiles: &[(
        "HealthcareService",
        crate::referral::codes::PROFILE_HEALTHCARE_SERVICE,
    )],
    resource_documentation: &[
        (
            "Subscription",
            "Notifications (README 'Notifications'): R4 Subscriptions Backport IG 1.1, topic-based, \
             rest-hook only. criteria is a topic canonical (see the extensions); filters in \
             backport-filter-criteria, one value per parameter; payload empty, id-only (default) or \
             full-resource; endpoints https, or http to a loopback address. The server sets status: \
             a new or re-activated (status requested) Subscription gets a handshake and becomes \
             active, or error when the handshake fails; deliveries are retried with backoff for \
             --notification-retry-horizon (72h), then error; re-activation resumes after the last \
             event delivered. Optional HMAC-SHA256 signature (X-Wor-Hub-Signature) with the secret \
             in the extension https://wor-hub.nl/fhir/StructureDefinition/subscription-signing-secret, \
             masked on read and refused in Bundles. $status and $events recover missed events.",
        ),
        ("Bundle", DOCUMENT_DOCUMENTATION),
        ("Endpoint", ENDPOINT_DOCUMENTATION),
        (
            "Task",
            "Workflow (README 'Referral workflow'): updates require If-Match (412 without, or \
             stale) and name the acting party in the X-Acting-Party header (Organization/<id> of \
             the owner, the requester's reference, or coordinator; in open mode an unnamed loopback \
             request acts as any party). States follow the R4 Task state machine; received is \
             optional: the owner moves requested -> received | accepted | rejected, received -> \
             accepted | rejected, accepted -> in-progress, in-progress <-> on-hold, in-progress -> \
             completed | failed; the requester (or a coordinator) cancels (from in-progress on, as \
             a request the owner confirms). Any other move is a business-rule violation: 422, issue \
             code business-rule at Task.status, naming both statuses (409 only for concurrent \
             changes). Stricter than R4: each move belongs to one party (only the owner accepts, \
             rejects and works; only the requester or a coordinator cancels); statusReason is \
             required for rejected, cancelled, on-hold and failed (422); the owner may change only \
             status, statusReason, businessStatus, output, note, executionPeriod and lastModified, \
             the requester status, statusReason, note and lastModified, a coordinator also owner \
             (403 naming the element otherwise). Creation is stricter too: the hub creates a \
             referral's Task when it routes it; a client may create one only as a coordinator or as \
             the referral's requester (403 otherwise), with status requested, intent order, code \
             fulfill (or none), focus an active ServiceRequest on this server without an open Task, \
             for its subject, requester its requester, owner a stored active Organization, \
             authoredOn, and no overdue tag or businessStatus only the hub sets (422 business-rule \
             naming each element otherwise), on every path (POST, update-as-create, transaction and \
             batch entries). businessStatus is from \
             https://wor-hub.nl/fhir/CodeSystem/task-business-status. The ServiceRequest follows \
             the Task (completed -> completed; cancelled, failed -> revoked); a rejection re-routes \
             to the next eligible service (a new Task partOf the rejected one). Tasks past the \
             contact deadline without contact (requested, received or accepted, no businessStatus \
             of contact made or later) carry the tag \
             https://wor-hub.nl/fhir/CodeSystem/task-flag|overdue.",
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
    conditional_update: true,
    conditional_delete: "single",
    read_only: &[
        crate::app::conformance::SERVED_TYPES,
        std::slice::from_ref(&AUDIT_EVENT),
    ],
    messaging: &[Messaging {
        documentation: MESSAGING_DOCUMENTATION,
        supported_messages: &[
            (
                "receiver",
                "https://wor-hub.nl/fhir/MessageDefinition/referral-new",
            ),
            (
                "receiver",
                "https://wor-hub.nl/fhir/MessageDefinition/referral-update",
            ),
            (
                "receiver",
                "https://wor-hub.nl/fhir/MessageDefinition/referral-cancel",
            ),
            (
                "sender",
                "https://wor-hub.nl/fhir/MessageDefinition/referral-status",
            ),
        ],
    }],
    documents: &[(
        "consumer",
        "http://hl7.org/fhir/StructureDefinition/Bundle",
        DOCUMENT_DOCUMENTATION,
    )],
};

/// Referrals as FHIR documents: `rest.resource` Bundle and `document`.
const DOCUMENT_DOCUMENTATION: &str = "Documents (README 'Gateway intake', \
     profiles/README-document-intake.md): POST /fhir/Bundle takes a referral as a document \
     (Bundle.type document, Composition first, Bundle.identifier and timestamp, every \
     Composition reference resolved inside the Bundle). The document is stored as received and \
     its resources are written as the equivalent transaction (Patient by BSN, Organization and \
     Practitioner by AGB, the ServiceRequest by its identifier, conditionally), routed as any \
     referral, in one unit of work. The same document again: 200 with the stored one; another \
     document with that identifier: 409. Read, vread, history and search only; other Bundle \
     types go to POST /fhir.";

/// FHIR messaging (`messaging.documentation`).
const MESSAGING_DOCUMENTATION: &str = "Referrals as FHIR messages \
     (profiles/README-message-intake.md): POST /fhir/$process-message takes a Bundle of type \
     message, MessageHeader first, eventCoding from https://wor-hub.nl/fhir/CodeSystem/message-event \
     (referral-new, referral-update, referral-cancel). Before sending, the sender registers an \
     Endpoint (POST /fhir/Endpoint): connectionType \
     http://terminology.hl7.org/CodeSystem/endpoint-connection-type|hl7-fhir-msg, address exactly \
     the MessageHeader.source.endpoint it sends from, managingOrganization its Organization, \
     status active, any payloadType; a message whose source.endpoint names no active registered \
     Endpoint is refused (422). Processing is synchronous only: async=true is refused (422 \
     not-supported). A processed message is answered 200 with the response message (the same \
     event, response.code ok, focus the ServiceRequest and its Task, both in full); a refused one \
     with a 4xx OperationOutcome whose issues carry details.coding \
     http://hl7.org/fhir/response-code|fatal-error (the sender's content: do not resend it \
     unchanged), a 5xx with transient-error (the hub's failure: resend later). The same message \
     again (same MessageHeader.id and source.endpoint, same content): 200 with the stored \
     response; another message reusing that id: 409. response-url is refused (422): the hub \
     sends only to the registered Endpoint's address, where the referral-status messages (one \
     per change of the referral's Task, in order) go through the notification outbox.";

/// `rest.resource` Endpoint: where FHIR messaging senders are registered.
const ENDPOINT_DOCUMENTATION: &str = "FHIR messaging (profiles/README-message-intake.md): a \
     sender of $process-message messages registers where its messages come from and where the \
     hub sends referral-status messages: connectionType \
     http://terminology.hl7.org/CodeSystem/endpoint-connection-type|hl7-fhir-msg, address \
     exactly the MessageHeader.source.endpoint the sender uses, managingOrganization the \
     sender's Organization, status active, payloadType (required by R4; any value), optional \
     header (\"Name: value\" strings sent with each delivery). A message whose source.endpoint \
     names no active registered Endpoint is refused (422). Status messages are delivered to \
     address through the notification outbox, like rest-hook Subscriptions (in order, retried \
     with backoff for --notification-retry-horizon); past that the Endpoint gets status error: \
     PUT it back to active to resume.";

/// What the CapabilityStatement says of AuditEvent: read and search only.
const AUDIT_EVENT: ReadOnlyType = ReadOnlyType {
    name: "AuditEvent",
    search_params: crate::app::audit::PARAMS,
    documentation: "The audit trail (NEN 7513, README 'Audit trail'): every read, search, \
        create, update, delete, notification and token grant touching patient data, with \
        who, which organisation, what, which patients, when, outcome and the request id. For \
        coordinators only (403 otherwise); in seq order, _count per page with a next link; \
        create, update, patch and delete answer 405. Rows are chained by SHA-256 hash \
        (wor-hub audit verify).",
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/fhir")
            .wrap(from_fn(negotiate::negotiate))
            // Outermost: a request without a valid token gets no further.
            .wrap(from_fn(auth::bearer))
            .service(
                web::resource("/.well-known/smart-configuration")
                    .route(web::get().to(auth::smart_configuration))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource(["", "/"])
                    .route(web::post().to(transaction::bundle))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/$process-message")
                    .route(web::post().to(message::process))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/metadata")
                    .route(web::get().to(metadata::capabilities))
                    .route(web::head().to(metadata::capabilities))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/_history")
                    .route(web::get().to(history::system))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/Measure/{id}/$evaluate-measure")
                    .route(web::get().to(reports::evaluate_measure))
                    .route(web::post().to(reports::evaluate_measure))
                    .default_service(web::to(method_not_allowed)),
            )
            // The hub's conformance resources, read-only (before the `{type}` routes).
            .service(
                web::resource(format!("/{}", conformance::TYPE_PATTERN))
                    .route(web::get().to(conformance::search))
                    .route(web::head().to(conformance::search))
                    .default_service(web::to(conformance::read_only)),
            )
            .service(
                web::resource(format!("/{}/_search", conformance::TYPE_PATTERN))
                    .route(web::post().to(conformance::search_post))
                    .default_service(web::to(conformance::read_only)),
            )
            .service(
                web::resource(format!("/{}/{{id}}", conformance::TYPE_PATTERN))
                    .route(web::get().to(conformance::read))
                    .route(web::head().to(conformance::read))
                    .default_service(web::to(conformance::read_only)),
            )
            .service(
                web::resource(format!("/{}/{{id}}/{{rest:.*}}", conformance::TYPE_PATTERN))
                    .default_service(web::to(conformance::not_served)),
            )
            // The audit trail: read and search only (before the `{type}` routes).
            .service(
                web::resource("/AuditEvent")
                    .route(web::get().to(audit::search))
                    .route(web::head().to(audit::search))
                    .default_service(web::to(audit::read_only)),
            )
            .service(
                web::resource("/AuditEvent/_search")
                    .route(web::post().to(audit::search_post))
                    .default_service(web::to(audit::read_only)),
            )
            .service(
                web::resource("/AuditEvent/{id}")
                    .route(web::get().to(audit::read))
                    .route(web::head().to(audit::read))
                    .default_service(web::to(audit::read_only)),
            )
            .service(
                web::resource("/AuditEvent/{id}/{rest:.*}")
                    .default_service(web::to(audit::not_served)),
            )
            .service(
                web::resource("/ServiceRequest/$route")
                    .route(web::post().to(route::route))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/Subscription/{id}/$status")
                    .route(web::get().to(subscription::status))
                    .route(web::post().to(subscription::status))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/Subscription/{id}/$events")
                    .route(web::get().to(subscription::events))
                    .route(web::post().to(subscription::events))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/{type}/$validate")
                    .route(web::post().to(validate::type_level))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/{type}/{id}/$validate")
                    .route(web::get().to(validate::instance))
                    .route(web::post().to(validate::instance))
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
                    .route(web::head().to(crud::vread))
                    .default_service(web::to(method_not_allowed)),
            )
            // Documents: stored as received, read and searched, never changed.
            .service(
                web::resource("/{type:Bundle}/{id}")
                    .route(web::get().to(crud::read))
                    .route(web::head().to(crud::read))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/{type:Bundle}")
                    .route(web::post().to(crud::create))
                    .route(web::get().to(search::search))
                    .route(web::head().to(search::search))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/{type}/{id}")
                    .route(web::get().to(crud::read))
                    .route(web::head().to(crud::read))
                    .route(web::put().to(crud::update))
                    .route(web::patch().to(patch::patch))
                    .route(web::delete().to(crud::delete))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/{type}")
                    .route(web::post().to(crud::create))
                    .route(web::get().to(search::search))
                    .route(web::head().to(search::search))
                    .route(web::put().to(crud::conditional_update))
                    .route(web::delete().to(crud::conditional_delete))
                    .default_service(web::to(method_not_allowed)),
            ),
    )
    .service(
        web::resource(crate::auth::TOKEN_PATH)
            .route(web::post().to(auth::token))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/.well-known/smart-configuration")
            .route(web::get().to(auth::smart_configuration))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::scope("/reports")
            .wrap(from_fn(auth::bearer))
            .service(
                web::resource("/referrals")
                    .route(web::get().to(reports::referrals))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/dashboard")
                    .route(web::get().to(reports::dashboard))
                    .default_service(web::to(method_not_allowed)),
            ),
    )
    .route("/health/live", web::get().to(health::live))
    .route("/health/ready", web::get().to(health::ready))
    .route("/metrics", web::get().to(metrics::metrics))
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

/// `{type}/{id}` of an instance-level URL: the registered type (or 404) and the id (or 400).
pub fn type_and_id((ty, id): (String, String)) -> Result<(&'static ResourceDef, String), ApiError> {
    let def = resource_def(&ty)?;
    logical_id(&id)?;
    Ok((def, id))
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
