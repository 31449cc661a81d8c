//! The sequence detector: [`vigil_kernels::sequence`] in the per-channel shell.

use super::per_channel::{ChannelKernel, PerChannel};
use std::sync::Arc;
use vigil_kernels::isa::Isa;
use vigil_kernels::sequence::{Sequence, SequenceParams, SequenceSlots};

/// Per (sensor, channel) sequence novelty and anomaly likelihood.
pub type SequenceDetector = PerChannel<Sequence>;

impl ChannelKernel for Sequence {
    type Slots = SequenceSlots;

    fn slots_len(slots: &SequenceSlots) -> usize {
        slots.len()
    }

    fn grow(&self, slots: &mut SequenceSlots, n: usize) {
        slots.grow(n, self.params());
    }

    fn expected(slots: &SequenceSlots) -> &[f32] {
        slots.expected()
    }

    fn update(
        &mut self,
        slots: &mut SequenceSlots,
        start: usize,
        values: &[f32],
        hours: &[i32],
        scores: &mut [f32],
    ) {
        Sequence::update(self, slots, start, values, hours, scores);
    }

    fn timed(&self) -> bool {
        Sequence::timed(self)
    }
}

/// A sequence detector on `isa`, or on the scalar path if this CPU lacks `isa`.
pub fn detector(name: Arc<str>, isa: Isa, params: SequenceParams) -> SequenceDetector {
    let kernel = Sequence::new(isa, params)
        .or_else(|| Sequence::new(Isa::Scalar, params))
        .expect("the scalar path is always available");
    PerChannel::new(name, kernel)
}
