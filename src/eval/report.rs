//! A self-contained HTML page for an evaluation: the summary table, then per file an SVG plot of
//! the series with its labelled windows, the detections at the chosen threshold and each alert's
//! open → close span, and the anomaly score against that threshold, so a person sees at a glance
//! where a detector fires early, late, falsely or stays open too long. Hand-written SVG: no fonts,
//! no scripts, nothing fetched.

use super::nab::ScoredFile;
use std::fmt::Write as _;

/// Plot width in points; series longer than this are reduced to a min/max per column.
const WIDTH: usize = 1000;
const SERIES_H: f64 = 160.0;
const SCORE_H: f64 = 60.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Min/max envelope of `v` in at most `WIDTH` columns: (column, min, max).
fn envelope(v: &[f64]) -> Vec<(usize, f64, f64)> {
    let n = v.len().max(1);
    let mut out: Vec<(usize, f64, f64)> = Vec::new();
    for (i, &x) in v.iter().enumerate() {
        if !x.is_finite() {
            continue;
        }
        let col = i * WIDTH / n;
        match out.last_mut() {
            Some((c, lo, hi)) if *c == col => {
                *lo = lo.min(x);
                *hi = hi.max(x);
            }
            _ => out.push((col, x, x)),
        }
    }
    out
}

/// What one file's plot shows.
#[derive(Debug, Clone)]
pub struct Plot {
    /// Rows, scores (in [0, 1]) and labelled windows.
    pub file: ScoredFile,
    /// The series drawn (the record's first reading).
    pub values: Vec<f32>,
    /// Rows marked as detections.
    pub detections: Vec<usize>,
    /// Alert episodes as row ranges, open to close inclusive (to the last row if still open).
    pub episodes: Vec<(usize, usize)>,
}

/// The alert episodes of a file from whether each row's sensor had an alert open after it.
pub fn episodes(alerting: impl IntoIterator<Item = bool>) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut open: Option<usize> = None;
    let mut last = 0;
    for (i, a) in alerting.into_iter().enumerate() {
        match (a, open) {
            (true, None) => open = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                open = None;
            }
            _ => {}
        }
        last = i;
    }
    if let Some(s) = open {
        out.push((s, last));
    }
    out
}

/// One file's plot.
fn plot(p: &Plot, threshold: f64) -> String {
    let (f, values, detections) = (&p.file, &p.values, &p.detections);
    let n = f.ts.len().max(1);
    let x = |i: usize| (i * WIDTH / n) as f64;
    let vals: Vec<f64> = values.iter().map(|&v| v as f64).collect();
    let (lo, hi) = vals
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let y = |v: f64| 5.0 + (SERIES_H - 10.0) * (1.0 - (v - lo) / span);
    let mut svg = String::new();
    let total_h = SERIES_H + SCORE_H + 10.0;
    let _ = write!(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {total_h}\" width=\"100%\">");
    // Labelled windows.
    for &(a, b) in &f.windows {
        let (ia, ib) = (
            f.ts.partition_point(|&t| t < a),
            f.ts.partition_point(|&t| t <= b),
        );
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"0\" width=\"{:.1}\" height=\"{total_h}\" fill=\"#f6d365\" fill-opacity=\"0.35\"><title>labelled window</title></rect>",
            x(ia),
            (x(ib) - x(ia)).max(1.0)
        );
    }
    // The series as a min/max envelope.
    let mut path = String::new();
    for (c, mn, mx) in envelope(&vals) {
        let _ = write!(path, "M{c},{:.1}L{c},{:.1}", y(mx), y(mn) + 0.5);
    }
    let _ = write!(
        svg,
        "<path d=\"{path}\" stroke=\"#1f4e79\" stroke-width=\"1\" fill=\"none\"/>"
    );
    // Alert episodes, open → close, as a band under the series.
    for &(a, b) in &p.episodes {
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"5\" fill=\"#8e44ad\" fill-opacity=\"0.8\"><title>alert open, rows {a}–{b}</title></rect>",
            x(a),
            SERIES_H - 2.0,
            (x(b) - x(a)).max(1.5)
        );
    }
    // Detections.
    for &i in detections.iter() {
        let s = f.scores.get(i).copied().unwrap_or(0.0);
        let v = vals.get(i).copied().unwrap_or(lo);
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"#c0392b\"><title>detection, score {s:.3}</title></circle>",
            x(i),
            y(if v.is_finite() { v } else { lo })
        );
    }
    // Anomaly score panel with the threshold.
    let top = SERIES_H + 10.0;
    let ys = |s: f64| top + SCORE_H * (1.0 - s.clamp(0.0, 1.0));
    let mut spath = String::new();
    for (c, _, mx) in envelope(&f.scores) {
        let _ = write!(spath, "M{c},{:.1}L{c},{:.1}", top + SCORE_H, ys(mx));
    }
    let _ = write!(svg, "<rect x=\"0\" y=\"{top}\" width=\"{WIDTH}\" height=\"{SCORE_H}\" fill=\"none\" stroke=\"#ccc\"/>");
    let _ = write!(
        svg,
        "<path d=\"{spath}\" stroke=\"#7f8c8d\" stroke-width=\"1\"/>"
    );
    if threshold <= 1.0 {
        let _ = write!(
            svg,
            "<line x1=\"0\" x2=\"{WIDTH}\" y1=\"{t:.1}\" y2=\"{t:.1}\" stroke=\"#c0392b\" stroke-dasharray=\"4 3\"><title>threshold {threshold:.4}</title></line>",
            t = ys(threshold)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The rows of `f` whose score reaches `threshold` (NAB's detections).
pub fn detections_at(f: &ScoredFile, threshold: f64) -> Vec<usize> {
    f.scores
        .iter()
        .enumerate()
        .filter(|(_, &s)| s >= threshold && s > 0.0)
        .map(|(i, _)| i)
        .collect()
}

/// The whole page. `summary` is preformatted text (the command's table); `threshold` is the one
/// the standard profile chose.
pub fn html(title: &str, summary: &str, plots: &[Plot], threshold: f64) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}pre{{background:#f4f4f4;padding:1em}}h2{{font-size:1em;margin-top:2em}}.legend span{{margin-right:1.5em}}</style></head><body><h1>{t}</h1><pre>{s}</pre><p class=\"legend\"><span style=\"color:#1f4e79\">■ series</span><span style=\"color:#e0b030\">■ labelled window</span><span style=\"color:#c0392b\">● detection (threshold {threshold:.4})</span><span style=\"color:#8e44ad\">▬ alert open → close</span><span style=\"color:#7f8c8d\">■ anomaly score</span></p>",
        t = escape(title),
        s = escape(summary)
    );
    for p in plots {
        let _ = write!(
            page,
            "<h2>{} — {} rows, {} windows, {} detections, {} alert episodes</h2>{}",
            escape(&p.file.name),
            p.file.ts.len(),
            p.file.windows.len(),
            p.detections.len(),
            p.episodes.len(),
            plot(p, threshold)
        );
    }
    page.push_str("</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_has_a_plot_per_file_and_escapes_text() {
        let f = ScoredFile {
            name: "cat/<a>.csv".into(),
            ts: (0..5000).map(|i| i * 1000).collect(),
            scores: (0..5000)
                .map(|i| if i == 3000 { 0.9 } else { 0.0 })
                .collect(),
            windows: vec![(2_900_000, 3_100_000)],
        };
        let alerting = (0..5000).map(|i| (3000..3040).contains(&i) || i >= 4990);
        let plot = Plot {
            detections: detections_at(&f, 0.5),
            values: (0..5000).map(|i| (i % 7) as f32).collect(),
            episodes: episodes(alerting),
            file: f,
        };
        assert_eq!(plot.episodes, [(3000, 3040), (4990, 4999)]);
        let page = html("NAB <test>", "a & b", std::slice::from_ref(&plot), 0.5);
        assert_eq!(page.matches("<svg").count(), 1);
        assert_eq!(page.matches("<circle").count(), 1);
        assert_eq!(page.matches("alert open, rows").count(), 2);
        assert!(page.contains("labelled window"));
        assert!(
            page.contains("cat/&lt;a&gt;.csv")
                && page.contains("NAB &lt;test&gt;")
                && page.contains("a &amp; b")
        );
        // 5000 points are drawn in at most WIDTH columns.
        assert!(page.matches('M').count() <= 2 * WIDTH + 10);
    }
}
