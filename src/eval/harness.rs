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

/// One record's score from the evaluated detectors: the highest over its channels and the
/// detectors, each as a unit score ([`unit_score`] against its own policy's `open`).
#[derive(Debug, Clone, Copy)]
pub struct RowScore {
    pub origin: Origin,
    pub ts: i64,
    /// The record's first reading.
    pub value: f32,
    /// In [0, 1], 0.5 at an alert threshold; 0 when no channel had a reading.
    pub score: f64,
    /// Whether the sensor had an alert of any evaluated detector open after this record.
    pub alerting: bool,
}

#[derive(Debug, Default)]
struct Collected {
    /// Per detector, its rows.
    rows: Vec<Vec<RowScore>>,
    /// Open alerts per (detector, sensor), from the alert events seen so far.
    open: HashMap<(usize, SensorId), i64>,
}

/// The score tap of an evaluation: every row each detector scores, with whether its sensor has
/// an alert of that detector open after it (told from the policy's events, which carry their
/// row's origin).
#[derive(Debug)]
struct Collector {
    /// Each detector's policy threshold, to make its scores unit scores.
    opens: Vec<f32>,
    collected: Mutex<Collected>,
}

impl ScoreTap for Collector {
    fn scored(
        &self,
        detector: usize,
        _name: &Arc<str>,
        batch: &RecordBatch,
        scores: &Scores,
        alerts: &[Alert],
    ) {
        let Some(&open) = self.opens.get(detector) else {
            return;
        };
        let w = batch.width();
        let mut c = self
            .collected
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if c.rows.len() < self.opens.len() {
            c.rows.resize_with(self.opens.len(), Vec::new);
        }
        let mut events = alerts.iter().peekable();
        for r in 0..batch.len() {
            while let Some(a) = events.next_if(|a| a.origin == batch.origins[r]) {
                *c.open.entry((detector, a.sensor)).or_default() += match a.event {
                    AlertEvent::Open => 1,
                    AlertEvent::Close => -1,
                };
            }
            let score = scores.score[r * w..(r + 1) * w]
                .iter()
                .copied()
                .filter(|s| !s.is_nan())
                .fold(f32::NAN, f32::max);
            let alerting = c
                .open
                .get(&(detector, batch.sensors[r]))
                .is_some_and(|&n| n > 0);
            c.rows[detector].push(RowScore {
                origin: batch.origins[r],
                ts: batch.ts[r],
                value: batch.values[r * w],
                score: unit_score(score, open),
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

/// The detectors an evaluation scores, as one.
#[derive(Debug, Clone)]
pub(super) struct Evaluated {
    /// `sequence`, or `sequence+baseline` for a set.
    pub name: String,
    /// Each one's policy threshold, in configuration order.
    pub opens: Vec<f32>,
}

/// `config` running only the detector named `detector`, or (`None`) every serving detector —
/// the configured set as one: a record's score is the highest of theirs, and its sensor is
/// alerting while any of them has an alert open.
pub(super) fn with_detector(
    config: &Config,
    detector: Option<&str>,
) -> Result<(Config, Evaluated), EvalError> {
    let mut config = config.clone();
    let loaded = crate::detectors::load(&config)?;
    let chosen: Vec<usize> = match detector {
        None => (0..loaded.len()).filter(|&i| !loaded[i].shadow).collect(),
        Some(name) => vec![loaded
            .iter()
            .position(|d| &*d.name == name)
            .ok_or_else(|| {
                EvalError::Usage(format!("no detector named {name:?} in the configuration"))
            })?],
    };
    if chosen.is_empty() {
        return Err(EvalError::Usage(
            "the configuration has no serving detector to evaluate".into(),
        ));
    }
    let picked: Vec<&LoadedDetector> = chosen.iter().map(|&i| &loaded[i]).collect();
    let evaluated = Evaluated {
        name: picked
            .iter()
            .map(|d| d.name.to_string())
            .collect::<Vec<_>>()
            .join("+"),
        opens: picked.iter().map(|d| d.policy.open).collect(),
    };
    config.detectors = chosen
        .iter()
        .map(|&i| config.detectors[i].clone())
        .collect();
    Ok((config, evaluated))
}

/// Replays `files` through the pipeline and returns every record's score, per file in row order.
/// Each file is its own sensor, with its own detector state, even where two folders of a corpus
/// hold files of the same name.
pub(super) fn score_files(
    config: &Config,
    evaluated: &Evaluated,
    files: &[PathBuf],
) -> Result<(Report, Vec<Vec<RowScore>>), EvalError> {
    let collector = Arc::new(Collector {
        opens: evaluated.opens.clone(),
        collected: Mutex::new(Collected::default()),
    });
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
    let per_detector = std::mem::take(
        &mut collector
            .collected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rows,
    );
    let rows = merge(per_detector);
    // Replay interns the files' paths in order, so source i is files[i].
    let mut per_file = vec![Vec::new(); files.len()];
    for r in rows {
        if let Some(f) = per_file.get_mut(r.origin.source as usize) {
            f.push(r);
        }
    }
    Ok((report, per_file))
}

/// Each detector's rows (every detector scores every record) as one row per record: the highest
/// score, alerting while any detector is, in record order.
fn merge(per_detector: Vec<Vec<RowScore>>) -> Vec<RowScore> {
    let mut iter = per_detector.into_iter();
    let Some(mut rows) = iter.next() else {
        return Vec::new();
    };
    let key = |r: &RowScore| (r.origin.source, r.origin.position);
    rows.sort_by_key(key);
    for mut other in iter {
        other.sort_by_key(key);
        for (r, o) in rows.iter_mut().zip(&other) {
            debug_assert_eq!(key(r), key(o), "every detector scores every record");
            r.score = r.score.max(o.score);
            r.alerting |= o.alerting;
        }
    }
    rows
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
