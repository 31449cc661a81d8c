//! A deliberately plain f64 model of the likelihood detector, one slot at a time, built on the
//! z-score oracle. Used only by tests.

use super::LikelihoodSpec;
use crate::zscore::oracle::{self as z, Slot};

/// One slot, in f64.
#[derive(Clone, Copy, Debug)]
pub(crate) struct State {
    pub fast: Slot,
    pub slow: Slot,
    pub diff: Slot,
    pub history: Slot,
    pub prev: Option<f64>,
    pub smooth: f64,
}

impl Default for State {
    fn default() -> Self {
        State {
            fast: Slot::default(),
            slow: Slot::default(),
            diff: Slot::default(),
            history: Slot::default(),
            prev: None,
            smooth: 0.0,
        }
    }
}

/// Absorbs `x`; returns the score (None for a reading that is not a number).
pub(crate) fn step(spec: &LikelihoodSpec, s: &mut State, x: f32) -> Option<f64> {
    if !x.is_finite() {
        return None;
    }
    let zp = |half_life: f64| z::Params {
        half_life,
        warmup: spec.warmup,
        min_std: spec.min_std as f64,
        clip: spec.clip as f64,
    };
    let warm = s.slow.count >= spec.warmup;
    let cap = spec.cap as f64;
    let zf = z::step(&zp(spec.fast_half_life), &mut s.fast, x)?;
    let zs = z::step(&zp(spec.half_life), &mut s.slow, x)?;
    let zd = match s.prev {
        Some(p) => z::step(&zp(spec.half_life), &mut s.diff, (x as f64 - p) as f32).unwrap_or(0.0),
        None => 0.0,
    };
    s.prev = Some(x as f64);
    let raw = zf.min(cap).max(zs.min(cap)).max(zd.min(cap));
    let beta = 1.0 - 0.5f64.powf(1.0 / spec.smooth_half_life);
    s.smooth += beta * (raw - s.smooth);
    if !warm {
        return Some(0.0);
    }
    let hp = z::Params {
        half_life: spec.history_half_life,
        warmup: spec.history_warmup,
        min_std: super::HISTORY_MIN_STD as f64,
        clip: f64::INFINITY,
    };
    z::step(&hp, &mut s.history, s.smooth as f32)
}
