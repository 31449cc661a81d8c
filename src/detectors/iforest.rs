//! The isolation-forest detector: one multivariate score per record from a sensor's channels
//! together, by a trained model ([`crate::iforest`]) and the vectorized forest kernel.
//!
//! Rows of every applicable sensor in a batch are scored by one kernel call. A sensor applies when
//! its records carry every channel the model reads (and it is in the detector's `sensors`, if set);
//! records of a schema that lacks one are not scored by this detector, with one warning per schema.
//! The score (in (0, 1], scikit-learn's `-score_samples`) is written on the model's first channel,
//! the one its alerts name; the other channels get no observation from this detector.

use super::top_contributions;
use super::{Detector, KeyStates, SchemaCache};
use crate::contract::{Explanation, Scores};
use crate::iforest::features::Layout;
use crate::iforest::model::IForestModel;
use crate::record::{NameTable, RecordBatch};
use std::sync::Arc;
use vigil_kernels::iforest::Scorer;
use vigil_kernels::isa::Isa;

/// Per shard: the model, each sensor key's feature history, and scratch columns.
#[derive(Debug)]
pub struct IForestDetector {
    name: Arc<str>,
    model: Arc<IForestModel>,
    scorer: Scorer,
    /// Each applicable sensor key's feature history.
    keys: KeyStates<Vec<f32>>,
    /// By schema: where the features read, and the alert column.
    layouts: SchemaCache<(Layout, usize)>,
    x: Vec<f32>,
    rows: Vec<usize>,
    sums: Vec<f32>,
    feature_row: Vec<f32>,
    /// Per feature, what is ordinary for it (see [`IForestDetector::explain`]).
    typical: Vec<f32>,
}

impl IForestDetector {
    /// A detector on `isa` (or scalar if this CPU lacks it).
    pub fn new(
        name: Arc<str>,
        isa: Isa,
        model: Arc<IForestModel>,
        sensors: Arc<[String]>,
        names: Arc<NameTable>,
    ) -> IForestDetector {
        let scorer = Scorer::new(isa, &model.forest)
            .or_else(|| Scorer::new(Isa::Scalar, &model.forest))
            .expect("the scalar path is always available");
        tracing::debug!(
            detector = %name,
            isa = %scorer.isa(),
            read = scorer.fetch().name(),
            "isolation forest scorer ready (on AVX-512, read is the faster way as timed at load)"
        );
        let typical = typical_features(&model);
        IForestDetector {
            name,
            typical,
            feature_row: vec![0.0; model.features.len()],
            model,
            scorer,
            keys: KeyStates::new(sensors, names),
            layouts: SchemaCache::default(),
            x: Vec::new(),
            rows: Vec::new(),
            sums: Vec::new(),
        }
    }

    fn layout(&mut self, batch: &RecordBatch) -> Option<(Layout, usize)> {
        let features = &self.model.features;
        self.layouts.get(&self.name, &batch.schema, |channels| {
            let layout =
                Layout::new(features, channels).map_err(|missing| format!("{missing:?}"))?;
            let first = &features[0].channel;
            let col = channels.iter().position(|c| **c == **first).unwrap_or(0);
            Ok((layout, col))
        })
    }
}

/// Per feature, the value an occlusion puts in its place: its training mean where the model
/// carries its training data's summary, else the median of the thresholds the forest splits it at
/// (NaN, and never occluded, when it splits on it nowhere).
fn typical_features(model: &IForestModel) -> Vec<f32> {
    let f = model.features.len();
    if model.training.summary.len() == f {
        return model
            .training
            .summary
            .iter()
            .map(|s| s.mean as f32)
            .collect();
    }
    (0..f)
        .map(|j| model.forest.median_threshold(j).unwrap_or(f32::NAN))
        .collect()
}

impl Detector for IForestDetector {
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// By occlusion: the opening row is scored again once per feature with that feature at its
    /// typical value; a channel's weight is how much its features' occlusions lowered the score.
    fn explain(&mut self, batch: &RecordBatch, row: usize, _key: u32) -> Explanation {
        let Ok(p) = self.rows.binary_search(&row) else {
            return Explanation::default();
        };
        let f = self.model.features.len();
        let (x, score) = (&self.x[p * f..(p + 1) * f], self.sums[p]);
        let mut occluded = Vec::with_capacity(f * f);
        for (j, &t) in self.typical.iter().enumerate() {
            occluded.extend_from_slice(x);
            if t.is_finite() {
                occluded[j * f + j] = t;
            }
        }
        let mut scores = vec![0.0; f];
        self.scorer
            .score(&self.model.forest, &occluded, &mut scores);
        let channel = |name: &str| -> Arc<str> {
            batch
                .schema
                .channels
                .iter()
                .find(|c| ***c == *name)
                .cloned()
                .unwrap_or_else(|| name.into())
        };
        Explanation {
            contributions: top_contributions(
                self.model
                    .features
                    .iter()
                    .zip(&scores)
                    .map(|(feat, &s)| (channel(&feat.channel), score as f64 - s as f64)),
            ),
            expected: None,
        }
    }

    fn score(&mut self, batch: &RecordBatch, keys: &[u32], out: &mut Scores) {
        let w = batch.width();
        out.reset(batch.len() * w);
        out.score.fill(f32::NAN);
        out.expected.fill(f32::NAN);
        self.x.clear();
        self.rows.clear();
        let Some((layout, col)) = self.layout(batch) else {
            return;
        };
        for (i, &key) in keys[..batch.len()].iter().enumerate() {
            let Some(history) = self
                .keys
                .get(key, batch.sensors[i], || layout.fresh_history())
            else {
                continue;
            };
            if layout.compute(batch.row(i), history, &mut self.feature_row) {
                self.x.extend_from_slice(&self.feature_row);
                self.rows.push(i);
            }
        }
        self.sums.resize(self.rows.len(), 0.0);
        self.scorer
            .score(&self.model.forest, &self.x, &mut self.sums);
        for (&i, &s) in self.rows.iter().zip(&self.sums) {
            out.score[i * w + col] = s;
        }
    }
}
