//! A deliberately plain f64 model of the z-score update, used only by tests.

/// One slot, in f64.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Slot {
    pub mean: f64,
    pub var: f64,
    pub count: u32,
}

/// The parameters as the oracle sees them (recomputed in f64 from the public inputs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    pub half_life: f64,
    pub warmup: u32,
    pub min_std: f64,
    pub clip: f64,
}

/// Absorbs `x` into `slot`; returns the score (None for a reading that is not a number).
pub(crate) fn step(p: &Params, slot: &mut Slot, x: f32) -> Option<f64> {
    if !x.is_finite() {
        return None;
    }
    let x = x as f64;
    let base_alpha = 1.0 - 0.5f64.powf(1.0 / p.half_life);
    let alpha = base_alpha.max(1.0 / (slot.count as f64 + 1.0));
    let cap = p.warmup.max((1.0 / base_alpha).ceil() as u32);
    let std = slot.var.max(p.min_std * p.min_std).sqrt();
    let deviation = x - slot.mean;
    let warm = slot.count >= p.warmup;
    let score = if warm { deviation.abs() / std } else { 0.0 };
    let used = if warm {
        deviation.clamp(-p.clip * std, p.clip * std)
    } else {
        deviation
    };
    slot.mean += alpha * used;
    if !(warm && deviation.abs() > p.clip * std) {
        slot.var = (1.0 - alpha) * (slot.var + alpha * used * used);
    }
    slot.count = (slot.count + 1).min(cap);
    Some(score)
}
