//! AVX-512 path: 16 slots per step, the last one masked to the slots that remain.

// Lane- and order-indexed loops spell out which lane takes which key.
#![allow(clippy::needless_range_loop)]

use super::super::{scalar, seed, NoveltyParams, NoveltySlots, LEVEL_LIMIT, MAX_ORDER};
use core::arch::x86_64::*;

/// [`super::super::mix`] in 16 lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn mix(h: __m512i, level: __m512i) -> __m512i {
    let h = _mm512_mullo_epi32(
        _mm512_xor_si512(h, level),
        _mm512_set1_epi32(0x9E37_79B1_u32 as i32),
    );
    _mm512_xor_si512(h, _mm512_srli_epi32::<15>(h))
}

/// See [`crate::sequence::Sequence::update`].
///
/// # Safety
/// The CPU must support AVX-512F, and `out` must have the length of `x`, and the slots
/// `start..start + x.len()` must exist.
#[target_feature(enable = "avx512f")]
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
    let inf = _mm512_set1_ps(f32::INFINITY);
    let limit = _mm512_set1_ps(LEVEL_LIMIT);
    // range_warmup <= 1e9 (SequenceParams::new), so the signed compare is exact.
    let ranged_below = _mm512_set1_epi32(p.range_warmup as i32 - 1);
    let shift = _mm_cvtsi32_si128((32 - p.memory_bits) as i32);
    let mut keys = [[0u32; 16]; MAX_ORDER + 1];
    let mut lane_keys = [0u32; MAX_ORDER + 1];
    let mut i = 0;
    while i < n {
        let j = start + i;
        let lanes = (n - i).min(16);
        // The lanes of slots j..j + lanes.
        let m: __mmask16 = if lanes == 16 {
            0xFFFF
        } else {
            (1u16 << lanes) - 1
        };
        // SAFETY: lanes i + l < n and slots j + l < start + n <= the slots' length are the only
        // ones the masked loads and stores touch; no alignment needed.
        unsafe {
            let xv = _mm512_maskz_loadu_ps(m, x.as_ptr().add(i));
            let c = _mm512_maskz_loadu_epi32(m, s.count.as_ptr().add(j).cast());
            let finite = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(xv), inf);
            let ranged = _mm512_cmpgt_epi32_mask(c, ranged_below);
            if finite & ranged & m != m {
                for l in 0..lanes {
                    out[i + l] = scalar::step(p, s, j + l, x[i + l], scalar::hour(p, hours, i + l));
                }
                i += 16;
                continue;
            }
            let lo = _mm512_maskz_loadu_ps(m, s.lo.as_ptr().add(j));
            let inv = _mm512_maskz_loadu_ps(m, s.inv_step.as_ptr().add(j));
            let l = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(
                _mm512_mul_ps(_mm512_sub_ps(xv, lo), inv),
            );
            let l = _mm512_max_ps(_mm512_min_ps(l, limit), _mm512_set1_ps(-LEVEL_LIMIT));
            let lv = _mm512_cvttps_epi32(l);
            let mut h = mix(_mm512_set1_epi32(seed(0) as i32), lv);
            for k in 0..p.order {
                if k > 0 {
                    let prev = _mm512_maskz_loadu_epi32(m, s.hist[k - 1].as_ptr().add(j).cast());
                    h = mix(h, prev);
                }
                let key = _mm512_srl_epi32(mix(h, _mm512_set1_epi32(seed(k) as i32)), shift);
                _mm512_storeu_si512(keys[k].as_mut_ptr().cast(), key);
            }
            if p.time_of_day {
                // hours holds n entries when timed (Sequence::update checked it).
                let hv = _mm512_maskz_loadu_epi32(m, hours.as_ptr().add(i).cast());
                let half = _mm512_srai_epi32::<1>(lv);
                let key = mix(mix(_mm512_set1_epi32(seed(MAX_ORDER) as i32), half), hv);
                _mm512_storeu_si512(
                    keys[p.order].as_mut_ptr().cast(),
                    _mm512_srl_epi32(key, shift),
                );
            }
            for k in (1..MAX_ORDER - 1).rev() {
                let prev = _mm512_maskz_loadu_epi32(m, s.hist[k - 1].as_ptr().add(j).cast());
                _mm512_mask_storeu_epi32(s.hist[k].as_mut_ptr().add(j).cast(), m, prev);
            }
            _mm512_mask_storeu_epi32(s.hist[0].as_mut_ptr().add(j).cast(), m, lv);
        }
        for l in 0..lanes {
            for k in 0..p.keys() {
                lane_keys[k] = keys[k][l];
            }
            let novel = scalar::remember(p, s, j + l, &lane_keys[..p.keys()]);
            out[i + l] = scalar::settle(p, s, j + l, novel);
        }
        i += 16;
    }
}
