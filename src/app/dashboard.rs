//! The statistics dashboard (`GET /reports/dashboard`, issue 17): one server-rendered
//! HTML page for municipal project leads, with inline SVG charts of the figures
//! `/reports/referrals` publishes (the same reports, the same suppression). No
//! JavaScript and no external assets, so it prints and archives as one file.

mod svg;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::fhir::outcome::{Issue, IssueCode};
use crate::referral::municipality;
use crate::referral::positive_health::Dimension;
use crate::referral::report::{
    Cell, Granularity, GroupBy, Metric, Percentiles, Row, Span, UNKNOWN,
};

use self::svg::{decimal, esc, HRow, Series, DASH};
use super::error::{AppError, ErrorKind};
use super::principal::Principal;
use super::report_format::Request;
use super::reports::{self, Named};
use super::App;

/// The selectors the page takes; everything else is refused (the groupings and the
/// period are the page's own).
const PARAMETERS: [&str; 3] = ["from", "to", "municipality"];

/// More months than this and the monthly chart shows only the months with referrals.
const MAX_MONTHS: usize = 36;

const MONTHS: [&str; 12] = [
    "jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec",
];
const MONTHS_LONG: [&str; 12] = [
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
];

/// The dashboard of the period and municipality `pairs` select (`from`, `to`,
/// `municipality`; an empty value means the default, as an emptied form field sends).
pub async fn page(
    app: &App,
    principal: &Principal,
    pairs: &[(String, String)],
) -> Result<String, AppError> {
    reports::may_read(principal)?;
    if let Some((name, _)) = pairs
        .iter()
        .find(|(n, _)| !PARAMETERS.contains(&n.as_str()))
    {
        let name: String = name.chars().take(40).collect();
        return Err(AppError::one(
            ErrorKind::Invalid,
            Issue::error(
                IssueCode::Invalid,
                format!(
                    "Unknown parameter '{name}'; the dashboard takes from, to and municipality"
                ),
            )
            .at(format!("http.{name}")),
        ));
    }
    let given: Vec<(String, String)> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .cloned()
        .collect();
    let base = reports::request(app, &given, None)?;
    let grouped = |by: Vec<GroupBy>, municipality: Option<String>| {
        let mut r: Request = base.clone();
        r.query.granularity = Granularity::Month;
        r.query.by = by;
        r.municipality = municipality;
        r
    };
    let monthly = grouped(
        vec![GroupBy::Period, GroupBy::Municipality],
        base.municipality.clone(),
    );
    let monthly = reports::referrals(app, principal, &monthly).await?;
    let per_municipality = grouped(vec![GroupBy::Municipality], base.municipality.clone());
    let per_municipality = reports::referrals(app, principal, &per_municipality).await?;
    // The selector offers every municipality of the period, also when one is chosen.
    let all = if base.municipality.is_some() {
        let r = grouped(vec![GroupBy::Municipality], None);
        Some(reports::referrals(app, principal, &r).await?)
    } else {
        None
    };
    let listed = all.as_ref().unwrap_or(&per_municipality);
    let mut choices: Vec<(String, String)> = listed
        .report
        .rows
        .iter()
        .filter_map(|r| r.key.first())
        .filter(|code| code.as_str() != UNKNOWN)
        .map(|code| (code.clone(), name_of(&listed.names, code)))
        .collect();
    choices.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(render(&Figures {
        from: base.query.from.clone(),
        to: base.query.to.clone(),
        minimum: base.query.minimum,
        municipality: base.municipality.clone(),
        choices,
        monthly,
        per_municipality,
        generated: crate::fhir::instant::format_instant(app.clock.now_micros()),
    }))
}

/// What the page shows.
struct Figures {
    from: String,
    to: String,
    minimum: u64,
    /// The municipality chosen (CBS code), if any.
    municipality: Option<String>,
    /// The selector's municipalities: (CBS code, name), by name.
    choices: Vec<(String, String)>,
    /// Grouped by month and municipality (with the matches).
    monthly: Named,
    /// Grouped by municipality; its total row is the whole selection's.
    per_municipality: Named,
    generated: String,
}

fn name_of(names: &BTreeMap<String, String>, key: &str) -> String {
    match names.get(key) {
        Some(name) => name.clone(),
        None if key == UNKNOWN => "Onbekend (unknown)".to_owned(),
        None => key.to_owned(),
    }
}

fn count_text(c: Cell) -> String {
    c.shown().map_or_else(|| DASH.to_owned(), |n| n.to_string())
}

/// `2026-03-01` as `1 maart 2026`.
fn long_date(date: &str) -> String {
    let part = |r: std::ops::Range<usize>| date.get(r).and_then(|s| s.parse::<usize>().ok());
    match (part(0..4), part(5..7), part(8..10)) {
        (Some(y), Some(m @ 1..=12), Some(d)) => format!("{d} {} {y}", MONTHS_LONG[m - 1]),
        _ => date.to_owned(),
    }
}

/// `2026-03` as `mrt 2026`.
fn month_label(period: &str) -> String {
    match (
        period.get(..4),
        period.get(5..7).and_then(|m| m.parse::<usize>().ok()),
    ) {
        (Some(y), Some(m @ 1..=12)) => format!("{} {y}", MONTHS[m - 1]),
        _ => period.to_owned(),
    }
}

/// Every month from `from` to `to` (`YYYY-MM`); empty when there are more than
/// [`MAX_MONTHS`].
fn months_between(from: &str, to: &str) -> Vec<String> {
    let ym = |d: &str| -> Option<(i32, u32)> {
        Some((d.get(..4)?.parse().ok()?, d.get(5..7)?.parse().ok()?))
    };
    let (Some((mut y, mut m)), Some(end)) = (ym(from), ym(to)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while (y, m) <= end && out.len() <= MAX_MONTHS {
        out.push(format!("{y}-{m:02}"));
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    if out.len() > MAX_MONTHS {
        out.clear();
    }
    out
}

/// `2026-12-04T00:20:14.95Z` as `4 december 2026, 00:20 UTC`.
fn generated_text(instant: &str) -> String {
    match (instant.get(..10), instant.get(11..16)) {
        (Some(date), Some(time)) => format!("{}, {time} UTC", long_date(date)),
        _ => instant.to_owned(),
    }
}

fn span(row: &Row, which: Span) -> Percentiles {
    Span::ALL
        .iter()
        .position(|s| *s == which)
        .and_then(|i| row.spans.get(i))
        .copied()
        .unwrap_or_default()
}

fn monthly_chart(f: &Figures) -> String {
    let rows = &f.monthly.report.rows;
    let mut months = months_between(&f.from, &f.to);
    if months.is_empty() {
        months = rows
            .iter()
            .filter_map(|r| r.key.first().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
    }
    let mut places: Vec<(String, String)> = rows
        .iter()
        .filter_map(|r| r.key.get(1))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|code| (name_of(&f.monthly.names, code), code.clone()))
        .collect();
    // By name, the unknown municipality last.
    places.sort_by_key(|(name, code)| (code == UNKNOWN, name.clone()));
    let series: Vec<Series> = places
        .iter()
        .map(|(name, code)| Series {
            name: name.clone(),
            values: months
                .iter()
                .map(|month| {
                    rows.iter()
                        .find(|r| r.key.first() == Some(month) && r.key.get(1) == Some(code))
                        .map_or(Some(0), |r| r.count(Metric::Received).shown())
                })
                .collect(),
        })
        .collect();
    let labels: Vec<String> = months.iter().map(|m| month_label(m)).collect();
    svg::grouped_bars(
        "chart-monthly",
        "Verwijzingen per maand per gemeente",
        &labels,
        &series,
    )
}

fn funnel_chart(f: &Figures) -> String {
    let total = &f.per_municipality.report.total;
    let received = total.count(Metric::Received).shown();
    // The referrals with a contact date, suppressed as a count is.
    let contact = span(total, Span::Contact).n;
    let bar = |label: &str, c: Cell, colour: &'static str| {
        #[allow(clippy::cast_precision_loss)]
        let share = match (c.shown(), received) {
            (Some(n), Some(r)) if r > 0 => format!(" ({}%)", (n as f64 * 100.0 / r as f64).round()),
            _ => String::new(),
        };
        #[allow(clippy::cast_precision_loss)]
        HRow::Bar {
            label: label.to_owned(),
            value: c.shown().map(|n| n as f64),
            text: format!("{}{share}", count_text(c)),
            colour,
        }
    };
    let main = "#0072B2";
    let other = "#7F7F7F";
    let rows = vec![
        HRow::Heading("Van verwijzing tot afronding (funnel)".to_owned()),
        bar("Ontvangen (received)", total.count(Metric::Received), main),
        bar("Gerouteerd (routed)", total.count(Metric::Routed), main),
        bar(
            "Geaccepteerd (accepted)",
            total.count(Metric::Accepted),
            main,
        ),
        bar("Contact gelegd (contact made)", contact, main),
        bar("Afgerond (completed)", total.count(Metric::Completed), main),
        HRow::Heading("Andere uitkomsten (other outcomes)".to_owned()),
        bar(
            "Geannuleerd (cancelled)",
            total.count(Metric::Cancelled),
            other,
        ),
        bar("Mislukt (failed)", total.count(Metric::Failed), other),
        bar(
            "Niet te routeren (unroutable)",
            total.count(Metric::Unroutable),
            other,
        ),
    ];
    svg::hbars(
        "chart-funnel",
        "Statustrechter: van ontvangen tot afgerond",
        &rows,
    )
}

fn days_text(p: &Percentiles, v: Option<f64>) -> String {
    match v {
        Some(d) => format!("{} dagen", decimal(d, 1)),
        None if p.n.value == 0 => "geen contact geregistreerd".to_owned(),
        None => DASH.to_owned(),
    }
}

fn contact_chart(f: &Figures) -> String {
    let named = &f.per_municipality;
    let mut rows = Vec::new();
    let mut places: Vec<(String, &Row)> = named
        .report
        .rows
        .iter()
        .map(|r| {
            (
                name_of(&named.names, r.key.first().map_or("", String::as_str)),
                r,
            )
        })
        .collect();
    places.sort_by_key(|(name, r)| {
        (
            r.key.first().map(String::as_str) == Some(UNKNOWN),
            name.clone(),
        )
    });
    for (name, row) in places {
        let p = span(row, Span::Contact);
        rows.push(HRow::Heading(name));
        rows.push(HRow::Bar {
            label: "Mediaan (median)".to_owned(),
            value: p.median,
            text: days_text(&p, p.median),
            colour: "#009E73",
        });
        rows.push(HRow::Bar {
            label: "90e percentiel (p90)".to_owned(),
            value: p.p90,
            text: days_text(&p, p.p90),
            colour: "#E69F00",
        });
    }
    if rows.is_empty() {
        rows.push(HRow::Heading(
            "Geen verwijzingen in deze periode".to_owned(),
        ));
    }
    svg::hbars(
        "chart-contact",
        "Dagen tot eerste contact per gemeente",
        &rows,
    )
}

fn health_chart(f: &Figures) -> String {
    let total = &f.per_municipality.report.total;
    let rows: Vec<(String, Option<f64>, String)> = Dimension::ALL
        .iter()
        .zip(&total.health)
        .map(|(d, h)| {
            let text = match h.mean_change {
                Some(v) => format!(
                    "{}{} (n = {})",
                    if v > 0.0 { "+" } else { "" },
                    decimal(v, 2),
                    h.n.value
                ),
                None if h.n.value == 0 => "geen metingen".to_owned(),
                None => DASH.to_owned(),
            };
            (d.text_nl().to_owned(), h.mean_change, text)
        })
        .collect();
    svg::diverging(
        "chart-health",
        "Positieve Gezondheid: gemiddelde verandering per dimensie",
        &rows,
    )
}

fn matches_table(f: &Figures) -> String {
    let named = &f.monthly;
    let mut out = String::from(
        r#"<table id="table-matches"><caption>Huisartsenpraktijk × welzijnsorganisatie per gemeente (aantal verwijzingen)</caption><thead><tr><th scope="col">Gemeente</th><th scope="col">Huisartsenpraktijk</th><th scope="col">Welzijnsorganisatie</th><th scope="col" class="n">Verwijzingen</th></tr></thead><tbody>"#,
    );
    let mut rows: Vec<[String; 4]> = named
        .report
        .matches
        .iter()
        .map(|m| {
            [
                name_of(&named.names, &m.municipality),
                name_of(&named.names, &m.practice),
                name_of(&named.names, &m.organization),
                count_text(m.referrals),
            ]
        })
        .collect();
    rows.sort();
    for [place, practice, organization, n] in &rows {
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="n">{}</td></tr>"#,
            esc(place),
            esc(practice),
            esc(organization),
            esc(n),
        );
    }
    if named.report.matches.is_empty() {
        out.push_str(
            r#"<tr><td colspan="4">Geen gerouteerde verwijzingen in deze periode.</td></tr>"#,
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn selector(f: &Figures) -> String {
    let mut options = format!(
        r#"<option value=""{}>Alle gemeenten</option>"#,
        if f.municipality.is_none() {
            " selected"
        } else {
            ""
        }
    );
    let mut choices = f.choices.clone();
    if let Some(code) = &f.municipality {
        if !choices.iter().any(|(c, _)| c == code) {
            let name = municipality::by_code(code).map_or_else(|| code.clone(), |m| m.name.clone());
            choices.push((code.clone(), name));
        }
    }
    for (code, name) in &choices {
        let selected = if f.municipality.as_ref() == Some(code) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            options,
            r#"<option value="{}"{selected}>{}</option>"#,
            esc(code),
            esc(name)
        );
    }
    format!(
        r#"<form method="get"><label>Van (from) <input type="date" name="from" value="{}" required></label><label>Tot en met (to) <input type="date" name="to" value="{}" required></label><label>Gemeente (municipality) <select name="municipality">{options}</select></label><button type="submit">Toon</button></form>"#,
        esc(&f.from),
        esc(&f.to)
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;color:#1a1a1a;margin:24px auto;max-width:1100px;padding:0 16px}\
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.15em;margin:0 0 8px}\
form{display:flex;flex-wrap:wrap;gap:12px 20px;align-items:end;background:#f3f5f7;padding:12px 16px;border-radius:6px;margin:16px 0}\
label{display:flex;flex-direction:column;font-size:.9em;gap:4px}\
section{margin:20px 0;padding:12px 16px;border:1px solid #ddd;border-radius:6px;break-inside:avoid;page-break-inside:avoid}\
svg{display:block;max-width:100%;height:auto}\
svg .grid{stroke:#e4e4e4}svg .axis-line{stroke:#555}svg .axis{fill:#555;font-size:11px}\
svg .value{fill:#1a1a1a;font-weight:600;font-size:12px}svg .suppressed{fill:#777;font-weight:400}\
svg .heading{font-weight:700}svg .legend,svg .label{fill:#1a1a1a}\
table{border-collapse:collapse;width:100%}caption{text-align:left;font-weight:700;margin-bottom:6px}\
th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left}.n{text-align:right;font-variant-numeric:tabular-nums}\
.note{color:#444;font-size:.9em}\
@media print{form{display:none}body{margin:0;max-width:none;padding:0}section{border:none;padding:0}svg{width:100%}tr{break-inside:avoid;page-break-inside:avoid}}";

fn render(f: &Figures) -> String {
    let place = f.municipality.as_ref().map_or_else(
        || "alle gemeenten".to_owned(),
        |code| municipality::by_code(code).map_or_else(|| code.clone(), |m| m.name.clone()),
    );
    let minimum = f.minimum;
    let suppression = if minimum > 1 {
        format!(
            "{DASH} = onderdrukt ter bescherming van de privacy: een aantal van 1 tot en met {} verwijzingen, \
             of een aantal waaruit zo'n klein aantal door aftrekken volgt; mediaan, 90e percentiel en \
             gemiddelden over minder dan {minimum} verwijzingen. (Suppressed: counts below the minimum cell of \
             {minimum} and counts that would reveal one by subtraction.)",
            minimum - 1
        )
    } else {
        "Minimale celgrootte 1: er is niets onderdrukt (minimum cell 1, nothing suppressed)."
            .to_owned()
    };
    let figure = |title: &str, body: String, note: &str| {
        format!(
            r#"<section><h2>{}</h2>{body}<p class="note">{}</p></section>"#,
            esc(title),
            esc(note)
        )
    };
    let mut out = String::with_capacity(32 * 1024);
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="nl"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Welzijn op Recept: verwijzingen {from} t/m {to}</title><style>{STYLE}</style></head><body><header><h1>Welzijn op Recept: verwijzingen</h1><p>{from} tot en met {to}, {place}. Gemaakt op {generated}.</p></header>"#,
        from = esc(&long_date(&f.from)),
        to = esc(&long_date(&f.to)),
        place = esc(&place),
        generated = esc(&generated_text(&f.generated)),
    );
    out.push_str(&selector(f));
    let _ = write!(
        out,
        r#"<p class="note" id="suppression">{}</p>"#,
        esc(&suppression)
    );
    out.push_str("<main>");
    out.push_str(&figure(
        "Verwijzingen per maand (referrals per month)",
        monthly_chart(f),
        "Per gemeente van de patiënt, naar verwijsdatum.",
    ));
    out.push_str(&figure(
        "Statustrechter (status funnel)",
        funnel_chart(f),
        "Percentages van het aantal ontvangen verwijzingen. Contact gelegd: verwijzingen met een datum van eerste contact.",
    ));
    out.push_str(&figure(
        "Tijd tot contact (time to contact)",
        contact_chart(f),
        "Dagen van ontvangst tot eerste contact: mediaan en 90e percentiel.",
    ));
    out.push_str(&figure(
        "Positieve Gezondheid (Positive Health)",
        health_chart(f),
        "Gemiddelde verandering (laatste min eerste meting, schaal 0-10) per dimensie; n = aantal verwijzingen met twee metingen.",
    ));
    out.push_str(&figure(
        "Matches (practice × welfare organisation)",
        matches_table(f),
        "Welke huisartsenpraktijken naar welke welzijnsorganisaties verwijzen, per gemeente.",
    ));
    out.push_str("</main></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_months() {
        assert_eq!(long_date("2026-03-01"), "1 maart 2026");
        assert_eq!(month_label("2026-10"), "okt 2026");
        assert_eq!(
            generated_text("2026-12-04T00:20:14.953726Z"),
            "4 december 2026, 00:20 UTC"
        );
        assert_eq!(
            months_between("2025-11-15", "2026-02-01"),
            ["2025-11", "2025-12", "2026-01", "2026-02"]
        );
        assert!(months_between("2020-01-01", "2026-01-01").is_empty());
    }
}
