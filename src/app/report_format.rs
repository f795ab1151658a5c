//! The statistics' parameters and formats (README "Statistics"): the query string of
//! `/reports/referrals` and `/reports/dashboard`, the JSON and CSV answers, and the
//! R4 MeasureReport of `Measure/referral-statistics/$evaluate-measure`.

use serde_json::{json, Map, Value};

use crate::fhir::outcome::{Issue, IssueCode};
use crate::referral::codes::{CS_REFERRAL_METRIC, MEASURE_REFERRAL_STATISTICS};
use crate::referral::municipality;
use crate::referral::positive_health::Dimension;
use crate::referral::report::{Cell, Granularity, GroupBy, Metric, Query, Row, Span};

use super::error::{AppError, ErrorKind};
use super::reports::Named;

const MEASURE_POPULATION: &str = "http://terminology.hl7.org/CodeSystem/measure-population";
const DATA_ABSENT_REASON: &str = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";

/// How the answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

/// A report request: the query and the municipality it is limited to.
#[derive(Debug, Clone)]
pub struct Request {
    pub query: Query,
    pub municipality: Option<String>,
    pub format: Format,
}

fn bad(param: &str, diagnostics: String) -> AppError {
    AppError::one(
        ErrorKind::Invalid,
        Issue::error(IssueCode::Invalid, diagnostics).at(format!("http.{param}")),
    )
}

/// A date parameter as the first (`start`) or last day it implies: `YYYY-MM-DD`, or as
/// FHIR's date search and `$evaluate-measure` read a partial date, `YYYY` (January 1 or
/// December 31) and `YYYY-MM` (the month's first or last day).
fn date(param: &str, value: &str, start: bool) -> Result<String, AppError> {
    use time::macros::format_description;
    let refused = || {
        bad(
            param,
            format!(
                "{param} must be a date (YYYY, YYYY-MM or YYYY-MM-DD), not '{}'",
                clip(value)
            ),
        )
    };
    let year = |y: &str| y.parse::<i32>().ok().filter(|y| (1..=9999).contains(y));
    let day = match value.len() {
        4 => {
            let y = year(value).ok_or_else(refused)?;
            let (m, d) = if start {
                (time::Month::January, 1)
            } else {
                (time::Month::December, 31)
            };
            time::Date::from_calendar_date(y, m, d).map_err(|_| refused())?
        }
        7 => {
            let first = time::Date::parse(
                &format!("{value}-01"),
                format_description!("[year]-[month]-[day]"),
            )
            .map_err(|_| refused())?;
            if start {
                first
            } else {
                let days = first.month().length(first.year());
                first.replace_day(days).map_err(|_| refused())?
            }
        }
        _ => time::Date::parse(value, format_description!("[year]-[month]-[day]"))
            .map_err(|_| refused())?,
    };
    Ok(day.to_string())
}

fn clip(value: &str) -> String {
    value.chars().take(40).collect()
}

/// Reads the parameters. `names`: the parameter names for the first and last date
/// (`from`/`to`, or `periodStart`/`periodEnd` for the operation). `today` is the
/// default last date; the first defaults to January 1 of its year.
pub fn parse(
    pairs: &[(String, String)],
    names: (&str, &str),
    today: time::Date,
    minimum: u64,
    accept: Option<&str>,
) -> Result<Request, AppError> {
    let mut from = format!("{}-01-01", today.year());
    let mut to = today.to_string();
    let mut granularity = Granularity::Month;
    let mut by = vec![GroupBy::Period, GroupBy::Municipality];
    let mut municipality_code = None;
    let mut format = match accept {
        Some(a) if a.contains("text/csv") && !a.contains("json") => Format::Csv,
        _ => Format::Json,
    };
    for (name, value) in pairs {
        match name.as_str() {
            n if n == names.0 => from = date(n, value, true)?,
            n if n == names.1 => to = date(n, value, false)?,
            "period" => {
                granularity = Granularity::parse(value).ok_or_else(|| {
                    bad("period", format!("period is month, quarter, half-year or year, not '{}'", clip(value)))
                })?;
            }
            "by" => {
                by = Vec::new();
                for part in value.split(',').filter(|p| !p.is_empty()) {
                    let g = GroupBy::parse(part).ok_or_else(|| {
                        let known: Vec<&str> = GroupBy::ALL.iter().map(|g| g.code()).collect();
                        bad("by", format!("'{}' is not a grouping; use {}", clip(part), known.join(", ")))
                    })?;
                    if !by.contains(&g) {
                        by.push(g);
                    }
                }
            }
            "municipality" if !value.is_empty() => {
                let found = municipality::normalise_code(value)
                    .and_then(|c| municipality::by_code(&c))
                    .or_else(|| municipality::by_name(value))
                    .ok_or_else(|| {
                        bad("municipality", format!("'{}' is not a CBS municipality code (GM0484) or name", clip(value)))
                    })?;
                municipality_code = Some(found.code.clone());
            }
            "municipality" => {}
            "_format" => {
                format = match value.as_str() {
                    "json" | "application/json" => Format::Json,
                    "csv" | "text/csv" => Format::Csv,
                    other => return Err(bad("_format", format!("_format is json or csv, not '{}'", clip(other)))),
                };
            }
            other => {
                return Err(bad(
                    other,
                    format!("Unknown parameter '{}'; the report takes {}, {}, period, by, municipality and _format", clip(other), names.0, names.1),
                ))
            }
        }
    }
    if from > to {
        return Err(bad(
            names.0,
            format!("{} {from} lies after {} {to}", names.0, names.1),
        ));
    }
    Ok(Request {
        query: Query {
            from,
            to,
            granularity,
            by,
            minimum,
            now: 0,
            contact_deadline: 0,
        },
        municipality: municipality_code,
        format,
    })
}

fn cell(c: Cell) -> Value {
    c.shown().map_or(Value::Null, Value::from)
}

fn opt(v: Option<f64>) -> Value {
    v.map_or(Value::Null, Value::from)
}

fn row_json(row: &Row, by: &[GroupBy]) -> Value {
    let mut o = Map::new();
    if !by.is_empty() {
        let key: Map<String, Value> = by
            .iter()
            .zip(&row.key)
            .map(|(g, k)| (g.code().to_owned(), json!(k)))
            .collect();
        o.insert("key".into(), Value::Object(key));
    }
    for m in Metric::ALL {
        o.insert(m.code().into(), cell(row.count(m)));
    }
    let reasons = |r: &std::collections::BTreeMap<String, Cell>| -> Value {
        r.iter()
            .map(|(k, c)| (k.clone(), cell(*c)))
            .collect::<Map<_, _>>()
            .into()
    };
    o.insert(
        "unroutableByReason".into(),
        reasons(&row.unroutable_by_reason),
    );
    o.insert("rejectedByReason".into(), reasons(&row.rejected_by_reason));
    for (span, p) in Span::ALL.iter().zip(&row.spans) {
        o.insert(
            span.code().into(),
            json!({"n": cell(p.n), "median": opt(p.median), "p90": opt(p.p90)}),
        );
    }
    o.insert("feedbackShare".into(), opt(row.feedback_share));
    let health: Map<String, Value> = Dimension::ALL
        .iter()
        .zip(&row.health)
        .map(|(d, h)| {
            (
                d.link_id().to_owned(),
                json!({"n": cell(h.n), "meanChange": opt(h.mean_change)}),
            )
        })
        .collect();
    o.insert("positiveHealthChange".into(), Value::Object(health));
    Value::Object(o)
}

/// The JSON answer.
pub fn to_json(named: &Named, req: &Request) -> Value {
    let q = &req.query;
    let by: Vec<&str> = q.by.iter().map(|g| g.code()).collect();
    json!({
        "from": q.from,
        "to": q.to,
        "period": q.granularity.code(),
        "by": by,
        "municipality": req.municipality,
        "minimumCell": q.minimum,
        "suppression": format!(
            "null is a suppressed figure: a count from 1 to {} or one that would reveal such a count by subtraction; a percentile or mean of fewer than {} referrals",
            q.minimum.saturating_sub(1), q.minimum
        ),
        "names": named.names,
        "rows": named.report.rows.iter().map(|r| row_json(r, &q.by)).collect::<Vec<_>>(),
        "total": row_json(&named.report.total, &[]),
        "matches": named.report.matches.iter().map(|m| json!({
            "municipality": m.municipality,
            "practice": m.practice,
            "organization": m.organization,
            "referrals": cell(m.referrals),
        })).collect::<Vec<_>>(),
    })
}

fn named_dimension(g: GroupBy) -> bool {
    matches!(
        g,
        GroupBy::Municipality | GroupBy::Practice | GroupBy::Organization
    )
}

/// The CSV answer: a header, a line per row and a `total` line. An empty figure is
/// suppressed (or, for a percentile or mean, has no value).
pub fn to_csv(named: &Named, req: &Request) -> Result<String, AppError> {
    let q = &req.query;
    let mut header: Vec<String> = Vec::new();
    for g in &q.by {
        header.push(g.code().replace('-', "_"));
        if named_dimension(*g) {
            header.push(format!("{}_name", g.code().replace('-', "_")));
        }
    }
    header.extend(Metric::ALL.iter().map(|m| m.code().to_owned()));
    for span in Span::ALL {
        let s = span.code().replace('-', "_");
        header.push(format!("{s}_median"));
        header.push(format!("{s}_p90"));
    }
    header.push("feedback_share".into());
    header.extend(
        Dimension::ALL
            .iter()
            .map(|d| format!("health_change_{}", d.link_id().replace('-', "_"))),
    );
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| AppError::internal(&e);
    w.write_record(&header).map_err(fail)?;
    let num = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let real = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let rows = named
        .report
        .rows
        .iter()
        .map(|r| (r, false))
        .chain(std::iter::once((&named.report.total, true)));
    for (row, total) in rows {
        let mut rec: Vec<String> = Vec::new();
        for (i, g) in q.by.iter().enumerate() {
            let key = if total {
                "total".to_owned()
            } else {
                row.key[i].clone()
            };
            if named_dimension(*g) {
                let name = named.names.get(&key).cloned().unwrap_or_default();
                rec.push(key);
                rec.push(name);
            } else {
                rec.push(key);
            }
        }
        rec.extend(Metric::ALL.iter().map(|m| num(row.count(*m).shown())));
        for p in &row.spans {
            rec.push(real(p.median));
            rec.push(real(p.p90));
        }
        rec.push(real(row.feedback_share));
        rec.extend(row.health.iter().map(|h| real(h.mean_change)));
        w.write_record(&rec).map_err(fail)?;
    }
    let bytes = w.into_inner().map_err(|e| AppError::internal(&e))?;
    String::from_utf8(bytes).map_err(|e| AppError::internal(&e))
}

fn population(c: Cell) -> Value {
    let code = json!({"coding": [{"system": MEASURE_POPULATION, "code": "initial-population"}]});
    match c.shown() {
        Some(n) => json!({"code": code, "count": n}),
        None => json!({
            "extension": [{"url": DATA_ABSENT_REASON, "valueCode": "masked"}],
            "code": code,
        }),
    }
}

fn key_value(g: GroupBy, key: &str, named: &Named) -> Value {
    let mut v = json!({"coding": [{"code": key}]});
    if g == GroupBy::Municipality {
        if let Some(m) = municipality::by_code(key) {
            v = json!({"coding": [{"system": crate::referral::codes::CS_CBS_MUNICIPALITY, "code": m.code, "display": m.name}]});
        }
    }
    if let Some(name) = named.names.get(key) {
        v["text"] = json!(name);
    }
    v
}

/// The R4 MeasureReport (`type` summary) of the report: a group per metric, its
/// count as the initial population, stratified by the report's groupings. A
/// suppressed count has no `count` and a data-absent-reason `masked`.
pub fn to_measure_report(named: &Named, req: &Request, now: &str) -> Value {
    let q = &req.query;
    let groups: Vec<Value> = Metric::ALL
        .iter()
        .map(|m| {
            let mut group = json!({
                "code": {"coding": [{"system": CS_REFERRAL_METRIC, "code": m.code(), "display": m.display()}]},
                "population": [population(named.report.total.count(*m))],
            });
            if !q.by.is_empty() {
                let strata: Vec<Value> = named
                    .report
                    .rows
                    .iter()
                    .map(|row| {
                        let mut stratum = match q.by.as_slice() {
                            [one] => json!({"value": key_value(*one, &row.key[0], named)}),
                            many => json!({"component": many.iter().zip(&row.key).map(|(g, k)| json!({
                                "code": {"text": g.code()},
                                "value": key_value(*g, k, named),
                            })).collect::<Vec<_>>()}),
                        };
                        stratum["population"] = json!([population(row.count(*m))]);
                        stratum
                    })
                    .collect();
                let codes: Vec<Value> = q.by.iter().map(|g| json!({"text": g.code()})).collect();
                group["stratifier"] = json!([{"code": codes, "stratum": strata}]);
            }
            group
        })
        .collect();
    json!({
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": MEASURE_REFERRAL_STATISTICS,
        "date": now,
        "period": {"start": q.from, "end": q.to},
        "group": groups,
    })
}

#[cfg(test)]
mod tests {
    use super::date;

    #[test]
    fn partial_dates_open_and_close_their_period() {
        assert_eq!(date("from", "2026", true).unwrap(), "2026-01-01");
        assert_eq!(date("to", "2026", false).unwrap(), "2026-12-31");
        assert_eq!(date("from", "2024-02", true).unwrap(), "2024-02-01");
        assert_eq!(date("to", "2024-02", false).unwrap(), "2024-02-29");
        assert_eq!(date("to", "2026-05-17", false).unwrap(), "2026-05-17");
        for bad in ["26", "2026-13", "2026-02-30", "x026", "2026-1-1", ""] {
            assert!(date("from", bad, true).is_err(), "{bad}");
        }
    }
}
