//! The test oracle: the same formulas in f64, straight from the model.

use super::PcaModel;

/// (T², Q, score) of one row in f64.
pub(super) fn row(m: &PcaModel, x: &[f32]) -> (f64, f64, f64) {
    let (d, k) = (m.d, m.k);
    let z: Vec<f64> = (0..d)
        .map(|j| (x[j] as f64 - m.mean[j] as f64) * m.inv_std[j] as f64)
        .collect();
    let t: Vec<f64> = (0..k)
        .map(|i| (0..d).map(|j| m.components[i * d + j] as f64 * z[j]).sum())
        .collect();
    let t2: f64 = (0..k).map(|i| t[i] * t[i] * m.inv_lambda[i] as f64).sum();
    let q: f64 = (0..d)
        .map(|j| {
            let r = z[j]
                - (0..k)
                    .map(|i| m.components[i * d + j] as f64 * t[i])
                    .sum::<f64>();
            r * r
        })
        .sum();
    let score = (t2 * m.inv_t2_ucl as f64).max(q * m.inv_q_ucl as f64);
    (t2, q, score)
}
