//! The ONNX detector: a model from a manifest, run by ONNX Runtime on the rows of many sensors at
//! once (one `run` call per batch, about 10 µs of fixed cost each), one session with one intra-op
//! thread per shard.
//!
//! Per sensor it keeps the last `window` records of the model's channels; once a sensor has a full
//! window, each new record contributes one input row. A record with a missing channel value scores
//! no observation and does not enter the window. The score goes on the manifest's first channel.
//! A `run` that fails is logged and its rows score no observation; the stream goes on.

use super::{top_contributions, Detector, KeyStates, SchemaCache};
use crate::contract::{Explanation, Scores};
use crate::onnx::OnnxModel;
use crate::record::{NameTable, RecordBatch};
use ort::session::Session;
use std::sync::Arc;

/// A sensor's last `window` records' values (a ring, oldest at `next`), how many are held, and
/// each channel's recent average (what an explanation's occlusion puts in a channel's place).
#[derive(Debug)]
struct Window {
    ring: Vec<f32>,
    next: usize,
    held: usize,
    typical: Vec<f32>,
}

/// Weight of the newest reading in a channel's recent average (about the last 64 readings).
const TYPICAL_ALPHA: f32 = 1.0 / 64.0;

/// Per shard: a session, each sensor key's window, scratch.
pub struct OnnxDetector {
    name: Arc<str>,
    model: Arc<OnnxModel>,
    session: Session,
    keys: KeyStates<Window>,
    /// By schema: the columns of the manifest's channels, and the alert column.
    layouts: SchemaCache<(Vec<usize>, usize)>,
    /// The last batch's input rows, the batch rows they belong to (ascending) and their scores
    /// (NaN where a run failed): what [`Detector::explain`] reads.
    x: Vec<f32>,
    rows: Vec<usize>,
    out: Vec<f32>,
    errors: u64,
    /// Rows per ONNX Runtime call: adapted so that a call stays under `max_run`.
    chunk: usize,
    max_run: std::time::Duration,
}

/// Fewest and most rows per ONNX Runtime call.
const MIN_CHUNK: usize = 8;
const MAX_CHUNK: usize = 16_384;

impl std::fmt::Debug for OnnxDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxDetector")
            .field("name", &self.name)
            .field("model", &self.model.manifest.id())
            .finish()
    }
}

impl OnnxDetector {
    pub fn new(
        name: Arc<str>,
        model: Arc<OnnxModel>,
        sensors: Arc<[String]>,
        names: Arc<NameTable>,
        max_run: std::time::Duration,
    ) -> Result<OnnxDetector, String> {
        let session = model.session()?;
        Ok(OnnxDetector {
            name,
            model,
            session,
            keys: KeyStates::new(sensors, names),
            layouts: SchemaCache::default(),
            x: Vec::new(),
            rows: Vec::new(),
            out: Vec::new(),
            errors: 0,
            chunk: 256,
            max_run,
        })
    }

    fn layout(&mut self, batch: &RecordBatch) -> Option<(Vec<usize>, usize)> {
        let wanted = &self.model.manifest.input.channels;
        self.layouts.get(&self.name, &batch.schema, |channels| {
            let cols: Option<Vec<usize>> = wanted
                .iter()
                .map(|c| channels.iter().position(|s| **s == **c))
                .collect();
            let cols = cols.ok_or_else(|| format!("some of {wanted:?}"))?;
            let first = cols[0];
            Ok((cols, first))
        })
    }
}

impl Detector for OnnxDetector {
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Through [`OnnxModel::explain`]: a reconstruction's per-channel error and its expected
    /// value, or per-channel occlusion with the sensor's recent averages.
    fn explain(&mut self, batch: &RecordBatch, row: usize, key: u32) -> Explanation {
        let Ok(p) = self.rows.binary_search(&row) else {
            return Explanation::default();
        };
        let score = self.out[p];
        let width = self.model.manifest.width();
        let Some(Window { typical, .. }) = self.keys.get(key, batch.sensors[row], || Window {
            ring: Vec::new(),
            next: 0,
            held: 0,
            typical: Vec::new(),
        }) else {
            return Explanation::default();
        };
        if !score.is_finite() || typical.is_empty() {
            return Explanation::default();
        }
        let typical = typical.clone();
        let x = &self.x[p * width..(p + 1) * width];
        let e = match self.model.explain(&mut self.session, x, score, &typical) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("detector {}: explain: {e}", self.name);
                return Explanation::default();
            }
        };
        let Some((cols, _)) = self.layout(batch) else {
            return Explanation::default();
        };
        Explanation {
            contributions: top_contributions(
                cols.iter()
                    .zip(&e.weights)
                    .map(|(&j, &w)| (batch.schema.channels[j].clone(), w)),
            ),
            expected: e.expected,
        }
    }

    fn score(&mut self, batch: &RecordBatch, keys: &[u32], out: &mut Scores) {
        let w = batch.width();
        out.reset(batch.len() * w);
        out.score.fill(f32::NAN);
        out.expected.fill(f32::NAN);
        self.x.clear();
        self.rows.clear();
        let Some((cols, alert_col)) = self.layout(batch) else {
            return;
        };
        let c = cols.len();
        let window = self.model.manifest.input.window as usize;
        for (i, &key) in keys[..batch.len()].iter().enumerate() {
            let fresh = || Window {
                ring: vec![0.0; window * c],
                next: 0,
                held: 0,
                typical: Vec::new(),
            };
            let Some(Window {
                ring,
                next,
                held,
                typical,
            }) = self.keys.get(key, batch.sensors[i], fresh)
            else {
                continue;
            };
            let row = batch.row(i);
            if cols.iter().any(|&j| !row[j].is_finite()) {
                continue;
            }
            if typical.is_empty() {
                typical.extend(cols.iter().map(|&j| row[j]));
            }
            for ((slot, t), &j) in ring[*next * c..(*next + 1) * c]
                .iter_mut()
                .zip(typical.iter_mut())
                .zip(&cols)
            {
                *slot = row[j];
                *t += TYPICAL_ALPHA * (row[j] - *t);
            }
            *next = (*next + 1) % window;
            *held = (*held + 1).min(window);
            if *held == window {
                // Oldest first: from `next` round to `next - 1`.
                for r in 0..window {
                    let at = (*next + r) % window;
                    self.x.extend_from_slice(&ring[at * c..(at + 1) * c]);
                }
                self.rows.push(i);
            }
        }
        if self.rows.is_empty() {
            return;
        }
        self.out.resize(self.rows.len(), 0.0);
        let width = self.model.manifest.width();
        let mut at = 0;
        while at < self.rows.len() {
            let n = self.chunk.min(self.rows.len() - at);
            let started = std::time::Instant::now();
            let run = self.model.score(
                &mut self.session,
                &self.x[at * width..(at + n) * width],
                n,
                &mut self.out[at..at + n],
            );
            // Adapt the chunk: halve it when a call overran the bound, grow it while calls take
            // under half of it (a call's ~10 µs fixed cost favours large chunks).
            let took = started.elapsed();
            if took > self.max_run {
                self.chunk = (self.chunk / 2).max(MIN_CHUNK);
            } else if took * 2 < self.max_run && n == self.chunk {
                self.chunk = (self.chunk + self.chunk / 4).min(MAX_CHUNK);
            }
            match run {
                Ok(()) => {
                    for (&i, &s) in self.rows[at..at + n].iter().zip(&self.out[at..at + n]) {
                        out.score[i * w + alert_col] = s;
                    }
                }
                Err(e) => {
                    self.out[at..at + n].fill(f32::NAN);
                    self.errors += 1;
                    if self.errors.is_power_of_two() {
                        tracing::error!(
                            "detector {}: {e} ({} failed runs)",
                            self.name,
                            self.errors
                        );
                    }
                }
            }
            at += n;
        }
    }
}
