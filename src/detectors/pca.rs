//! The PCA T²+Q detector: one multivariate score per record from a sensor's channels together
//! ([`vigil_kernels::pca`]). Each sensor learns its own model from its first `train_rows` records
//! (standardisation, principal components, control limits), causally, then scores every later
//! record against it: `max(T² / T²_limit, Q / Q_limit)`, at or above 1 outside a control limit.
//! Records seen while a sensor trains score no observation.
//!
//! The score is written on the first of the model's channels, the one its alerts name; the other
//! channels get no observation from this detector.

use super::{top_contributions, Detector, KeyStates, SchemaCache};
use crate::config::PcaSpec;
use crate::contract::{Explanation, Scores};
use crate::record::{NameTable, RecordBatch};
use std::sync::Arc;
use vigil_kernels::isa::Isa;
use vigil_kernels::pca::{Accumulator, PcaModel, RowScore, Scorer, MAX_CHANNELS};

/// A sensor's model: learning, ready, or given up (a fit that failed, said once).
#[derive(Debug)]
enum State {
    Training(Accumulator),
    Ready(PcaModel),
    Failed,
}

/// Per shard: each sensor key's model, and scratch.
#[derive(Debug)]
pub struct PcaDetector {
    name: Arc<str>,
    spec: PcaSpec,
    scorer: Scorer,
    keys: KeyStates<State>,
    /// By schema: the columns read, in model order.
    layouts: SchemaCache<Arc<[usize]>>,
    row: Vec<f32>,
    x: Vec<f32>,
    /// Rows gathered for scoring: (row in the batch, sensor key).
    rows: Vec<(usize, u32)>,
    out: Vec<RowScore>,
}

impl PcaDetector {
    /// A detector on `isa` (or scalar if this CPU lacks it).
    pub fn new(name: Arc<str>, isa: Isa, spec: PcaSpec, names: Arc<NameTable>) -> PcaDetector {
        let scorer = Scorer::new(isa)
            .or_else(|| Scorer::new(Isa::Scalar))
            .expect("the scalar path is always available");
        PcaDetector {
            name,
            keys: KeyStates::new(spec.sensors.clone(), names),
            spec,
            scorer,
            layouts: SchemaCache::default(),
            row: Vec::new(),
            x: Vec::new(),
            rows: Vec::new(),
            out: Vec::new(),
        }
    }

    fn layout(&mut self, batch: &RecordBatch) -> Option<Arc<[usize]>> {
        let wanted = &self.spec.channels;
        self.layouts.get(&self.name, &batch.schema, |channels| {
            let cols: Vec<usize> = if wanted.is_empty() {
                (0..channels.len()).collect()
            } else {
                wanted
                    .iter()
                    .map(|c| channels.iter().position(|s| **s == **c))
                    .collect::<Option<_>>()
                    .ok_or_else(|| format!("some of {wanted:?}"))?
            };
            if cols.len() > MAX_CHANNELS {
                return Err(format!("more than {MAX_CHANNELS} channels"));
            }
            Ok(cols.into())
        })
    }
}

impl Detector for PcaDetector {
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn explain(&mut self, batch: &RecordBatch, row: usize, key: u32) -> Explanation {
        let Some(cols) = self.layout(batch) else {
            return Explanation::default();
        };
        let Some(State::Ready(model)) = self.keys.get(key, batch.sensors[row], || State::Failed)
        else {
            return Explanation::default();
        };
        let w = batch.width();
        let x: Vec<f32> = cols.iter().map(|&j| batch.values[row * w + j]).collect();
        let e = model.explain(&x);
        Explanation {
            contributions: top_contributions(
                e.shares
                    .iter()
                    .zip(cols.iter())
                    .map(|(&share, &j)| (batch.schema.channels[j].clone(), share)),
            ),
            expected: e.expected.first().map(|&v| v as f32),
        }
    }

    fn score(&mut self, batch: &RecordBatch, keys: &[u32], out: &mut Scores) {
        let w = batch.width();
        out.reset(batch.len() * w);
        out.score.fill(f32::NAN);
        out.expected.fill(f32::NAN);
        let Some(cols) = self.layout(batch) else {
            return;
        };
        let (d, col, train) = (cols.len(), cols[0], self.spec.train_rows as u64);
        let (params, name) = (self.spec.params, &self.name);
        // Learn from or gather each row; ready rows are scored per sensor below.
        self.x.clear();
        self.rows.clear();
        for (i, &key) in keys[..batch.len()].iter().enumerate() {
            self.row.clear();
            self.row
                .extend(cols.iter().map(|&j| batch.values[i * w + j]));
            let Some(state) = self.keys.get(key, batch.sensors[i], || {
                State::Training(Accumulator::new(d))
            }) else {
                continue;
            };
            match state {
                State::Training(acc) => {
                    acc.push(&self.row);
                    if acc.rows() >= train {
                        *state = match acc.fit(&params) {
                            Ok(model) => State::Ready(model),
                            Err(e) => {
                                tracing::warn!(
                                    "detector {name}: a sensor's model could not be fitted ({e}); it is not scored"
                                );
                                State::Failed
                            }
                        };
                    }
                }
                State::Ready(_) if self.row.iter().all(|v| v.is_finite()) => {
                    self.x.extend_from_slice(&self.row);
                    self.rows.push((i, key));
                }
                _ => {}
            }
        }
        // Runs of one sensor key, each scored by that sensor's model in one kernel call.
        let mut start = 0;
        while start < self.rows.len() {
            let (first, key) = self.rows[start];
            let end = start
                + self.rows[start..]
                    .iter()
                    .take_while(|(_, k)| *k == key)
                    .count();
            // (Rows are gathered only for sensors with a model: the `else` never happens.)
            let Some(State::Ready(model)) =
                self.keys.get(key, batch.sensors[first], || State::Failed)
            else {
                start = end;
                continue;
            };
            let n = end - start;
            self.out.resize(
                n,
                RowScore {
                    t2: 0.0,
                    q: 0.0,
                    score: 0.0,
                },
            );
            self.scorer
                .score(model, &self.x[start * d..end * d], &mut self.out);
            for (&(i, _), s) in self.rows[start..end].iter().zip(&self.out) {
                out.score[i * w + col] = s.score;
            }
            start = end;
        }
    }
}
