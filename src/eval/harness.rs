//! The evaluation harness: a detector run over a corpus through the replay pipeline, causally
//! (one pass, each record scored before the next is seen, exactly as live), every row's score
//! collected through the pipeline's score tap.

use crate::ack::Completion;
use crate::config::Config;
use crate::contract::{Alert, AlertEvent, ScoreTap, Scores, Sink};
use crate::decode::SensorNaming;
use crate::detectors::LoadedDetector;
use crate::record::{DeadLetter, Origin, RecordBatch, SensorId};
use crate::replay::{replay_into, ReplayError, ReplayOptions};
use crate::telemetry::report::Report;
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
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
    Nab(#[from] super::nab::NabError),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, io::Error),
}

impl From<crate::detectors::LoadError> for EvalError {
    fn from(e: crate::detectors::LoadError) -> Self {
        EvalError::Usage(e.to_string())
    }
}

/// One record's score from the evaluated detector: the highest over its channels.
#[derive(Debug, Clone, Copy)]
pub struct RowScore {
    pub origin: Origin,
    pub ts: i64,
    /// The record's first reading.
    pub value: f32,
    /// NaN when no channel had a reading.
    pub score: f32,
    /// Whether the sensor had an alert open after this record.
    pub alerting: bool,
}

#[derive(Debug, Default)]
struct Collected {
    rows: Vec<RowScore>,
    /// Open alerts per sensor, from the alert events seen so far.
    open: HashMap<SensorId, i64>,
}

/// The score tap of an evaluation: every row the first detector scores, with whether its sensor
/// has an alert open after it (told from the policy's events, which carry their row's origin).
#[derive(Debug, Default)]
struct Collector(Mutex<Collected>);

impl ScoreTap for Collector {
    fn scored(
        &self,
        detector: usize,
        _name: &Arc<str>,
        batch: &RecordBatch,
        scores: &Scores,
        alerts: &[Alert],
    ) {
        if detector != 0 {
            return;
        }
        let w = batch.width();
        let mut c = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut events = alerts.iter().peekable();
        for r in 0..batch.len() {
            while let Some(a) = events.next_if(|a| a.origin == batch.origins[r]) {
                *c.open.entry(a.sensor).or_default() += match a.event {
                    AlertEvent::Open => 1,
                    AlertEvent::Close => -1,
                };
            }
            let score = scores.score[r * w..(r + 1) * w]
                .iter()
                .copied()
                .filter(|s| !s.is_nan())
                .fold(f32::NAN, f32::max);
            let alerting = c.open.get(&batch.sensors[r]).is_some_and(|&n| n > 0);
            c.rows.push(RowScore {
                origin: batch.origins[r],
                ts: batch.ts[r],
                value: batch.values[r * w],
                score,
                alerting,
            });
        }
    }
}

/// A sink that drops alerts (the tap has what the evaluation needs) and counts dead letters.
struct Discard {
    dead: Arc<Mutex<u64>>,
    tracker: Arc<crate::ack::AckTracker>,
}

impl Sink for Discard {
    fn alerts(&mut self, _alerts: &[Alert], done: Completion) -> io::Result<()> {
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
}

/// `config` running only the detector named `detector` (default: the first), and that detector.
pub(super) fn with_detector(
    config: &Config,
    detector: Option<&str>,
) -> Result<(Config, LoadedDetector), EvalError> {
    let mut config = config.clone();
    let loaded = crate::detectors::load(&config)?;
    let index = match detector {
        None => 0,
        Some(name) => loaded
            .iter()
            .position(|d| &*d.name == name)
            .ok_or_else(|| {
                EvalError::Usage(format!("no detector named {name:?} in the configuration"))
            })?,
    };
    config.detectors = vec![config.detectors[index].clone()];
    Ok((config, loaded[index].clone()))
}

/// Replays `files` through the pipeline and returns every record's score, per file in row order.
/// Each file is its own sensor, with its own detector state, even where two folders of a corpus
/// hold files of the same name.
pub(super) fn score_files(
    config: &Config,
    files: &[PathBuf],
) -> Result<(Report, Vec<Vec<RowScore>>), EvalError> {
    let collector = Arc::new(Collector::default());
    let dead = Arc::new(Mutex::new(0u64));
    let options = ReplayOptions {
        progress: false,
        naming: SensorNaming::Path,
        tap: Some(collector.clone()),
    };
    let report = replay_into(
        config,
        files,
        Arc::new(AtomicBool::new(false)),
        options,
        |_, tracker| {
            Ok(Box::new(Discard {
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
    let mut rows = std::mem::take(
        &mut collector
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rows,
    );
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
pub(super) fn unit_score(z: f32, open: f32) -> f64 {
    if z.is_nan() || z <= 0.0 {
        0.0
    } else if z.is_infinite() {
        1.0
    } else {
        (z / (z + open)) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::unit_score;

    #[test]
    fn unit_scores_stay_in_the_unit_interval() {
        assert_eq!(unit_score(f32::NAN, 6.0), 0.0);
        assert_eq!(unit_score(-1.0, 6.0), 0.0);
        assert_eq!(unit_score(6.0, 6.0), 0.5);
        assert_eq!(unit_score(f32::INFINITY, 6.0), 1.0);
        assert!(unit_score(f32::MAX, 6.0) <= 1.0);
    }
}
