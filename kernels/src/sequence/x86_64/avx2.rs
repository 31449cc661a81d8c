//! AVX2 path: 8 slots per step, scalar tail.

// Lane- and order-indexed loops spell out which lane takes which key.
#![allow(clippy::needless_range_loop)]

use super::super::{scalar, seed, NoveltyParams, NoveltySlots, LEVEL_LIMIT, MAX_ORDER};
use core::arch::x86_64::*;

/// [`super::super::mix`] in 8 lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn mix(h: __m256i, level: __m256i) -> __m256i {
    let h = _mm256_mullo_epi32(
        _mm256_xor_si256(h, level),
        _mm256_set1_epi32(0x9E37_79B1_u32 as i32),
    );
    _mm256_xor_si256(h, _mm256_srli_epi32::<15>(h))
}

/// See [`crate::sequence::Sequence::update`].
///
/// # Safety
/// The CPU must support AVX2, and `out` must have the length of `x`, and the slots
/// `start..start + x.len()` must exist.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn novelty(
    p: &NoveltyParams,
    s: &mut NoveltySlots,
    start: usize,
    x: &[f32],
    hours: &[i32],
    out: &mut [f32],
) {
    let n = x.len();
    debug_assert!(out.len() == n && start + n <= s.count.len());
    let body = n - n % 8;
    let sign = _mm256_set1_ps(-0.0);
    let inf = _mm256_set1_ps(f32::INFINITY);
    let limit = _mm256_set1_ps(LEVEL_LIMIT);
    // range_warmup <= 1e9 (SequenceParams::new), so the signed compare is exact.
    let ranged_below = _mm256_set1_epi32(p.range_warmup as i32 - 1);
    let shift = _mm_cvtsi32_si128((32 - p.memory_bits) as i32);
    let mut keys = [[0u32; 8]; MAX_ORDER + 1];
    let mut lane_keys = [0u32; MAX_ORDER + 1];
    let mut i = 0;
    while i < body {
        let j = start + i;
        // SAFETY: j + 8 <= start + n <= the slots' length, and i + 8 <= n; loadu/storeu need no
        // alignment.
        unsafe {
            let xv = _mm256_loadu_ps(x.as_ptr().add(i));
            let c = _mm256_loadu_si256(s.count.as_ptr().add(j).cast());
            let not_finite = _mm256_cmp_ps::<_CMP_NLT_UQ>(_mm256_andnot_ps(sign, xv), inf);
            let ranged = _mm256_castsi256_ps(_mm256_cmpgt_epi32(c, ranged_below));
            if _mm256_movemask_ps(_mm256_andnot_ps(not_finite, ranged)) != 0xFF {
                for l in 0..8 {
                    out[i + l] = scalar::step(p, s, j + l, x[i + l], scalar::hour(p, hours, i + l));
                }
                i += 8;
                continue;
            }
            let lo = _mm256_loadu_ps(s.lo.as_ptr().add(j));
            let inv = _mm256_loadu_ps(s.inv_step.as_ptr().add(j));
            let l = _mm256_floor_ps(_mm256_mul_ps(_mm256_sub_ps(xv, lo), inv));
            let l = _mm256_max_ps(_mm256_min_ps(l, limit), _mm256_set1_ps(-LEVEL_LIMIT));
            let lv = _mm256_cvttps_epi32(l);
            let mut h = mix(_mm256_set1_epi32(seed(0) as i32), lv);
            for k in 0..p.order {
                if k > 0 {
                    let prev = _mm256_loadu_si256(s.hist[k - 1].as_ptr().add(j).cast());
                    h = mix(h, prev);
                }
                let key = _mm256_srl_epi32(mix(h, _mm256_set1_epi32(seed(k) as i32)), shift);
                _mm256_storeu_si256(keys[k].as_mut_ptr().cast(), key);
            }
            if p.time_of_day {
                // hours holds n entries when timed (Sequence::update checked it).
                let hv = _mm256_loadu_si256(hours.as_ptr().add(i).cast());
                let half = _mm256_srai_epi32::<1>(lv);
                let key = mix(mix(_mm256_set1_epi32(seed(MAX_ORDER) as i32), half), hv);
                _mm256_storeu_si256(
                    keys[p.order].as_mut_ptr().cast(),
                    _mm256_srl_epi32(key, shift),
                );
            }
            for k in (1..MAX_ORDER - 1).rev() {
                let prev = _mm256_loadu_si256(s.hist[k - 1].as_ptr().add(j).cast());
                _mm256_storeu_si256(s.hist[k].as_mut_ptr().add(j).cast(), prev);
            }
            _mm256_storeu_si256(s.hist[0].as_mut_ptr().add(j).cast(), lv);
        }
        for l in 0..8 {
            for k in 0..p.keys() {
                lane_keys[k] = keys[k][l];
            }
            let novel = scalar::remember(p, s, j + l, &lane_keys[..p.keys()]);
            out[i + l] = scalar::settle(p, s, j + l, novel);
        }
        i += 8;
    }
    for i in body..n {
        out[i] = scalar::step(p, s, start + i, x[i], scalar::hour(p, hours, i));
    }
}
