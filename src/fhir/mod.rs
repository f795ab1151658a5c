//! FHIR wire format: validation, resource bodies, Bundles, search criteria and the
//! CapabilityStatement. No HTTP framework and no database types live here.

pub mod bundle;
pub mod capability;
pub mod criteria;
pub mod dates;
pub mod elements;
pub mod identifiers;
pub mod index;
pub mod instant;
pub mod outcome;
pub mod patch;
pub mod patient_of;
pub mod references;
pub mod registry;
pub mod resource;
pub mod search;
pub mod text;
pub mod transaction;
pub mod validate;

/// The media type of every response body.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
/// FHIR version this server speaks.
pub const FHIR_VERSION: &str = "4.0.1";
