//! `vigil eval skab`: a detector over SKAB's files, scored by SKAB's rules ([`super::skab`]).
//! Labels are read through the same decoder as the readings.

use super::harness::{score_files, with_detector, EvalError, RowScore};
use super::nab::ScoredFile;
use crate::config::Config;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// A SKAB evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct SkabReport {
    pub detector: String,
    pub files: usize,
    pub test_rows: usize,
    pub ns_per_record: f64,
    pub outliers: super::skab::Outliers,
    pub changepoints: Vec<super::skab::ChangepointScore>,
}

impl SkabReport {
    /// The table printed for people.
    pub fn table(&self) -> String {
        let o = &self.outliers;
        let mut s = format!(
            "SKAB, detector {} over {} files ({} test rows, {:.0} ns/record)\noutliers: F1 {:.2}  FAR {:.2} %  MAR {:.2} %\n",
            self.detector, self.files, self.test_rows, self.ns_per_record, o.f1, o.far, o.mar
        );
        for c in &self.changepoints {
            s.push_str(&format!(
                "changepoints NAB {:<9} {:>7.2}  (missed {}, false alarms {})\n",
                c.profile, c.nab, c.missed, c.false_alarms
            ));
        }
        s
    }
}

/// Reads a SKAB file's timestamps and its `anomaly` and `changepoint` label columns through the
/// decoder (no predictions yet).
fn skab_labels(config: &Config, path: &Path) -> Result<super::skab::SkabFile, EvalError> {
    let bad = |why: String| EvalError::Usage(format!("{}: {why}", path.display()));
    let mut input = config.input.clone();
    input
        .ignore_columns
        .retain(|c| c != "anomaly" && c != "changepoint");
    let (mut ts, mut anomaly, mut cp) = (Vec::new(), Vec::new(), Vec::new());
    let mut missing = None;
    let mut dead = 0u64;
    crate::sources::file::decode_files(
        &input,
        &[path.to_path_buf()],
        Arc::new(crate::record::NameTable::default()),
        &mut |b| {
            let col = |n: &str| b.schema.channels.iter().position(|c| &**c == n);
            let (Some(a), Some(c)) = (col("anomaly"), col("changepoint")) else {
                missing = Some(if col("anomaly").is_none() {
                    "anomaly"
                } else {
                    "changepoint"
                });
                return;
            };
            for r in 0..b.len() {
                let row = b.row(r);
                ts.push(b.ts[r]);
                anomaly.push(row[a] > 0.5);
                cp.push(row[c] > 0.5);
            }
        },
        &mut |_| dead += 1,
    )
    .map_err(|e| bad(e.to_string()))?;
    if let Some(col) = missing {
        return Err(bad(format!("no {col} column")));
    }
    if dead > 0 {
        return Err(bad(format!("{dead} rows with a bad timestamp or label")));
    }
    Ok(super::skab::SkabFile {
        ts,
        anomaly,
        changepoint: cp,
        pred: Vec::new(),
    })
}

/// Scores `dir` (SKAB's layout: `data/<group>/<n>.csv`; `anomaly-free/` is skipped) with the
/// detector named `detector`: a test row is predicted an outlier while its sensor has an alert
/// open (the detector's hysteresis policy). The detector runs causally through each whole file, so it learns
/// from the first 400 rows before the test rows start, as SKAB's protocol allows.
///
/// `html` writes a page with, per file, the first channel, the labelled anomalies, the score (0.5
/// at the alert threshold) and the test rows where an alert opened.
pub fn eval_skab(
    config: &Config,
    dir: &Path,
    detector: Option<&str>,
    html: Option<&Path>,
) -> Result<SkabReport, EvalError> {
    let (mut config, chosen) = with_detector(config, detector)?;
    for label in ["anomaly", "changepoint"] {
        if !config.input.ignore_columns.iter().any(|c| c == label) {
            config.input.ignore_columns.push(label.to_string());
        }
    }
    let mut files = Vec::new();
    let groups = std::fs::read_dir(dir.join("data"))
        .map_err(|e| EvalError::Usage(format!("{} is not a SKAB corpus: {e}", dir.display())))?;
    for group in groups.flatten().filter(|g| g.file_name() != "anomaly-free") {
        if let Ok(entries) = std::fs::read_dir(group.path()) {
            files.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "csv")),
            );
        }
    }
    // Numeric order within a group (0, 1, ..., 10), groups by name.
    files.sort_by_key(|p| {
        let stem = p
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(u32::MAX);
        (p.parent().map(Path::to_path_buf), stem)
    });
    if files.is_empty() {
        return Err(EvalError::Usage(format!(
            "no SKAB files under {}",
            dir.join("data").display()
        )));
    }
    let (report, per_file) = score_files(&config, &chosen, &files)?;
    let mut scored = Vec::with_capacity(files.len());
    let mut plots = Vec::new();
    for (path, rows) in files.iter().zip(&per_file) {
        let super::skab::SkabFile {
            ts,
            anomaly,
            changepoint,
            ..
        } = skab_labels(&config, path)?;
        if ts.len() != rows.len() {
            return Err(EvalError::Usage(format!(
                "{}: {} rows but {} scored",
                path.display(),
                ts.len(),
                rows.len()
            )));
        }
        if html.is_some() {
            let name = path
                .strip_prefix(dir.join("data"))
                .unwrap_or(path)
                .display()
                .to_string();
            plots.push(skab_plot(name, &ts, &anomaly, rows));
        }
        let from = super::skab::TRAIN_ROWS.min(ts.len());
        scored.push(super::skab::SkabFile {
            ts: ts[from..].to_vec(),
            anomaly: anomaly[from..].to_vec(),
            changepoint: changepoint[from..].to_vec(),
            pred: rows[from..].iter().map(|r| r.alerting).collect(),
        });
    }
    let out = SkabReport {
        detector: chosen.name.clone(),
        files: files.len(),
        test_rows: scored.iter().map(|f| f.ts.len()).sum(),
        ns_per_record: report.elapsed_s * 1e9 / report.records.max(1) as f64,
        outliers: super::skab::outliers(&scored),
        changepoints: super::skab::CP_PROFILES
            .iter()
            .map(|p| super::skab::changepoint_nab(&scored, p))
            .collect(),
    };
    if let Some(path) = html {
        let page = super::report::html(
            &format!("SKAB: {}", out.detector),
            &out.table(),
            &plots,
            0.5,
        );
        std::fs::write(path, page).map_err(|e| EvalError::Write(path.to_path_buf(), e))?;
    }
    Ok(out)
}

/// One SKAB file as a plot: labelled anomalies as windows, every row's score, the test rows where
/// an alert opened as detections, and every alert episode.
fn skab_plot(name: String, ts: &[i64], anomaly: &[bool], rows: &[RowScore]) -> super::report::Plot {
    let mut windows = Vec::new();
    let mut i = 0;
    while i < anomaly.len() {
        if anomaly[i] {
            let a = i;
            while i + 1 < anomaly.len() && anomaly[i + 1] {
                i += 1;
            }
            windows.push((ts[a], ts[i]));
        }
        i += 1;
    }
    let detections = (super::skab::TRAIN_ROWS..rows.len())
        .filter(|&i| rows[i].alerting && (i == 0 || !rows[i - 1].alerting))
        .collect();
    let file = ScoredFile {
        name,
        ts: ts.to_vec(),
        scores: rows.iter().map(|r| r.score).collect(),
        windows,
    };
    super::report::Plot {
        file,
        values: rows.iter().map(|r| r.value).collect(),
        detections,
        episodes: super::report::episodes(rows.iter().map(|r| r.alerting)),
    }
}
