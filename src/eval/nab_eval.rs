//! `vigil eval nab`: a detector over NAB's corpus, scored by NAB's rules ([`super::nab`]).

use super::harness::{score_files, with_detector, EvalError};
use super::nab::{self, ProfileScore, ScoredFile, PROFILES};
use crate::config::Config;
use serde::Serialize;
use std::path::{Path, PathBuf};

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
    let (report, per_file) = score_files(&config, &chosen, &files)?;
    let mut scored = Vec::with_capacity(files.len());
    let mut values = Vec::with_capacity(files.len());
    let mut spans = Vec::with_capacity(files.len());
    for (name, mine) in names.iter().zip(&per_file) {
        spans.push(super::report::episodes(mine.iter().map(|r| r.alerting)));
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
                        r.score
                    } else {
                        0.0
                    }
                })
                .collect(),
            windows: windows[*name].clone(),
        });
        values.push(
            mine.iter()
                .map(|r| (r.value, r.score))
                .collect::<Vec<(f32, f64)>>(),
        );
    }
    let profiles = PROFILES
        .iter()
        .map(|p| nab::score_corpus(&scored, p).map(ProfileLine::from))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(out) = results_dir {
        write_results(out, &chosen.name, &scored, &values)?;
    }
    let out = NabReport {
        detector: chosen.name.clone(),
        files: files.len(),
        records: report.records,
        ns_per_record: report.elapsed_s * 1e9 / report.records.max(1) as f64,
        records_per_s: report.records_per_s,
        profiles,
    };
    if let Some(path) = html {
        let threshold = out.profiles[0].threshold;
        let plots: Vec<super::report::Plot> = scored
            .into_iter()
            .zip(values)
            .zip(spans)
            .map(|((file, values), episodes)| super::report::Plot {
                detections: super::report::detections_at(&file, threshold),
                file,
                values: values.into_iter().map(|(v, _)| v).collect(),
                episodes,
            })
            .collect();
        let page = super::report::html(
            &format!("NAB v1.1: {}", out.detector),
            &out.table(),
            &plots,
            threshold,
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
    values: &[Vec<(f32, f64)>],
) -> Result<(), EvalError> {
    for (f, vals) in files.iter().zip(values) {
        let (category, file) = f.name.split_once('/').unwrap_or(("", &f.name));
        let dir = out.join(detector).join(category);
        std::fs::create_dir_all(&dir).map_err(|e| EvalError::Write(dir.clone(), e))?;
        let path = dir.join(format!("{detector}_{file}"));
        let mut text = String::from("timestamp,value,anomaly_score,label,raw_score\n");
        for ((ts, score), (v, raw)) in f.ts.iter().zip(&f.scores).zip(vals) {
            let label = f.windows.iter().any(|&(a, b)| (a..=b).contains(ts)) as u8;
            let stamp = crate::time::format_iso(*ts)
                .replace('T', " ")
                .trim_end_matches('Z')
                .to_string();
            text.push_str(&format!("{stamp},{v},{score},{label},{raw}\n"));
        }
        std::fs::write(&path, text).map_err(|e| EvalError::Write(path.clone(), e))?;
    }
    Ok(())
}
