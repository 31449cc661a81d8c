//! The baseline detector: [`vigil_kernels::baseline`] in the per-channel shell.

use super::per_channel::{ChannelKernel, PerChannel};
use std::sync::Arc;
use vigil_kernels::baseline::{Baseline, BaselineParams, BaselineSlots};
use vigil_kernels::isa::Isa;

/// Per (sensor, channel) deviation from the baseline of its first readings.
pub type BaselineDetector = PerChannel<Baseline>;

impl ChannelKernel for Baseline {
    type Slots = BaselineSlots;

    fn slots_len(slots: &BaselineSlots) -> usize {
        slots.len()
    }

    fn grow(&self, slots: &mut BaselineSlots, n: usize) {
        slots.grow(n);
    }

    fn expected(slots: &BaselineSlots) -> &[f32] {
        slots.expected()
    }

    fn update(
        &mut self,
        slots: &mut BaselineSlots,
        start: usize,
        values: &[f32],
        _hours: &[i32],
        scores: &mut [f32],
    ) {
        Baseline::update(self, slots, start, values, scores);
    }

    fn deviation(slots: &BaselineSlots, slot: usize, x: f32) -> Option<f32> {
        Some(slots.deviation(slot, x))
    }
}

/// A baseline detector on `isa`, or on the scalar path if this CPU lacks `isa`.
pub fn detector(name: Arc<str>, isa: Isa, params: BaselineParams) -> BaselineDetector {
    let kernel = Baseline::new(isa, params)
        .or_else(|| Baseline::new(Isa::Scalar, params))
        .expect("the scalar path is always available");
    PerChannel::new(name, kernel)
}
