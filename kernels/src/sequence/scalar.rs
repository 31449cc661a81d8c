//! The portable novelty pass, the reference of the vector paths, and the per-slot memory step
//! that every path shares.

use super::{hour_key, mix, seed, NoveltyParams, NoveltySlots, LEVEL_LIMIT, MAX_ORDER};

/// The level of `x` for a slot whose range starts at `lo` with `inv_step` levels per unit.
#[inline(always)]
pub(crate) fn level(x: f32, lo: f32, inv_step: f32) -> i32 {
    let l = ((x - lo) * inv_step).floor();
    let l = if l > LEVEL_LIMIT { LEVEL_LIMIT } else { l };
    let l = if l < -LEVEL_LIMIT { -LEVEL_LIMIT } else { l };
    l as i32
}

/// `levels / span` of a learnt range; a flat range gets levels a millionth of its magnitude wide.
pub(crate) fn inv_step(levels: f32, lo: f32, hi: f32) -> f32 {
    let span = hi - lo;
    let floor = 1e-6 * lo.abs().max(hi.abs()).max(1.0);
    let span = if span > floor && span.is_finite() {
        span
    } else {
        floor
    };
    levels / span
}

pub(crate) fn novelty(
    p: &NoveltyParams,
    s: &mut NoveltySlots,
    start: usize,
    x: &[f32],
    hours: &[i32],
    out: &mut [f32],
) {
    for (i, (&xi, o)) in x.iter().zip(out.iter_mut()).enumerate() {
        *o = step(p, s, start + i, xi, hour(p, hours, i));
    }
}

/// The hour of reading `i` for [`step`]: `hours[i]` when `p.time_of_day` (then `hours` is as
/// long as the readings), else unused.
#[inline(always)]
pub(crate) fn hour(p: &NoveltyParams, hours: &[i32], i: usize) -> i32 {
    if p.time_of_day {
        hours[i]
    } else {
        0
    }
}

/// Absorbs `x` (read in hour `hour` of the day, when `p.time_of_day`) into slot `j`; returns its
/// novelty (-1 while learning, NaN for a non-finite `x`).
pub(crate) fn step(p: &NoveltyParams, s: &mut NoveltySlots, j: usize, x: f32, hour: i32) -> f32 {
    if !x.is_finite() {
        return f32::NAN;
    }
    let c = s.count[j];
    if c < p.range_warmup {
        s.lo[j] = s.lo[j].min(x);
        s.hi[j] = s.hi[j].max(x);
        s.count[j] = c + 1;
        if c + 1 == p.range_warmup {
            s.inv_step[j] = inv_step(p.levels, s.lo[j], s.hi[j]);
        }
        return -1.0;
    }
    let lv = level(x, s.lo[j], s.inv_step[j]);
    let shift = 32 - p.memory_bits;
    let mut keys = [0u32; MAX_ORDER + 1];
    let mut h = mix(seed(0), lv);
    for (k, key) in keys[..p.order].iter_mut().enumerate() {
        if k > 0 {
            h = mix(h, s.hist[k - 1][j]);
        }
        *key = mix(h, seed(k) as i32) >> shift;
    }
    keys[p.order] = hour_key(lv, hour, shift);
    let novel = remember(p, s, j, &keys[..p.keys()]);
    for k in (1..MAX_ORDER - 1).rev() {
        s.hist[k][j] = s.hist[k - 1][j];
    }
    s.hist[0][j] = lv;
    settle(p, s, j, novel)
}

/// Looks up the keys of slot `j`'s contexts (bit indices into its memory) and stores them;
/// returns how many were unknown. Rotates the generations when the current one is full.
#[inline(always)]
pub(crate) fn remember(p: &NoveltyParams, s: &mut NoveltySlots, j: usize, keys: &[u32]) -> u32 {
    let words = p.words();
    let cur = &mut s.current[j * words..(j + 1) * words];
    let prev = &s.previous[j * words..(j + 1) * words];
    let mut novel = 0;
    for &key in keys {
        let (w, bit) = ((key >> 5) as usize, 1u32 << (key & 31));
        novel += ((cur[w] | prev[w]) & bit == 0) as u32;
        s.fill[j] += (cur[w] & bit == 0) as u32;
        cur[w] |= bit;
    }
    if s.fill[j] >= p.generation() {
        s.previous[j * words..(j + 1) * words].copy_from_slice(cur);
        cur.fill(0);
        s.fill[j] = 0;
    }
    novel
}

/// The novelty of a reading of slot `j` with `novel` unknown contexts, counting it while the
/// slot still learns.
#[inline(always)]
pub(crate) fn settle(p: &NoveltyParams, s: &mut NoveltySlots, j: usize, novel: u32) -> f32 {
    let c = s.count[j];
    if c < p.scoring_from {
        s.count[j] = c + 1;
        -1.0
    } else {
        novel as f32 / p.keys() as f32
    }
}
