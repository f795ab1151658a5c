//! Canonical URLs of this project's conformance resources (`profiles/`).

pub const BASE: &str = "https://wor-hub.nl/fhir";

pub const PROFILE_HEALTHCARE_SERVICE: &str =
    "https://wor-hub.nl/fhir/StructureDefinition/wor-healthcareservice";

pub const EXT_MUNICIPALITY: &str = "https://wor-hub.nl/fhir/StructureDefinition/municipality";
pub const EXT_POSTAL_CODE_RANGE: &str =
    "https://wor-hub.nl/fhir/StructureDefinition/postal-code-range";
pub const EXT_AGE_GROUP: &str = "https://wor-hub.nl/fhir/StructureDefinition/age-group";
pub const EXT_VALIDITY_PERIOD: &str = "https://wor-hub.nl/fhir/StructureDefinition/validity-period";
pub const EXT_ROUTING_PRIORITY: &str =
    "https://wor-hub.nl/fhir/StructureDefinition/routing-priority";
pub const EXT_ROUTING_DECISION: &str =
    "https://wor-hub.nl/fhir/StructureDefinition/routing-decision";

pub const CS_SERVICE_CATEGORY: &str = "https://wor-hub.nl/fhir/CodeSystem/service-category";
/// The Welzijn op Recept service category.
pub const WOR: &str = "wor";
pub const CS_AGE_GROUP: &str = "https://wor-hub.nl/fhir/CodeSystem/age-group";
pub const CS_CBS_MUNICIPALITY: &str = "https://wor-hub.nl/fhir/CodeSystem/cbs-municipality";
pub const CS_TASK_BUSINESS_STATUS: &str = "https://wor-hub.nl/fhir/CodeSystem/task-business-status";
pub const CS_UNROUTABLE_REASON: &str = "https://wor-hub.nl/fhir/CodeSystem/unroutable-reason";
pub const CS_MUNICIPALITY_SOURCE: &str = "https://wor-hub.nl/fhir/CodeSystem/municipality-source";

pub const TASK_CODE_SYSTEM: &str = "http://hl7.org/fhir/CodeSystem/task-code";
