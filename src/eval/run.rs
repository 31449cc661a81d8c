//! Running a detector over a benchmark corpus through the replay pipeline, causally: one pass,
//! each record scored before the next is seen, exactly as live.

use super::nab::{self, ProfileScore, ScoredFile, PROFILES};
use crate::config::Config;
use crate::pipeline::ack::{AckTracker, Completion};
use crate::pipeline::shard::RowScore;
use crate::record::DeadLetter;
use crate::replay::{replay_into, ReplayError};
use crate::sinks::Sink;
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
) -> Result<NabReport, EvalError> {
    let windows = nab::read_windows(&dir.join("labels/combined_windows.json"))
        .map_err(|e| EvalError::Usage(format!("{} is not a NAB corpus: {e}", dir.display())))?;
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
    let names: Vec<&String> = windows.keys().collect();
    let files: Vec<PathBuf> = names.iter().map(|n| dir.join("data").join(n)).collect();
    let rows = Arc::new(Mutex::new(Vec::new()));
    let dead = Arc::new(Mutex::new(0u64));
    let report = replay_into(
        &config,
        &files,
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
    let mut scored = Vec::with_capacity(files.len());
    let mut values = Vec::with_capacity(files.len());
    for (i, name) in names.iter().enumerate() {
        let mine: Vec<&RowScore> = rows
            .iter()
            .filter(|r| r.origin.source as usize == i)
            .collect();
        scored.push(ScoredFile {
            name: (*name).clone(),
            ts: mine.iter().map(|r| r.ts).collect(),
            scores: mine
                .iter()
                .map(|r| unit_score(r.score, chosen.policy.open))
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
    Ok(NabReport {
        detector: chosen.name.to_string(),
        files: files.len(),
        records: report.records,
        ns_per_record: report.elapsed_s * 1e9 / report.records.max(1) as f64,
        records_per_s: report.records_per_s,
        profiles,
    })
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
