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

/// Flags the hub puts in `Task.meta.tag` (`overdue`).
pub const CS_TASK_FLAG: &str = "https://wor-hub.nl/fhir/CodeSystem/task-flag";
/// The kinds of `Task.output` (`feedback`, `positive-health-intake`, `positive-health-closing`).
pub const CS_TASK_OUTPUT_TYPE: &str = "https://wor-hub.nl/fhir/CodeSystem/task-output-type";
/// The Positive Health questionnaire (six dimensions, each 0 to 10).
pub const QUESTIONNAIRE_POSITIVE_HEALTH: &str =
    "https://wor-hub.nl/fhir/Questionnaire/positive-health";

pub const TASK_CODE_SYSTEM: &str = "http://hl7.org/fhir/CodeSystem/task-code";

#[cfg(test)]
mod tests {
    //! The files in `profiles/` and the code agree.
    use std::collections::BTreeSet;
    use std::path::Path;

    use serde_json::Value;

    use super::*;
    use crate::fhir::validate::validate_resource;
    use crate::referral::municipality;
    use crate::referral::route::{MunicipalitySource, Unroutable};

    fn profiles() -> Vec<(String, Value)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(".json") || name == "fhir.schema.json" {
                continue;
            }
            let value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            out.push((name, value));
        }
        out
    }

    fn codes_of(files: &[(String, Value)], url: &str) -> BTreeSet<String> {
        let (_, cs) = files.iter().find(|(_, v)| v["url"] == url).unwrap();
        cs["concept"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn every_profile_is_valid_r4_named_by_its_url() {
        let files = profiles();
        assert!(files.len() >= 20);
        for (name, v) in &files {
            let ty = v["resourceType"].as_str().unwrap();
            let id = v["id"].as_str().unwrap();
            assert_eq!(name, &format!("{ty}-{id}.json"));
            assert_eq!(v["url"], format!("{BASE}/{ty}/{id}"), "{name}");
            // The vendored schema predates 4.0.1 in its fhirVersion list.
            let issues: Vec<_> = validate_resource(ty, v)
                .into_iter()
                .filter(|i| i.is_error())
                .filter(|i| {
                    !i.expression
                        .as_deref()
                        .unwrap_or_default()
                        .ends_with("fhirVersion")
                })
                .collect();
            assert!(issues.is_empty(), "{name}: {issues:?}");
        }
        let urls: BTreeSet<&str> = files
            .iter()
            .filter_map(|(_, v)| v["url"].as_str())
            .collect();
        for url in [
            PROFILE_HEALTHCARE_SERVICE,
            EXT_MUNICIPALITY,
            EXT_POSTAL_CODE_RANGE,
            EXT_AGE_GROUP,
            EXT_VALIDITY_PERIOD,
            EXT_ROUTING_PRIORITY,
            EXT_ROUTING_DECISION,
            CS_SERVICE_CATEGORY,
            CS_AGE_GROUP,
            CS_CBS_MUNICIPALITY,
            CS_TASK_BUSINESS_STATUS,
            CS_UNROUTABLE_REASON,
            CS_MUNICIPALITY_SOURCE,
            "https://wor-hub.nl/fhir/OperationDefinition/ServiceRequest-route",
        ] {
            assert!(urls.contains(url), "no file defines {url}");
        }
    }

    #[test]
    fn code_systems_match_the_code() {
        let files = profiles();
        let cbs = codes_of(&files, CS_CBS_MUNICIPALITY);
        assert_eq!(cbs.len(), municipality::count());
        assert!(cbs.iter().all(|c| municipality::by_code(c).is_some()));
        let reasons = [
            Unroutable::NoPatient,
            Unroutable::NoBirthDate,
            Unroutable::BirthDateImprecise,
            Unroutable::BirthDateAfterReferral,
            Unroutable::NoMunicipality,
            Unroutable::NoService,
            Unroutable::AllRejected,
        ];
        assert_eq!(
            codes_of(&files, CS_UNROUTABLE_REASON),
            reasons.iter().map(|r| r.code().to_owned()).collect()
        );
        let sources = [
            MunicipalitySource::AddressCode,
            MunicipalitySource::DistrictName,
            MunicipalitySource::PostcodeTable,
            MunicipalitySource::ServicePostcodeRange,
            MunicipalitySource::None,
        ];
        assert_eq!(
            codes_of(&files, CS_MUNICIPALITY_SOURCE),
            sources.iter().map(|s| s.code().to_owned()).collect()
        );
        assert_eq!(
            codes_of(&files, CS_AGE_GROUP),
            ["18-plus", "all", "under-18"].map(str::to_owned).into()
        );
        assert!(codes_of(&files, CS_SERVICE_CATEGORY).contains(WOR));
        assert!(codes_of(&files, CS_TASK_BUSINESS_STATUS).contains("unroutable"));
    }
}
