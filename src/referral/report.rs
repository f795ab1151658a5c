//! Referral statistics (README "Statistics"): the projection's rows of a period,
//! grouped and counted, with small cells suppressed. Pure: the application reads the
//! rows and renders the result as JSON, CSV, a MeasureReport or the dashboard.
//!
//! Suppression: a count from 1 to `minimum - 1` is suppressed (primary). A count
//! whose value would follow from a published total by subtraction is suppressed too
//! (secondary): within every line of the table along each grouping dimension (whose
//! total another report publishes), and within each row's breakdown by reason, a
//! line never has exactly one suppressed cell; the smallest other non-zero cell goes
//! with it. Percentiles and Positive Health means of fewer than `minimum` referrals
//! are suppressed.

use std::collections::{BTreeMap, BTreeSet};

use super::positive_health::Dimension;
use super::stats::Facts;
use super::suppression::{primary, suppress};

/// The period a row falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Month,
    Quarter,
    HalfYear,
    Year,
}

impl Granularity {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "month" => Self::Month,
            "quarter" => Self::Quarter,
            "half-year" => Self::HalfYear,
            "year" => Self::Year,
            _ => return None,
        })
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Quarter => "quarter",
            Self::HalfYear => "half-year",
            Self::Year => "year",
        }
    }

    /// The period of a `YYYY-MM-DD` date: `2026-03`, `2026-Q1`, `2026-H1`, `2026`.
    pub fn period_of(self, date: &str) -> String {
        let year = date.get(..4).unwrap_or("????");
        let month: u32 = date.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
        match self {
            Self::Month => format!("{year}-{month:02}"),
            Self::Quarter => format!("{year}-Q{}", month.div_ceil(3)),
            Self::HalfYear => format!("{year}-H{}", if month <= 6 { 1 } else { 2 }),
            Self::Year => year.to_owned(),
        }
    }
}

/// What the rows are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupBy {
    Period,
    Municipality,
    Practice,
    AgeGroup,
    Organization,
    Category,
}

impl GroupBy {
    pub const ALL: [Self; 6] = [
        Self::Period,
        Self::Municipality,
        Self::Practice,
        Self::AgeGroup,
        Self::Organization,
        Self::Category,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Period => "period",
            Self::Municipality => "municipality",
            Self::Practice => "practice",
            Self::AgeGroup => "age-group",
            Self::Organization => "organization",
            Self::Category => "category",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.code() == s)
    }

    fn key(self, facts: &Facts, granularity: Granularity) -> String {
        let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| UNKNOWN.to_owned());
        match self {
            Self::Period => granularity.period_of(&facts.referral_date),
            Self::Municipality => or_unknown(&facts.municipality),
            Self::Practice => or_unknown(&facts.practice),
            Self::AgeGroup => or_unknown(&facts.age_group),
            Self::Organization => or_unknown(&facts.organization),
            Self::Category => facts.category.clone(),
        }
    }
}

/// The key value of a row whose referrals lack the dimension (no municipality found,
/// never routed).
pub const UNKNOWN: &str = "unknown";

/// The counted metrics, in the order of the CSV columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Received,
    Routed,
    Unroutable,
    Accepted,
    Rejected,
    Rerouted,
    Cancelled,
    Completed,
    Failed,
    Overdue,
    Feedback,
}

impl Metric {
    pub const ALL: [Self; 11] = [
        Self::Received,
        Self::Routed,
        Self::Unroutable,
        Self::Accepted,
        Self::Rejected,
        Self::Rerouted,
        Self::Cancelled,
        Self::Completed,
        Self::Failed,
        Self::Overdue,
        Self::Feedback,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Routed => "routed",
            Self::Unroutable => "unroutable",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Rerouted => "rerouted",
            Self::Cancelled => "cancelled",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Overdue => "overdue",
            Self::Feedback => "feedback",
        }
    }

    pub fn display(self) -> &'static str {
        match self {
            Self::Received => "Referrals received",
            Self::Routed => "Routed to a welfare organisation",
            Self::Unroutable => "Unroutable",
            Self::Accepted => "Accepted",
            Self::Rejected => "Rejected",
            Self::Rerouted => "Re-routed",
            Self::Cancelled => "Cancelled",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Overdue => "Overdue (no contact within the deadline)",
            Self::Feedback => "GP got feedback (Task.output)",
        }
    }
}

/// The durations reported, from the referral's arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Contact,
    Intake,
    Completion,
}

impl Span {
    pub const ALL: [Self; 3] = [Self::Contact, Self::Intake, Self::Completion];

    pub fn code(self) -> &'static str {
        match self {
            Self::Contact => "days-to-contact",
            Self::Intake => "days-to-intake",
            Self::Completion => "days-to-completion",
        }
    }

    fn at(self, f: &Facts) -> Option<i64> {
        match self {
            Self::Contact => f.contact_at,
            Self::Intake => f.intake_at,
            Self::Completion => f.completed_at,
        }
    }
}

/// A count, or suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cell {
    pub value: u64,
    pub suppressed: bool,
}

impl Cell {
    /// The published value: none when suppressed.
    pub fn shown(self) -> Option<u64> {
        (!self.suppressed).then_some(self.value)
    }
}

/// Median and 90th percentile (nearest rank) in days, one decimal.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Percentiles {
    pub n: u64,
    /// None when suppressed (fewer than the minimum) or no value.
    pub median: Option<f64>,
    pub p90: Option<f64>,
}

/// The mean Positive Health change of one dimension (last minus first response).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HealthChange {
    pub n: u64,
    pub mean_change: Option<f64>,
}

/// One row: the referrals sharing a key.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    /// One value per dimension of [`Query::by`].
    pub key: Vec<String>,
    pub counts: Vec<Cell>,
    pub unroutable_by_reason: BTreeMap<String, Cell>,
    pub rejected_by_reason: BTreeMap<String, Cell>,
    pub spans: Vec<Percentiles>,
    /// `feedback / received`, none when either is suppressed.
    pub feedback_share: Option<f64>,
    pub health: Vec<HealthChange>,
}

impl Row {
    pub fn count(&self, m: Metric) -> Cell {
        self.counts[m as usize]
    }
}

/// Which practices refer to which organisations in a municipality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchCell {
    pub municipality: String,
    pub practice: String,
    pub organization: String,
    pub referrals: Cell,
}

/// What to report.
#[derive(Debug, Clone)]
pub struct Query {
    /// First and last referral date, `YYYY-MM-DD`, inclusive.
    pub from: String,
    pub to: String,
    pub granularity: Granularity,
    pub by: Vec<GroupBy>,
    pub minimum: u64,
    /// Now and the contact deadline (microseconds), for `overdue`.
    pub now: i64,
    pub contact_deadline: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub rows: Vec<Row>,
    pub total: Row,
    pub matches: Vec<MatchCell>,
}

const OPEN: [&str; 6] = [
    "requested",
    "received",
    "accepted",
    "in-progress",
    "on-hold",
    "no-task",
];

fn is_overdue(f: &Facts, q: &Query) -> bool {
    let due = f.received_at.saturating_add(q.contact_deadline);
    match f.contact_at {
        Some(at) => at > due,
        None => OPEN.contains(&f.status.as_str()) && q.now > due,
    }
}

fn counts_of(f: &Facts, q: &Query) -> [bool; 11] {
    [
        true,
        f.routed,
        f.unroutable_reason.is_some(),
        f.accepted,
        f.rejection_reason.is_some(),
        f.rerouted,
        f.status == "cancelled",
        f.status == "completed",
        f.status == "failed",
        is_overdue(f, q),
        f.feedback,
    ]
}

const DAY: f64 = 86_400_000_000.0;

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

/// Nearest-rank percentile of sorted values.
fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).copied()
}

fn build_row(key: Vec<String>, facts: &[&Facts], q: &Query) -> Row {
    let mut counts = vec![Cell::default(); Metric::ALL.len()];
    let mut unroutable_by_reason: BTreeMap<String, Cell> = BTreeMap::new();
    let mut rejected_by_reason: BTreeMap<String, Cell> = BTreeMap::new();
    for f in facts {
        for (cell, hit) in counts.iter_mut().zip(counts_of(f, q)) {
            cell.value += u64::from(hit);
        }
        if let Some(r) = &f.unroutable_reason {
            unroutable_by_reason.entry(r.clone()).or_default().value += 1;
        }
        if let Some(r) = &f.rejection_reason {
            rejected_by_reason.entry(r.clone()).or_default().value += 1;
        }
    }
    let spans = Span::ALL
        .iter()
        .map(|span| {
            #[allow(clippy::cast_precision_loss)]
            let mut days: Vec<f64> = facts
                .iter()
                .filter_map(|f| span.at(f).map(|at| (at - f.received_at) as f64 / DAY))
                .collect();
            days.sort_by(f64::total_cmp);
            let n = days.len() as u64;
            let shown = n >= q.minimum.max(1);
            Percentiles {
                n,
                median: nearest_rank(&days, 50.0)
                    .filter(|_| shown)
                    .map(|v| round(v, 1)),
                p90: nearest_rank(&days, 90.0)
                    .filter(|_| shown)
                    .map(|v| round(v, 1)),
            }
        })
        .collect();
    let health = (0..Dimension::ALL.len())
        .map(|d| {
            let changes: Vec<i64> = facts
                .iter()
                .filter_map(|f| {
                    let first = f.health_first.as_ref()?.get(d).copied().flatten()?;
                    let last = f.health_last.as_ref()?.get(d).copied().flatten()?;
                    Some(last - first)
                })
                .collect();
            let n = changes.len() as u64;
            #[allow(clippy::cast_precision_loss)]
            let mean = (n > 0 && n >= q.minimum)
                .then(|| round(changes.iter().sum::<i64>() as f64 / n as f64, 2));
            HealthChange {
                n,
                mean_change: mean,
            }
        })
        .collect();
    Row {
        key,
        counts,
        unroutable_by_reason,
        rejected_by_reason,
        spans,
        feedback_share: None,
        health,
    }
}

/// Counts the rows of `facts` (already limited to the period and filters).
pub fn report(facts: &[Facts], q: &Query) -> Report {
    let mut groups: BTreeMap<Vec<String>, Vec<&Facts>> = BTreeMap::new();
    let mut matches: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for f in facts {
        let key = q.by.iter().map(|g| g.key(f, q.granularity)).collect();
        groups.entry(key).or_default().push(f);
        if let Some(org) = &f.organization {
            let practice = f.practice.clone().unwrap_or_else(|| UNKNOWN.into());
            let municipality = f.municipality.clone().unwrap_or_else(|| UNKNOWN.into());
            *matches
                .entry((municipality, practice, org.clone()))
                .or_default() += 1;
        }
    }
    let all: Vec<&Facts> = facts.iter().collect();
    let mut total = build_row(Vec::new(), &all, q);
    let mut rows: Vec<Row> = groups
        .into_iter()
        .map(|(key, fs)| build_row(key, &fs, q))
        .collect();
    suppress_rows(&mut rows, &mut total, q.minimum);
    let mut matches: Vec<MatchCell> = matches
        .into_iter()
        .map(|((municipality, practice, organization), n)| MatchCell {
            municipality,
            practice,
            organization,
            referrals: Cell {
                value: n,
                suppressed: false,
            },
        })
        .collect();
    {
        let keys: Vec<Vec<String>> = matches
            .iter()
            .map(|m| {
                vec![
                    m.municipality.clone(),
                    m.practice.clone(),
                    m.organization.clone(),
                ]
            })
            .collect();
        let mut cells: Vec<Cell> = matches.iter().map(|m| m.referrals).collect();
        suppress(&keys, &mut cells, q.minimum, &[1, 2]);
        for (m, c) in matches.iter_mut().zip(cells) {
            m.referrals = c;
        }
    }
    Report {
        rows,
        total,
        matches,
    }
}

fn suppress_rows(rows: &mut [Row], total: &mut Row, minimum: u64) {
    let dims: Vec<usize> = (0..rows.first().map_or(0, |r| r.key.len())).collect();
    let keys: Vec<Vec<String>> = rows.iter().map(|r| r.key.clone()).collect();
    for m in 0..Metric::ALL.len() {
        let mut cells: Vec<Cell> = rows.iter().map(|r| r.counts[m]).collect();
        suppress(&keys, &mut cells, minimum, &dims);
        for (row, c) in rows.iter_mut().zip(cells) {
            row.counts[m] = c;
        }
        total.counts[m] = primary(total.counts[m], minimum);
    }
    for row in rows.iter_mut().chain(std::iter::once(&mut *total)) {
        for (by_reason, metric) in [
            (&mut row.unroutable_by_reason, Metric::Unroutable),
            (&mut row.rejected_by_reason, Metric::Rejected),
        ] {
            let keys: Vec<Vec<String>> = by_reason.keys().map(|k| vec![k.clone()]).collect();
            let mut cells: Vec<Cell> = by_reason.values().copied().collect();
            suppress(&keys, &mut cells, minimum, &[0]);
            // Reasons under a suppressed total would reveal it.
            let hide_all = row.counts[metric as usize].suppressed;
            for (c, new) in by_reason.values_mut().zip(cells) {
                *c = new;
                c.suppressed |= hide_all && c.value > 0;
            }
        }
        row.feedback_share = match (
            row.count(Metric::Feedback).shown(),
            row.count(Metric::Received).shown(),
        ) {
            #[allow(clippy::cast_precision_loss)]
            (Some(f), Some(r)) if r > 0 => Some(round(f as f64 / r as f64, 3)),
            _ => None,
        };
    }
}

/// The distinct values of dimension `d` among the rows (for selectors).
pub fn values_of(rows: &[Row], d: usize) -> BTreeSet<String> {
    rows.iter().filter_map(|r| r.key.get(d).cloned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_percentiles() {
        assert_eq!(Granularity::Quarter.period_of("2026-05-31"), "2026-Q2");
        assert_eq!(Granularity::HalfYear.period_of("2026-07-01"), "2026-H2");
        assert_eq!(Granularity::Month.period_of("2026-07-01"), "2026-07");
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(nearest_rank(&v, 50.0), Some(5.0));
        assert_eq!(nearest_rank(&v, 90.0), Some(9.0));
    }
}
