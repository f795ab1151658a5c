//! The search parameters of each served type, and the table of served types.

use super::{ParamType, ResourceDef, SearchParamDef};

const ID: SearchParamDef = param!(
    "_id",
    Token,
    [],
    [],
    "Resource-id",
    "Logical id of the resource"
);
const LAST_UPDATED: SearchParamDef = param!(
    "_lastUpdated",
    Date,
    [],
    [],
    "Resource-lastUpdated",
    "When the resource version last changed (meta.lastUpdated)"
);

macro_rules! identifier {
    ($def:literal) => {
        param!(
            "identifier",
            Token,
            ["identifier"],
            [],
            $def,
            "Business identifier: system|value, |value, system| or value"
        )
    };
}

// After `identifier!`: the module uses it.
#[path = "exchange.rs"]
mod exchange;
use exchange::{BUNDLE, ENDPOINT, SUBSCRIPTION};

/// Who may perform a request or own a task (ServiceRequest.performer, Task.owner).
const PERFORMERS: &[&str] = &[
    "Practitioner",
    "Organization",
    "CareTeam",
    "HealthcareService",
    "Patient",
    "Device",
    "RelatedPerson",
    "PractitionerRole",
];

const REQUESTERS: &[&str] = &[
    "Device",
    "Organization",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "RelatedPerson",
];

const SERVICE_REQUEST: &[SearchParamDef] = &[
    ID,
    LAST_UPDATED,
    identifier!("clinical-identifier"),
    param!(
        "patient",
        Reference,
        ["subject"],
        ["Patient"],
        "clinical-patient",
        "The patient the referral is for"
    ),
    param!(
        "subject",
        Reference,
        ["subject"],
        ["Patient", "Group", "Location", "Device"],
        "ServiceRequest-subject",
        "The subject of the request"
    ),
    SearchParamDef {
        targets: REQUESTERS,
        ..param!(
            "requester",
            Reference,
            ["requester"],
            [],
            "ServiceRequest-requester",
            "Who asked for the service"
        )
    },
    SearchParamDef {
        targets: PERFORMERS,
        ..param!(
            "performer",
            Reference,
            ["performer"],
            [],
            "ServiceRequest-performer",
            "Requested performer"
        )
    },
    param!(
        "status",
        Token,
        ["status"],
        [],
        "ServiceRequest-status",
        "draft | active | on-hold | revoked | completed | entered-in-error | unknown"
    ),
    param!(
        "intent",
        Token,
        ["intent"],
        [],
        "ServiceRequest-intent",
        "proposal | plan | directive | order ..."
    ),
    param!(
        "category",
        Token,
        ["category"],
        [],
        "ServiceRequest-category",
        "Classification of the service"
    ),
    param!(
        "code",
        Token,
        ["code"],
        [],
        "clinical-code",
        "What is being requested"
    ),
    param!(
        "authored",
        Date,
        ["authoredOn"],
        [],
        "ServiceRequest-authored",
        "Date the request was signed"
    ),
];

const TASK: &[SearchParamDef] = &[
    ID,
    LAST_UPDATED,
    identifier!("Task-identifier"),
    SearchParamDef {
        targets: PERFORMERS,
        ..param!(
            "owner",
            Reference,
            ["owner"],
            [],
            "Task-owner",
            "Responsible individual or organisation"
        )
    },
    SearchParamDef {
        targets: REQUESTERS,
        ..param!(
            "requester",
            Reference,
            ["requester"],
            [],
            "Task-requester",
            "Who asked for the task"
        )
    },
    param!(
        "focus",
        Reference,
        ["focus"],
        [],
        "Task-focus",
        "What the task acts on (the ServiceRequest)"
    ),
    param!(
        "based-on",
        Reference,
        ["basedOn"],
        [],
        "Task-based-on",
        "Request the task fulfils"
    ),
    param!(
        "part-of",
        Reference,
        ["partOf"],
        ["Task"],
        "Task-part-of",
        "Composite task"
    ),
    param!(
        "patient",
        Reference,
        ["for"],
        ["Patient"],
        "Task-patient",
        "The patient the task is for"
    ),
    param!(
        "subject",
        Reference,
        ["for"],
        [],
        "Task-subject",
        "Beneficiary of the task"
    ),
    param!(
        "status",
        Token,
        ["status"],
        [],
        "Task-status",
        "Task status"
    ),
    param!(
        "business-status",
        Token,
        ["businessStatus"],
        [],
        "Task-business-status",
        "Progress within the status (this project's CodeSystem)"
    ),
    param!(
        "intent",
        Token,
        ["intent"],
        [],
        "Task-intent",
        "Task intent"
    ),
    param!("code", Token, ["code"], [], "Task-code", "Task type"),
    param!(
        "authored-on",
        Date,
        ["authoredOn"],
        [],
        "Task-authored-on",
        "Creation date"
    ),
    param!(
        "modified",
        Date,
        ["lastModified"],
        [],
        "Task-modified",
        "Last modification date"
    ),
    param!(
        project "output",
        Reference,
        ["output.valueReference"],
        ["QuestionnaireResponse"],
        "Task-output",
        "Resources in Task.output.valueReference (Positive Health QuestionnaireResponses); _include=Task:output returns them"
    ),
    param!(
        "_tag",
        Token,
        ["meta.tag"],
        [],
        "Resource-tag",
        "Tags in meta.tag, e.g. https://wor-hub.nl/fhir/CodeSystem/task-flag|overdue"
    ),
];

const PATIENT: &[SearchParamDef] = &[
    ID,
    LAST_UPDATED,
    identifier!("Patient-identifier"),
    param!(
        "birthdate",
        Date,
        ["birthDate"],
        [],
        "individual-birthdate",
        "Date of birth"
    ),
    param!(
        "family",
        String,
        ["name.family"],
        [],
        "individual-family",
        "Family name (starts with; :exact, :contains)"
    ),
    param!(
        "given",
        String,
        ["name.given"],
        [],
        "individual-given",
        "Given name (starts with; :exact, :contains)"
    ),
    param!(
        "name",
        String,
        ["name"],
        [],
        "Patient-name",
        "Any part of a name (starts with; :exact, :contains)"
    ),
    param!(
        "address-postalcode",
        String,
        ["address.postalCode"],
        [],
        "individual-address-postalcode",
        "Postcode"
    ),
];

const ORGANIZATION: &[SearchParamDef] = &[
    ID,
    LAST_UPDATED,
    identifier!("Organization-identifier"),
    param!(
        "name",
        String,
        ["name", "alias"],
        [],
        "Organization-name",
        "Name or alias (starts with; :exact, :contains)"
    ),
    param!(
        "active",
        Token,
        ["active"],
        [],
        "Organization-active",
        "Whether the record is in active use"
    ),
];

const HEALTHCARE_SERVICE: &[SearchParamDef] = &[
    ID,
    LAST_UPDATED,
    identifier!("HealthcareService-identifier"),
    param!(
        "organization",
        Reference,
        ["providedBy"],
        ["Organization"],
        "HealthcareService-organization",
        "The organisation providing the service"
    ),
    param!(
        "active",
        Token,
        ["active"],
        [],
        "HealthcareService-active",
        "Whether the service is in active use"
    ),
    param!(
        "service-category",
        Token,
        ["category"],
        [],
        "HealthcareService-service-category",
        "Service category"
    ),
];

const PRACTITIONER: &[SearchParamDef] = &[
    ID,
    LAST_UPDATED,
    identifier!("Practitioner-identifier"),
    param!(
        "name",
        String,
        ["name"],
        [],
        "Practitioner-name",
        "Any part of a name (starts with; :exact, :contains)"
    ),
];

const PRACTITIONER_ROLE: &[SearchParamDef] = &[
    ID,
    LAST_UPDATED,
    identifier!("PractitionerRole-identifier"),
    param!(
        "practitioner",
        Reference,
        ["practitioner"],
        ["Practitioner"],
        "PractitionerRole-practitioner",
        "The practitioner"
    ),
    param!(
        "organization",
        Reference,
        ["organization"],
        ["Organization"],
        "PractitionerRole-organization",
        "The organisation"
    ),
];

const CONSENT: &[SearchParamDef] = &[
    ID,
    LAST_UPDATED,
    identifier!("clinical-identifier"),
    param!(
        "patient",
        Reference,
        ["patient"],
        ["Patient"],
        "clinical-patient",
        "The patient who consents"
    ),
];

const LOCATION: &[SearchParamDef] = &[ID, LAST_UPDATED, identifier!("Location-identifier")];

const QUESTIONNAIRE_RESPONSE: &[SearchParamDef] = &[
    ID,
    LAST_UPDATED,
    identifier!("QuestionnaireResponse-identifier"),
    param!(
        "questionnaire",
        Reference,
        ["questionnaire"],
        ["Questionnaire"],
        "QuestionnaireResponse-questionnaire",
        "The Questionnaire answered, by canonical URL (matches any version; url|version matches that version)"
    ),
    param!(
        "subject",
        Reference,
        ["subject"],
        [],
        "QuestionnaireResponse-subject",
        "Who or what the answers are about"
    ),
    param!(
        "patient",
        Reference,
        ["subject"],
        ["Patient"],
        "QuestionnaireResponse-patient",
        "The patient the answers are about"
    ),
    param!(
        "based-on",
        Reference,
        ["basedOn"],
        ["CarePlan", "ServiceRequest"],
        "QuestionnaireResponse-based-on",
        "Plan or request the answers fulfil"
    ),
    param!(
        "status",
        Token,
        ["status"],
        [],
        "QuestionnaireResponse-status",
        "in-progress | completed | amended | entered-in-error | stopped"
    ),
    param!(
        "authored",
        Date,
        ["authored"],
        [],
        "QuestionnaireResponse-authored",
        "When the answers were gathered"
    ),
];

/// Every resource type served under `/fhir/<type>`.
pub const RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        name: "Bundle",
        search_params: BUNDLE,
    },
    ResourceDef {
        name: "Consent",
        search_params: CONSENT,
    },
    ResourceDef {
        name: "Endpoint",
        search_params: ENDPOINT,
    },
    ResourceDef {
        name: "HealthcareService",
        search_params: HEALTHCARE_SERVICE,
    },
    ResourceDef {
        name: "Location",
        search_params: LOCATION,
    },
    ResourceDef {
        name: "Organization",
        search_params: ORGANIZATION,
    },
    ResourceDef {
        name: "Patient",
        search_params: PATIENT,
    },
    ResourceDef {
        name: "Practitioner",
        search_params: PRACTITIONER,
    },
    ResourceDef {
        name: "PractitionerRole",
        search_params: PRACTITIONER_ROLE,
    },
    ResourceDef {
        name: "QuestionnaireResponse",
        search_params: QUESTIONNAIRE_RESPONSE,
    },
    ResourceDef {
        name: "ServiceRequest",
        search_params: SERVICE_REQUEST,
    },
    ResourceDef {
        name: "Subscription",
        search_params: SUBSCRIPTION,
    },
    ResourceDef {
        name: "Task",
        search_params: TASK,
    },
];
