//! AVX2 path: 8 slots per step, scalar tail.

use super::super::{scalar, BaselineParams, Columns, Z_CAP};
use core::arch::x86_64::*;

/// See [`crate::baseline::Baseline::update`].
///
/// # Safety
/// The CPU must support AVX2, and every column must have the length of `x`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn update(p: &BaselineParams, s: Columns<'_>, x: &[f32], score: &mut [f32]) {
    let n = x.len();
    debug_assert!(s.count.len() == n && s.mean.len() == n && score.len() == n);
    let body = n - n % 8;
    let sign = _mm256_set1_ps(-0.0);
    let inf = _mm256_set1_ps(f32::INFINITY);
    let nan = _mm256_set1_ps(f32::NAN);
    let zero = _mm256_setzero_ps();
    let onef = _mm256_set1_ps(1.0);
    let cap = _mm256_set1_ps(Z_CAP);
    let alpha = _mm256_set1_ps(p.alpha);
    let rel = _mm256_set1_ps(p.rel_floor);
    let min_std = _mm256_set1_ps(p.min_std);
    // train <= 1e7 (BaselineParams::new): signed compares and exact conversions.
    let train = _mm256_set1_epi32(p.train as i32);
    let one = _mm256_set1_epi32(1);
    let (xp, cp, mp, qp, ip, smp, sp) = (
        x.as_ptr(),
        s.count.as_mut_ptr(),
        s.mean.as_mut_ptr(),
        s.m2.as_mut_ptr(),
        s.inv_scale.as_mut_ptr(),
        s.smooth.as_mut_ptr(),
        score.as_mut_ptr(),
    );
    let mut i = 0;
    while i < body {
        // SAFETY: i + 8 <= body <= n and every column has length n; loadu/storeu need no
        // alignment.
        unsafe {
            let xv = _mm256_loadu_ps(xp.add(i));
            let c = _mm256_loadu_si256(cp.add(i) as *const __m256i);
            let m = _mm256_loadu_ps(mp.add(i));
            let q = _mm256_loadu_ps(qp.add(i));
            let inv = _mm256_loadu_ps(ip.add(i));
            let sm = _mm256_loadu_ps(smp.add(i));

            let finite = _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_andnot_ps(sign, xv), inf);
            let learning = _mm256_castsi256_ps(_mm256_cmpgt_epi32(train, c));
            let d = _mm256_sub_ps(xv, m);
            if _mm256_movemask_ps(learning) == 0 {
                // Every lane has its baseline (the steady state): score only. The same
                // operations as below, so the bits are the same.
                let z = _mm256_min_ps(_mm256_mul_ps(_mm256_andnot_ps(sign, d), inv), cap);
                let sm1 = _mm256_add_ps(sm, _mm256_mul_ps(alpha, _mm256_sub_ps(z, sm)));
                _mm256_storeu_ps(smp.add(i), _mm256_blendv_ps(sm, sm1, finite));
                _mm256_storeu_ps(sp.add(i), _mm256_blendv_ps(nan, sm1, finite));
                i += 8;
                continue;
            }
            // Learning lanes.
            let c1 = _mm256_add_epi32(c, one);
            let c1f = _mm256_cvtepi32_ps(c1);
            let m1 = _mm256_add_ps(m, _mm256_div_ps(d, c1f));
            let q1 = _mm256_add_ps(q, _mm256_mul_ps(d, _mm256_sub_ps(xv, m1)));
            let sane = _mm256_and_ps(
                _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_andnot_ps(sign, m1), inf),
                _mm256_cmp_ps::<_CMP_LT_OQ>(q1, inf),
            );
            let absorb = _mm256_and_ps(_mm256_and_ps(finite, learning), sane);
            let learnt = _mm256_and_ps(absorb, _mm256_castsi256_ps(_mm256_cmpeq_epi32(c1, train)));
            let sd = _mm256_sqrt_ps(_mm256_div_ps(q1, c1f));
            let scale = _mm256_max_ps(
                _mm256_max_ps(sd, _mm256_mul_ps(rel, _mm256_andnot_ps(sign, m1))),
                min_std,
            );
            let inv1 = _mm256_div_ps(onef, scale);
            // Scoring lanes.
            let scoring = _mm256_andnot_ps(learning, finite);
            let z = _mm256_min_ps(_mm256_mul_ps(_mm256_andnot_ps(sign, d), inv), cap);
            let sm1 = _mm256_add_ps(sm, _mm256_mul_ps(alpha, _mm256_sub_ps(z, sm)));

            _mm256_storeu_si256(
                cp.add(i) as *mut __m256i,
                _mm256_blendv_epi8(c, c1, _mm256_castps_si256(absorb)),
            );
            _mm256_storeu_ps(mp.add(i), _mm256_blendv_ps(m, m1, absorb));
            _mm256_storeu_ps(qp.add(i), _mm256_blendv_ps(q, q1, absorb));
            _mm256_storeu_ps(ip.add(i), _mm256_blendv_ps(inv, inv1, learnt));
            _mm256_storeu_ps(smp.add(i), _mm256_blendv_ps(sm, sm1, scoring));
            let out = _mm256_blendv_ps(zero, sm1, scoring);
            _mm256_storeu_ps(sp.add(i), _mm256_blendv_ps(nan, out, finite));
        }
        i += 8;
    }
    scalar::update(
        p,
        Columns {
            count: &mut s.count[body..],
            mean: &mut s.mean[body..],
            m2: &mut s.m2[body..],
            inv_scale: &mut s.inv_scale[body..],
            smooth: &mut s.smooth[body..],
        },
        &x[body..],
        &mut score[body..],
    );
}
