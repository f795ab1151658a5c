//! Inline SVG charts of the dashboard: pure string building. Every figure is printed as
//! text next to its bar, so the page reads without colour, prints, and a test can find
//! it; each chart's `<desc>` repeats the figures for screen readers (an `role="img"`
//! hides its children).

use std::fmt::Write as _;

/// How a suppressed figure is shown.
pub const DASH: &str = "–";

/// Escapes text for HTML and SVG content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Okabe-Ito: told apart with the common colour-vision deficiencies.
const PALETTE: [&str; 7] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#7F7F7F",
];

pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// A number with a decimal comma, as Dutch readers write it.
pub fn decimal(v: f64, places: usize) -> String {
    format!("{v:.places$}").replace('.', ",")
}

/// 1, 2 or 5 times a power of ten, at least `v` (and at least 1).
fn nice_ceiling(v: f64) -> f64 {
    let mut step = 1.0;
    loop {
        for m in [1.0, 2.0, 5.0] {
            if m * step >= v {
                return m * step;
            }
        }
        step *= 10.0;
    }
}

fn open(out: &mut String, id: &str, title: &str, desc: &str, w: u32, h: u32) {
    let _ = write!(
        out,
        r#"<svg id="{id}" role="img" aria-labelledby="{id}-title {id}-desc" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="system-ui, sans-serif" font-size="13"><title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
        esc(title),
        esc(desc)
    );
}

fn text(out: &mut String, x: f64, y: f64, anchor: &str, class: &str, s: &str) {
    let _ = write!(
        out,
        r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" class="{class}">{}</text>"#,
        esc(s)
    );
}

fn rect(out: &mut String, x: f64, y: f64, w: f64, h: f64, fill: &str) {
    let _ = write!(
        out,
        r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}"/>"#
    );
}

fn line(out: &mut String, x1: f64, y1: f64, x2: f64, y2: f64, class: &str) {
    let _ = write!(
        out,
        r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" class="{class}"/>"#
    );
}

/// A count per category, `None` when suppressed.
pub struct Series {
    pub name: String,
    pub values: Vec<Option<u64>>,
}

fn count_text(v: Option<u64>) -> String {
    v.map_or_else(|| DASH.to_owned(), |n| n.to_string())
}

/// Vertical bars: a group per category (month), a bar per series (municipality), its
/// count above it, and a legend.
pub fn grouped_bars(id: &str, title: &str, categories: &[String], series: &[Series]) -> String {
    let (left, top, plot_h, bottom) = (48.0, 24.0, 260.0, 36.0);
    // Bars 26 to 48 wide; the groups spread over at least 640.
    let gap = 22.0;
    let bars = series.len().max(1) as f64;
    let groups = categories.len().max(1) as f64;
    let bar_w = ((640.0 / groups - gap) / bars).clamp(26.0, 48.0);
    let plot_w = ((bar_w * bars + gap) * groups).max(640.0);
    let group_w = plot_w / groups;
    let legend_w = 220.0;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let per_row = ((plot_w / legend_w) as usize).max(1);
    let legend_rows = series.len().div_ceil(per_row);
    let width = left + plot_w + 16.0;
    let height = top + plot_h + bottom + 22.0 * legend_rows as f64 + 8.0;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .copied()
        .max()
        .unwrap_or(0);
    let top_value = nice_ceiling(max as f64);
    let step = if top_value <= 5.0 {
        1.0
    } else {
        top_value / 5.0
    };
    let desc: Vec<String> = categories
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let parts: Vec<String> = series
                .iter()
                .map(|s| {
                    format!(
                        "{} {}",
                        s.name,
                        count_text(s.values.get(i).copied().flatten())
                    )
                })
                .collect();
            format!("{c}: {}", parts.join(", "))
        })
        .collect();
    let mut out = String::new();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    open(
        &mut out,
        id,
        title,
        &desc.join("; "),
        width as u32,
        height as u32,
    );
    let y_of = |v: f64| top + plot_h - v / top_value * plot_h;
    let mut tick = 0.0;
    while tick <= top_value + f64::EPSILON {
        let y = y_of(tick);
        line(&mut out, left, y, left + plot_w, y, "grid");
        text(
            &mut out,
            left - 6.0,
            y + 4.0,
            "end",
            "axis",
            &format!("{tick}"),
        );
        tick += step;
    }
    for (i, category) in categories.iter().enumerate() {
        let x0 = left + group_w * i as f64 + (group_w - bar_w * bars) / 2.0;
        for (j, s) in series.iter().enumerate() {
            let x = x0 + bar_w * j as f64;
            let value = s.values.get(i).copied().flatten();
            let label_y = match value {
                Some(v) => {
                    let y = y_of(v as f64);
                    rect(
                        &mut out,
                        x + 2.0,
                        y,
                        bar_w - 4.0,
                        top + plot_h - y,
                        colour(j),
                    );
                    y - 4.0
                }
                None => top + plot_h - 4.0,
            };
            let class = if value.is_some() {
                "value"
            } else {
                "value suppressed"
            };
            text(
                &mut out,
                x + bar_w / 2.0,
                label_y,
                "middle",
                class,
                &count_text(value),
            );
        }
        let centre = left + group_w * (i as f64 + 0.5);
        text(
            &mut out,
            centre,
            top + plot_h + 20.0,
            "middle",
            "axis",
            category,
        );
    }
    line(
        &mut out,
        left,
        top + plot_h,
        left + plot_w,
        top + plot_h,
        "axis-line",
    );
    for (j, s) in series.iter().enumerate() {
        let x = left + (j % per_row) as f64 * legend_w;
        let y = top + plot_h + bottom + 22.0 * (j / per_row) as f64;
        rect(&mut out, x, y, 14.0, 14.0, colour(j));
        text(&mut out, x + 20.0, y + 12.0, "start", "legend", &s.name);
    }
    out.push_str("</svg>");
    out
}

/// A line of a horizontal bar chart.
pub enum HRow {
    /// A heading over the bars that follow.
    Heading(String),
    Bar {
        label: String,
        /// The bar's length; `None` draws no bar (suppressed or no value).
        value: Option<f64>,
        /// What is printed after the bar.
        text: String,
        colour: &'static str,
    },
}

/// Horizontal bars, one per line, a label on the left and the figure after the bar.
pub fn hbars(id: &str, title: &str, rows: &[HRow]) -> String {
    let (label_w, bar_area, row_h, top) = (250.0, 480.0, 26.0, 8.0);
    let width = label_w + bar_area + 190.0;
    let height = top + row_h * rows.len() as f64 + 8.0;
    let max = rows
        .iter()
        .filter_map(|r| match r {
            HRow::Bar { value, .. } => *value,
            HRow::Heading(_) => None,
        })
        .fold(0.0, f64::max);
    let scale = if max > 0.0 { bar_area / max } else { 0.0 };
    let mut desc = Vec::new();
    let mut heading = String::new();
    for r in rows {
        match r {
            HRow::Heading(h) => heading = format!("{h} "),
            HRow::Bar { label, text, .. } => desc.push(format!("{heading}{label}: {text}")),
        }
    }
    let mut out = String::new();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    open(
        &mut out,
        id,
        title,
        &desc.join("; "),
        width as u32,
        height as u32,
    );
    for (i, r) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        match r {
            HRow::Heading(h) => text(&mut out, 0.0, y + 18.0, "start", "heading", h),
            HRow::Bar {
                label,
                value,
                text: figure,
                colour,
            } => {
                text(&mut out, label_w - 10.0, y + 17.0, "end", "label", label);
                let w = value.map_or(0.0, |v| v * scale);
                if w > 0.0 {
                    rect(&mut out, label_w, y + 4.0, w, row_h - 8.0, colour);
                }
                let class = if value.is_some() {
                    "value"
                } else {
                    "value suppressed"
                };
                text(
                    &mut out,
                    label_w + w + 8.0,
                    y + 17.0,
                    "start",
                    class,
                    figure,
                );
            }
        }
    }
    line(&mut out, label_w, top, label_w, height - 8.0, "axis-line");
    out.push_str("</svg>");
    out
}

/// Bars around zero: a mean change per line, negative to the left.
pub fn diverging(id: &str, title: &str, rows: &[(String, Option<f64>, String)]) -> String {
    let (label_w, half, row_h, top) = (230.0, 220.0, 28.0, 26.0);
    let width = label_w + 2.0 * half + 200.0;
    let height = top + row_h * rows.len() as f64 + 10.0;
    let max = rows
        .iter()
        .filter_map(|r| r.1)
        .fold(1.0, |m: f64, v| m.max(v.abs()));
    let bound = max.ceil();
    let zero = label_w + half;
    let scale = half / bound;
    let desc: Vec<String> = rows.iter().map(|(l, _, t)| format!("{l}: {t}")).collect();
    let mut out = String::new();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    open(
        &mut out,
        id,
        title,
        &desc.join("; "),
        width as u32,
        height as u32,
    );
    for (x, label) in [
        (zero - half, format!("-{bound}")),
        (zero, "0".to_owned()),
        (zero + half, format!("+{bound}")),
    ] {
        line(&mut out, x, top - 4.0, x, height - 8.0, "grid");
        text(&mut out, x, top - 10.0, "middle", "axis", &label);
    }
    for (i, (label, value, figure)) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        text(&mut out, label_w - 10.0, y + 18.0, "end", "label", label);
        if let Some(v) = value {
            let w = v.abs() * scale;
            let (x, fill) = if *v < 0.0 {
                (zero - w, "#D55E00")
            } else {
                (zero, "#009E73")
            };
            rect(&mut out, x, y + 5.0, w, row_h - 10.0, fill);
        }
        let class = if value.is_some() {
            "value"
        } else {
            "value suppressed"
        };
        text(
            &mut out,
            zero + half + 12.0,
            y + 18.0,
            "start",
            class,
            figure,
        );
    }
    line(&mut out, zero, top - 4.0, zero, height - 8.0, "axis-line");
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn scales_and_numbers() {
        assert!((nice_ceiling(0.0) - 1.0).abs() < f64::EPSILON);
        assert!((nice_ceiling(7.0) - 10.0).abs() < f64::EPSILON);
        assert!((nice_ceiling(13.0) - 20.0).abs() < f64::EPSILON);
        assert_eq!(decimal(2.0, 1), "2,0");
        assert_eq!(decimal(-0.5, 2), "-0,50");
    }

    #[test]
    fn every_figure_is_text() {
        let svg = grouped_bars(
            "chart-x",
            "T <1>",
            &["okt 2026".into()],
            &[
                Series {
                    name: "A & B".into(),
                    values: vec![Some(7)],
                },
                Series {
                    name: "C".into(),
                    values: vec![None],
                },
            ],
        );
        assert!(svg.starts_with(r#"<svg id="chart-x" role="img""#), "{svg}");
        assert!(svg.contains("<title id=\"chart-x-title\">T &lt;1&gt;</title>"));
        assert!(svg.contains(">7</text>"));
        assert!(svg.contains(&format!(">{DASH}</text>")));
        assert!(svg.contains(">A &amp; B</text>"));
        assert!(svg.contains("okt 2026: A &amp; B 7, C –"));
    }
}
