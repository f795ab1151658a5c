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

use std::collections::BTreeMap;

use super::stats::Facts;
use super::suppression::{suppress, suppress_rows};

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
    /// The referrals that reached the milestone (suppressed like a count).
    pub n: Cell,
    /// None when suppressed (fewer than the minimum) or no value.
    pub median: Option<f64>,
    pub p90: Option<f64>,
}

/// The mean Positive Health change of one dimension (last minus first response).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HealthChange {
    /// The referrals with both responses answering the dimension.
    pub n: Cell,
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

pub(crate) fn round(v: f64, places: i32) -> f64 {
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

/// What a row has counted so far.
#[derive(Default)]
struct Acc {
    counts: [u64; 11],
    unroutable_by_reason: BTreeMap<String, u64>,
    rejected_by_reason: BTreeMap<String, u64>,
    /// Days per [`Span`].
    days: [Vec<f64>; 3],
    /// Per dimension: the sum of the changes and their number.
    health: [(i64, u64); 6],
}

impl Acc {
    fn add(&mut self, f: &Facts, hits: &[bool; 11]) {
        for (n, hit) in self.counts.iter_mut().zip(hits) {
            *n += u64::from(*hit);
        }
        if let Some(r) = &f.unroutable_reason {
            *self.unroutable_by_reason.entry(r.clone()).or_default() += 1;
        }
        if let Some(r) = &f.rejection_reason {
            *self.rejected_by_reason.entry(r.clone()).or_default() += 1;
        }
        for (days, span) in self.days.iter_mut().zip(Span::ALL) {
            if let Some(at) = span.at(f) {
                #[allow(clippy::cast_precision_loss)]
                days.push((at - f.received_at) as f64 / DAY);
            }
        }
        if let (Some(first), Some(last)) = (&f.health_first, &f.health_last) {
            for (d, acc) in self.health.iter_mut().enumerate() {
                if let (Some(Some(a)), Some(Some(b))) = (first.get(d), last.get(d)) {
                    acc.0 += b - a;
                    acc.1 += 1;
                }
            }
        }
    }

    /// The row, before suppression (percentiles and means of fewer than the minimum
    /// are left out here already).
    fn finish(self, key: Vec<String>, q: &Query) -> Row {
        let cell = |value: u64| Cell {
            value,
            suppressed: false,
        };
        let to_cells =
            |m: BTreeMap<String, u64>| m.into_iter().map(|(k, v)| (k, cell(v))).collect();
        let spans = self
            .days
            .into_iter()
            .map(|mut days| {
                days.sort_by(f64::total_cmp);
                let n = days.len() as u64;
                let shown = n >= q.minimum.max(1);
                let at = |p: f64| {
                    nearest_rank(&days, p)
                        .filter(|_| shown)
                        .map(|v| round(v, 1))
                };
                Percentiles {
                    n: cell(n),
                    median: at(50.0),
                    p90: at(90.0),
                }
            })
            .collect();
        let health = self
            .health
            .iter()
            .map(|&(sum, n)| HealthChange {
                n: cell(n),
                #[allow(clippy::cast_precision_loss)]
                mean_change: (n > 0 && n >= q.minimum).then(|| round(sum as f64 / n as f64, 2)),
            })
            .collect();
        Row {
            key,
            counts: self.counts.iter().map(|&n| cell(n)).collect(),
            unroutable_by_reason: to_cells(self.unroutable_by_reason),
            rejected_by_reason: to_cells(self.rejected_by_reason),
            spans,
            feedback_share: None,
            health,
        }
    }
}

/// Counts referrals one at a time (a report over a million referrals never holds
/// them all): [`Builder::add`] each, then [`Builder::finish`].
pub struct Builder<'q> {
    q: &'q Query,
    groups: BTreeMap<Vec<String>, Acc>,
    total: Acc,
    matches: BTreeMap<(String, String, String), u64>,
    key: Vec<String>,
}

impl<'q> Builder<'q> {
    pub fn new(q: &'q Query) -> Self {
        Self {
            q,
            groups: BTreeMap::new(),
            total: Acc::default(),
            matches: BTreeMap::new(),
            key: Vec::new(),
        }
    }

    /// Counts one referral (already within the period and filters).
    pub fn add(&mut self, f: &Facts) {
        let hits = counts_of(f, self.q);
        self.key.clear();
        self.key
            .extend(self.q.by.iter().map(|g| g.key(f, self.q.granularity)));
        match self.groups.get_mut(self.key.as_slice()) {
            Some(acc) => acc.add(f, &hits),
            None => {
                let mut acc = Acc::default();
                acc.add(f, &hits);
                self.groups.insert(self.key.clone(), acc);
            }
        }
        self.total.add(f, &hits);
        if let Some(org) = &f.organization {
            let key = (
                f.municipality.clone().unwrap_or_else(|| UNKNOWN.into()),
                f.practice.clone().unwrap_or_else(|| UNKNOWN.into()),
                org.clone(),
            );
            *self.matches.entry(key).or_default() += 1;
        }
    }

    /// The rows, the total and the matches, suppressed.
    pub fn finish(self) -> Report {
        let q = self.q;
        let mut total = self.total.finish(Vec::new(), q);
        let mut rows: Vec<Row> = self
            .groups
            .into_iter()
            .map(|(key, acc)| acc.finish(key, q))
            .collect();
        suppress_rows(&mut rows, &mut total, q.minimum);
        let keys: Vec<Vec<String>> = self
            .matches
            .keys()
            .map(|(m, p, o)| vec![m.clone(), p.clone(), o.clone()])
            .collect();
        let mut cells: Vec<Cell> = self
            .matches
            .values()
            .map(|&value| Cell {
                value,
                suppressed: false,
            })
            .collect();
        suppress(&keys, &mut cells, q.minimum, &[1, 2]);
        let matches = self
            .matches
            .into_keys()
            .zip(cells)
            .map(
                |((municipality, practice, organization), referrals)| MatchCell {
                    municipality,
                    practice,
                    organization,
                    referrals,
                },
            )
            .collect();
        Report {
            rows,
            total,
            matches,
        }
    }
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
