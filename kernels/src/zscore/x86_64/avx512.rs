//! AVX-512 path: 16 slots per step with mask registers, scalar tail. Same operations in the same
//! order as the scalar and AVX2 paths, so the results are bit-identical.

use super::super::{scalar, ZParams};
use core::arch::x86_64::*;

/// See [`crate::zscore::ZScore::update`].
///
/// # Safety
/// The CPU must support AVX-512F, and every slice must have the length of `x`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn update(
    p: &ZParams,
    mean: &mut [f32],
    var: &mut [f32],
    count: &mut [u32],
    x: &[f32],
    score: &mut [f32],
) {
    let n = x.len();
    debug_assert!(mean.len() == n && var.len() == n && count.len() == n && score.len() == n);
    let body = n - n % 16;

    let inf = _mm512_set1_ps(f32::INFINITY);
    let no_score = _mm512_set1_ps(scalar::NO_SCORE);
    let onef = _mm512_set1_ps(1.0);
    let alpha = _mm512_set1_ps(p.alpha);
    let one_minus_alpha = _mm512_set1_ps(1.0 - p.alpha);
    let min_var = _mm512_set1_ps(p.min_var);
    let clip = _mm512_set1_ps(p.clip);
    // warmup >= 1 and <= 1e9 (ZParams::new), so a signed `count > warmup - 1` works.
    let warm_below = _mm512_set1_epi32((p.warmup - 1) as i32);
    let cap = _mm512_set1_epi32(p.count_cap as i32);
    let one = _mm512_set1_epi32(1);

    let (xp, mp, vp, cp, sp) = (
        x.as_ptr(),
        mean.as_mut_ptr(),
        var.as_mut_ptr(),
        count.as_mut_ptr(),
        score.as_mut_ptr(),
    );
    let mut i = 0;
    while i < body {
        // SAFETY: i + 16 <= body <= n and every slice has length n, so each 16-lane access is in
        // bounds; loadu/storeu need no alignment.
        unsafe {
            let xv = _mm512_loadu_ps(xp.add(i));
            let m = _mm512_loadu_ps(mp.add(i));
            let v = _mm512_loadu_ps(vp.add(i));
            let c = _mm512_loadu_si512(cp.add(i) as *const __m512i);

            let finite_x = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(xv), inf);
            let d = _mm512_sub_ps(xv, m);
            let abs_d = _mm512_abs_ps(d);
            let sd = _mm512_sqrt_ps(_mm512_max_ps(v, min_var));
            let z = _mm512_div_ps(abs_d, sd);
            let warm = _mm512_cmpgt_epi32_mask(c, warm_below);
            // clip·sd where warm, +inf (clips nothing) while warming up.
            let lim = _mm512_mask_mul_ps(inf, warm, clip, sd);
            let dc = _mm512_min_ps(
                _mm512_max_ps(d, _mm512_sub_ps(_mm512_setzero_ps(), lim)),
                lim,
            );
            let outlier = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(abs_d, lim);
            let c1 = _mm512_add_epi32(c, one);
            let settled = _mm512_cmpeq_epi32_mask(c, cap) == 0xFFFF;
            let (a, one_minus_a) = if settled {
                (alpha, one_minus_alpha)
            } else {
                let a = _mm512_max_ps(alpha, _mm512_div_ps(onef, _mm512_cvtepi32_ps(c1)));
                (a, _mm512_sub_ps(onef, a))
            };
            let incr = _mm512_mul_ps(a, dc);
            let m1 = _mm512_add_ps(m, incr);
            let v1 = _mm512_mul_ps(one_minus_a, _mm512_add_ps(v, _mm512_mul_ps(dc, incr)));
            let v1 = _mm512_mask_blend_ps(outlier, v1, v);
            let ok = finite_x
                & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(m1), inf)
                & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v1, inf);

            _mm512_storeu_ps(mp.add(i), _mm512_mask_blend_ps(ok, m, m1));
            _mm512_storeu_ps(vp.add(i), _mm512_mask_blend_ps(ok, v, v1));
            let c_new = _mm512_mask_blend_epi32(ok, c, _mm512_min_epu32(c1, cap));
            _mm512_storeu_si512(cp.add(i) as *mut __m512i, c_new);
            let s = _mm512_mask_mov_ps(no_score, finite_x, _mm512_maskz_mov_ps(warm, z));
            _mm512_storeu_ps(sp.add(i), s);
        }
        i += 16;
    }
    scalar::update(
        p,
        &mut mean[body..],
        &mut var[body..],
        &mut count[body..],
        &x[body..],
        &mut score[body..],
    );
}
