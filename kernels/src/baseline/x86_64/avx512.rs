//! AVX-512 path: 16 slots per step, scalar tail.

use super::super::{scalar, BaselineParams, Columns, Z_CAP};
use core::arch::x86_64::*;

/// See [`crate::baseline::Baseline::update`].
///
/// # Safety
/// The CPU must support AVX-512F, and every column must have the length of `x`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn update(p: &BaselineParams, s: Columns<'_>, x: &[f32], score: &mut [f32]) {
    let n = x.len();
    debug_assert!(s.count.len() == n && s.mean.len() == n && score.len() == n);
    let body = n - n % 16;
    let inf = _mm512_set1_ps(f32::INFINITY);
    let nan = _mm512_set1_ps(f32::NAN);
    let zero = _mm512_setzero_ps();
    let onef = _mm512_set1_ps(1.0);
    let cap = _mm512_set1_ps(Z_CAP);
    let alpha = _mm512_set1_ps(p.alpha);
    let rel = _mm512_set1_ps(p.rel_floor);
    let min_std = _mm512_set1_ps(p.min_std);
    // train <= 1e7 (BaselineParams::new): signed compares and exact conversions.
    let train = _mm512_set1_epi32(p.train as i32);
    let one = _mm512_set1_epi32(1);
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
        // SAFETY: i + 16 <= body <= n and every column has length n; loadu/storeu need no
        // alignment.
        unsafe {
            let xv = _mm512_loadu_ps(xp.add(i));
            let c = _mm512_loadu_si512(cp.add(i) as *const __m512i);
            let m = _mm512_loadu_ps(mp.add(i));
            let q = _mm512_loadu_ps(qp.add(i));
            let inv = _mm512_loadu_ps(ip.add(i));
            let sm = _mm512_loadu_ps(smp.add(i));

            let finite = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(xv), inf);
            let learning = _mm512_cmpgt_epi32_mask(train, c);
            let d = _mm512_sub_ps(xv, m);
            if learning == 0 {
                // Every lane has its baseline (the steady state): score only. The same
                // operations as below, so the bits are the same.
                let z = _mm512_min_ps(_mm512_mul_ps(_mm512_abs_ps(d), inv), cap);
                let sm1 = _mm512_add_ps(sm, _mm512_mul_ps(alpha, _mm512_sub_ps(z, sm)));
                _mm512_storeu_ps(smp.add(i), _mm512_mask_blend_ps(finite, sm, sm1));
                _mm512_storeu_ps(sp.add(i), _mm512_mask_blend_ps(finite, nan, sm1));
                i += 16;
                continue;
            }
            // Learning lanes.
            let c1 = _mm512_add_epi32(c, one);
            let c1f = _mm512_cvtepi32_ps(c1);
            let m1 = _mm512_add_ps(m, _mm512_div_ps(d, c1f));
            let q1 = _mm512_add_ps(q, _mm512_mul_ps(d, _mm512_sub_ps(xv, m1)));
            let sane = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(m1), inf)
                & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(q1, inf);
            let absorb = finite & learning & sane;
            let learnt = absorb & _mm512_cmpeq_epi32_mask(c1, train);
            let sd = _mm512_sqrt_ps(_mm512_div_ps(q1, c1f));
            let scale = _mm512_max_ps(
                _mm512_max_ps(sd, _mm512_mul_ps(rel, _mm512_abs_ps(m1))),
                min_std,
            );
            let inv1 = _mm512_div_ps(onef, scale);
            // Scoring lanes.
            let scoring = finite & !learning;
            let z = _mm512_min_ps(_mm512_mul_ps(_mm512_abs_ps(d), inv), cap);
            let sm1 = _mm512_add_ps(sm, _mm512_mul_ps(alpha, _mm512_sub_ps(z, sm)));

            _mm512_storeu_si512(
                cp.add(i) as *mut __m512i,
                _mm512_mask_blend_epi32(absorb, c, c1),
            );
            _mm512_storeu_ps(mp.add(i), _mm512_mask_blend_ps(absorb, m, m1));
            _mm512_storeu_ps(qp.add(i), _mm512_mask_blend_ps(absorb, q, q1));
            _mm512_storeu_ps(ip.add(i), _mm512_mask_blend_ps(learnt, inv, inv1));
            _mm512_storeu_ps(smp.add(i), _mm512_mask_blend_ps(scoring, sm, sm1));
            let out = _mm512_mask_blend_ps(scoring, zero, sm1);
            _mm512_storeu_ps(sp.add(i), _mm512_mask_blend_ps(finite, nan, out));
        }
        i += 16;
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
