//! The rolling z-score detector: [`vigil_kernels::zscore`] over a shard's (sensor, channel) slots.

use super::{Detector, Scores, SlotMap};
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

    /// Rows whose sensors sit in adjacent slot blocks (as when every sensor reports once per tick,
    /// in a steady order) are scored by one kernel call over the whole run of slots, straight from
    /// the batch's row-major values: no gather, no copy.
    fn score(&mut self, batch: &RecordBatch, keys: &[u32], out: &mut Scores) {
        let w = batch.width();
        let rows = batch.len();
        out.reset(rows * w);
        let mut r = 0;
        while r < rows {
            let start = self.block(keys[r], w);
            let mut end_row = r + 1;
            let mut next = start + w;
            while end_row < rows && self.block(keys[end_row], w) == next {
                next += w;
                end_row += 1;
            }
            let (a, b) = (r * w, end_row * w);
            out.expected[a..b].copy_from_slice(&self.slots.mean[start..next]);
            self.kernel.update(
                &mut self.slots,
                start,
                &batch.values[a..b],
                &mut out.score[a..b],
            );
            r = end_row;
        }
    }
}

impl ZScoreDetector {
    #[inline]
    fn block(&mut self, key: u32, width: usize) -> usize {
        let (base, new) = self.map.base(key, width);
        if new {
            self.slots.grow(width);
        }
        base
    }
}
