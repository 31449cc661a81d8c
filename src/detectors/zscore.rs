//! The rolling z-score detector: [`vigil_kernels::zscore`] in the per-channel shell.

use super::per_channel::{ChannelKernel, PerChannel};
use std::sync::Arc;
use vigil_kernels::isa::Isa;
use vigil_kernels::zscore::{ZParams, ZScore, ZSlots};

/// Per (sensor, channel) rolling mean and variance; score = |x − mean| / std.
pub type ZScoreDetector = PerChannel<ZScore>;

impl ChannelKernel for ZScore {
    type Slots = ZSlots;

    fn slots_len(slots: &ZSlots) -> usize {
        slots.len()
    }

    fn grow(&self, slots: &mut ZSlots, n: usize) {
        slots.grow(n);
    }

    fn expected(slots: &ZSlots) -> &[f32] {
        &slots.mean
    }

    fn update(
        &mut self,
        slots: &mut ZSlots,
        start: usize,
        values: &[f32],
        _hours: &[i32],
        scores: &mut [f32],
    ) {
        ZScore::update(self, slots, start, values, scores);
    }
}

/// A z-score detector on `isa`, or on the scalar path if this CPU lacks `isa`.
pub fn detector(name: Arc<str>, isa: Isa, params: ZParams) -> ZScoreDetector {
    let kernel = ZScore::new(isa, params)
        .or_else(|| ZScore::new(Isa::Scalar, params))
        .expect("the scalar path is always available");
    PerChannel::new(name, kernel)
}
