//! The likelihood detector: [`vigil_kernels::likelihood`] in the per-channel shell.

use super::per_channel::{ChannelKernel, PerChannel};
use std::sync::Arc;
use vigil_kernels::isa::Isa;
use vigil_kernels::likelihood::{Likelihood, LikelihoodParams, LikelihoodSlots};

/// Per (sensor, channel) anomaly likelihood over multi-scale z-scores.
pub type LikelihoodDetector = PerChannel<Likelihood>;

impl ChannelKernel for Likelihood {
    type Slots = LikelihoodSlots;

    fn slots_len(slots: &LikelihoodSlots) -> usize {
        slots.len()
    }

    fn grow(&self, slots: &mut LikelihoodSlots, n: usize) {
        slots.grow(n);
    }

    fn expected(slots: &LikelihoodSlots) -> &[f32] {
        slots.expected()
    }

    fn update(
        &mut self,
        slots: &mut LikelihoodSlots,
        start: usize,
        values: &[f32],
        _hours: &[i32],
        scores: &mut [f32],
    ) {
        Likelihood::update(self, slots, start, values, scores);
    }
}

/// A likelihood detector on `isa`, or on the scalar path if this CPU lacks `isa`.
pub fn detector(name: Arc<str>, isa: Isa, params: LikelihoodParams) -> LikelihoodDetector {
    let kernel = Likelihood::new(isa, params)
        .or_else(|| Likelihood::new(Isa::Scalar, params))
        .expect("the scalar path is always available");
    PerChannel::new(name, kernel)
}
