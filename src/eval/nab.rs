//! NAB v1.1 scoring (Numenta Anomaly Benchmark), as `../shared/datasets/nab/SCORING.md` describes:
//! probationary period, scaled-sigmoid window weights, the three cost profiles, the corpus-wide
//! threshold sweep and normalisation with the null and perfect detectors.

use crate::time::{parse_timestamp, EpochUnit};
use std::collections::BTreeMap;
use std::path::Path;

/// A cost profile (`config/profiles.json`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    pub tp: f64,
    pub fp: f64,
    pub fn_: f64,
}

/// NAB's three profiles.
pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "standard",
        tp: 1.0,
        fp: 0.11,
        fn_: 1.0,
    },
    Profile {
        name: "reward_low_FP_rate",
        tp: 1.0,
        fp: 0.22,
        fn_: 1.0,
    },
    Profile {
        name: "reward_low_FN_rate",
        tp: 1.0,
        fp: 0.11,
        fn_: 2.0,
    },
];

/// One data file as a detector scored it.
#[derive(Debug, Clone)]
pub struct ScoredFile {
    /// `category/file.csv`, as in `combined_windows.json`.
    pub name: String,
    /// Row timestamps (epoch ms), in file order.
    pub ts: Vec<i64>,
    /// The detector's anomaly score of each row, in [0, 1].
    pub scores: Vec<f64>,
    /// Labelled windows, inclusive (epoch ms); each bound equals a row timestamp.
    pub windows: Vec<(i64, i64)>,
}

/// NAB's `scaledSigmoid`.
pub fn scaled_sigmoid(x: f64) -> f64 {
    if x > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }
}

/// `min(floor(0.15 N), 750)`.
pub fn probation(rows: usize) -> usize {
    ((0.15 * rows as f64).floor() as usize).min(750)
}

/// A scored row after probation: its score, its weight if detected, and its window if any.
#[derive(Debug, Clone, Copy)]
struct Row {
    score: f64,
    weight: f64,
    window: Option<usize>,
}

/// Why a file cannot be scored.
#[derive(Debug, thiserror::Error)]
pub enum NabError {
    #[error("{file}: window bound {ts} is not a row timestamp")]
    Window { file: String, ts: String },
    #[error("{0}")]
    Input(String),
}

/// Per-row weights of one file under one profile (`Sweeper.calcSweepScore`); windows numbered
/// from `first_window`. Probationary rows are dropped.
fn weigh(file: &ScoredFile, p: &Profile, first_window: usize) -> Result<Vec<Row>, NabError> {
    let index = |t: i64| {
        file.ts.binary_search(&t).map_err(|_| NabError::Window {
            file: file.name.clone(),
            ts: crate::time::format_iso(t),
        })
    };
    let mut bounds = Vec::with_capacity(file.windows.len());
    for &(a, b) in &file.windows {
        bounds.push((index(a)?, index(b)?));
    }
    let max_tp = scaled_sigmoid(-1.0);
    let n = file.ts.len();
    let skip = probation(n);
    let mut rows = Vec::with_capacity(n - skip.min(n));
    let mut next = 0;
    let mut inside: Option<(usize, usize, usize)> = None; // (window, right, width)
    let mut prev: Option<(usize, usize)> = None; // (right, width) of the last closed window
    for i in 0..n {
        if inside.is_none() && next < bounds.len() && bounds[next].0 == i {
            let (left, right) = bounds[next];
            inside = Some((next, right, right - left + 1));
            next += 1;
        }
        let (weight, window) = match inside {
            Some((w, right, width)) => {
                let pos = -((right - i + 1) as f64) / width as f64;
                (scaled_sigmoid(pos) * p.tp / max_tp, Some(first_window + w))
            }
            None => match prev {
                None => (-p.fp, None),
                Some((right, width)) => {
                    let pos = (right as f64 - i as f64).abs() / (width as f64 - 1.0);
                    (scaled_sigmoid(pos) * p.fp, None)
                }
            },
        };
        if let Some((_, right, width)) = inside {
            if i == right {
                inside = None;
                prev = Some((right, width));
            }
        }
        if i >= skip {
            rows.push(Row {
                score: file.scores[i],
                weight,
                window,
            });
        }
    }
    Ok(rows)
}

/// The result of one profile over a corpus.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProfileScore {
    pub profile: Profile,
    /// The threshold the sweep chose (1.1: no detections).
    pub threshold: f64,
    pub raw: f64,
    pub null: f64,
    pub perfect: f64,
    /// `100 (raw − null) / (perfect − null)`.
    pub normalized: f64,
}

/// Sweeps every distinct score as a threshold over the whole corpus (`optimizer`), keeping the
/// best raw score (ties: the highest threshold), and normalises it.
pub fn score_corpus(files: &[ScoredFile], p: &Profile) -> Result<ProfileScore, NabError> {
    let mut rows = Vec::new();
    let mut windows = 0;
    for f in files {
        rows.extend(weigh(f, p, windows)?);
        windows += f.windows.len();
    }
    rows.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut best_in_window: Vec<Option<f64>> = vec![None; windows];
    let mut raw = -p.fn_ * windows as f64;
    let (mut best_raw, mut best_threshold) = (raw, 1.1);
    let mut i = 0;
    while i < rows.len() {
        let threshold = rows[i].score;
        // Total order: a NaN score (a detector's bug) is one threshold like any other, and the
        // sweep always moves on.
        while i < rows.len() && rows[i].score.total_cmp(&threshold).is_eq() {
            let r = rows[i];
            match r.window {
                Some(w) => match best_in_window[w] {
                    None => {
                        raw += p.fn_ + r.weight;
                        best_in_window[w] = Some(r.weight);
                    }
                    Some(b) if r.weight > b => {
                        raw += r.weight - b;
                        best_in_window[w] = Some(r.weight);
                    }
                    Some(_) => {}
                },
                None => raw += r.weight,
            }
            i += 1;
        }
        if raw > best_raw {
            best_raw = raw;
            best_threshold = threshold;
        }
    }
    let perfect = p.tp * windows as f64;
    let null = -p.fn_ * windows as f64;
    Ok(ProfileScore {
        profile: *p,
        threshold: best_threshold,
        raw: best_raw,
        null,
        perfect,
        normalized: 100.0 * (best_raw - null) / (perfect - null),
    })
}

/// Scores the corpus at a fixed `threshold` (detections: `score >= threshold`), as NAB's scorer
/// does with the thresholds committed in `config/thresholds.json`.
pub fn score_at_threshold(
    files: &[ScoredFile],
    p: &Profile,
    threshold: f64,
) -> Result<ProfileScore, NabError> {
    let mut raw = 0.0;
    let mut windows = 0;
    for f in files {
        let rows = weigh(f, p, 0)?;
        let mut best: Vec<Option<f64>> = vec![None; f.windows.len()];
        for r in rows.iter().filter(|r| r.score >= threshold) {
            match r.window {
                Some(w) => best[w] = Some(best[w].map_or(r.weight, |b: f64| b.max(r.weight))),
                None => raw += r.weight,
            }
        }
        raw += best.iter().map(|b| b.unwrap_or(-p.fn_)).sum::<f64>();
        windows += f.windows.len();
    }
    let (perfect, null) = (p.tp * windows as f64, -p.fn_ * windows as f64);
    Ok(ProfileScore {
        profile: *p,
        threshold,
        raw,
        null,
        perfect,
        normalized: 100.0 * (raw - null) / (perfect - null),
    })
}

/// Reads `labels/combined_windows.json` into epoch-ms windows per `category/file.csv`.
pub fn read_windows(path: &Path) -> Result<BTreeMap<String, Vec<(i64, i64)>>, NabError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| NabError::Input(format!("{}: {e}", path.display())))?;
    let raw: BTreeMap<String, Vec<(String, String)>> = serde_json::from_str(&text)
        .map_err(|e| NabError::Input(format!("{}: {e}", path.display())))?;
    let ts = |s: &str| {
        parse_timestamp(s, EpochUnit::Auto)
            .ok_or_else(|| NabError::Input(format!("bad window timestamp {s:?}")))
    };
    raw.into_iter()
        .map(|(k, ws)| {
            Ok((
                k,
                ws.iter()
                    .map(|(a, b)| Ok((ts(a)?, ts(b)?)))
                    .collect::<Result<Vec<_>, NabError>>()?,
            ))
        })
        .collect()
}

/// Reads a NAB results file (`timestamp,value,anomaly_score,...`): timestamps and anomaly scores.
pub fn read_results(path: &Path) -> Result<(Vec<i64>, Vec<f64>), NabError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| NabError::Input(format!("{}: {e}", path.display())))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| NabError::Input(format!("{}: no {name} column", path.display())))
    };
    let (tc, sc) = (col("timestamp")?, col("anomaly_score")?);
    let (mut ts, mut scores) = (Vec::new(), Vec::new());
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let bad = || NabError::Input(format!("{}: line {}: bad row", path.display(), i + 2));
        ts.push(
            f.get(tc)
                .and_then(|t| parse_timestamp(t, EpochUnit::Auto))
                .ok_or_else(bad)?,
        );
        scores.push(
            f.get(sc)
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(bad)?,
        );
    }
    Ok((ts, scores))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STD: Profile = PROFILES[0];

    /// A file of `n` rows at 1 s with one window and the given detections (score 1 there).
    fn file(n: usize, window: Option<(usize, usize)>, detect: &[usize]) -> ScoredFile {
        let mut scores = vec![0.0; n];
        for &d in detect {
            scores[d] = 1.0;
        }
        ScoredFile {
            name: "t/f.csv".into(),
            ts: (0..n as i64).map(|i| i * 1000).collect(),
            scores,
            windows: window
                .map(|(a, b)| vec![(a as i64 * 1000, b as i64 * 1000)])
                .unwrap_or_default(),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-4
    }

    #[test]
    fn a_nan_score_does_not_stall_the_sweep() {
        let mut f = file(4032, Some((2000, 2402)), &[2100]);
        f.scores[3000] = f64::NAN;
        f.scores[3001] = f64::NAN;
        let s = score_corpus(&[f], &STD).expect("scores");
        assert!(s.normalized > 0.0, "{s:?}");
    }

    #[test]
    fn sigmoid_and_probation_are_nab_s() {
        assert!(close(scaled_sigmoid(-1.0), 0.98661));
        assert_eq!(scaled_sigmoid(3.5), -1.0);
        assert_eq!(probation(4032), 604);
        assert_eq!(probation(22_695), 750);
    }

    #[test]
    fn worked_per_row_values_from_scoring_md() {
        // A window of width 403 in a 4032-row file.
        let f = file(4032, Some((2000, 2402)), &[]);
        let rows = weigh(&f, &STD, 0).expect("weights");
        let at = |i: usize| rows[i - probation(4032)].weight;
        assert!(close(at(2000), 1.0));
        assert!(close(at(2402), 0.0063), "{}", at(2402));
        assert!(close(at(2403), -0.00068), "{}", at(2403));
        assert!(close(at(1000), -0.11));
        let middle = 2402 - (0.5f64 * 403.0) as usize + 1;
        assert!((at(middle) - 0.8598).abs() < 0.01, "{}", at(middle));
    }

    #[test]
    fn the_earliest_detection_counts_once_and_false_positives_add_up() {
        let f = file(4032, Some((2000, 2402)), &[2100, 2000, 1000, 1001]);
        let s = score_corpus(&[f], &STD).expect("score");
        // Window: +1.0 (its first row); two FPs before any window: -0.11 each.
        assert!(close(s.raw, 1.0 - 0.22), "{}", s.raw);
        assert_eq!(s.threshold, 1.0);
        assert!(close(s.normalized, 100.0 * (0.78 + 1.0) / 2.0));
    }

    #[test]
    fn no_detection_is_the_null_score_and_probation_is_ignored() {
        let none =
            score_corpus(&[file(4032, Some((2000, 2402)), &[])], &PROFILES[2]).expect("score");
        assert_eq!(
            (none.raw, none.null, none.normalized, none.threshold),
            (-2.0, -2.0, 0.0, 1.1)
        );
        // A detection inside the probation does not count, so the sweep keeps "no detections".
        let early = score_corpus(&[file(4032, Some((2000, 2402)), &[10])], &STD).expect("score");
        assert_eq!(early.threshold, 1.1);
    }

    #[test]
    fn the_sweep_picks_the_best_threshold() {
        let mut f = file(4032, Some((2000, 2402)), &[]);
        f.scores[2050] = 0.9; // a good detection at 0.9
        f.scores[1000] = 0.95; // a false positive above it
        f.scores[3000] = 0.5; // a later false positive below it
        let s = score_corpus(&[f], &STD).expect("score");
        assert_eq!(s.threshold, 0.9);
        assert!(s.raw > 0.7 && s.raw < 0.9, "{}", s.raw);
    }

    #[test]
    fn scoring_at_the_swept_threshold_gives_the_swept_score() {
        let mut f = file(4032, Some((2000, 2402)), &[]);
        for (i, v) in [(2050, 0.9), (1000, 0.95), (3000, 0.5), (2300, 0.7)] {
            f.scores[i] = v;
        }
        let files = [f];
        for p in &PROFILES {
            let swept = score_corpus(&files, p).expect("sweep");
            let fixed = score_at_threshold(&files, p, swept.threshold).expect("fixed");
            assert!(
                close(swept.raw, fixed.raw),
                "{}: {} vs {}",
                p.name,
                swept.raw,
                fixed.raw
            );
        }
    }

    #[test]
    fn a_window_bound_that_is_not_a_row_is_an_error() {
        let mut f = file(100, Some((20, 30)), &[]);
        f.windows[0].0 += 1;
        assert!(score_corpus(&[f], &STD).is_err());
    }
}
