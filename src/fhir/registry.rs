//! The resource types and search parameters this server supports. The router, the
//! validator and the CapabilityStatement all read this one table.

/// A search parameter of type token over an element holding `Identifier`s or codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// `_id`: the logical id.
    Id,
    /// A token over `Identifier` (system + value) elements.
    Identifier,
}

#[derive(Debug, Clone, Copy)]
pub struct SearchParamDef {
    pub name: &'static str,
    pub kind: ParamKind,
    /// Top-level element(s) the index reads.
    pub element: &'static str,
    pub definition: &'static str,
    pub documentation: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub struct ResourceDef {
    pub name: &'static str,
    pub search_params: &'static [SearchParamDef],
}

const ID: SearchParamDef = SearchParamDef {
    name: "_id",
    kind: ParamKind::Id,
    element: "id",
    definition: "http://hl7.org/fhir/SearchParameter/Resource-id",
    documentation: "Logical id of the resource",
};

macro_rules! identifier_param {
    ($ty:literal) => {
        SearchParamDef {
            name: "identifier",
            kind: ParamKind::Identifier,
            element: "identifier",
            definition: concat!("http://hl7.org/fhir/SearchParameter/", $ty, "-identifier"),
            documentation: "Business identifier: system|value, |value, system| or value",
        }
    };
}

macro_rules! resource {
    ($ty:literal) => {
        ResourceDef {
            name: $ty,
            search_params: &[ID, identifier_param!($ty)],
        }
    };
}

/// Every resource type served under `/fhir/<type>`.
pub const RESOURCES: &[ResourceDef] = &[
    resource!("Consent"),
    resource!("HealthcareService"),
    resource!("Location"),
    resource!("Organization"),
    resource!("Patient"),
    resource!("Practitioner"),
    resource!("PractitionerRole"),
    resource!("ServiceRequest"),
    resource!("Task"),
];

pub fn resource(name: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|r| r.name == name)
}

impl ResourceDef {
    pub fn search_param(&self, name: &str) -> Option<&'static SearchParamDef> {
        self.search_params.iter().find(|p| p.name == name)
    }
}
