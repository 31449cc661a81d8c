//! A deliberately plain model of the novelty stage, used only by tests: one slot at a time, its
//! history a queue, its memory two sets of bit positions. Only the definitions are shared with the
//! kernel (the level of a reading, the hash of a context); the bookkeeping is written anew.

use super::{mix, seed};
use std::collections::{HashSet, VecDeque};

/// The parameters as the oracle sees them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    pub levels: u32,
    pub order: usize,
    pub range_warmup: u32,
    pub learn: u32,
    pub memory_bits: u32,
    pub time_of_day: bool,
}

/// One slot.
#[derive(Clone, Debug, Default)]
pub(crate) struct Slot {
    seen: u32,
    lo: f32,
    hi: f32,
    inv_step: f32,
    /// Previous levels, most recent first.
    past: VecDeque<i32>,
    current: HashSet<u32>,
    previous: HashSet<u32>,
}

/// Absorbs `x`, read in hour `hour` of the day; returns its novelty, `None` while the slot
/// learns, NaN for a non-finite `x`.
pub(crate) fn step(p: &Params, slot: &mut Slot, x: f32, hour: i32) -> Option<f32> {
    if !x.is_finite() {
        return Some(f32::NAN);
    }
    if slot.seen < p.range_warmup {
        if slot.seen == 0 {
            (slot.lo, slot.hi) = (x, x);
        }
        slot.lo = slot.lo.min(x);
        slot.hi = slot.hi.max(x);
        slot.seen += 1;
        if slot.seen == p.range_warmup {
            let floor = 1e-6 * slot.lo.abs().max(slot.hi.abs()).max(1.0);
            let span = slot.hi - slot.lo;
            let span = if span.is_finite() && span > floor {
                span
            } else {
                floor
            };
            slot.inv_step = p.levels as f32 / span;
        }
        return None;
    }
    let limit = (1 << 24) as f32;
    let level = ((x - slot.lo) * slot.inv_step).floor().clamp(-limit, limit) as i32;
    let mut novel = 0;
    for k in 0..p.order {
        // The context of length k + 1: this level and the k before it (a missing one, at the
        // start of the series, is i32::MIN).
        let mut h = mix(seed(0), level);
        for back in 0..k {
            h = mix(h, slot.past.get(back).copied().unwrap_or(i32::MIN));
        }
        let key = mix(h, seed(k) as i32) >> (32 - p.memory_bits);
        if !slot.current.contains(&key) && !slot.previous.contains(&key) {
            novel += 1;
        }
        slot.current.insert(key);
    }
    if p.time_of_day {
        // The level, halved (rounding down), in its hour of the day.
        let half = level.div_euclid(2);
        let key = mix(mix(seed(super::MAX_ORDER), half), hour) >> (32 - p.memory_bits);
        if !slot.current.contains(&key) && !slot.previous.contains(&key) {
            novel += 1;
        }
        slot.current.insert(key);
    }
    if slot.current.len() >= 1 << (p.memory_bits - 2) {
        slot.previous = std::mem::take(&mut slot.current);
    }
    slot.past.push_front(level);
    slot.past.truncate(super::MAX_ORDER - 1);
    let scoring = slot.seen >= p.range_warmup + p.learn;
    if !scoring {
        slot.seen += 1;
        return None;
    }
    Some(novel as f32 / (p.order + p.time_of_day as usize) as f32)
}
