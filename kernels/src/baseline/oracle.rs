//! A deliberately plain f64 model of the baseline detector, used only by tests.

/// One slot, in f64: the training readings kept whole, then the frozen baseline.
#[derive(Clone, Debug, Default)]
pub(crate) struct Slot {
    pub seen: Vec<f64>,
    pub mean: f64,
    pub scale: f64,
    pub smooth: f64,
}

/// The parameters as the oracle sees them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    pub train: usize,
    pub rel_floor: f64,
    pub min_std: f64,
    pub smooth_half_life: f64,
}

/// Absorbs `x` into `slot`; returns the score (None for a reading that is not a number).
pub(crate) fn step(p: &Params, slot: &mut Slot, x: f32) -> Option<f64> {
    if !x.is_finite() {
        return None;
    }
    let x = x as f64;
    if slot.seen.len() < p.train {
        slot.seen.push(x);
        if slot.seen.len() == p.train {
            let n = p.train as f64;
            let mean = slot.seen.iter().sum::<f64>() / n;
            let var = slot
                .seen
                .iter()
                .map(|v| (v - mean) * (v - mean))
                .sum::<f64>()
                / n;
            slot.mean = mean;
            slot.scale = var.sqrt().max(p.rel_floor * mean.abs()).max(p.min_std);
        }
        return Some(0.0);
    }
    let alpha = 1.0 - 0.5f64.powf(1.0 / p.smooth_half_life);
    let z = ((x - slot.mean).abs() / slot.scale).min(super::Z_CAP as f64);
    slot.smooth += alpha * (z - slot.smooth);
    Some(slot.smooth)
}
