//! Suppression of small counts in the statistics (README "Statistics"). A count from 1
//! to `minimum - 1` is suppressed (primary). A count whose value would follow from a
//! published total by subtraction is suppressed too (secondary): within every line of
//! the table along each grouping dimension (whose total another report publishes), a
//! line never has exactly one suppressed cell; the smallest other non-zero cell goes
//! with it, until no line has exactly one.

use std::collections::BTreeMap;

use super::report::Cell;

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
