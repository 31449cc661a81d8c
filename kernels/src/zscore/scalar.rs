//! The portable path: the production fallback, and the tail of the vector paths.

use super::ZParams;

/// The score of a reading that is not a number: a NaN with every bit set, which is what the
/// vector paths' comparison masks produce.
pub(crate) const NO_SCORE: f32 = f32::from_bits(u32::MAX);

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
        // While warming up nothing is an outlier: an infinite limit clips nothing.
        let lim = if warm { p.clip * sd } else { f32::INFINITY };
        let dc = d.max(-lim).min(lim);
        let outlier = d.abs() > lim;
        // At the cap 1/(c + 1) < alpha: skip the division (exactly what the max would give).
        // The first reading (c = 0) has weight 1: a fresh slot (mean 0, var 0) becomes mean = x,
        // var = 0.
        let (a, one_minus_a) = if c >= p.count_cap {
            (p.alpha, 1.0 - p.alpha)
        } else {
            let a = p.alpha.max(1.0 / (c + 1) as f32);
            (a, 1.0 - a)
        };
        let incr = a * dc;
        let m1 = m + incr;
        let v1 = if outlier {
            v
        } else {
            one_minus_a * (v + dc * incr)
        };
        let m1 = if m1.abs() < p.tiny_mean { 0.0 } else { m1 };
        let v1 = if v1 < p.tiny_var { 0.0 } else { v1 };
        let ok = finite_x && m1.abs() < f32::INFINITY && v1 < f32::INFINITY;
        if ok {
            mean[i] = m1;
            var[i] = v1;
            count[i] = (c + 1).min(p.count_cap);
        }
        score[i] = if !finite_x {
            NO_SCORE
        } else if warm {
            z
        } else {
            0.0
        };
    }
}
