//! The welfare directory: HealthcareService resources read as routing rules
//! (profile `wor-healthcareservice`, see `profiles/README.md`).

use fhir_sdk::r4b::resources::HealthcareService;
use fhir_sdk::r4b::types::{CodeableConcept, ExtensionValue};
use fhir_sdk::{Date, DateTime};
use serde_json::Value;
use time::Month;

use super::age::{dutch_date, AgeGroup};
use super::codes::{
    CS_CBS_MUNICIPALITY, CS_SERVICE_CATEGORY, EXT_AGE_GROUP, EXT_MUNICIPALITY,
    EXT_POSTAL_CODE_RANGE, EXT_ROUTING_PRIORITY, EXT_VALIDITY_PERIOD,
};
use super::municipality;
use super::postcode::Pc4Range;
use crate::fhir::outcome::{Issue, IssueCode};

/// The ages a service takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServedAges {
    Only(AgeGroup),
    All,
}

impl ServedAges {
    pub fn serves(self, group: AgeGroup) -> bool {
        match self {
            Self::Only(g) => g == group,
            Self::All => true,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Only(g) => g.code(),
            Self::All => "all",
        }
    }
}

/// A code of a CodeableConcept: (system, code).
pub type Code = (Option<String>, String);

/// A HealthcareService as a routing rule.
#[derive(Debug, Clone)]
pub struct Service {
    pub id: String,
    pub name: Option<String>,
    pub active: bool,
    /// The id of the providing Organization (`providedBy` = `Organization/<id>`).
    pub organization: Option<String>,
    pub categories: Vec<Code>,
    /// CBS codes (`GMdddd`) of the municipalities served.
    pub municipalities: Vec<String>,
    pub pc4_ranges: Vec<Pc4Range>,
    pub ages: ServedAges,
    /// The contract period, inclusive, at date precision.
    pub valid_from: Option<time::Date>,
    pub valid_until: Option<time::Date>,
    /// 1 is the first choice; higher numbers are fallbacks.
    pub priority: u32,
}

impl Service {
    /// Whether the service lists an area: without one it is never routed to.
    pub fn is_routable(&self) -> bool {
        !self.municipalities.is_empty() || !self.pc4_ranges.is_empty()
    }

    pub fn valid_on(&self, day: time::Date) -> bool {
        self.valid_from.is_none_or(|from| from <= day)
            && self.valid_until.is_none_or(|until| day <= until)
    }
}

/// Reads a HealthcareService; the issues say what makes it unusable as a routing rule
/// (unknown municipality codes, malformed PC4 ranges, ...), with FHIRPath expressions.
pub fn read_service(id: &str, value: &Value) -> (Service, Vec<Issue>) {
    let mut issues = Vec::new();
    let hs: Option<HealthcareService> = serde_json::from_value(value.clone()).ok();
    let mut service = Service {
        id: id.to_owned(),
        name: None,
        active: false,
        organization: None,
        categories: Vec::new(),
        municipalities: Vec::new(),
        pc4_ranges: Vec::new(),
        ages: ServedAges::All,
        valid_from: None,
        valid_until: None,
        priority: 1,
    };
    let Some(hs) = hs else {
        issues.push(Issue::error(
            IssueCode::Structure,
            "The HealthcareService could not be read as a directory entry",
        ));
        return (service, issues);
    };
    service.name = hs.name.clone();
    service.active = hs.active != Some(false);
    service.categories = codes(hs.category.iter().flatten());
    let at = |i: usize, value: &str| format!("HealthcareService.extension[{i}].{value}");
    for (i, ext) in hs.extension.iter().enumerate() {
        match (ext.url.as_str(), &ext.value) {
            (EXT_MUNICIPALITY, Some(ExtensionValue::Coding(c))) => {
                match (
                    c.system.as_deref(),
                    c.code.as_deref().and_then(municipality::by_code),
                ) {
                    (Some(CS_CBS_MUNICIPALITY) | None, Some(m)) => {
                        service.municipalities.push(m.code.clone());
                    }
                    (Some(CS_CBS_MUNICIPALITY) | None, None) => issues.push(
                        Issue::error(
                            IssueCode::CodeInvalid,
                            format!(
                                "'{}' is not a municipality code of the CBS 2023 table (GMdddd)",
                                c.code.as_deref().unwrap_or_default()
                            ),
                        )
                        .at(at(i, "valueCoding.code")),
                    ),
                    (Some(_), _) => issues.push(
                        Issue::error(
                            IssueCode::CodeInvalid,
                            format!("A municipality is coded in {CS_CBS_MUNICIPALITY}"),
                        )
                        .at(at(i, "valueCoding.system")),
                    ),
                }
            }
            (EXT_POSTAL_CODE_RANGE, Some(ExtensionValue::String(s))) => match Pc4Range::parse(s) {
                Some(r) => service.pc4_ranges.push(r),
                None => issues.push(
                    Issue::error(
                        IssueCode::Value,
                        format!("'{s}' is not a PC4 postcode or range such as 2770-2779"),
                    )
                    .at(at(i, "valueString")),
                ),
            },
            (EXT_AGE_GROUP, Some(ExtensionValue::Code(code))) => match code.as_str() {
                "under-18" => service.ages = ServedAges::Only(AgeGroup::Under18),
                "18-plus" => service.ages = ServedAges::Only(AgeGroup::Adult),
                "all" => service.ages = ServedAges::All,
                other => issues.push(
                    Issue::error(
                        IssueCode::CodeInvalid,
                        format!("'{other}' is not an age group (under-18, 18-plus, all)"),
                    )
                    .at(at(i, "valueCode")),
                ),
            },
            (EXT_VALIDITY_PERIOD, Some(ExtensionValue::Period(p))) => {
                service.valid_from = p.start.as_ref().map(first_day);
                service.valid_until = p.end.as_ref().map(last_day);
                if let (Some(from), Some(until)) = (service.valid_from, service.valid_until) {
                    if from > until {
                        issues.push(
                            Issue::error(
                                IssueCode::Value,
                                "The validity period ends before it starts",
                            )
                            .at(at(i, "valuePeriod")),
                        );
                    }
                }
            }
            (EXT_ROUTING_PRIORITY, Some(ExtensionValue::PositiveInt(n))) => {
                service.priority = n.get();
            }
            (
                EXT_MUNICIPALITY
                | EXT_POSTAL_CODE_RANGE
                | EXT_AGE_GROUP
                | EXT_VALIDITY_PERIOD
                | EXT_ROUTING_PRIORITY,
                _,
            ) => issues.push(
                Issue::error(
                    IssueCode::Structure,
                    format!(
                        "Extension {} has the wrong value type (see profiles/)",
                        ext.url
                    ),
                )
                .at(format!("HealthcareService.extension[{i}]")),
            ),
            _ => {}
        }
    }
    if let Some(reference) = hs.provided_by.as_ref().and_then(|r| r.reference.as_deref()) {
        match reference.strip_prefix("Organization/") {
            Some(org) if !org.contains('/') => service.organization = Some(org.to_owned()),
            _ => issues.push(
                Issue::error(
                    IssueCode::Value,
                    "A directory entry names its organisation as a relative reference Organization/<id>",
                )
                .at("HealthcareService.providedBy.reference"),
            ),
        }
    } else if service.is_routable() {
        issues.push(
            Issue::error(
                IssueCode::Required,
                "A service that lists municipalities or PC4 ranges needs providedBy: the Organization that will own the Tasks",
            )
            .at("HealthcareService.providedBy"),
        );
    }
    if service.is_routable() && service.categories.is_empty() {
        issues.push(
            Issue::error(
                IssueCode::Required,
                format!(
                    "A service that lists municipalities or PC4 ranges needs a category ({CS_SERVICE_CATEGORY}|wor for Welzijn op Recept)"
                ),
            )
            .at("HealthcareService.category"),
        );
    }
    (service, issues)
}

/// The codes of CodeableConcepts.
pub fn codes<'a>(concepts: impl Iterator<Item = &'a CodeableConcept>) -> Vec<Code> {
    concepts
        .flat_map(|c| c.coding.iter().flatten())
        .filter_map(|c| Some((c.system.clone(), c.code.clone()?)))
        .collect()
}

fn first_day(d: &DateTime) -> time::Date {
    match d {
        DateTime::Date(Date::Date(d)) => *d,
        DateTime::Date(Date::YearMonth(y, m)) => day(*y, *m, 1),
        DateTime::Date(Date::Year(y)) => day(*y, Month::January, 1),
        DateTime::DateTime(i) => dutch_date(i.0),
    }
}

fn last_day(d: &DateTime) -> time::Date {
    match d {
        DateTime::Date(Date::Date(d)) => *d,
        DateTime::Date(Date::YearMonth(y, m)) => day(*y, *m, m.length(*y)),
        DateTime::Date(Date::Year(y)) => day(*y, Month::December, 31),
        DateTime::DateTime(i) => dutch_date(i.0),
    }
}

fn day(year: i32, month: Month, day: u8) -> time::Date {
    time::Date::from_calendar_date(year, month, day).unwrap_or(time::Date::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::date;

    fn service(extensions: Value) -> (Service, Vec<Issue>) {
        read_service(
            "s",
            &json!({
                "resourceType": "HealthcareService",
                "active": true,
                "providedBy": {"reference": "Organization/o"},
                "category": [{"coding": [{"system": CS_SERVICE_CATEGORY, "code": "wor"}]}],
                "extension": extensions,
            }),
        )
    }

    #[test]
    fn reads_every_routing_extension() {
        let (s, issues) = service(json!([
            {"url": EXT_MUNICIPALITY, "valueCoding": {"system": CS_CBS_MUNICIPALITY, "code": "GM0484"}},
            {"url": EXT_MUNICIPALITY, "valueCoding": {"code": "0153"}},
            {"url": EXT_POSTAL_CODE_RANGE, "valueString": "2770-2779"},
            {"url": EXT_AGE_GROUP, "valueCode": "under-18"},
            {"url": EXT_VALIDITY_PERIOD, "valuePeriod": {"start": "2024", "end": "2025-06"}},
            {"url": EXT_ROUTING_PRIORITY, "valuePositiveInt": 2},
        ]));
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(s.municipalities, ["GM0484", "GM0153"]);
        assert_eq!(
            s.pc4_ranges,
            [Pc4Range {
                from: 2770,
                to: 2779
            }]
        );
        assert_eq!(s.ages, ServedAges::Only(AgeGroup::Under18));
        assert_eq!(
            (s.valid_from, s.valid_until),
            (Some(date!(2024 - 01 - 01)), Some(date!(2025 - 06 - 30)))
        );
        assert!(s.valid_on(date!(2025 - 06 - 30)) && !s.valid_on(date!(2025 - 07 - 01)));
        assert_eq!(s.priority, 2);
        assert_eq!(s.organization.as_deref(), Some("o"));
        assert!(s.active && s.is_routable());
    }

    #[test]
    fn names_each_bad_extension() {
        let (_, issues) = service(json!([
            {"url": EXT_MUNICIPALITY, "valueCoding": {"system": CS_CBS_MUNICIPALITY, "code": "GM9999"}},
            {"url": EXT_POSTAL_CODE_RANGE, "valueString": "2779-2770"},
            {"url": EXT_AGE_GROUP, "valueCode": "elderly"},
            {"url": EXT_VALIDITY_PERIOD, "valuePeriod": {"start": "2025-01-01", "end": "2024-01-01"}},
            {"url": EXT_ROUTING_PRIORITY, "valueString": "high"},
        ]));
        let at: Vec<_> = issues
            .iter()
            .filter_map(|i| i.expression.as_deref())
            .collect();
        assert_eq!(
            at,
            [
                "HealthcareService.extension[0].valueCoding.code",
                "HealthcareService.extension[1].valueString",
                "HealthcareService.extension[2].valueCode",
                "HealthcareService.extension[3].valuePeriod",
                "HealthcareService.extension[4]",
            ]
        );
    }

    #[test]
    fn a_routable_service_needs_a_local_organisation() {
        let (_, issues) = read_service(
            "s",
            &json!({"resourceType": "HealthcareService", "extension": [
                {"url": EXT_MUNICIPALITY, "valueCoding": {"code": "GM0484"}}]}),
        );
        assert_eq!(
            issues[0].expression.as_deref(),
            Some("HealthcareService.providedBy")
        );
        let (_, issues) = read_service(
            "s",
            &json!({"resourceType": "HealthcareService", "providedBy": {"reference": "https://elsewhere.example/Organization/x"}}),
        );
        assert_eq!(
            issues[0].expression.as_deref(),
            Some("HealthcareService.providedBy.reference")
        );
        let (s, issues) = read_service("s", &json!({"resourceType": "HealthcareService"}));
        assert!(issues.is_empty() && !s.is_routable());
    }
}
