//! The portable path and the reference order of operations every path follows.

// Index loops spell out the order of operations that every path follows (it is what makes them
// bit-identical), so they stay as loops over indices.
#![allow(clippy::needless_range_loop, clippy::assign_op_pattern)]

use super::{PcaModel, RowScore, MAX_CHANNELS};

/// Scores one row (`model.d` values).
#[inline]
pub(super) fn row(m: &PcaModel, x: &[f32]) -> RowScore {
    let (d, k) = (m.d, m.k);
    let mut z = [0.0f32; MAX_CHANNELS];
    let mut t = [0.0f32; MAX_CHANNELS];
    for j in 0..d {
        z[j] = (x[j] - m.mean[j]) * m.inv_std[j];
    }
    let mut t2 = 0.0f32;
    for i in 0..k {
        let p = &m.components[i * d..(i + 1) * d];
        let mut s = 0.0f32;
        for j in 0..d {
            s = s + p[j] * z[j];
        }
        t[i] = s;
        t2 = t2 + s * s * m.inv_lambda[i];
    }
    let mut q = 0.0f32;
    for j in 0..d {
        let mut r = z[j];
        for i in 0..k {
            r = r - m.components[i * d + j] * t[i];
        }
        q = q + r * r;
    }
    let a = t2 * m.inv_t2_ucl;
    let b = q * m.inv_q_ucl;
    RowScore {
        t2,
        q,
        // As `max_ps(a, b)`: b when either is NaN.
        score: if a > b { a } else { b },
    }
}

pub(super) fn score(m: &PcaModel, x: &[f32], out: &mut [RowScore]) {
    for (r, o) in out.iter_mut().enumerate() {
        *o = row(m, &x[r * m.d..(r + 1) * m.d]);
    }
}
