//! Suppression of small counts in the statistics (README "Statistics"). A count from 1
//! to `minimum - 1` is suppressed (primary). A count whose value would follow from a
//! published total by subtraction is suppressed too (secondary): within every line of
//! the table along each grouping dimension (whose total another report publishes), a
//! line never has exactly one suppressed cell; the smallest other non-zero cell goes
//! with it, until no line has exactly one.

use std::collections::BTreeMap;

use super::positive_health::Dimension;
use super::report::{round, Cell, Metric, Row, Span};

/// A count under the minimum (zero is not disclosive) is suppressed.
pub fn primary(c: Cell, minimum: u64) -> Cell {
    Cell {
        value: c.value,
        suppressed: c.suppressed || (c.value > 0 && c.value < minimum),
    }
}

/// Primary and secondary suppression of a table: `keys[i]` is the key of `cells[i]`;
/// `dims` the key positions along which lines are summed into totals that are
/// published (by this report or another).
pub fn suppress(keys: &[Vec<String>], cells: &mut [Cell], minimum: u64, dims: &[usize]) {
    for c in cells.iter_mut() {
        *c = primary(*c, minimum);
    }
    loop {
        let mut changed = false;
        for &d in dims {
            let mut lines: BTreeMap<Vec<&str>, Vec<usize>> = BTreeMap::new();
            for (i, key) in keys.iter().enumerate() {
                let rest: Vec<&str> = key
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != d)
                    .map(|(_, k)| k.as_str())
                    .collect();
                lines.entry(rest).or_default().push(i);
            }
            for members in lines.values() {
                let hidden = members.iter().filter(|&&i| cells[i].suppressed).count();
                if hidden != 1 {
                    continue;
                }
                let next = members
                    .iter()
                    .filter(|&&i| !cells[i].suppressed && cells[i].value > 0)
                    .min_by_key(|&&i| (cells[i].value, i));
                if let Some(&i) = next {
                    cells[i].suppressed = true;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
}

/// Suppresses a report's rows and total: every metric, the counts behind percentiles
/// and means along the groupings, each row's reasons (all of them under a suppressed
/// total), and the feedback share of suppressed counts.
pub(crate) fn suppress_rows(rows: &mut [Row], total: &mut Row, minimum: u64) {
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
    // The number behind each percentile and mean is a count too.
    for i in 0..Span::ALL.len() {
        let mut cells: Vec<Cell> = rows.iter().map(|r| r.spans[i].n).collect();
        suppress(&keys, &mut cells, minimum, &dims);
        for (row, c) in rows.iter_mut().zip(cells) {
            row.spans[i].n = c;
        }
        total.spans[i].n = primary(total.spans[i].n, minimum);
    }
    for i in 0..Dimension::ALL.len() {
        let mut cells: Vec<Cell> = rows.iter().map(|r| r.health[i].n).collect();
        suppress(&keys, &mut cells, minimum, &dims);
        for (row, c) in rows.iter_mut().zip(cells) {
            row.health[i].n = c;
        }
        total.health[i].n = primary(total.health[i].n, minimum);
    }
    for row in rows.iter_mut().chain(std::iter::once(&mut *total)) {
        for p in &mut row.spans {
            if p.n.suppressed {
                (p.median, p.p90) = (None, None);
            }
        }
        for h in &mut row.health {
            if h.n.suppressed {
                h.mean_change = None;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(values: &[u64]) -> Vec<Cell> {
        values
            .iter()
            .map(|&value| Cell {
                value,
                suppressed: false,
            })
            .collect()
    }

    fn shown(cells: &[Cell]) -> Vec<Option<u64>> {
        cells.iter().map(|c| c.shown()).collect()
    }

    #[test]
    fn one_small_cell_takes_the_smallest_other_with_it() {
        let keys: Vec<Vec<String>> = ["a", "b", "c", "d"]
            .iter()
            .map(|k| vec![(*k).to_owned()])
            .collect();
        let mut c = cells(&[3, 12, 8, 0]);
        suppress(&keys, &mut c, 5, &[0]);
        assert_eq!(shown(&c), vec![None, Some(12), None, Some(0)]);
        let mut c = cells(&[3, 2, 8]);
        suppress(&keys[..3], &mut c, 5, &[0]);
        assert_eq!(shown(&c), vec![None, None, Some(8)]);
    }

    #[test]
    fn two_dimensions_are_protected_along_both() {
        // municipality x practice: (A,p)=2 is primary; along practices of A, (A,q)=9 goes;
        // along municipalities of p, (B,p)=6 goes; then (B,q)=7 along B's line.
        let keys: Vec<Vec<String>> = [("A", "p"), ("A", "q"), ("B", "p"), ("B", "q")]
            .iter()
            .map(|(m, p)| vec![(*m).to_owned(), (*p).to_owned()])
            .collect();
        let mut c = cells(&[2, 9, 6, 7]);
        suppress(&keys, &mut c, 5, &[0, 1]);
        assert_eq!(shown(&c), vec![None, None, None, None]);
    }
}
