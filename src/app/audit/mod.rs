//! The audit trail through the FHIR API (NEN 7513): `AuditEvent` read and search for
//! coordinators (and the system, and open mode), never changed through the API. Each
//! read or search of the trail leaves one audit row itself (actor, no patients): who
//! looked at the trail is recorded, without the trail's patients being disclosed
//! again in it. And the token grant's audit row, for the token endpoint.

pub mod render;

use crate::app::error::{AppError, ErrorKind};
use crate::app::principal::{ClientRole, Principal, Role};
use crate::app::reply::{status, Reply};
use crate::app::{searchset, App};
use crate::fhir::bundle::{raw, Bundle, Entry, Link};
use crate::fhir::capability::ReadOnlyParam;
use crate::fhir::dates::date_range;
use crate::fhir::outcome::{operation_outcome, Issue, IssueCode};
use crate::fhir::patient_of::patient_reference;
use crate::store::{AuditEntry, AuditQuery, AuditRecord};

/// The search parameters of `AuditEvent` (the CapabilityStatement lists them).
pub const PARAMS: &[ReadOnlyParam] = &[
    ReadOnlyParam {
        name: "_id",
        ty: "token",
        definition: "http://hl7.org/fhir/SearchParameter/Resource-id",
        documentation: "The audit row's sequence number",
    },
    ReadOnlyParam {
        name: "patient",
        ty: "reference",
        definition: "http://hl7.org/fhir/SearchParameter/AuditEvent-patient",
        documentation:
            "Patient/<id> (or <id>): events concerning that patient; commas: any of them",
    },
    ReadOnlyParam {
        name: "date",
        ty: "date",
        definition: "http://hl7.org/fhir/SearchParameter/AuditEvent-date",
        documentation: "When recorded: eq (default), ge, gt, le, lt; repeat for a range",
    },
    ReadOnlyParam {
        name: "agent",
        ty: "reference",
        definition: "http://hl7.org/fhir/SearchParameter/AuditEvent-agent",
        documentation:
            "Who: a reference (Organization/x: acting as or for it) or the actor as \
            recorded (client:<id>, party:coordinator, system:<job>, anonymous); commas: any of them",
    },
    ReadOnlyParam {
        name: "entity",
        ty: "reference",
        definition: "http://hl7.org/fhir/SearchParameter/AuditEvent-entity",
        documentation:
            "The resource accessed: <type>/<id>, or <type> for every access to that type",
    },
];

/// The cursor parameter of a `next` link: rows after this sequence number.
pub const AFTER: &str = "_after";

/// Whether `principal` may read the audit trail.
fn may_read(principal: &Principal) -> Result<(), AppError> {
    match principal.role {
        Role::Coordinator | Role::Client(ClientRole::Coordinator) | Role::System | Role::Open => {
            Ok(())
        }
        _ => Err(AppError::one(
            ErrorKind::Forbidden,
            Issue::error(
                IssueCode::Forbidden,
                "The audit trail is for coordinators only (X-Acting-Party: coordinator, or a \
                 client registered as coordinator)",
            ),
        )),
    }
}

fn invalid(name: &str, message: String) -> AppError {
    AppError::invalid(vec![
        Issue::error(IssueCode::Value, message).at(name.chars().take(64).collect::<String>())
    ])
}

/// Rows of `query`, read in one unit of work that records this access.
async fn rows(
    app: &App,
    principal: &Principal,
    query: AuditQuery,
    interaction: &'static str,
) -> Result<Vec<AuditEntry>, AppError> {
    // Reads answered before this one are in the trail it shows.
    app.store.move_audit_journal().await?;
    Ok(app
        .store
        .read(principal.access(), move |tx| {
            let rows = tx.audit_events(&query)?;
            let id = match (interaction, query.seqs.as_deref()) {
                ("read", Some([seq])) => Some(seq.to_string()),
                _ => None,
            };
            tx.audit(AuditRecord {
                action: "R",
                interaction,
                resource_type: "AuditEvent",
                resource_id: id.as_deref(),
                version_id: None,
                outcome: if interaction == "read" && rows.is_empty() {
                    "not-found"
                } else {
                    "success"
                },
            })?;
            Ok(rows)
        })
        .await?)
}

/// `GET AuditEvent/<id>`.
pub async fn read(
    app: &App,
    principal: &Principal,
    id: &str,
    base: &str,
) -> Result<Reply, AppError> {
    may_read(principal)?;
    let not_found = || AppError::not_found(format!("No AuditEvent/{id}"));
    let seq = id.parse::<i64>().map_err(|_| not_found())?;
    let query = AuditQuery {
        seqs: Some(vec![seq]),
        count: 1,
        ..AuditQuery::default()
    };
    let found = rows(app, principal, query, "read").await?;
    let entry = found.first().ok_or_else(not_found)?;
    Ok(Reply::new(status::OK).fhir(render::audit_event(entry, base).to_string()))
}

/// `GET AuditEvent?params`: a searchset Bundle in `seq` order, `_count` per page, a
/// `next` link carrying [`AFTER`]. Unknown parameters: 400, or ignored with a warning
/// when `lenient`.
pub async fn search(
    app: &App,
    principal: &Principal,
    pairs: &[(String, String)],
    lenient: bool,
    base: &str,
) -> Result<Reply, AppError> {
    may_read(principal)?;
    let (query, kept, warnings) = parse(pairs, lenient)?;
    let count = usize::try_from(query.count).unwrap_or(searchset::DEFAULT_COUNT);
    let mut found = rows(app, principal, query, "search-type").await?;
    let more = found.len() > count;
    found.truncate(count);
    let url = |extra: Option<i64>| {
        let mut pairs = kept.clone();
        pairs.push(("_count".into(), count.to_string()));
        if let Some(after) = extra {
            pairs.push((AFTER.into(), after.to_string()));
        }
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        format!("{base}/AuditEvent?{query}")
    };
    let mut links = vec![Link {
        relation: "self",
        url: url(searchset::value(pairs, AFTER).and_then(|a| a.parse().ok())),
    }];
    if let (true, Some(last)) = (more, found.last()) {
        links.push(Link {
            relation: "next",
            url: url(Some(last.seq)),
        });
    }
    let mut entries: Vec<Entry> = found
        .iter()
        .map(|e| Entry {
            full_url: format!("{base}/AuditEvent/{}", e.seq),
            resource: raw(render::audit_event(e, base).to_string()),
            search: Some(serde_json::json!({ "mode": "match" })),
            request: None,
            response: None,
        })
        .collect();
    if !warnings.is_empty() {
        entries.push(Entry {
            full_url: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            resource: raw(operation_outcome(&warnings).to_string()),
            search: Some(serde_json::json!({ "mode": "outcome" })),
            request: None,
            response: None,
        });
    }
    let bundle = Bundle::new("searchset", links, entries);
    Ok(Reply::new(status::OK).fhir(bundle.to_json()))
}

type Parsed = (AuditQuery, Vec<(String, String)>, Vec<Issue>);

/// The query of a search's parameters, the parameters kept (for links) and warnings.
fn parse(pairs: &[(String, String)], lenient: bool) -> Result<Parsed, AppError> {
    // PostgreSQL text cannot hold NUL: refused before anything reaches the database, as
    // every other search does.
    if let Some((name, _)) = pairs
        .iter()
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
    {
        let shown = name.replace('\0', "\\0");
        return Err(invalid(
            &shown,
            format!("Search parameter '{shown}' contains a NUL character (%00), which no value may hold"),
        ));
    }
    let mut q = AuditQuery {
        count: i64::try_from(searchset::count(searchset::value(pairs, "_count"), false)?)
            .unwrap_or(i64::MAX),
        ..AuditQuery::default()
    };
    let mut kept = Vec::new();
    let mut warnings = Vec::new();
    for (name, value) in pairs {
        let values = || value.split(',').map(str::trim).filter(|v| !v.is_empty());
        match name.as_str() {
            "_count" | "_format" | "_pretty" => continue,
            AFTER => {
                let after = value
                    .parse()
                    .map_err(|_| invalid(name, format!("{AFTER} must be a sequence number")))?;
                q.after = Some(after);
                continue;
            }
            "_id" => {
                // An id that is no sequence number names no AuditEvent: it matches nothing.
                let seqs: Vec<i64> = values().map(|v| v.parse().unwrap_or(-1)).collect();
                q.seqs = Some(match q.seqs.take() {
                    None => seqs,
                    Some(before) => before.into_iter().filter(|s| seqs.contains(s)).collect(),
                });
            }
            "patient" => {
                for v in values() {
                    let full = if v.contains('/') {
                        v.to_owned()
                    } else {
                        format!("Patient/{v}")
                    };
                    let patient = patient_reference(&full).ok_or_else(|| {
                        invalid(name, "patient must be Patient/<id> or <id>".into())
                    })?;
                    q.patients.push(patient);
                }
            }
            "date" => {
                let alternatives = values()
                    .map(date_bounds)
                    .collect::<Option<Vec<_>>>()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| {
                        invalid(
                            name,
                            "date must be FHIR dates or dateTimes, each with prefix eq, ge, gt, \
                             le or lt"
                                .into(),
                        )
                    })?;
                q.recorded.push(alternatives);
            }
            "agent" => {
                for v in values() {
                    let is_actor = v == "anonymous"
                        || ["party:", "client:", "system:", "cli:"]
                            .iter()
                            .any(|p| v.starts_with(p));
                    if is_actor {
                        q.actors.push(v.to_owned());
                    } else {
                        q.actors.push(format!("party:{v}"));
                        q.organizations.push(v.to_owned());
                    }
                }
            }
            "entity" => {
                let mut alternatives = Vec::new();
                for v in values() {
                    let (ty, id) = match v.split_once('/') {
                        Some((ty, id)) => (ty.to_owned(), Some(id.to_owned())),
                        None => (v.to_owned(), None),
                    };
                    if ty.is_empty() || id.as_deref() == Some("") {
                        return Err(invalid(name, "entity must be <type>/<id> or <type>".into()));
                    }
                    alternatives.push((ty, id));
                }
                q.entities.push(alternatives);
            }
            _ => {
                let message = format!(
                    "Unsupported search parameter '{}' for AuditEvent: _id, patient, date, \
                     agent, entity, _count",
                    name.chars().take(64).collect::<String>()
                );
                if lenient {
                    warnings.push(Issue::warning(
                        IssueCode::NotSupported,
                        format!("Ignored: {message}"),
                    ));
                    continue;
                }
                return Err(AppError::invalid(vec![Issue::error(
                    IssueCode::NotSupported,
                    message,
                )
                .at(name.chars().take(64).collect::<String>())]));
            }
        }
        kept.push((name.clone(), value.clone()));
    }
    Ok((q, kept, warnings))
}

/// `[prefix]value` of a date parameter as inclusive bounds in microseconds.
fn date_bounds(value: &str) -> Option<(Option<i64>, Option<i64>)> {
    let (prefix, rest) = match value.get(..2) {
        Some(p @ ("eq" | "ge" | "gt" | "le" | "lt")) => (p, &value[2..]),
        _ => ("eq", value),
    };
    let (low, high) = date_range(rest)?;
    Some(match prefix {
        "ge" => (Some(low), None),
        "gt" => (Some(high.saturating_add(1)), None),
        "le" => (None, Some(high)),
        "lt" => (None, Some(low.saturating_sub(1))),
        _ => (Some(low), Some(high)),
    })
}

/// The audit row of a token request (the token endpoint calls it): who asked, for
/// which organisation (`principal`), and whether the token was `granted`. No resource
/// and no patient: the row names `token` as what was accessed.
pub async fn token_grant(app: &App, principal: &Principal, granted: bool) -> Result<(), AppError> {
    app.store
        .read(principal.access(), move |tx| {
            tx.audit(AuditRecord {
                action: "E",
                interaction: "token",
                resource_type: "token",
                resource_id: None,
                version_id: None,
                outcome: if granted { "success" } else { "refused" },
            })
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parameters_become_the_query() {
        let (q, kept, _) = parse(
            &pairs(&[
                ("patient", "Patient/a,b"),
                ("agent", "Organization/o,client:c"),
                ("entity", "Task/t"),
                ("date", "ge2026-01-01"),
                ("_count", "5"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(q.patients, ["Patient/a", "Patient/b"]);
        assert_eq!(q.actors, ["party:Organization/o", "client:c"]);
        assert_eq!(q.organizations, ["Organization/o"]);
        assert_eq!(
            q.entities,
            [vec![("Task".to_owned(), Some("t".to_owned()))]]
        );
        assert_eq!(q.count, 5);
        assert!(q.recorded[0][0].0.is_some() && q.recorded[0][0].1.is_none());
        assert_eq!(kept.len(), 4, "_count is added back by the links");
    }

    #[test]
    fn bad_parameters_are_refused_or_ignored_when_lenient() {
        assert!(parse(&pairs(&[("patient", "Group/g")]), false).is_err());
        assert!(parse(&pairs(&[("date", "yesterday")]), false).is_err());
        assert!(parse(&pairs(&[("subtype", "read")]), false).is_err());
        assert!(parse(&pairs(&[("agent", "a\0b")]), false).is_err());
        let (q, _, _) = parse(&pairs(&[("_id", "x,3,4"), ("_id", "4,5")]), false).unwrap();
        assert_eq!(q.seqs, Some(vec![4]));
        let (q, _, _) = parse(&pairs(&[("date", "lt2000,ge2020")]), false).unwrap();
        assert_eq!(q.recorded[0].len(), 2);
        let (_, _, warnings) = parse(&pairs(&[("subtype", "read")]), true).unwrap();
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn date_prefixes_bound_the_range() {
        let (low, high) = date_range("2026-01-01").unwrap();
        assert_eq!(date_bounds("2026-01-01"), Some((Some(low), Some(high))));
        assert_eq!(date_bounds("lt2026-01-01"), Some((None, Some(low - 1))));
        assert_eq!(date_bounds("gt2026-01-01"), Some((Some(high + 1), None)));
        assert_eq!(date_bounds("le2026-01-01"), Some((None, Some(high))));
    }
}
