//! The rolling z-score detector: [`vigil_kernels::zscore`] over a shard's (sensor, channel) slots.

use super::{for_each_run, Detector, Scores, SlotMap};
use crate::record::RecordBatch;
use std::sync::Arc;
use vigil_kernels::isa::Isa;
use vigil_kernels::zscore::{ZParams, ZScore, ZSlots};

/// Per (sensor, channel) rolling mean and variance; score = |x − mean| / std.
#[derive(Debug)]
pub struct ZScoreDetector {
    name: Arc<str>,
    kernel: ZScore,
    slots: ZSlots,
    map: SlotMap,
}

impl ZScoreDetector {
    /// A detector on `isa`, or on the scalar path if this CPU lacks `isa`.
    pub fn new(name: Arc<str>, isa: Isa, params: ZParams) -> ZScoreDetector {
        let kernel = ZScore::new(isa, params)
            .or_else(|| ZScore::new(Isa::Scalar, params))
            .expect("the scalar path is always available");
        ZScoreDetector {
            name,
            kernel,
            slots: ZSlots::default(),
            map: SlotMap::default(),
        }
    }

    /// The instruction set in use.
    pub fn isa(&self) -> Isa {
        self.kernel.isa()
    }
}

impl Detector for ZScoreDetector {
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn score(&mut self, batch: &RecordBatch, keys: &[u32], out: &mut Scores) {
        let w = batch.width();
        out.reset(batch.len() * w);
        let (kernel, slots) = (&self.kernel, &mut self.slots);
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
                out.expected[a..b].copy_from_slice(&slots.mean[start..end]);
                kernel.update(slots, start, &batch.values[a..b], &mut out.score[a..b]);
            },
        );
    }
}
