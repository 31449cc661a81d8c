//! AVX-512 path: 16 slots per step with mask registers, and one last step masked to the slots that
//! remain (no scalar tail: short runs, a sensor's few channels, stay in vector registers). Same
//! operations in the same order as the scalar and AVX2 paths, so the results are bit-identical.

use super::super::{scalar, ZParams};
use core::arch::x86_64::*;

/// The parameters, broadcast.
struct Consts {
    inf: __m512,
    no_score: __m512,
    onef: __m512,
    alpha: __m512,
    one_minus_alpha: __m512,
    min_var: __m512,
    clip: __m512,
    tiny_mean: __m512,
    tiny_var: __m512,
    warm_below: __m512i,
    cap: __m512i,
    one: __m512i,
}

/// One step over 16 lanes of which `k` are slots: the new mean, variance, count and the score.
#[inline]
#[target_feature(enable = "avx512f")]
fn step(
    q: &Consts,
    k: __mmask16,
    xv: __m512,
    m: __m512,
    v: __m512,
    c: __m512i,
) -> (__m512, __m512, __m512i, __m512) {
    let finite_x = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(xv), q.inf);
    let d = _mm512_sub_ps(xv, m);
    let abs_d = _mm512_abs_ps(d);
    let sd = _mm512_sqrt_ps(_mm512_max_ps(v, q.min_var));
    let z = _mm512_div_ps(abs_d, sd);
    let warm = _mm512_cmpgt_epi32_mask(c, q.warm_below);
    // clip·sd where warm, +inf (clips nothing) while warming up.
    let lim = _mm512_mask_mul_ps(q.inf, warm, q.clip, sd);
    let dc = _mm512_min_ps(
        _mm512_max_ps(d, _mm512_sub_ps(_mm512_setzero_ps(), lim)),
        lim,
    );
    let outlier = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(abs_d, lim);
    let c1 = _mm512_add_epi32(c, q.one);
    let settled = _mm512_cmpeq_epi32_mask(c, q.cap) & k == k;
    let (a, one_minus_a) = if settled {
        (q.alpha, q.one_minus_alpha)
    } else {
        let a = _mm512_max_ps(q.alpha, _mm512_div_ps(q.onef, _mm512_cvtepi32_ps(c1)));
        (a, _mm512_sub_ps(q.onef, a))
    };
    let incr = _mm512_mul_ps(a, dc);
    let m1 = _mm512_add_ps(m, incr);
    let v1 = _mm512_mul_ps(one_minus_a, _mm512_add_ps(v, _mm512_mul_ps(dc, incr)));
    let v1 = _mm512_mask_blend_ps(outlier, v1, v);
    // As the scalar path: flush a vanishing mean or variance to 0.
    let m1 = _mm512_mask_blend_ps(
        _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(m1), q.tiny_mean),
        m1,
        _mm512_setzero_ps(),
    );
    let v1 = _mm512_mask_blend_ps(
        _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v1, q.tiny_var),
        v1,
        _mm512_setzero_ps(),
    );
    let ok = finite_x
        & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(m1), q.inf)
        & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v1, q.inf);
    let c_new = _mm512_mask_blend_epi32(ok, c, _mm512_min_epu32(c1, q.cap));
    let s = _mm512_mask_mov_ps(q.no_score, finite_x, _mm512_maskz_mov_ps(warm, z));
    (
        _mm512_mask_blend_ps(ok, m, m1),
        _mm512_mask_blend_ps(ok, v, v1),
        c_new,
        s,
    )
}

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
    let q = Consts {
        inf: _mm512_set1_ps(f32::INFINITY),
        no_score: _mm512_set1_ps(scalar::NO_SCORE),
        onef: _mm512_set1_ps(1.0),
        alpha: _mm512_set1_ps(p.alpha),
        one_minus_alpha: _mm512_set1_ps(1.0 - p.alpha),
        min_var: _mm512_set1_ps(p.min_var),
        clip: _mm512_set1_ps(p.clip),
        tiny_mean: _mm512_set1_ps(p.tiny_mean),
        tiny_var: _mm512_set1_ps(p.tiny_var),
        // warmup >= 1 and <= 1e9 (ZParams::new), so a signed `count > warmup - 1` works.
        warm_below: _mm512_set1_epi32((p.warmup - 1) as i32),
        cap: _mm512_set1_epi32(p.count_cap as i32),
        one: _mm512_set1_epi32(1),
    };
    let (xp, mp, vp, cp, sp) = (
        x.as_ptr(),
        mean.as_mut_ptr(),
        var.as_mut_ptr(),
        count.as_mut_ptr(),
        score.as_mut_ptr(),
    );
    let body = n - n % 16;
    let mut i = 0;
    // Whole blocks with plain loads and stores (masked ones cost more on some CPUs and defeat
    // store-to-load forwarding into the next call on the same slots).
    while i < body {
        // SAFETY: i + 16 <= body <= n and every slice has length n; loadu/storeu need no
        // alignment.
        unsafe {
            let (m, v, c, s) = step(
                &q,
                0xFFFF,
                _mm512_loadu_ps(xp.add(i)),
                _mm512_loadu_ps(mp.add(i)),
                _mm512_loadu_ps(vp.add(i)),
                _mm512_loadu_si512(cp.add(i) as *const __m512i),
            );
            _mm512_storeu_ps(mp.add(i), m);
            _mm512_storeu_ps(vp.add(i), v);
            _mm512_storeu_si512(cp.add(i) as *mut __m512i, c);
            _mm512_storeu_ps(sp.add(i), s);
        }
        i += 16;
    }
    if body < n {
        let k: __mmask16 = (1u16 << (n - body)) - 1;
        // SAFETY: the mask covers only lanes body + l < n: masked loads and stores touch no
        // memory in the other lanes (which read as 0).
        unsafe {
            let (m, v, c, s) = step(
                &q,
                k,
                _mm512_maskz_loadu_ps(k, xp.add(body)),
                _mm512_maskz_loadu_ps(k, mp.add(body)),
                _mm512_maskz_loadu_ps(k, vp.add(body)),
                _mm512_maskz_loadu_epi32(k, cp.add(body) as *const i32),
            );
            _mm512_mask_storeu_ps(mp.add(body), k, m);
            _mm512_mask_storeu_ps(vp.add(body), k, v);
            _mm512_mask_storeu_epi32(cp.add(body) as *mut i32, k, c);
            _mm512_mask_storeu_ps(sp.add(body), k, s);
        }
    }
}
