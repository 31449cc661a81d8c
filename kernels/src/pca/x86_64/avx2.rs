//! AVX2: 8 rows at a time, each lane one row, in the scalar path's order of operations.

// Index loops spell out the order of operations that every path follows (it is what makes them
// bit-identical), so they stay as loops over indices.
#![allow(clippy::needless_range_loop, clippy::assign_op_pattern)]

use super::super::{scalar, PcaModel, RowScore, MAX_CHANNELS};
use std::arch::x86_64::*;

/// # Safety
/// The CPU must have AVX2 (checked by `Scorer::new`).
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn score(m: &PcaModel, x: &[f32], out: &mut [RowScore]) {
    let (d, k) = (m.d, m.k);
    let n = out.len();
    let full = n / 8 * 8;
    let stride = d as i32;
    let index = _mm256_setr_epi32(
        0,
        stride,
        2 * stride,
        3 * stride,
        4 * stride,
        5 * stride,
        6 * stride,
        7 * stride,
    );
    let mut z = [_mm256_setzero_ps(); MAX_CHANNELS];
    let mut t = [_mm256_setzero_ps(); MAX_CHANNELS];
    let mut lane = [[0.0f32; 8]; 3];
    let inv_t2 = _mm256_set1_ps(m.inv_t2_ucl);
    let inv_q = _mm256_set1_ps(m.inv_q_ucl);
    let mut base = 0;
    while base < full {
        let rows = x[base * d..(base + 8) * d].as_ptr();
        for j in 0..d {
            // SAFETY: lane r reads rows[r * d + j], r < 8, inside the 8 rows sliced above.
            let v = unsafe { _mm256_i32gather_ps::<4>(rows.add(j), index) };
            let c = _mm256_sub_ps(v, _mm256_set1_ps(m.mean[j]));
            z[j] = _mm256_mul_ps(c, _mm256_set1_ps(m.inv_std[j]));
        }
        let mut t2 = _mm256_setzero_ps();
        for i in 0..k {
            let p = &m.components[i * d..(i + 1) * d];
            let mut s = _mm256_setzero_ps();
            for j in 0..d {
                s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(p[j]), z[j]));
            }
            t[i] = s;
            let ss = _mm256_mul_ps(s, s);
            t2 = _mm256_add_ps(t2, _mm256_mul_ps(ss, _mm256_set1_ps(m.inv_lambda[i])));
        }
        let mut q = _mm256_setzero_ps();
        for j in 0..d {
            let mut r = z[j];
            for i in 0..k {
                let pt = _mm256_mul_ps(_mm256_set1_ps(m.components[i * d + j]), t[i]);
                r = _mm256_sub_ps(r, pt);
            }
            q = _mm256_add_ps(q, _mm256_mul_ps(r, r));
        }
        let score = _mm256_max_ps(_mm256_mul_ps(t2, inv_t2), _mm256_mul_ps(q, inv_q));
        // SAFETY: each array holds 8 f32.
        unsafe {
            _mm256_storeu_ps(lane[0].as_mut_ptr(), t2);
            _mm256_storeu_ps(lane[1].as_mut_ptr(), q);
            _mm256_storeu_ps(lane[2].as_mut_ptr(), score);
        }
        for r in 0..8 {
            out[base + r] = RowScore {
                t2: lane[0][r],
                q: lane[1][r],
                score: lane[2][r],
            };
        }
        base += 8;
    }
    for r in full..n {
        out[r] = scalar::row(m, &x[r * d..(r + 1) * d]);
    }
}
