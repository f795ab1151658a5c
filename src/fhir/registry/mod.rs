//! The resource types and search parameters this server supports. The router, the
//! indexer, the search parser and the CapabilityStatement all read this one table.

/// A search parameter's type (search.html#ptypes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Token,
    String,
    Reference,
    Date,
    /// Exact match of the whole URI (indexed as a token without system).
    Uri,
}

impl ParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::String => "string",
            Self::Reference => "reference",
            Self::Date => "date",
            Self::Uri => "uri",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SearchParamDef {
    pub name: &'static str,
    pub ty: ParamType,
    /// Dotted element paths from the resource root that the index reads. Empty for
    /// `_id` and `_lastUpdated`, which the store answers from the resource itself.
    pub paths: &'static [&'static str],
    /// Reference parameters: the resource types a reference may point to (empty: any).
    pub targets: &'static [&'static str],
    pub definition: &'static str,
    pub documentation: &'static str,
}

impl SearchParamDef {
    /// Whether a reference to `ty` belongs to this parameter.
    pub fn targets_type(&self, ty: &str) -> bool {
        self.targets.is_empty() || self.targets.contains(&ty)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ResourceDef {
    pub name: &'static str,
    pub search_params: &'static [SearchParamDef],
}

/// A search parameter defined by FHIR R4 (`$def` is its id, e.g. `Task-owner`), or with
/// `project` one of this project's (`profiles/SearchParameter-<id>.json`).
macro_rules! param {
    ($name:literal, $ty:ident, [$($path:literal),*], [$($target:literal),*], $def:literal, $doc:literal) => {
        param!(@ "http://hl7.org/fhir/SearchParameter/", $name, $ty, [$($path),*], [$($target),*], $def, $doc)
    };
    (project $name:literal, $ty:ident, [$($path:literal),*], [$($target:literal),*], $def:literal, $doc:literal) => {
        param!(@ "https://wor-hub.nl/fhir/SearchParameter/", $name, $ty, [$($path),*], [$($target),*], $def, $doc)
    };
    (@ $base:literal, $name:literal, $ty:ident, [$($path:literal),*], [$($target:literal),*], $def:literal, $doc:literal) => {
        SearchParamDef {
            name: $name,
            ty: ParamType::$ty,
            paths: &[$($path),*],
            targets: &[$($target),*],
            definition: concat!($base, $def),
            documentation: $doc,
        }
    };
}

mod tables;

pub use tables::RESOURCES;

pub fn resource(name: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|r| r.name == name)
}

impl ResourceDef {
    pub fn search_param(&self, name: &str) -> Option<&'static SearchParamDef> {
        self.search_params.iter().find(|p| p.name == name)
    }

    /// Registered types a reference parameter may point to.
    pub fn reference_targets(param: &SearchParamDef) -> Vec<&'static ResourceDef> {
        RESOURCES
            .iter()
            .filter(|r| param.targets_type(r.name))
            .collect()
    }

    /// `_include` values this type supports: `Type:param` for each reference parameter
    /// that may point to a type served here (`QuestionnaireResponse:questionnaire` names a
    /// Questionnaire by canonical URL, which this server does not serve).
    pub fn includes(&self) -> Vec<String> {
        self.search_params
            .iter()
            .filter(|p| p.ty == ParamType::Reference && !Self::reference_targets(p).is_empty())
            .map(|p| format!("{}:{}", self.name, p.name))
            .collect()
    }

    /// `_revinclude` values: `Other:param` for reference parameters that may point here.
    pub fn revincludes(&self) -> Vec<String> {
        RESOURCES
            .iter()
            .flat_map(|other| {
                other
                    .search_params
                    .iter()
                    .filter(|p| p.ty == ParamType::Reference && p.targets_type(self.name))
                    .map(move |p| format!("{}:{}", other.name, p.name))
            })
            .collect()
    }
}
