//! The portable path: the production fallback, and the tail of the vector paths.

use super::ZParams;

/// See [`super::ZScore::update`]. All slices have the same length (the caller checks).
#[inline]
pub(crate) fn update(
    p: &ZParams,
    mean: &mut [f32],
    var: &mut [f32],
    count: &mut [u32],
    x: &[f32],
    score: &mut [f32],
) {
    let n = x.len();
    let (mean, var, count, score) = (
        &mut mean[..n],
        &mut var[..n],
        &mut count[..n],
        &mut score[..n],
    );
    for i in 0..n {
        let (xi, m, v, c) = (x[i], mean[i], var[i], count[i]);
        // Same operations, same order as the AVX2 path: keep them in step.
        let finite_x = xi.abs() < f32::INFINITY;
        let d = xi - m;
        let sd = v.max(p.min_var).sqrt();
        let z = d.abs() / sd;
        let warm = c >= p.warmup;
        let lim = p.clip * sd;
        let dc = if warm { d.max(-lim).min(lim) } else { d };
        let outlier = warm && d.abs() > lim;
        let a = p.alpha.max(1.0 / (c + 1) as f32);
        let incr = a * dc;
        let (m1, v1) = if c == 0 {
            (xi, 0.0)
        } else if outlier {
            (m + incr, v)
        } else {
            (m + incr, (1.0 - a) * (v + dc * incr))
        };
        let ok = finite_x && m1.abs() < f32::INFINITY && v1 < f32::INFINITY;
        if ok {
            mean[i] = m1;
            var[i] = v1;
            count[i] = (c + 1).min(p.count_cap);
        }
        score[i] = if !finite_x {
            f32::NAN
        } else if warm {
            z
        } else {
            0.0
        };
    }
}
