//! Referral statistics (README "Statistics"): the projection kept in the unit of work
//! of every write ([`follow_write`], called by the after-write hook; a referral's row
//! is recomputed once per unit of work, before it commits), its rebuild from
//! the stored versions, and the reports read from it. The counting and suppression
//! rules are `referral::report`'s; what a referral's row holds is
//! `referral::stats`'s.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::fhir::outcome::{Issue, IssueCode};
use crate::referral::access::local_ref;
use crate::referral::municipality;
use crate::referral::report::{self, GroupBy, Query, Report};
use crate::referral::stats::{self, Facts, TaskVersion};
use crate::store::query::{Match, RefTarget};
use crate::store::{Change, Criterion, FactsRow, StoredVersion, Tx, TxError};

use super::error::{AppError, ErrorKind};
use super::principal::{ClientRole, Principal, Role};
use super::report_format::{self, Request};
use super::App;

const ROUTED: i64 = 1;
const ACCEPTED: i64 = 2;
const REROUTED: i64 = 4;
const FEEDBACK: i64 = 8;

fn body(v: &StoredVersion) -> Option<Value> {
    v.body.as_deref().and_then(|b| serde_json::from_str(b).ok())
}

/// Keeps the projection in step with the version just written (the after-write hook):
/// a ServiceRequest's row follows it; a Task's write, and a change to a response a
/// Task's output links, refresh the referral's row.
pub fn follow_write(tx: &mut Tx<'_>, v: &StoredVersion, change: Change) -> Result<(), TxError> {
    match v.resource_type.as_str() {
        "ServiceRequest" if change == Change::Delete => tx.remove_referral_facts(&v.id),
        "ServiceRequest" => refresh_later(tx, &v.id),
        "Task" => {
            let task = match body(v) {
                Some(task) => Some(task),
                None if v.version_id > 1 => tx
                    .version_of("Task", &v.id, v.version_id - 1)?
                    .as_ref()
                    .and_then(body),
                None => None,
            };
            match task.as_ref().and_then(super::access::referral_of) {
                Some(sr) => refresh_later(tx, &sr),
                None => Ok(()),
            }
        }
        // A Positive Health response changed after a Task linked it (Task.output).
        "QuestionnaireResponse" if change != Change::Create => {
            let criterion = Criterion::Any(vec![Match::Reference {
                param: "output".to_owned(),
                target: RefTarget::Local {
                    target_type: Some("QuestionnaireResponse".to_owned()),
                    id: v.id.clone(),
                },
            }]);
            let mut referrals = Vec::new();
            for task in tx.find_ids("Task", &[criterion])? {
                if let Some(sr) = current(tx, "Task", &task)?
                    .as_ref()
                    .and_then(super::access::referral_of)
                {
                    referrals.push(sr);
                }
            }
            referrals.sort();
            referrals.dedup();
            for sr in referrals {
                refresh_later(tx, &sr)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// What [`refresh_later`] defers: this prefix and the referral's id.
pub(crate) const DEFERRED: &str = "facts:";

/// Refreshes the row of referral `sr_id` before the unit of work commits, once however
/// many of its versions ask, or now when the unit defers nothing (see `Tx::defer`).
fn refresh_later(tx: &mut Tx<'_>, sr_id: &str) -> Result<(), TxError> {
    if tx.defer(format!("{DEFERRED}{sr_id}")) {
        return Ok(());
    }
    refresh(tx, sr_id)
}

fn current(tx: &mut Tx<'_>, ty: &str, id: &str) -> Result<Option<Value>, TxError> {
    Ok(tx.current(ty, id)?.as_ref().and_then(body))
}

/// The GP practice of a referral: the requesting Organization, the organisation of
/// the requesting PractitionerRole, the organisation of the client that sent it,
/// else the requesting Practitioner.
fn practice(tx: &mut Tx<'_>, sr_id: &str, sr: &Value) -> Result<Option<String>, TxError> {
    let requester = sr
        .pointer("/requester/reference")
        .and_then(Value::as_str)
        .and_then(local_ref);
    match requester {
        Some(("Organization", id)) => return Ok(Some(format!("Organization/{id}"))),
        Some(("PractitionerRole", id)) => {
            let organization = current(tx, "PractitionerRole", id)?
                .as_ref()
                .and_then(|role| role.pointer("/organization/reference"))
                .and_then(Value::as_str)
                .and_then(local_ref)
                .filter(|(ty, _)| *ty == "Organization")
                .map(|(_, id)| format!("Organization/{id}"));
            if organization.is_some() {
                return Ok(organization);
            }
        }
        _ => {}
    }
    if let Some(sender) = tx.creators_of("ServiceRequest", sr_id)?.into_iter().next() {
        return Ok(Some(sender));
    }
    Ok(match requester {
        Some((ty @ ("Practitioner" | "PractitionerRole"), id)) => Some(format!("{ty}/{id}")),
        _ => None,
    })
}

/// Recomputes the row of referral `sr_id` from what is stored now.
pub fn refresh(tx: &mut Tx<'_>, sr_id: &str) -> Result<(), TxError> {
    let Some(sr) = current(tx, "ServiceRequest", sr_id)? else {
        return tx.remove_referral_facts(sr_id);
    };
    let received_at = match tx.version_of("ServiceRequest", sr_id, 1)? {
        Some(first) => first.last_updated,
        None => tx.stamp()?,
    };
    let practice = practice(tx, sr_id, &sr)?;
    let criterion = Criterion::Any(vec![Match::Reference {
        param: "focus".to_owned(),
        target: RefTarget::Local {
            target_type: Some("ServiceRequest".to_owned()),
            id: sr_id.to_owned(),
        },
    }]);
    let mut tasks: Vec<Vec<TaskVersion>> = Vec::new();
    for id in tx.find_ids("Task", &[criterion])? {
        let versions: Vec<TaskVersion> = tx
            .versions_of("Task", &id)?
            .iter()
            .filter_map(|v| Some((v.last_updated, body(v)?)))
            .collect();
        if !versions.is_empty() {
            tasks.push(versions);
        }
    }
    tasks.sort_by_key(|versions| versions.first().map(|(at, _)| *at));
    let mut responses: HashMap<String, Value> = HashMap::new();
    for (_, task) in tasks.iter().filter_map(|v| v.last()) {
        let outputs = task.get("output").and_then(Value::as_array);
        for reference in outputs.into_iter().flatten().filter_map(|o| {
            o.pointer("/valueReference/reference")
                .and_then(Value::as_str)
        }) {
            if let Some(("QuestionnaireResponse", id)) = local_ref(reference) {
                if let Some(qr) = current(tx, "QuestionnaireResponse", id)? {
                    responses.insert(format!("QuestionnaireResponse/{id}"), qr);
                }
            }
        }
    }
    let facts = stats::derive(&stats::Inputs {
        service_request: &sr,
        received_at,
        practice,
        tasks: &tasks,
        responses: &|r: &str| responses.get(r).cloned(),
    });
    tx.put_referral_facts(&to_row(sr_id, &facts))
}

fn scores_text(scores: Option<&Vec<Option<i64>>>) -> String {
    scores
        .map(|s| {
            s.iter()
                .map(|v| v.map(|v| v.to_string()).unwrap_or_default())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn scores_of(text: &str) -> Option<Vec<Option<i64>>> {
    (!text.is_empty()).then(|| text.split(',').map(|v| v.parse().ok()).collect())
}

/// The stored row of a referral's facts.
pub fn to_row(referral: &str, f: &Facts) -> FactsRow {
    let flag = |on: bool, bit: i64| if on { bit } else { 0 };
    FactsRow {
        referral: referral.to_owned(),
        referral_date: f.referral_date.clone(),
        municipality: f.municipality.clone().unwrap_or_default(),
        practice: f.practice.clone(),
        age_group: f.age_group.clone(),
        organization: f.organization.clone(),
        category: f.category.clone(),
        status: f.status.clone(),
        unroutable_reason: f.unroutable_reason.clone(),
        rejection_reason: f.rejection_reason.clone(),
        flags: flag(f.routed, ROUTED)
            | flag(f.accepted, ACCEPTED)
            | flag(f.rerouted, REROUTED)
            | flag(f.feedback, FEEDBACK),
        received_at: f.received_at,
        contact_at: f.contact_at,
        intake_at: f.intake_at,
        completed_at: f.completed_at,
        health: (f.health_first.is_some() || f.health_last.is_some()).then(|| {
            format!(
                "{}|{}",
                scores_text(f.health_first.as_ref()),
                scores_text(f.health_last.as_ref())
            )
        }),
    }
}

/// The facts of a stored row.
pub fn from_row(r: FactsRow) -> Facts {
    let (first, last) = r
        .health
        .as_deref()
        .and_then(|h| h.split_once('|'))
        .map_or((None, None), |(a, b)| (scores_of(a), scores_of(b)));
    Facts {
        referral_date: r.referral_date,
        received_at: r.received_at,
        municipality: Some(r.municipality).filter(|m| !m.is_empty()),
        practice: r.practice,
        age_group: r.age_group,
        organization: r.organization,
        category: r.category,
        routed: r.flags & ROUTED != 0,
        unroutable_reason: r.unroutable_reason,
        accepted: r.flags & ACCEPTED != 0,
        rejection_reason: r.rejection_reason,
        rerouted: r.flags & REROUTED != 0,
        status: r.status,
        contact_at: r.contact_at,
        intake_at: r.intake_at,
        completed_at: r.completed_at,
        feedback: r.flags & FEEDBACK != 0,
        health_first: first,
        health_last: last,
    }
}

/// Recomputes every row from the stored versions, in one unit of work: the
/// referrals rebuilt.
pub async fn rebuild(store: &crate::store::Store) -> Result<u64, AppError> {
    let principal = Principal::system("system:reports-rebuild");
    let n = store
        .transaction(principal.access(), |tx| {
            tx.clear_referral_facts()?;
            let mut after = String::new();
            let mut n = 0u64;
            loop {
                let ids = tx.live_ids("ServiceRequest", &after, 1000)?;
                let Some(last) = ids.last().cloned() else {
                    break;
                };
                for id in &ids {
                    refresh(tx, id)?;
                    n += 1;
                }
                after = last;
            }
            Ok::<_, crate::store::Failure<AppError>>(n)
        })
        .await?;
    Ok(n)
}

/// Whether `principal` may read the statistics: chain partners (monitor), the
/// coordinator, the operator and open mode; not a referrer or welfare organisation
/// client (their own referrals are at `/fhir`).
pub fn may_read(principal: &Principal) -> Result<(), AppError> {
    match principal.role {
        Role::Client(ClientRole::Referrer | ClientRole::Performer) => Err(AppError::one(
            ErrorKind::Forbidden,
            Issue::error(
                IssueCode::Forbidden,
                "The statistics are for monitor and coordinator clients; a referrer or welfare \
                 organisation reads its own referrals at /fhir",
            ),
        )),
        _ => super::access::require(principal, "MeasureReport", super::access::Need::Read),
    }
}

/// A report and the display names of what its keys name.
pub struct Named {
    pub report: Report,
    /// `Organization/<id>` (and `Practitioner/<id>`) to its name, CBS code to the
    /// municipality's name.
    pub names: BTreeMap<String, String>,
}

/// Today in the Netherlands (the default last date of a report).
pub fn today(app: &App) -> time::Date {
    crate::referral::age::dutch_date(crate::fhir::instant::from_micros(app.clock.now_micros()))
}

/// The parameters of a report request (`/reports/referrals`, the dashboard).
pub fn request(
    app: &App,
    pairs: &[(String, String)],
    accept: Option<&str>,
) -> Result<Request, AppError> {
    report_format::parse(
        pairs,
        ("from", "to"),
        today(app),
        app.report_minimum_cell,
        accept,
    )
}

/// The report a request asks for.
pub async fn referrals(app: &App, principal: &Principal, req: &Request) -> Result<Named, AppError> {
    compute(app, principal, req.query.clone(), req.municipality.clone()).await
}

/// `Measure/referral-statistics/$evaluate-measure`: the MeasureReport of a period
/// (`periodStart`, `periodEnd`), stratified as `by` asks (default municipality).
pub async fn evaluate_measure(
    app: &App,
    principal: &Principal,
    pairs: &[(String, String)],
) -> Result<Value, AppError> {
    let mut rest = Vec::new();
    let mut by_given = false;
    for (name, value) in pairs {
        match name.as_str() {
            "reportType" if value == "summary" => {}
            "reportType" => {
                return Err(AppError::one(
                    ErrorKind::Invalid,
                    Issue::error(
                        IssueCode::NotSupported,
                        "Only reportType summary is supported: the statistics never list patients",
                    )
                    .at("http.reportType"),
                ))
            }
            // Answered by the FHIR layer (content negotiation, indentation).
            "_format" | "_pretty" => {}
            "measure" | "municipality" => {
                return Err(AppError::one(
                    ErrorKind::Invalid,
                    Issue::error(
                        IssueCode::NotSupported,
                        format!(
                        "Parameter '{name}' is not supported here; stratify with by=municipality"
                    ),
                    )
                    .at(format!("http.{name}")),
                ))
            }
            _ => {
                by_given |= name == "by";
                rest.push((name.clone(), value.clone()));
            }
        }
    }
    for required in ["periodStart", "periodEnd"] {
        if !rest.iter().any(|(n, _)| n == required) {
            return Err(AppError::one(
                ErrorKind::Invalid,
                Issue::error(
                    IssueCode::Required,
                    format!("{required} is required (YYYY-MM-DD)"),
                )
                .at(format!("http.{required}")),
            ));
        }
    }
    if !by_given {
        rest.push(("by".into(), "municipality".into()));
    }
    let req = report_format::parse(
        &rest,
        ("periodStart", "periodEnd"),
        today(app),
        app.report_minimum_cell,
        None,
    )?;
    let named = referrals(app, principal, &req).await?;
    let now = crate::fhir::instant::format_instant(app.clock.now_micros());
    Ok(report_format::to_measure_report(&named, &req, &now))
}

async fn compute(
    app: &App,
    principal: &Principal,
    mut query: Query,
    municipality_code: Option<String>,
) -> Result<Named, AppError> {
    may_read(principal)?;
    query.now = app.clock.now_micros();
    query.contact_deadline = app.contact_deadline;
    let (from, to) = (query.from.clone(), query.to.clone());
    let shared = std::sync::Arc::new(query.clone());
    let report = app
        .store
        .read(principal.access(), move |tx| {
            let mut builder = report::Builder::new(&shared);
            tx.each_referral_facts(&from, &to, municipality_code.as_deref(), &mut |row| {
                builder.add(&from_row(row));
            })?;
            Ok(builder.finish())
        })
        .await?;
    let mut wanted: Vec<String> = Vec::new();
    let mut names = BTreeMap::new();
    let keys = report
        .rows
        .iter()
        .flat_map(|r| query.by.iter().zip(&r.key))
        .filter(|(d, _)| {
            matches!(
                d,
                GroupBy::Municipality | GroupBy::Practice | GroupBy::Organization
            )
        })
        .map(|(_, k)| k)
        .chain(
            report
                .matches
                .iter()
                .flat_map(|m| [&m.municipality, &m.practice, &m.organization]),
        );
    for key in keys {
        if let Some(m) = municipality::by_code(key) {
            names.insert(key.clone(), m.name.clone());
        } else if local_ref(key).is_some() && !wanted.contains(key) {
            wanted.push(key.clone());
        }
    }
    let directory = app
        .store
        .read(principal.access(), move |tx| {
            let mut names = BTreeMap::new();
            for key in &wanted {
                let Some((ty @ ("Organization" | "Practitioner" | "PractitionerRole"), id)) =
                    local_ref(key)
                else {
                    continue;
                };
                if let Some(name) = current(tx, ty, id)?.as_ref().and_then(display_name) {
                    names.insert(key.clone(), name);
                }
            }
            Ok(names)
        })
        .await?;
    names.extend(directory);
    Ok(Named { report, names })
}

/// An Organization's name, or a Practitioner's name as `prefix given family`.
fn display_name(resource: &Value) -> Option<String> {
    match resource.get("name")? {
        Value::String(name) => Some(name.clone()),
        Value::Array(names) => {
            let name = names.first()?;
            if let Some(text) = name.get("text").and_then(Value::as_str) {
                return Some(text.to_owned());
            }
            let parts: Vec<&str> = ["prefix", "given"]
                .iter()
                .filter_map(|p| name.get(*p).and_then(Value::as_array))
                .flatten()
                .filter_map(Value::as_str)
                .chain(name.get("family").and_then(Value::as_str))
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        }
        _ => None,
    }
}
