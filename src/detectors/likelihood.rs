//! The likelihood detector: [`vigil_kernels::likelihood`] over a shard's (sensor, channel) slots.

use super::{for_each_run, Detector, Scores, SlotMap};
use crate::record::RecordBatch;
use std::sync::Arc;
use vigil_kernels::isa::Isa;
use vigil_kernels::likelihood::{Likelihood, LikelihoodParams, LikelihoodSlots};

/// Per (sensor, channel) anomaly likelihood over multi-scale z-scores.
#[derive(Debug)]
pub struct LikelihoodDetector {
    name: Arc<str>,
    kernel: Likelihood,
    slots: LikelihoodSlots,
    map: SlotMap,
}

impl LikelihoodDetector {
    /// A detector on `isa`, or on the scalar path if this CPU lacks `isa`.
    pub fn new(name: Arc<str>, isa: Isa, params: LikelihoodParams) -> LikelihoodDetector {
        let kernel = Likelihood::new(isa, params)
            .or_else(|| Likelihood::new(Isa::Scalar, params))
            .expect("the scalar path is always available");
        LikelihoodDetector {
            name,
            kernel,
            slots: LikelihoodSlots::default(),
            map: SlotMap::default(),
        }
    }
}

impl Detector for LikelihoodDetector {
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn score(&mut self, batch: &RecordBatch, keys: &[u32], out: &mut Scores) {
        let w = batch.width();
        out.reset(batch.len() * w);
        let (kernel, slots) = (&mut self.kernel, &mut self.slots);
        for_each_run(
            &mut self.map,
            &keys[..batch.len()],
            w,
            |map, start, rows| {
                if slots.len() < map.len() {
                    slots.grow(map.len() - slots.len());
                }
                let (a, b) = (rows.start * w, rows.end * w);
                let end = start + (b - a);
                out.expected[a..b].copy_from_slice(&slots.expected()[start..end]);
                kernel.update(slots, start, &batch.values[a..b], &mut out.score[a..b]);
            },
        );
    }
}
