//! AVX2 path: 8 slots per step, scalar tail.

use super::super::{scalar, ZParams};
use core::arch::x86_64::*;

/// See [`crate::zscore::ZScore::update`].
///
/// # Safety
/// The CPU must support AVX2 and FMA, and every slice must have the length of `x`.
#[target_feature(enable = "avx2,fma")]
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
    let body = n - n % 8;

    let sign = _mm256_set1_ps(-0.0);
    let inf = _mm256_set1_ps(f32::INFINITY);
    let onef = _mm256_set1_ps(1.0);
    let alpha = _mm256_set1_ps(p.alpha);
    let one_minus_alpha = _mm256_set1_ps(1.0 - p.alpha);
    let min_var = _mm256_set1_ps(p.min_var);
    let clip = _mm256_set1_ps(p.clip);
    let tiny_mean = _mm256_set1_ps(p.tiny_mean);
    let tiny_var = _mm256_set1_ps(p.tiny_var);
    // warmup >= 1 and <= 1e9 (ZParams::new), so `count > warmup - 1` is a signed compare that works.
    let warm_below = _mm256_set1_epi32((p.warmup - 1) as i32);
    let cap = _mm256_set1_epi32(p.count_cap as i32);
    let one = _mm256_set1_epi32(1);

    let (xp, mp, vp, cp, sp) = (
        x.as_ptr(),
        mean.as_mut_ptr(),
        var.as_mut_ptr(),
        count.as_mut_ptr(),
        score.as_mut_ptr(),
    );
    let mut i = 0;
    while i < body {
        // SAFETY: i + 8 <= body <= n and every slice has length n, so each 8-lane access is in
        // bounds; loadu/storeu need no alignment.
        unsafe {
            let xv = _mm256_loadu_ps(xp.add(i));
            let m = _mm256_loadu_ps(mp.add(i));
            let v = _mm256_loadu_ps(vp.add(i));
            let c = _mm256_loadu_si256(cp.add(i) as *const __m256i);

            // All ones (a NaN) where x is NaN or infinite.
            let not_finite = _mm256_cmp_ps::<_CMP_NLT_UQ>(_mm256_andnot_ps(sign, xv), inf);
            let d = _mm256_sub_ps(xv, m);
            let abs_d = _mm256_andnot_ps(sign, d);
            let sd = _mm256_sqrt_ps(_mm256_max_ps(v, min_var));
            let z = _mm256_div_ps(abs_d, sd);
            let warm = _mm256_castsi256_ps(_mm256_cmpgt_epi32(c, warm_below));
            let lim = _mm256_blendv_ps(inf, _mm256_mul_ps(clip, sd), warm);
            let dc = _mm256_min_ps(_mm256_max_ps(d, _mm256_xor_ps(lim, sign)), lim);
            let outlier = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_d, lim);
            let c1 = _mm256_add_epi32(c, one);
            // Settled slots (count at its cap) use alpha as it is: 1/(cap + 1) < alpha, so the max
            // would pick alpha anyway. Skipping the division there is exact, and in steady state
            // every slot is settled.
            let settled =
                _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(c, cap))) == 0xFF;
            let (a, one_minus_a) = if settled {
                (alpha, one_minus_alpha)
            } else {
                // counts stay below 2^31, and the convert rounds to nearest like `(c + 1) as f32`.
                let a = _mm256_max_ps(alpha, _mm256_div_ps(onef, _mm256_cvtepi32_ps(c1)));
                (a, _mm256_sub_ps(onef, a))
            };
            let incr = _mm256_mul_ps(a, dc);
            let m1 = _mm256_add_ps(m, incr);
            let v1 = _mm256_mul_ps(one_minus_a, _mm256_add_ps(v, _mm256_mul_ps(dc, incr)));
            let v1 = _mm256_blendv_ps(v1, v, outlier);
            // As the scalar path: flush a vanishing mean or variance to 0.
            let m1 = _mm256_andnot_ps(
                _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_andnot_ps(sign, m1), tiny_mean),
                m1,
            );
            let v1 = _mm256_andnot_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(v1, tiny_var), v1);
            let ok = _mm256_andnot_ps(
                not_finite,
                _mm256_and_ps(
                    _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_andnot_ps(sign, m1), inf),
                    _mm256_cmp_ps::<_CMP_LT_OQ>(v1, inf),
                ),
            );
            let c1 = _mm256_min_epu32(c1, cap);

            _mm256_storeu_ps(mp.add(i), _mm256_blendv_ps(m, m1, ok));
            _mm256_storeu_ps(vp.add(i), _mm256_blendv_ps(v, v1, ok));
            _mm256_storeu_si256(
                cp.add(i) as *mut __m256i,
                _mm256_blendv_epi8(c, c1, _mm256_castps_si256(ok)),
            );
            let s = _mm256_or_ps(_mm256_and_ps(z, warm), not_finite);
            _mm256_storeu_ps(sp.add(i), s);
        }
        i += 8;
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
