//! Routing: which welfare organisation serves this referral. The age group on the
//! referral date and the patient's municipality (or postcode) select a service from
//! the directory; every step is recorded so anyone can see why.

use std::collections::HashMap;

use fhir_sdk::r4b::codes::AddressUse;
use fhir_sdk::r4b::resources::{Patient, ServiceRequest};
use fhir_sdk::r4b::types::{Address, ExtensionValue};
use serde_json::Value;
use time::OffsetDateTime;

use super::age::{age_group, referral_date, AgeError, AgeGroup, DateSource};
use super::codes::{CS_CBS_MUNICIPALITY, CS_SERVICE_CATEGORY, EXT_MUNICIPALITY, WOR};
use super::directory::{codes, Code, Service};
use super::municipality::{self, Municipality};
use super::postcode::Postcode;

/// What the operator's postcode table says about a postcode.
#[derive(Debug, Clone, Default)]
pub struct PostcodeHit {
    /// Whether any table was loaded at all.
    pub loaded: bool,
    /// The municipality of the exact PC6, when listed.
    pub pc6: Option<String>,
    /// The municipalities the PC4 lies in.
    pub pc4: Vec<String>,
}

/// A directory organisation, as far as routing cares.
#[derive(Debug, Clone)]
pub struct Organization {
    pub name: Option<String>,
    pub active: bool,
}

/// The directory at the moment of routing.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub services: Vec<Service>,
    /// By id; a missing key is an Organization that does not exist (or was deleted).
    pub organizations: HashMap<String, Organization>,
    /// Organisations that already rejected this referral, by id, with what they
    /// said: their services are skipped (re-routing after a rejection).
    pub rejected_by: HashMap<String, String>,
}

/// How the municipality was found (CodeSystem `municipality-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MunicipalitySource {
    AddressCode,
    DistrictName,
    PostcodeTable,
    ServicePostcodeRange,
    None,
}

impl MunicipalitySource {
    pub fn code(self) -> &'static str {
        match self {
            Self::AddressCode => "address-code",
            Self::DistrictName => "district-name",
            Self::PostcodeTable => "postcode-table",
            Self::ServicePostcodeRange => "service-postcode-range",
            Self::None => "none",
        }
    }
}

/// Why a referral could not be routed (CodeSystem `unroutable-reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unroutable {
    NoPatient,
    NoBirthDate,
    BirthDateImprecise,
    BirthDateAfterReferral,
    NoMunicipality,
    NoService,
    /// Every eligible service's organisation rejected the referral.
    AllRejected,
}

impl Unroutable {
    pub fn code(self) -> &'static str {
        match self {
            Self::NoPatient => "no-patient",
            Self::NoBirthDate => "no-birth-date",
            Self::BirthDateImprecise => "birth-date-imprecise",
            Self::BirthDateAfterReferral => "birth-date-after-referral",
            Self::NoMunicipality => "no-municipality",
            Self::NoService => "no-service",
            Self::AllRejected => "all-rejected",
        }
    }

    pub fn display(self) -> &'static str {
        match self {
            Self::NoPatient => "The referral's subject is not a readable Patient",
            Self::NoBirthDate => "The patient has no birth date, so the age group is unknown",
            Self::BirthDateImprecise => {
                "The partial birth date cannot decide the age group on the referral date"
            }
            Self::BirthDateAfterReferral => "The birth date lies after the referral date",
            Self::NoMunicipality => {
                "The patient's municipality could not be found and no service covers the postcode"
            }
            Self::NoService => {
                "No service in the directory serves this municipality, age group and category on the referral date"
            }
            Self::AllRejected => {
                "Every welfare organisation that serves this patient has rejected the referral"
            }
        }
    }
}

/// The chosen service and the organisation that will own the Task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub service: String,
    pub service_name: Option<String>,
    pub organization: String,
    pub organization_name: Option<String>,
}

/// The routing decision and everything that led to it.
#[derive(Debug, Clone)]
pub struct Decision {
    pub reference_date: time::Date,
    pub date_source: DateSource,
    pub age_group: Option<AgeGroup>,
    pub municipality: Option<&'static Municipality>,
    pub municipality_source: MunicipalitySource,
    pub steps: Vec<String>,
    /// Eligible services, best first: (id, name).
    pub candidates: Vec<(String, Option<String>)>,
    pub chosen: Option<Choice>,
    pub rule: Option<String>,
    pub unroutable: Option<Unroutable>,
}

/// The referral is for a category the directory does not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryRefused {
    pub categories: Vec<Code>,
}

/// The categories a referral asks for: its own, or Welzijn op Recept when it has none
/// (this hub exists for WOR).
pub fn requested_categories(sr: &Value) -> Vec<Code> {
    categories_of(
        serde_json::from_value::<ServiceRequest>(sr.clone())
            .ok()
            .as_ref(),
    )
}

fn categories_of(sr: Option<&ServiceRequest>) -> Vec<Code> {
    let own = sr
        .map(|sr| codes(sr.category.iter().flatten()))
        .unwrap_or_default();
    if own.is_empty() {
        vec![wor()]
    } else {
        own
    }
}

fn wor() -> Code {
    (Some(CS_SERVICE_CATEGORY.to_owned()), WOR.to_owned())
}

/// Whether the referral may be taken in: a WOR referral always; another category only
/// when some active service in the directory offers it.
pub fn check_category(sr: &Value, directory: &Directory) -> Result<(), CategoryRefused> {
    let wanted = requested_categories(sr);
    let offered = |c: &Code| {
        *c == wor()
            || directory
                .services
                .iter()
                .any(|s| s.active && s.categories.contains(c))
    };
    if wanted.iter().any(offered) {
        Ok(())
    } else {
        Err(CategoryRefused { categories: wanted })
    }
}

/// Decides who serves the referral `sr` for `patient` (None when the subject is not a
/// readable Patient). `postcodes` asks the operator's postcode table.
pub fn route<E>(
    sr: &Value,
    patient: Option<&Value>,
    received: OffsetDateTime,
    directory: &Directory,
    mut postcodes: impl FnMut(&Postcode) -> Result<PostcodeHit, E>,
) -> Result<Decision, E> {
    let typed_sr = serde_json::from_value::<ServiceRequest>(sr.clone()).ok();
    let (reference_date, date_source) = referral_date(
        typed_sr.as_ref().and_then(|s| s.authored_on.as_ref()),
        received,
    );
    let mut steps = vec![format!(
        "referral date {reference_date} ({})",
        match date_source {
            DateSource::AuthoredOn => "ServiceRequest.authoredOn, in the Netherlands",
            DateSource::Received => "no authoredOn with a day: the day the hub received it",
        }
    )];
    let patient: Option<Patient> = patient.and_then(|p| serde_json::from_value(p.clone()).ok());
    let mut decision = Decision {
        reference_date,
        date_source,
        age_group: None,
        municipality: None,
        municipality_source: MunicipalitySource::None,
        steps: Vec::new(),
        candidates: Vec::new(),
        chosen: None,
        rule: None,
        unroutable: None,
    };
    let Some(patient) = patient else {
        steps.push("the subject is not a readable Patient".into());
        decision.steps = steps;
        decision.unroutable = Some(Unroutable::NoPatient);
        return Ok(decision);
    };
    let age = age_group(patient.birth_date.as_ref(), reference_date);
    match age {
        Ok(g) => steps.push(format!("age group {} on {reference_date}", g.code())),
        Err(e) => steps.push(format!(
            "age group unknown: {}",
            match e {
                AgeError::NoBirthDate => "no birth date",
                AgeError::Imprecise => "the partial birth date spans the 18th birthday",
                AgeError::AfterReferral => "the birth date lies after the referral date",
            }
        )),
    }
    decision.age_group = age.ok();
    let address = home_address(&patient, &mut steps);
    let postcode = address
        .and_then(|a| a.postal_code.as_deref())
        .and_then(Postcode::parse);
    let (municipality, source) = match address {
        Some(a) => resolve_municipality(a, postcode.as_ref(), &mut steps, &mut postcodes)?,
        None => (None, MunicipalitySource::None),
    };
    decision.municipality = municipality;
    decision.municipality_source = source;

    let wanted = categories_of(typed_sr.as_ref());
    let mut eligible = Vec::new();
    let mut rejected_skips = 0_usize;
    let mut services: Vec<&Service> = directory.services.iter().collect();
    services.sort_by(|a, b| a.id.cmp(&b.id));
    for s in services.into_iter().filter(|s| s.is_routable()) {
        let by_municipality = municipality.is_some_and(|m| s.municipalities.contains(&m.code));
        let by_range = postcode
            .as_ref()
            .is_some_and(|p| s.pc4_ranges.iter().any(|r| r.contains(p.pc4())));
        if !by_municipality && !by_range {
            continue;
        }
        let label = service_label(s);
        let skip = if !s.categories.iter().any(|c| wanted.contains(c)) {
            Some("offers another service category".to_owned())
        } else if !s.active {
            Some("is not active".to_owned())
        } else if decision.age_group.is_some_and(|g| !s.ages.serves(g)) {
            Some(format!("serves age group {} only", s.ages.code()))
        } else if !s.valid_on(reference_date) {
            Some(format!(
                "its contract period ({} to {}) does not include {reference_date}",
                s.valid_from.map_or("open".into(), |d| d.to_string()),
                s.valid_until.map_or("open".into(), |d| d.to_string()),
            ))
        } else {
            match s
                .organization
                .as_ref()
                .map(|o| (o, directory.organizations.get(o)))
            {
                None => Some("names no organisation".to_owned()),
                Some((o, None)) => Some(format!("Organization/{o} does not exist")),
                Some((o, Some(org))) if !org.active => {
                    Some(format!("Organization/{o} is not active"))
                }
                Some((o, _)) if directory.rejected_by.contains_key(o) => {
                    rejected_skips += 1;
                    Some(format!(
                        "Organization/{o} rejected this referral ({})",
                        directory.rejected_by[o]
                    ))
                }
                Some(_) => None,
            }
        };
        match skip {
            Some(why) => steps.push(format!("skipped {label}: {why}")),
            None => eligible.push((s, by_municipality)),
        }
    }
    // Best first: the lowest priority number, then a municipality match over a PC4
    // range, then a service for this age group over one for all ages, then the id.
    eligible.sort_by_key(|(s, by_municipality)| {
        (
            s.priority,
            !by_municipality,
            s.ages.code() == "all",
            s.id.clone(),
        )
    });
    decision.candidates = eligible
        .iter()
        .map(|(s, _)| (s.id.clone(), s.name.clone()))
        .collect();
    if municipality.is_none() {
        if let Some((s, _)) = eligible.first() {
            decision.municipality_source = MunicipalitySource::ServicePostcodeRange;
            steps.push(format!(
                "4 service PC4 ranges: the postcode lies in a range of {}",
                service_label(s)
            ));
        } else if postcode.is_some() {
            steps.push("4 service PC4 ranges: no service lists this PC4".into());
        }
    }
    decision.unroutable = match age {
        Err(AgeError::NoBirthDate) => Some(Unroutable::NoBirthDate),
        Err(AgeError::Imprecise) => Some(Unroutable::BirthDateImprecise),
        Err(AgeError::AfterReferral) => Some(Unroutable::BirthDateAfterReferral),
        Ok(_) if eligible.is_empty() && rejected_skips > 0 => Some(Unroutable::AllRejected),
        Ok(_) if eligible.is_empty() && municipality.is_none() => Some(Unroutable::NoMunicipality),
        Ok(_) if eligible.is_empty() => Some(Unroutable::NoService),
        Ok(_) => None,
    };
    if decision.unroutable.is_none() {
        let requested = requested_performers(typed_sr.as_ref());
        let honoured = eligible.iter().find(|(s, _)| {
            requested.iter().any(|(ty, id)| {
                (ty == "Organization" && s.organization.as_deref() == Some(id))
                    || (ty == "HealthcareService" && s.id == *id)
            })
        });
        for (ty, id) in &requested {
            if honoured.is_none() {
                steps.push(format!(
                    "the requested performer {ty}/{id} does not serve this patient: routed by the directory"
                ));
            }
        }
        let (winner, by_municipality) = honoured.or(eligible.first()).copied().unzip();
        if let (Some(s), Some(by_municipality)) = (winner, by_municipality) {
            let organization = s.organization.clone().unwrap_or_default();
            let area = match municipality {
                Some(m) if by_municipality => format!("serves {} {}", m.code, m.name),
                _ => "covers the PC4".to_owned(),
            };
            decision.rule = Some(format!(
                "{}priority {}; {area}; age group {}; contract valid on {reference_date}",
                if honoured.is_some() {
                    "the referrer's requested performer; "
                } else {
                    ""
                },
                s.priority,
                s.ages.code(),
            ));
            decision.chosen = Some(Choice {
                service: s.id.clone(),
                service_name: s.name.clone(),
                organization_name: directory
                    .organizations
                    .get(&organization)
                    .and_then(|o| o.name.clone()),
                organization,
            });
        }
    }
    decision.steps = steps;
    Ok(decision)
}

fn service_label(s: &Service) -> String {
    match &s.name {
        Some(name) => format!("HealthcareService/{} ({name})", s.id),
        None => format!("HealthcareService/{}", s.id),
    }
}

/// `ServiceRequest.performer` references to directory resources: (type, id).
fn requested_performers(sr: Option<&ServiceRequest>) -> Vec<(String, String)> {
    sr.map(|sr| {
        sr.performer
            .iter()
            .flatten()
            .filter_map(|r| r.reference.as_deref())
            .filter_map(|r| {
                let (ty, id) = r.split_once('/')?;
                matches!(ty, "Organization" | "HealthcareService")
                    .then(|| (ty.to_owned(), id.to_owned()))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The address to route on: the first home address, else the first that is not old.
fn home_address<'p>(patient: &'p Patient, steps: &mut Vec<String>) -> Option<&'p Address> {
    let addresses: Vec<(usize, &Address)> = patient
        .address
        .iter()
        .enumerate()
        .filter_map(|(i, a)| Some((i, a.as_ref()?)))
        .collect();
    let chosen = addresses
        .iter()
        .find(|(_, a)| a.r#use == Some(AddressUse::Home))
        .or_else(|| {
            addresses
                .iter()
                .find(|(_, a)| a.r#use != Some(AddressUse::Old))
        });
    match chosen {
        Some((i, _)) => steps.push(format!("address: Patient.address[{i}]")),
        None => steps.push("the patient has no current address".into()),
    }
    chosen.map(|(_, a)| *a)
}

fn resolve_municipality<E>(
    address: &Address,
    postcode: Option<&Postcode>,
    steps: &mut Vec<String>,
    postcodes: &mut impl FnMut(&Postcode) -> Result<PostcodeHit, E>,
) -> Result<(Option<&'static Municipality>, MunicipalitySource), E> {
    // 1. A CBS code on the address: the municipality extension on the Address or on
    //    its district, or a district whose value is a code.
    let coded = address
        .extension
        .iter()
        .chain(address.district_ext.iter().flat_map(|e| e.extension.iter()))
        .filter(|e| e.url == EXT_MUNICIPALITY)
        .find_map(|e| match &e.value {
            Some(ExtensionValue::Coding(c))
                if c.system.as_deref().is_none_or(|s| s == CS_CBS_MUNICIPALITY) =>
            {
                c.code.clone()
            }
            _ => None,
        })
        .or_else(|| {
            address
                .district
                .as_deref()
                .filter(|d| {
                    d.trim()
                        .get(..2)
                        .is_some_and(|p| p.eq_ignore_ascii_case("GM"))
                })
                .map(str::to_owned)
        });
    match coded.as_deref().map(|c| (c, municipality::by_code(c))) {
        Some((_, Some(m))) => {
            steps.push(format!("1 address code: {} {}", m.code, m.name));
            return Ok((Some(m), MunicipalitySource::AddressCode));
        }
        Some((c, None)) => steps.push(format!(
            "1 address code: '{c}' is not a municipality of the CBS 2023 table"
        )),
        None => steps.push("1 address code: none".into()),
    }
    // 2. Address.district as a municipality name.
    match address.district.as_deref().filter(|d| !d.trim().is_empty()) {
        Some(name) => match municipality::by_name(name) {
            Some(m) => {
                steps.push(format!(
                    "2 district name: '{name}' is {} {}",
                    m.code, m.name
                ));
                return Ok((Some(m), MunicipalitySource::DistrictName));
            }
            None => steps.push(format!(
                "2 district name: '{name}' is not a municipality of the CBS 2023 table"
            )),
        },
        None => steps.push("2 district name: none".into()),
    }
    // 3. The operator's postcode table.
    let Some(pc) = postcode else {
        steps.push("3 postcode table: the address has no valid Dutch postcode".into());
        return Ok((None, MunicipalitySource::None));
    };
    let hit = postcodes(pc)?;
    let found = |code: &str| municipality::by_code(code);
    if !hit.loaded {
        steps.push("3 postcode table: no table loaded (wor-hub postcodes import)".into());
    } else if let Some(m) = hit.pc6.as_deref().and_then(found) {
        steps.push(format!(
            "3 postcode table: PC6 {} is {} {}",
            pc.pc6().unwrap_or_default(),
            m.code,
            m.name
        ));
        return Ok((Some(m), MunicipalitySource::PostcodeTable));
    } else if let [only] = hit.pc4.as_slice() {
        if let Some(m) = found(only) {
            steps.push(format!(
                "3 postcode table: PC4 {} is {} {}",
                pc.pc4(),
                m.code,
                m.name
            ));
            return Ok((Some(m), MunicipalitySource::PostcodeTable));
        }
    } else if hit.pc4.is_empty() {
        steps.push(format!("3 postcode table: PC4 {} is not listed", pc.pc4()));
    } else {
        steps.push(format!(
            "3 postcode table: PC4 {} lies in several municipalities ({})",
            pc.pc4(),
            hit.pc4.join(", ")
        ));
    }
    Ok((None, MunicipalitySource::None))
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
