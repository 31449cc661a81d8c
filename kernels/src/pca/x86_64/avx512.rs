//! AVX-512: 16 rows at a time, each lane one row, in the scalar path's order of operations.

// Index loops spell out the order of operations that every path follows (it is what makes them
// bit-identical), so they stay as loops over indices.
#![allow(clippy::needless_range_loop, clippy::assign_op_pattern)]

use super::super::{scalar, PcaModel, RowScore, MAX_CHANNELS};
use std::arch::x86_64::*;

/// # Safety
/// The CPU must have AVX-512F (checked by `Scorer::new`).
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn score(m: &PcaModel, x: &[f32], out: &mut [RowScore]) {
    let (d, k) = (m.d, m.k);
    let n = out.len();
    let full = n / 16 * 16;
    let stride = d as i32;
    let mut offsets = [0i32; 16];
    for (r, o) in offsets.iter_mut().enumerate() {
        *o = r as i32 * stride;
    }
    // SAFETY: `offsets` holds 16 i32.
    let index = unsafe { _mm512_loadu_si512(offsets.as_ptr().cast()) };
    let mut z = [_mm512_setzero_ps(); MAX_CHANNELS];
    let mut t = [_mm512_setzero_ps(); MAX_CHANNELS];
    let mut lane = [[0.0f32; 16]; 3];
    let inv_t2 = _mm512_set1_ps(m.inv_t2_ucl);
    let inv_q = _mm512_set1_ps(m.inv_q_ucl);
    let mut base = 0;
    while base < full {
        let rows = x[base * d..(base + 16) * d].as_ptr();
        for j in 0..d {
            // SAFETY: lane r reads rows[r * d + j], r < 16, inside the 16 rows sliced above.
            let v = unsafe { _mm512_i32gather_ps::<4>(index, rows.add(j)) };
            let c = _mm512_sub_ps(v, _mm512_set1_ps(m.mean[j]));
            z[j] = _mm512_mul_ps(c, _mm512_set1_ps(m.inv_std[j]));
        }
        let mut t2 = _mm512_setzero_ps();
        for i in 0..k {
            let p = &m.components[i * d..(i + 1) * d];
            let mut s = _mm512_setzero_ps();
            for j in 0..d {
                s = _mm512_add_ps(s, _mm512_mul_ps(_mm512_set1_ps(p[j]), z[j]));
            }
            t[i] = s;
            let ss = _mm512_mul_ps(s, s);
            t2 = _mm512_add_ps(t2, _mm512_mul_ps(ss, _mm512_set1_ps(m.inv_lambda[i])));
        }
        let mut q = _mm512_setzero_ps();
        for j in 0..d {
            let mut r = z[j];
            for i in 0..k {
                let pt = _mm512_mul_ps(_mm512_set1_ps(m.components[i * d + j]), t[i]);
                r = _mm512_sub_ps(r, pt);
            }
            q = _mm512_add_ps(q, _mm512_mul_ps(r, r));
        }
        // As the scalar path's `if a > b { a } else { b }`: b unless a > b (NaN: b).
        let a = _mm512_mul_ps(t2, inv_t2);
        let b = _mm512_mul_ps(q, inv_q);
        let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b);
        let score = _mm512_mask_blend_ps(gt, b, a);
        // SAFETY: each array holds 16 f32.
        unsafe {
            _mm512_storeu_ps(lane[0].as_mut_ptr(), t2);
            _mm512_storeu_ps(lane[1].as_mut_ptr(), q);
            _mm512_storeu_ps(lane[2].as_mut_ptr(), score);
        }
        for r in 0..16 {
            out[base + r] = RowScore {
                t2: lane[0][r],
                q: lane[1][r],
                score: lane[2][r],
            };
        }
        base += 16;
    }
    for r in full..n {
        out[r] = scalar::row(m, &x[r * d..(r + 1) * d]);
    }
}
