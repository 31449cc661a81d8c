//! The portable path: the production fallback, and the tail of the vector paths.

use super::{BaselineParams, Columns, Z_CAP};

/// See [`super::Baseline::update`]. Every column has the length of `x` (the caller checks).
#[inline]
pub(crate) fn update(p: &BaselineParams, s: Columns<'_>, x: &[f32], score: &mut [f32]) {
    let n = x.len();
    let train = p.train;
    for i in 0..n {
        // Same operations, same order as the vector paths: keep them in step.
        let xi = x[i];
        if !xi.is_finite() {
            score[i] = f32::NAN;
            continue;
        }
        let (c, m) = (s.count[i], s.mean[i]);
        if c < train {
            let c1 = c + 1;
            let d = xi - m;
            let m1 = m + d / c1 as f32;
            let q1 = s.m2[i] + d * (xi - m1);
            // A reading far beyond f32's range of squares would poison the baseline: skip it.
            if !(m1.abs() < f32::INFINITY && q1 < f32::INFINITY) {
                score[i] = 0.0;
                continue;
            }
            s.count[i] = c1;
            s.mean[i] = m1;
            s.m2[i] = q1;
            if c1 == train {
                let sd = (q1 / c1 as f32).sqrt();
                let scale = sd.max(p.rel_floor * m1.abs()).max(p.min_std);
                s.inv_scale[i] = 1.0 / scale;
            }
            score[i] = 0.0;
        } else {
            let z = ((xi - m).abs() * s.inv_scale[i]).min(Z_CAP);
            let sm = s.smooth[i];
            let sm1 = sm + p.alpha * (z - sm);
            s.smooth[i] = sm1;
            score[i] = sm1;
        }
    }
}
