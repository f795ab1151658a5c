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
/// What the referral statistics count (the groups of [`MEASURE_REFERRAL_STATISTICS`]).
pub const CS_REFERRAL_METRIC: &str = "https://wor-hub.nl/fhir/CodeSystem/referral-metric";
/// The Measure whose MeasureReports `$evaluate-measure` answers.
pub const MEASURE_REFERRAL_STATISTICS: &str = "https://wor-hub.nl/fhir/Measure/referral-statistics";
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
    use crate::fhir::registry::RESOURCES;
    use crate::referral::business_status::BusinessStatus;
    use crate::referral::municipality;
    use crate::referral::positive_health::{Dimension, MAX_SCORE, MIN_SCORE};
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
            let issues = crate::fhir::validate::schema_errors(ty, v);
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
            CS_TASK_FLAG,
            CS_TASK_OUTPUT_TYPE,
            QUESTIONNAIRE_POSITIVE_HEALTH,
            "https://wor-hub.nl/fhir/OperationDefinition/ServiceRequest-route",
            "https://wor-hub.nl/fhir/SearchParameter/Task-output",
            "https://wor-hub.nl/fhir/CodeSystem/message-event",
            "https://wor-hub.nl/fhir/ValueSet/message-event",
            "https://wor-hub.nl/fhir/MessageDefinition/referral-new",
            "https://wor-hub.nl/fhir/MessageDefinition/referral-update",
            "https://wor-hub.nl/fhir/MessageDefinition/referral-cancel",
            "https://wor-hub.nl/fhir/MessageDefinition/referral-status",
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
        // The statistics' metrics: the CodeSystem, the Measure's groups and the code agree.
        use crate::referral::report::Metric;
        let metrics: BTreeSet<String> = Metric::ALL.iter().map(|m| m.code().to_owned()).collect();
        assert_eq!(codes_of(&files, CS_REFERRAL_METRIC), metrics);
        let measure = find(&files, MEASURE_REFERRAL_STATISTICS);
        let groups: Vec<&str> = measure["group"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["code"]["coding"][0]["code"].as_str().unwrap())
            .collect();
        assert_eq!(groups, Metric::ALL.map(Metric::code));
        assert_eq!(
            codes_of(&files, CS_TASK_FLAG),
            ["overdue"].map(str::to_owned).into()
        );
        assert_eq!(
            codes_of(&files, CS_TASK_OUTPUT_TYPE),
            [
                "feedback",
                "positive-health-closing",
                "positive-health-intake"
            ]
            .map(str::to_owned)
            .into()
        );
    }

    fn find<'f>(files: &'f [(String, Value)], url: &str) -> &'f Value {
        &files.iter().find(|(_, v)| v["url"] == url).unwrap().1
    }

    /// The `value` of a concept's designation in `language`.
    fn designation<'v>(concept: &'v Value, language: &str) -> Option<&'v str> {
        concept["designation"]
            .as_array()?
            .iter()
            .find(|d| d["language"] == language)
            .and_then(|d| d["value"].as_str())
    }

    #[test]
    fn code_systems_count_and_display_their_concepts_and_value_sets_include_them() {
        let files = profiles();
        for (name, cs) in files
            .iter()
            .filter(|(_, v)| v["resourceType"] == "CodeSystem")
        {
            let concepts = cs["concept"].as_array().unwrap();
            assert_eq!(cs["count"], concepts.len(), "{name}");
            assert_eq!(cs["content"], "complete", "{name}");
            let vs = find(&files, cs["valueSet"].as_str().unwrap());
            assert_eq!(vs["compose"]["include"][0]["system"], cs["url"], "{name}");
            for c in concepts {
                assert!(c["display"].is_string(), "{name} {}", c["code"]);
            }
        }
    }

    #[test]
    fn business_status_code_system_is_the_enum() {
        let files = profiles();
        let cs = find(&files, CS_TASK_BUSINESS_STATUS);
        let concepts = cs["concept"].as_array().unwrap();
        assert_eq!(concepts.len(), BusinessStatus::ALL.len());
        let property = |c: &Value, code: &str| {
            c["property"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["code"] == code)
                .and_then(|p| p["valueBoolean"].as_bool())
                .unwrap()
        };
        for (c, status) in concepts.iter().zip(BusinessStatus::ALL) {
            assert_eq!(c["code"], status.code());
            assert_eq!(c["display"], status.display());
            assert_eq!(designation(c, "nl"), Some(status.display_nl()));
            assert_eq!(designation(c, "en"), Some(status.display()));
            assert_eq!(property(c, "hub-managed"), status.hub_managed());
            assert_eq!(property(c, "implies-contact"), status.implies_contact());
            let definition = c["definition"].as_str().unwrap();
            assert_eq!(
                definition.starts_with("Hub-managed"),
                status.hub_managed(),
                "{definition}"
            );
            assert_eq!(
                definition.contains("satisfies the contact deadline"),
                status.implies_contact(),
                "{definition}"
            );
        }
    }

    #[test]
    fn flag_and_output_type_displays() {
        let files = profiles();
        let overdue = &find(&files, CS_TASK_FLAG)["concept"][0];
        assert_eq!(overdue["display"], "Contact deadline passed");
        assert_eq!(
            designation(overdue, "nl"),
            Some("Contacttermijn verstreken")
        );
        let outputs = &find(&files, CS_TASK_OUTPUT_TYPE)["concept"];
        let nl: Vec<_> = outputs
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["code"].as_str().unwrap(), designation(c, "nl").unwrap()))
            .collect();
        assert_eq!(
            nl,
            [
                ("feedback", "Terugkoppeling aan verwijzer"),
                ("positive-health-intake", "Positieve Gezondheid bij intake"),
                (
                    "positive-health-closing",
                    "Positieve Gezondheid bij afsluiting"
                ),
            ]
        );
    }

    #[test]
    fn positive_health_questionnaire_is_the_domain_module() {
        let files = profiles();
        let q = find(&files, QUESTIONNAIRE_POSITIVE_HEALTH);
        assert_eq!(q["status"], "active");
        let items = q["item"].as_array().unwrap();
        assert_eq!(items.len(), Dimension::ALL.len());
        let extension = |item: &Value, url: &str| {
            item["extension"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["url"] == url)
                .and_then(|e| e["valueInteger"].as_i64())
        };
        for (item, d) in items.iter().zip(Dimension::ALL) {
            assert_eq!(item["linkId"], d.link_id());
            assert_eq!(item["text"], d.text_nl());
            let translation = &item["_text"]["extension"][0];
            assert_eq!(
                translation["url"],
                "http://hl7.org/fhir/StructureDefinition/translation"
            );
            assert_eq!(translation["extension"][0]["valueCode"], "en");
            assert_eq!(translation["extension"][1]["valueString"], d.text_en());
            assert_eq!(item["type"], "integer");
            assert_eq!(item["required"], true);
            assert_eq!(
                extension(item, "http://hl7.org/fhir/StructureDefinition/minValue"),
                Some(MIN_SCORE)
            );
            assert_eq!(
                extension(item, "http://hl7.org/fhir/StructureDefinition/maxValue"),
                Some(MAX_SCORE)
            );
        }
    }

    /// Every project search parameter in the registry has its SearchParameter here, and
    /// every SearchParameter here is in the registry, with the same code, base, type and
    /// targets.
    #[test]
    fn project_search_parameters_match_the_registry() {
        let files = profiles();
        let mut defined: BTreeSet<&str> = files
            .iter()
            .filter(|(_, v)| v["resourceType"] == "SearchParameter")
            .map(|(_, v)| v["url"].as_str().unwrap())
            .collect();
        for def in RESOURCES {
            for p in def.search_params {
                if !p.definition.starts_with(BASE) {
                    assert!(p
                        .definition
                        .starts_with("http://hl7.org/fhir/SearchParameter/"));
                    continue;
                }
                assert!(defined.remove(p.definition), "no file for {}", p.definition);
                let sp = find(&files, p.definition);
                assert_eq!(sp["code"], p.name);
                assert!(sp["base"]
                    .as_array()
                    .unwrap()
                    .contains(&Value::from(def.name)));
                assert_eq!(sp["type"], p.ty.as_str());
                let targets: BTreeSet<&str> = sp["target"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap())
                    .collect();
                assert_eq!(targets, p.targets.iter().copied().collect());
            }
        }
        assert!(defined.is_empty(), "not in the registry: {defined:?}");
    }
}
