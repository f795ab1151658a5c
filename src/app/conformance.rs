//! The hub's own conformance resources (`profiles/`: StructureDefinitions, CodeSystems,
//! ValueSets, SearchParameter, OperationDefinition, the MessageDefinitions of FHIR
//! messaging, the Positive Health Questionnaire), compiled into the binary and served
//! read-only from memory: read by id, search by `url`, `_id`, `name`, `status` and
//! `version` (MessageDefinition also `event`), so a client resolves every canonical
//! the hub advertises. They are not stored: no versions, no writes, no audit (they
//! hold no personal data).

use std::sync::LazyLock;

use serde_json::{json, Value};

use crate::app::error::AppError;
use crate::app::reply::{status, Reply};
use crate::app::searchset;
use crate::fhir::bundle::{raw, Bundle, Entry, Link};
use crate::fhir::capability::{ReadOnlyParam, ReadOnlyType};
use crate::fhir::elements::{self, combine, parse_elements, parse_summary, Summary};
use crate::fhir::outcome::{operation_outcome, Issue, IssueCode, Severity};

/// Every conformance resource in `profiles/` (the R4 JSON schema is not one). A test
/// checks that none is missing.
const FILES: &[&str] = &[
    include_str!("../../profiles/CodeSystem-age-group.json"),
    include_str!("../../profiles/CodeSystem-cbs-municipality.json"),
    include_str!("../../profiles/CodeSystem-message-event.json"),
    include_str!("../../profiles/CodeSystem-municipality-source.json"),
    include_str!("../../profiles/CodeSystem-referral-metric.json"),
    include_str!("../../profiles/CodeSystem-service-category.json"),
    include_str!("../../profiles/CodeSystem-task-business-status.json"),
    include_str!("../../profiles/CodeSystem-task-flag.json"),
    include_str!("../../profiles/CodeSystem-task-output-type.json"),
    include_str!("../../profiles/CodeSystem-unroutable-reason.json"),
    include_str!("../../profiles/Measure-referral-statistics.json"),
    include_str!("../../profiles/MessageDefinition-referral-cancel.json"),
    include_str!("../../profiles/MessageDefinition-referral-new.json"),
    include_str!("../../profiles/MessageDefinition-referral-status.json"),
    include_str!("../../profiles/MessageDefinition-referral-update.json"),
    include_str!("../../profiles/OperationDefinition-ServiceRequest-route.json"),
    include_str!("../../profiles/Questionnaire-positive-health.json"),
    include_str!("../../profiles/SearchParameter-Task-output.json"),
    include_str!("../../profiles/StructureDefinition-age-group.json"),
    include_str!("../../profiles/StructureDefinition-municipality.json"),
    include_str!("../../profiles/StructureDefinition-postal-code-range.json"),
    include_str!("../../profiles/StructureDefinition-routing-decision.json"),
    include_str!("../../profiles/StructureDefinition-routing-priority.json"),
    include_str!("../../profiles/StructureDefinition-validity-period.json"),
    include_str!("../../profiles/StructureDefinition-wor-healthcareservice.json"),
    include_str!("../../profiles/ValueSet-age-group.json"),
    include_str!("../../profiles/ValueSet-cbs-municipality.json"),
    include_str!("../../profiles/ValueSet-message-event.json"),
    include_str!("../../profiles/ValueSet-municipality-source.json"),
    include_str!("../../profiles/ValueSet-referral-metric.json"),
    include_str!("../../profiles/ValueSet-service-category.json"),
    include_str!("../../profiles/ValueSet-task-business-status.json"),
    include_str!("../../profiles/ValueSet-task-flag.json"),
    include_str!("../../profiles/ValueSet-task-output-type.json"),
    include_str!("../../profiles/ValueSet-unroutable-reason.json"),
];

/// The resource types served. Questionnaire is one of them: the hub defines the
/// Positive Health questionnaire; clients store QuestionnaireResponses, not
/// Questionnaires.
pub const TYPES: &[&str] = &[
    "CodeSystem",
    "Measure",
    "MessageDefinition",
    "OperationDefinition",
    "Questionnaire",
    "SearchParameter",
    "StructureDefinition",
    "ValueSet",
];

macro_rules! params {
    ($base:literal $(, $extra:expr)*) => {
        &[
            ReadOnlyParam {
                name: "_id",
                ty: "token",
                definition: "http://hl7.org/fhir/SearchParameter/Resource-id",
                documentation: "Logical id of the resource",
            },
            ReadOnlyParam {
                name: "url",
                ty: "uri",
                definition: concat!("http://hl7.org/fhir/SearchParameter/", $base, "-url"),
                documentation: "The canonical URL, exactly (url|version also matches the version)",
            },
            ReadOnlyParam {
                name: "name",
                ty: "string",
                definition: concat!("http://hl7.org/fhir/SearchParameter/", $base, "-name"),
                documentation:
                    "The computable name: starts with, case-insensitive; :exact, :contains",
            },
            ReadOnlyParam {
                name: "status",
                ty: "token",
                definition: concat!("http://hl7.org/fhir/SearchParameter/", $base, "-status"),
                documentation: "draft | active | retired | unknown",
            },
            ReadOnlyParam {
                name: "version",
                ty: "token",
                definition: concat!("http://hl7.org/fhir/SearchParameter/", $base, "-version"),
                documentation: "The business version",
            },
            $($extra,)*
        ]
    };
}

const CONFORMANCE_PARAMS: &[ReadOnlyParam] = params!("conformance");
const QUESTIONNAIRE_PARAMS: &[ReadOnlyParam] = params!("Questionnaire");
const MEASURE_PARAMS: &[ReadOnlyParam] = params!("conformance");
const MESSAGE_DEFINITION_PARAMS: &[ReadOnlyParam] = params!(
    "conformance",
    ReadOnlyParam {
        name: "event",
        ty: "token",
        definition: "http://hl7.org/fhir/SearchParameter/MessageDefinition-event",
        documentation: "The event: eventCoding as code, system|code, |code or system|; \
             eventUri as code",
    }
);

const DOCUMENTATION: &str = "The hub's own conformance resources (profiles/ in the source), \
     served read-only from memory: read and search; writes answer 405.";

const MESSAGE_DEFINITION_DOCUMENTATION: &str = "The hub's own conformance resources \
     (profiles/ in the source), served read-only from memory: read and search; writes answer \
     405. The messages of POST /fhir/$process-message (profiles/README-message-intake.md), \
     events from https://wor-hub.nl/fhir/CodeSystem/message-event.";

const MEASURE_DOCUMENTATION: &str = "The referral statistics (README 'Statistics'): \
     Measure/referral-statistics, read-only. GET \
     Measure/referral-statistics/$evaluate-measure?periodStart&periodEnd[&period&by] (or POST \
     with a Parameters body; partial dates cover their whole year or month) answers a \
     summary MeasureReport (reportType summary only; counts under the minimum cell, and those \
     that would reveal them, masked). For monitor and coordinator clients (scope \
     system/MeasureReport.r).";

/// What the CapabilityStatement says of these types.
pub const SERVED_TYPES: &[ReadOnlyType] = &[
    ReadOnlyType {
        name: "CodeSystem",
        search_params: CONFORMANCE_PARAMS,
        documentation: DOCUMENTATION,
    },
    ReadOnlyType {
        name: "Measure",
        search_params: MEASURE_PARAMS,
        documentation: MEASURE_DOCUMENTATION,
    },
    ReadOnlyType {
        name: "MessageDefinition",
        search_params: MESSAGE_DEFINITION_PARAMS,
        documentation: MESSAGE_DEFINITION_DOCUMENTATION,
    },
    ReadOnlyType {
        name: "OperationDefinition",
        search_params: CONFORMANCE_PARAMS,
        documentation: DOCUMENTATION,
    },
    ReadOnlyType {
        name: "Questionnaire",
        search_params: QUESTIONNAIRE_PARAMS,
        documentation: DOCUMENTATION,
    },
    ReadOnlyType {
        name: "SearchParameter",
        search_params: CONFORMANCE_PARAMS,
        documentation: DOCUMENTATION,
    },
    ReadOnlyType {
        name: "StructureDefinition",
        search_params: CONFORMANCE_PARAMS,
        documentation: DOCUMENTATION,
    },
    ReadOnlyType {
        name: "ValueSet",
        search_params: CONFORMANCE_PARAMS,
        documentation: DOCUMENTATION,
    },
];

/// One served resource and the elements searches read.
struct Canonical {
    resource_type: String,
    id: String,
    url: String,
    name: String,
    status: String,
    version: Option<String>,
    /// MessageDefinition.event[x]: (system, code) of eventCoding, (None, uri) of eventUri.
    event: Option<(Option<String>, String)>,
    body: &'static str,
}

fn load(body: &'static str) -> Option<Canonical> {
    let v: Value = serde_json::from_str(body).ok()?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(Canonical {
        resource_type: text("resourceType")?,
        id: text("id")?,
        url: text("url")?,
        name: text("name").unwrap_or_default(),
        status: text("status").unwrap_or_default(),
        version: text("version"),
        event: match (v.get("eventCoding"), text("eventUri")) {
            (Some(coding), _) => coding.get("code").and_then(Value::as_str).map(|code| {
                (
                    coding
                        .get("system")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    code.to_owned(),
                )
            }),
            (None, uri) => uri.map(|u| (None, u)),
        },
        body,
    })
}

/// Parsed once, on first use; sorted by type and id (the search order).
static ALL: LazyLock<Vec<Canonical>> = LazyLock::new(|| {
    let mut all: Vec<Canonical> = FILES.iter().filter_map(|f| load(f)).collect();
    all.sort_by(|a, b| (&a.resource_type, &a.id).cmp(&(&b.resource_type, &b.id)));
    all
});

/// Whether `ty` is served here (read-only) rather than stored.
pub fn is_served(ty: &str) -> bool {
    TYPES.contains(&ty)
}

fn not_served(ty: &str) -> AppError {
    AppError::not_found(format!(
        "{} is not one of the conformance types served read-only ({})",
        ty.chars().take(64).collect::<String>(),
        TYPES.join(", ")
    ))
}

/// `GET [type]/[id]`.
pub fn read(ty: &str, id: &str) -> Result<Reply, AppError> {
    if !is_served(ty) {
        return Err(not_served(ty));
    }
    ALL.iter()
        .find(|c| c.resource_type == ty && c.id == id)
        .map(|c| Reply::new(status::OK).fhir(c.body.to_owned()))
        .ok_or_else(|| {
            AppError::not_found(format!(
                "No {ty}/{id}: this server serves only its own conformance resources; \
                 search {ty}?url=<canonical> to find one"
            ))
        })
}

/// One search criterion: the parameter, and the values any of which may match.
struct Criterion {
    param: Param,
    values: Vec<String>,
}

#[derive(Clone, Copy)]
enum Param {
    Id,
    Url,
    Name(NameMode),
    Status,
    Version,
    Event,
}

#[derive(Clone, Copy)]
enum NameMode {
    StartsWith,
    Exact,
    Contains,
}

fn fold(s: &str) -> String {
    s.to_lowercase()
}

impl Criterion {
    fn matches(&self, c: &Canonical) -> bool {
        self.values.iter().any(|v| match self.param {
            Param::Id => c.id == *v,
            Param::Url => match v.split_once('|') {
                Some((url, version)) => c.url == url && c.version.as_deref() == Some(version),
                None => c.url == *v,
            },
            Param::Name(NameMode::Exact) => c.name == *v,
            Param::Name(NameMode::StartsWith) => fold(&c.name).starts_with(&fold(v)),
            Param::Name(NameMode::Contains) => fold(&c.name).contains(&fold(v)),
            Param::Status => {
                let code = match v.split_once('|') {
                    Some(("" | "http://hl7.org/fhir/publication-status", code)) => code,
                    Some(_) => return false,
                    None => v.as_str(),
                };
                c.status == code
            }
            Param::Version => c.version.as_deref() == Some(v.as_str()),
            Param::Event => {
                let Some((system, code)) = &c.event else {
                    return false;
                };
                match v.split_once('|') {
                    None => code == v,
                    Some(("", want)) => system.is_none() && code == want,
                    Some((want, "")) => system.as_deref() == Some(want),
                    Some((want_system, want)) => {
                        system.as_deref() == Some(want_system) && code == want
                    }
                }
            }
        })
    }
}

/// The diagnostics of an unknown search parameter: the ones `ty` takes.
fn unsupported(name: &str, ty: &str) -> String {
    let event = if ty == "MessageDefinition" {
        "event, "
    } else {
        ""
    };
    format!(
        "Unsupported search parameter '{}' for {ty}: _id, url, name (:exact, :contains), \
         status, version, {event}_count, _summary, _elements, _total",
        name.chars().take(64).collect::<String>()
    )
}

fn invalid(code: IssueCode, at: &str, diagnostics: String) -> Issue {
    Issue::error(code, diagnostics).at(at.chars().take(64).collect::<String>())
}

/// `GET [type]?params`: a searchset Bundle of the matches (all on one page unless
/// `_count` says fewer; `next`/`previous` links carry `_offset`). Unknown parameters:
/// 400, or ignored with a warning when `lenient` (`Prefer: handling=lenient`).
pub fn search(
    ty: &str,
    pairs: &[(String, String)],
    lenient: bool,
    base: &str,
) -> Result<Reply, AppError> {
    if !is_served(ty) {
        return Err(not_served(ty));
    }
    let mut criteria = Vec::new();
    let mut kept: Vec<(String, String)> = Vec::new();
    let mut warnings = Vec::new();
    let mut count = searchset::DEFAULT_COUNT;
    let mut offset = 0usize;
    let mut summary = None;
    let mut elements = None;
    let mut with_total = true;
    for (name, value) in pairs {
        let (base_name, modifier) = match name.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (name.as_str(), None),
        };
        let param = match (base_name, modifier) {
            ("_format" | "_pretty", None) => continue,
            ("_count", None) => {
                count = searchset::count(Some(value), false)?;
                continue;
            }
            ("_offset", None) => {
                offset = value.parse::<usize>().map_err(|_| {
                    AppError::invalid(vec![invalid(
                        IssueCode::Value,
                        name,
                        "_offset must be a whole number".into(),
                    )])
                })?;
                continue;
            }
            ("_summary", None) => {
                summary = Some(parse_summary(value).map_err(|i| AppError::invalid(vec![i]))?);
                kept.push((name.clone(), value.clone()));
                continue;
            }
            ("_elements", None) => {
                elements = Some(parse_elements(value).map_err(|i| AppError::invalid(vec![i]))?);
                kept.push((name.clone(), value.clone()));
                continue;
            }
            ("_total", None) if ["none", "estimate", "accurate"].contains(&value.as_str()) => {
                with_total = value != "none";
                kept.push((name.clone(), value.clone()));
                continue;
            }
            ("_id", None) => Param::Id,
            ("url", None) => Param::Url,
            ("name", None) => Param::Name(NameMode::StartsWith),
            ("name", Some("exact")) => Param::Name(NameMode::Exact),
            ("name", Some("contains")) => Param::Name(NameMode::Contains),
            ("status", None) => Param::Status,
            ("version", None) => Param::Version,
            ("event", None) if ty == "MessageDefinition" => Param::Event,
            _ => {
                let issue = invalid(IssueCode::NotSupported, name, unsupported(name, ty));
                if lenient {
                    warnings.push(Issue {
                        severity: Severity::Warning,
                        diagnostics: format!("Ignored: {}", issue.diagnostics),
                        ..issue
                    });
                    continue;
                }
                return Err(AppError::invalid(vec![issue]));
            }
        };
        let values: Vec<String> = value.split(',').map(str::to_owned).collect();
        if values.iter().any(String::is_empty) {
            return Err(AppError::invalid(vec![invalid(
                IssueCode::Value,
                name,
                format!("{name} needs a value"),
            )]));
        }
        criteria.push(Criterion { param, values });
        kept.push((name.clone(), value.clone()));
    }
    let summary_count = summary == Some(Summary::Count);
    let subset = if summary_count {
        None
    } else {
        combine(summary, elements).map_err(|i| AppError::invalid(vec![i]))?
    };
    let matches: Vec<&Canonical> = ALL
        .iter()
        .filter(|c| c.resource_type == ty && criteria.iter().all(|k| k.matches(c)))
        .collect();
    let total = matches.len();
    let page_url = |offset: Option<usize>| {
        let mut pairs = kept.clone();
        if let Some(offset) = offset {
            pairs.push(("_offset".into(), offset.to_string()));
            pairs.push(("_count".into(), count.to_string()));
        }
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        if query.is_empty() {
            format!("{base}/{ty}")
        } else {
            format!("{base}/{ty}?{query}")
        }
    };
    let paged = offset > 0 || count < total;
    let mut links = vec![Link {
        relation: "self",
        url: page_url(paged.then_some(offset)),
    }];
    let mut entries = Vec::new();
    if !summary_count {
        if offset > 0 {
            links.push(Link {
                relation: "previous",
                url: page_url(Some(offset.saturating_sub(count))),
            });
        }
        if offset.saturating_add(count) < total {
            links.push(Link {
                relation: "next",
                url: page_url(Some(offset + count)),
            });
        }
        entries = matches
            .iter()
            .skip(offset)
            .take(count)
            .map(|c| Entry {
                full_url: format!("{base}/{}/{}", c.resource_type, c.id),
                resource: raw(match &subset {
                    Some(s) => elements::apply(c.body, &c.resource_type, s)
                        .unwrap_or_else(|| c.body.to_owned()),
                    None => c.body.to_owned(),
                }),
                search: Some(json!({ "mode": "match" })),
                request: None,
                response: None,
            })
            .collect();
    }
    if !warnings.is_empty() {
        entries.push(Entry {
            full_url: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            resource: raw(operation_outcome(&warnings).to_string()),
            search: Some(json!({ "mode": "outcome" })),
            request: None,
            response: None,
        });
    }
    let mut bundle = Bundle::new("searchset", links, entries);
    if with_total || summary_count {
        bundle = bundle.with_total(u64::try_from(total).unwrap_or(u64::MAX));
    }
    Ok(Reply::new(status::OK).fhir(bundle.to_json()))
}

#[cfg(test)]
#[path = "conformance_tests.rs"]
mod tests;
