//! The portable novelty pass, the reference of the vector paths.

use super::{mix, seed, NoveltyParams, NoveltySlots, LEVEL_LIMIT, MAX_ORDER};

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
    out: &mut [f32],
) {
    let words = p.words();
    let shift = 32 - p.memory_bits;
    for (i, (&xi, o)) in x.iter().zip(out.iter_mut()).enumerate() {
        let j = start + i;
        if !xi.is_finite() {
            *o = f32::NAN;
            continue;
        }
        let c = s.count[j];
        if c < p.range_warmup {
            s.lo[j] = s.lo[j].min(xi);
            s.hi[j] = s.hi[j].max(xi);
            s.count[j] = c + 1;
            if c + 1 == p.range_warmup {
                s.inv_step[j] = inv_step(p.levels, s.lo[j], s.hi[j]);
            }
            *o = -1.0;
            continue;
        }
        let lv = level(xi, s.lo[j], s.inv_step[j]);
        let cur = &mut s.current[j * words..(j + 1) * words];
        let prev = &s.previous[j * words..(j + 1) * words];
        let mut h = mix(seed(0), lv);
        let mut novel = 0u32;
        for k in 0..p.order {
            if k > 0 {
                h = mix(h, s.hist[k - 1][j]);
            }
            let idx = (mix(h, seed(k) as i32) >> shift) as usize;
            let (w, bit) = (idx >> 5, 1u32 << (idx & 31));
            if (cur[w] | prev[w]) & bit == 0 {
                novel += 1;
            }
            if cur[w] & bit == 0 {
                cur[w] |= bit;
                s.fill[j] += 1;
            }
        }
        if s.fill[j] >= p.generation() {
            s.previous[j * words..(j + 1) * words].copy_from_slice(cur);
            cur.fill(0);
            s.fill[j] = 0;
        }
        for k in (1..MAX_ORDER - 1).rev() {
            s.hist[k][j] = s.hist[k - 1][j];
        }
        s.hist[0][j] = lv;
        if c < p.scoring_from {
            s.count[j] = c + 1;
            *o = -1.0;
        } else {
            *o = novel as f32 / p.order as f32;
        }
    }
}
