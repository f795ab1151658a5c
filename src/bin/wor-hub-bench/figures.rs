//! The rows of a run's summary table, and the medians over `--repeat` runs.

use std::time::Duration;

use crate::load::{ms, Outcome};
use crate::say;

/// A row's figure, kept as numbers so that repeated runs can be reduced to medians.
#[derive(Debug, Clone)]
pub(crate) enum Figure {
    /// A throughput with its latency percentiles.
    Rate {
        rate: f64,
        unit: &'static str,
        ok: u64,
        secs: f64,
        p50: Duration,
        p99: Duration,
    },
    /// Milliseconds (start-up) with optional percentiles (signed latencies).
    Millis {
        value: f64,
        p50: Option<f64>,
        p99: Option<f64>,
    },
    /// Seconds (preload).
    Seconds(f64),
    /// A ratio.
    Ratio(f64),
    /// Megabytes (peak RSS).
    Megabytes(f64),
    /// Text (counts): not reduced, listed per run.
    Text(String),
}

/// One row of the summary table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) what: String,
    pub(crate) figure: Figure,
    pub(crate) note: String,
}

impl Row {
    pub(crate) fn of(
        what: impl Into<String>,
        o: &Outcome,
        unit: &'static str,
        note: impl Into<String>,
    ) -> Self {
        Self {
            what: what.into(),
            figure: Figure::Rate {
                rate: o.rate(),
                unit,
                ok: o.ok(),
                secs: o.elapsed.as_secs_f64(),
                p50: o.pct(50),
                p99: o.pct(99),
            },
            note: note.into(),
        }
    }

    pub(crate) fn new(what: impl Into<String>, figure: Figure, note: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            figure,
            note: note.into(),
        }
    }

    pub(crate) fn text(
        what: impl Into<String>,
        text: impl Into<String>,
        note: impl Into<String>,
    ) -> Self {
        Self::new(what, Figure::Text(text.into()), note)
    }

    /// Figure, p50 and p99 columns.
    fn columns(&self) -> (String, String, String) {
        match &self.figure {
            Figure::Rate {
                rate,
                unit,
                ok,
                secs,
                p50,
                p99,
            } => (
                format!("{rate:.0} {unit}/s ({ok} in {secs:.1} s)"),
                ms(*p50),
                ms(*p99),
            ),
            Figure::Millis { value, p50, p99 } => (
                format!("{value:.1} ms"),
                p50.map_or_else(String::new, |v| format!("{v:.1} ms")),
                p99.map_or_else(String::new, |v| format!("{v:.1} ms")),
            ),
            Figure::Seconds(s) => (format!("{s:.1} s"), String::new(), String::new()),
            Figure::Ratio(r) => (format!("{r:.2}"), String::new(), String::new()),
            Figure::Megabytes(m) => (format!("{m:.0} MB"), String::new(), String::new()),
            Figure::Text(t) => (t.clone(), String::new(), String::new()),
        }
    }

    /// The main number of the row, for medians (`None` for text).
    fn value(&self) -> Option<f64> {
        match &self.figure {
            Figure::Rate { rate, .. } => Some(*rate),
            Figure::Millis { value, .. } => Some(*value),
            Figure::Seconds(v) | Figure::Ratio(v) | Figure::Megabytes(v) => Some(*v),
            Figure::Text(_) => None,
        }
    }

    /// The p50 and p99 of the row in milliseconds, if it has them.
    fn percentiles(&self) -> Option<(f64, f64)> {
        match &self.figure {
            Figure::Rate { p50, p99, .. } => {
                Some((p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3))
            }
            Figure::Millis {
                p50: Some(a),
                p99: Some(b),
                ..
            } => Some((*a, *b)),
            _ => None,
        }
    }

    fn short(&self) -> String {
        match &self.figure {
            Figure::Rate { rate, p99, .. } => format!("{rate:.0}/s (p99 {})", ms(*p99)),
            Figure::Millis {
                value,
                p99: Some(p),
                ..
            } => format!("p50 {value:.1} ms, p99 {p:.1} ms"),
            _ => self.columns().0,
        }
    }
}

/// Prints a run's summary table.
pub(crate) fn print_table(title: &str, rows: &[Row]) {
    say("");
    say(title);
    say("");
    say("| measurement | figure | p50 | p99 | note |");
    say("|---|---|---|---|---|");
    for r in rows {
        let (figure, p50, p99) = r.columns();
        say(&format!(
            "| {} | {figure} | {p50} | {p99} | {} |",
            r.what, r.note
        ));
    }
}

/// The median of `v` (the mean of the middle two for an even count).
pub(crate) fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn format_like(row: &Row, value: f64) -> String {
    match &row.figure {
        Figure::Rate { unit, .. } => format!("{value:.0} {unit}/s"),
        Figure::Millis { .. } => format!("{value:.1} ms"),
        Figure::Seconds(_) => format!("{value:.1} s"),
        Figure::Ratio(_) => format!("{value:.2}"),
        Figure::Megabytes(_) => format!("{value:.0} MB"),
        Figure::Text(_) => String::new(),
    }
}

/// Prints, per row of the first run, the median over all runs of its figure (and of
/// its p50 and p99), with each run's figure.
pub(crate) fn print_medians(title: &str, runs: &[Vec<Row>]) {
    let Some(first) = runs.first() else { return };
    say("");
    say(title);
    say("");
    say("| measurement | median | median p50 | median p99 | per run |");
    say("|---|---|---|---|---|");
    for row in first {
        let same: Vec<&Row> = runs
            .iter()
            .filter_map(|rows| rows.iter().find(|r| r.what == row.what))
            .collect();
        let per_run = same
            .iter()
            .map(|r| r.short())
            .collect::<Vec<_>>()
            .join("; ");
        let mut values: Vec<f64> = same.iter().filter_map(|r| r.value()).collect();
        let figure = if values.is_empty() {
            String::new()
        } else {
            format_like(row, median(&mut values))
        };
        let (mut p50s, mut p99s): (Vec<f64>, Vec<f64>) =
            same.iter().filter_map(|r| r.percentiles()).unzip();
        let (p50, p99) = if p50s.is_empty() {
            (String::new(), String::new())
        } else {
            (
                format!("{:.1} ms", median(&mut p50s)),
                format!("{:.1} ms", median(&mut p99s)),
            )
        };
        say(&format!(
            "| {} | {figure} | {p50} | {p99} | {per_run} |",
            row.what
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }
}
