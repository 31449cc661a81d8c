//! Running a detector over a benchmark corpus through the replay pipeline, causally: one pass,
//! each record scored before the next is seen, exactly as live.

use super::nab::{self, ProfileScore, ScoredFile, PROFILES};
use crate::config::{Config, DetectorConfig};
use crate::pipeline::ack::{AckTracker, Completion};
use crate::pipeline::shard::RowScore;
use crate::record::DeadLetter;
use crate::replay::{replay_into, ReplayError};
use crate::sinks::Sink;
use crate::telemetry::report::Report;
use serde::Serialize;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The corpus or the detector name is wrong (exit code 2).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Nab(#[from] nab::NabError),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, io::Error),
}

/// A sink that keeps every record's score and drops alerts.
struct Collector {
    rows: Arc<Mutex<Vec<RowScore>>>,
    dead: Arc<Mutex<u64>>,
    tracker: Arc<AckTracker>,
}

impl Sink for Collector {
    fn alerts(&mut self, _alerts: &[crate::alert::Alert], done: Completion) -> io::Result<()> {
        self.tracker.complete(&done);
        Ok(())
    }
    fn dead_letters(&mut self, dead: &[DeadLetter], done: Completion) -> io::Result<()> {
        *self.dead.lock().unwrap_or_else(PoisonError::into_inner) += dead.len() as u64;
        self.tracker.complete(&done);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn scores(&mut self, rows: &[RowScore]) -> io::Result<()> {
        self.rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(rows);
        Ok(())
    }
}

/// A NAB evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct NabReport {
    pub detector: String,
    pub files: usize,
    pub records: u64,
    pub ns_per_record: f64,
    pub records_per_s: f64,
    pub profiles: Vec<ProfileLine>,
}

/// One profile's result.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileLine {
    pub profile: &'static str,
    pub score: f64,
    pub raw: f64,
    pub threshold: f64,
}

impl From<ProfileScore> for ProfileLine {
    fn from(s: ProfileScore) -> Self {
        ProfileLine {
            profile: s.profile.name,
            score: s.normalized,
            raw: s.raw,
            threshold: s.threshold,
        }
    }
}

impl NabReport {
    /// The table printed for people.
    pub fn table(&self) -> String {
        let mut s = format!(
            "NAB v1.1, detector {} over {} files ({} records, {:.0} ns/record, {:.0} records/s)\n{:<20} {:>8} {:>10} {:>10}\n",
            self.detector, self.files, self.records, self.ns_per_record, self.records_per_s, "profile", "score", "raw", "threshold"
        );
        for p in &self.profiles {
            s.push_str(&format!(
                "{:<20} {:>8.2} {:>10.3} {:>10.4}\n",
                p.profile, p.score, p.raw, p.threshold
            ));
        }
        s
    }
}

/// `config` running only the detector named `detector` (default: the first), emitting scores.
fn with_detector(
    config: &Config,
    detector: Option<&str>,
) -> Result<(Config, DetectorConfig), EvalError> {
    let mut config = config.clone();
    let chosen = match detector {
        None => config.detectors[0].clone(),
        Some(name) => config
            .detectors
            .iter()
            .find(|d| &*d.name == name)
            .cloned()
            .ok_or_else(|| {
                EvalError::Usage(format!("no detector named {name:?} in the configuration"))
            })?,
    };
    config.detectors = vec![chosen.clone()];
    config.pipeline.emit_scores = true;
    // Each file its own sensor, with its own detector state, even where two folders of a corpus
    // hold files of the same name.
    config.input.sensor_from_path = true;
    Ok((config, chosen))
}

/// Replays `files` through the pipeline and returns every record's score, per file in row order.
fn score_files(
    config: &Config,
    files: &[PathBuf],
) -> Result<(Report, Vec<Vec<RowScore>>), EvalError> {
    let rows = Arc::new(Mutex::new(Vec::new()));
    let dead = Arc::new(Mutex::new(0u64));
    let report = replay_into(
        config,
        files,
        Arc::new(AtomicBool::new(false)),
        false,
        "evaluation",
        |_, tracker| {
            Ok(Box::new(Collector {
                rows: rows.clone(),
                dead: dead.clone(),
                tracker,
            }))
        },
    )
    .map_err(|e| {
        if e.is_usage() {
            EvalError::Usage(e.to_string())
        } else {
            EvalError::Replay(e)
        }
    })?;
    let dead = *dead.lock().unwrap_or_else(PoisonError::into_inner);
    if dead > 0 {
        return Err(EvalError::Usage(format!(
            "{dead} rows of the corpus did not decode"
        )));
    }
    let mut rows = std::mem::take(&mut *rows.lock().unwrap_or_else(PoisonError::into_inner));
    rows.sort_by_key(|r| (r.origin.source, r.origin.position));
    // Replay interns the files' paths in order, so source i is files[i].
    let mut per_file = vec![Vec::new(); files.len()];
    for r in rows {
        if let Some(f) = per_file.get_mut(r.origin.source as usize) {
            f.push(r);
        }
    }
    Ok((report, per_file))
}

/// A z-score as an anomaly score in [0, 1): `z / (z + open)`, 0.5 at the alert threshold.
fn unit_score(z: f32, open: f32) -> f64 {
    if z.is_nan() || z <= 0.0 {
        0.0
    } else {
        (z / (z + open)) as f64
    }
}

/// Scores `dir` (NAB's layout: `data/`, `labels/combined_windows.json`) with the detector named
/// `detector` (default: the first configured), writing NAB's results layout to `results_dir`.
pub fn eval_nab(
    config: &Config,
    dir: &Path,
    detector: Option<&str>,
    results_dir: Option<&Path>,
    html: Option<&Path>,
) -> Result<NabReport, EvalError> {
    let windows = nab::read_windows(&dir.join("labels/combined_windows.json"))
        .map_err(|e| EvalError::Usage(format!("{} is not a NAB corpus: {e}", dir.display())))?;
    let (config, chosen) = with_detector(config, detector)?;
    let names: Vec<&String> = windows.keys().collect();
    let files: Vec<PathBuf> = names.iter().map(|n| dir.join("data").join(n)).collect();
    let (report, per_file) = score_files(&config, &files)?;
    let mut scored = Vec::with_capacity(files.len());
    let mut values = Vec::with_capacity(files.len());
    for (name, mine) in names.iter().zip(&per_file) {
        scored.push(ScoredFile {
            name: (*name).clone(),
            ts: mine.iter().map(|r| r.ts).collect(),
            scores: mine
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    // One detection per episode: the row that opens an alert carries its score.
                    let opens = r.alerting && (i == 0 || !mine[i - 1].alerting);
                    if opens {
                        unit_score(r.score, chosen.policy.open)
                    } else {
                        0.0
                    }
                })
                .collect(),
            windows: windows[*name].clone(),
        });
        values.push(mine.iter().map(|r| r.value).collect::<Vec<f32>>());
    }
    let profiles = PROFILES
        .iter()
        .map(|p| nab::score_corpus(&scored, p).map(ProfileLine::from))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(out) = results_dir {
        write_results(out, &chosen.name, &scored, &values)?;
    }
    let out = NabReport {
        detector: chosen.name.to_string(),
        files: files.len(),
        records: report.records,
        ns_per_record: report.elapsed_s * 1e9 / report.records.max(1) as f64,
        records_per_s: report.records_per_s,
        profiles,
    };
    if let Some(path) = html {
        let threshold = out.profiles[0].threshold;
        let detections: Vec<Vec<usize>> = scored
            .iter()
            .map(|f| super::report::detections_at(f, threshold))
            .collect();
        let page = super::report::html(
            &format!("NAB v1.1: {}", out.detector),
            &out.table(),
            &scored,
            &values,
            threshold,
            &detections,
        );
        std::fs::write(path, page).map_err(|e| EvalError::Write(path.to_path_buf(), e))?;
    }
    Ok(out)
}

/// NAB's results layout: `<detector>/<category>/<detector>_<file>.csv` with
/// `timestamp,value,anomaly_score,label`, so that any NAB scorer can check the numbers.
fn write_results(
    out: &Path,
    detector: &str,
    files: &[ScoredFile],
    values: &[Vec<f32>],
) -> Result<(), EvalError> {
    for (f, vals) in files.iter().zip(values) {
        let (category, file) = f.name.split_once('/').unwrap_or(("", &f.name));
        let dir = out.join(detector).join(category);
        std::fs::create_dir_all(&dir).map_err(|e| EvalError::Write(dir.clone(), e))?;
        let path = dir.join(format!("{detector}_{file}"));
        let mut text = String::from("timestamp,value,anomaly_score,label\n");
        for ((ts, score), v) in f.ts.iter().zip(&f.scores).zip(vals) {
            let label = f.windows.iter().any(|&(a, b)| (a..=b).contains(ts)) as u8;
            let stamp = crate::time::format_iso(*ts)
                .replace('T', " ")
                .trim_end_matches('Z')
                .to_string();
            text.push_str(&format!("{stamp},{v},{score},{label}\n"));
        }
        std::fs::write(&path, text).map_err(|e| EvalError::Write(path.clone(), e))?;
    }
    Ok(())
}

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

/// Reads a SKAB file's timestamps and its `anomaly` and `changepoint` label columns (no
/// predictions yet).
fn skab_labels(path: &Path) -> Result<super::skab::SkabFile, EvalError> {
    let bad = |why: &str| EvalError::Usage(format!("{}: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(&e.to_string()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .trim_end_matches('\r')
        .split(';')
        .collect();
    let col = |n: &str| {
        header
            .iter()
            .position(|h| *h == n)
            .ok_or_else(|| bad(&format!("no {n} column")))
    };
    let (a, c) = (col("anomaly")?, col("changepoint")?);
    let (mut ts, mut anomaly, mut cp) = (Vec::new(), Vec::new(), Vec::new());
    for line in lines
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
    {
        let f: Vec<&str> = line.split(';').collect();
        let flag = |i: usize| {
            f.get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .map(|v| v > 0.5)
                .ok_or_else(|| bad("bad label"))
        };
        ts.push(
            f.first()
                .and_then(|t| crate::time::parse_timestamp(t, crate::time::EpochUnit::Auto))
                .ok_or_else(|| bad("bad timestamp"))?,
        );
        anomaly.push(flag(a)?);
        cp.push(flag(c)?);
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
    let (report, per_file) = score_files(&config, &files)?;
    let mut scored = Vec::with_capacity(files.len());
    let mut plots = Vec::new();
    for (path, rows) in files.iter().zip(&per_file) {
        let super::skab::SkabFile {
            ts,
            anomaly,
            changepoint,
            ..
        } = skab_labels(path)?;
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
            plots.push(skab_plot(name, &ts, &anomaly, rows, chosen.policy.open));
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
        detector: chosen.name.to_string(),
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
        let mut files = Vec::with_capacity(plots.len());
        let mut values = Vec::with_capacity(plots.len());
        let mut detections = Vec::with_capacity(plots.len());
        for (f, v, d) in plots {
            files.push(f);
            values.push(v);
            detections.push(d);
        }
        let page = super::report::html(
            &format!("SKAB: {}", out.detector),
            &out.table(),
            &files,
            &values,
            0.5,
            &detections,
        );
        std::fs::write(path, page).map_err(|e| EvalError::Write(path.to_path_buf(), e))?;
    }
    Ok(out)
}

/// One SKAB file as a plot: labelled anomalies as windows, every row's score, and the test rows
/// where an alert opened as detections.
fn skab_plot(
    name: String,
    ts: &[i64],
    anomaly: &[bool],
    rows: &[RowScore],
    open: f32,
) -> (ScoredFile, Vec<f32>, Vec<usize>) {
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
        scores: rows.iter().map(|r| unit_score(r.score, open)).collect(),
        windows,
    };
    (file, rows.iter().map(|r| r.value).collect(), detections)
}
