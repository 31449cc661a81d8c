//! PCA T² and Q over a sensor's channels together: Hotelling's T² in the principal subspace and
//! the squared prediction error Q (the residual's squared norm), the multivariate control chart of
//! process monitoring (MacGregor & Kourti; SKAB's "T-squared+Q" baseline).
//!
//! **Training** ([`Accumulator`], f64, once per sensor): a running mean and co-moment matrix of the
//! first rows (Welford), then [`Accumulator::fit`]: per-channel standardisation, the eigenvectors
//! of the correlation matrix (cyclic Jacobi), the fewest components explaining `explained` of the
//! variance, and the upper control limits at confidence `p`: T²'s from the F distribution,
//! `m(n−1)(n+1) / (n(n−m)) · F_p(m, n−m)`, Q's by Jackson and Mudholkar from the residual
//! eigenvalues.
//!
//! **Scoring** (f32, the hot path, [`Scorer::score`]), for a row `x` of `d` channels:
//!
//! ```text
//! z_j   = (x_j − mean_j) · inv_std_j
//! t_i   = Σ_j P_ij z_j                      i < k, j in order
//! T²    = Σ_i t_i² · inv_λ_i                i in order
//! r_j   = z_j − Σ_i P_ij t_i                i in order
//! Q     = Σ_j r_j²                          j in order
//! score = max(T² / T²_ucl, Q / Q_ucl)        ≥ 1: outside the control limits
//! ```
//!
//! The vector paths score 8 (AVX2) or 16 (AVX-512) rows at once, one row per lane, with the same
//! IEEE operations in the same order as the scalar path and no fused multiply-add: every path gives
//! the same bits. Tests check them against an f64 oracle and against each other.

mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(test)]
mod oracle;
#[cfg(test)]
mod tests;

mod stats;

use crate::isa::Isa;
use std::fmt;

/// Most channels a model may have.
pub const MAX_CHANNELS: usize = 64;

/// How a model is fitted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PcaParams {
    /// Share of the (standardised) variance the principal components must explain, in (0, 1].
    pub explained: f64,
    /// Confidence of the control limits, in (0.5, 1).
    pub p: f64,
    /// Floor of a channel's standard deviation in the training rows (a constant channel).
    pub min_std: f64,
}

impl Default for PcaParams {
    fn default() -> Self {
        PcaParams {
            explained: 0.85,
            p: 0.999,
            min_std: 1e-3,
        }
    }
}

/// Why a model could not be fitted or parameters were refused.
#[derive(Clone, Debug, PartialEq)]
pub struct PcaError(pub String);

impl fmt::Display for PcaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PcaError {}

impl PcaParams {
    /// Checks the ranges.
    pub fn check(&self) -> Result<(), PcaError> {
        if !(self.explained > 0.0 && self.explained <= 1.0) {
            return Err(PcaError(format!(
                "explained must be in (0, 1], got {}",
                self.explained
            )));
        }
        if !(self.p > 0.5 && self.p < 1.0) {
            return Err(PcaError(format!("p must be in (0.5, 1), got {}", self.p)));
        }
        if !(self.min_std > 0.0 && self.min_std.is_finite()) {
            return Err(PcaError(format!(
                "min_std must be positive, got {}",
                self.min_std
            )));
        }
        Ok(())
    }
}

/// Running mean and co-moments of training rows, in f64.
#[derive(Clone, Debug)]
pub struct Accumulator {
    d: usize,
    n: u64,
    mean: Vec<f64>,
    /// Σ (x_a − mean_a)(x_b − mean_b), row-major d × d.
    m2: Vec<f64>,
    delta: Vec<f64>,
}

impl Accumulator {
    /// An empty accumulator over `d` channels (1 ..= [`MAX_CHANNELS`]).
    pub fn new(d: usize) -> Accumulator {
        assert!(
            (1..=MAX_CHANNELS).contains(&d),
            "1 to {MAX_CHANNELS} channels"
        );
        Accumulator {
            d,
            n: 0,
            mean: vec![0.0; d],
            m2: vec![0.0; d * d],
            delta: vec![0.0; d],
        }
    }

    /// Rows absorbed.
    pub fn rows(&self) -> u64 {
        self.n
    }

    /// Absorbs one row of `d` values; a row with a non-finite value is skipped (false).
    pub fn push(&mut self, x: &[f32]) -> bool {
        assert_eq!(x.len(), self.d);
        if x.iter().any(|v| !v.is_finite()) {
            return false;
        }
        self.n += 1;
        let n = self.n as f64;
        for ((delta, mean), &v) in self.delta.iter_mut().zip(&mut self.mean).zip(x) {
            *delta = v as f64 - *mean;
            *mean += *delta / n;
        }
        // m2 += (x − mean_new)(x − mean_old)ᵀ, symmetric.
        for ((row, &v), &mean) in self.m2.chunks_mut(self.d).zip(x).zip(&self.mean) {
            let after = v as f64 - mean;
            for (m, delta) in row.iter_mut().zip(&self.delta) {
                *m += delta * after;
            }
        }
        true
    }

    /// Fits the model to the rows absorbed (at least `d + 2`).
    pub fn fit(&self, params: &PcaParams) -> Result<PcaModel, PcaError> {
        params.check()?;
        let d = self.d;
        let n = self.n as f64;
        if self.n < d as u64 + 2 {
            return Err(PcaError(format!(
                "{} rows to fit {d} channels; need at least {}",
                self.n,
                d + 2
            )));
        }
        // Standardise with the population spread (as scikit-learn's StandardScaler), then the
        // sample covariance of the standardised rows (ddof 1, as its PCA).
        let std: Vec<f64> = (0..d)
            .map(|j| (self.m2[j * d + j] / n).sqrt().max(params.min_std))
            .collect();
        let mut corr = vec![0.0; d * d];
        for a in 0..d {
            for b in 0..d {
                corr[a * d + b] = self.m2[a * d + b] / (n - 1.0) / (std[a] * std[b]);
            }
        }
        let (values, vectors) = stats::symmetric_eigen(&corr, d);
        let total: f64 = values.iter().map(|v| v.max(0.0)).sum();
        let mut k = d;
        if total > 0.0 {
            let mut cum = 0.0;
            for (i, v) in values.iter().enumerate() {
                cum += v.max(0.0) / total;
                if cum >= params.explained - 1e-12 {
                    k = i + 1;
                    break;
                }
            }
        }
        let floor = 1e-9 * total.max(1e-12);
        let lambda: Vec<f64> = values[..k].iter().map(|v| v.max(floor)).collect();
        let m = k as f64;
        let t2_ucl = if n > m + 1.0 {
            m * (n - 1.0) * (n + 1.0) / (n * (n - m)) * stats::f_quantile(params.p, m, n - m)
        } else {
            f64::INFINITY
        };
        let residual: Vec<f64> = values[k..].iter().map(|v| v.max(0.0)).collect();
        let q_ucl = stats::q_limit(&residual, params.p);
        let mut components = vec![0.0f32; k * d];
        for i in 0..k {
            for j in 0..d {
                components[i * d + j] = vectors[j * d + i] as f32;
            }
        }
        Ok(PcaModel {
            d,
            k,
            mean: self.mean.iter().map(|&v| v as f32).collect(),
            inv_std: std.iter().map(|&s| (1.0 / s) as f32).collect(),
            components,
            inv_lambda: lambda.iter().map(|&l| (1.0 / l) as f32).collect(),
            inv_t2_ucl: (1.0 / t2_ucl) as f32,
            inv_q_ucl: (1.0 / q_ucl) as f32,
            t2_ucl,
            q_ucl,
        })
    }
}

/// A fitted model: what the hot path needs, in f32.
#[derive(Clone, Debug, PartialEq)]
pub struct PcaModel {
    /// Channels.
    pub d: usize,
    /// Principal components kept.
    pub k: usize,
    pub mean: Vec<f32>,
    pub inv_std: Vec<f32>,
    /// Row-major k × d: component i's loading on channel j at `[i * d + j]`.
    pub components: Vec<f32>,
    /// 1 / eigenvalue of each kept component.
    pub inv_lambda: Vec<f32>,
    pub inv_t2_ucl: f32,
    pub inv_q_ucl: f32,
    /// The control limits (f64, for reports).
    pub t2_ucl: f64,
    pub q_ucl: f64,
}

/// What one row scored.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RowScore {
    pub t2: f32,
    pub q: f32,
    /// `max(T² / T²_ucl, Q / Q_ucl)`.
    pub score: f32,
}

/// Why one row scored as it did (f64, for alerts: not the hot path).
#[derive(Clone, Debug, PartialEq)]
pub struct RowExplanation {
    /// Each channel's share of the statistic that decided the score (T² when `T²/limit ≥
    /// Q/limit`, else Q), non-negative, summing to 1 (all 0 when the statistic is 0).
    pub shares: Vec<f64>,
    /// Whether T² decided the score (else Q).
    pub by_t2: bool,
    /// The row as the model reconstructs it from its principal components, in the channels' units.
    pub expected: Vec<f64>,
}

impl PcaModel {
    /// Each channel's part in `x`'s score, and what the model expected of each channel.
    ///
    /// Q's part of channel j is its squared residual `r_j²`; T²'s is `|z_j · Σ_i P_ij t_i / λ_i|`
    /// (the terms of `T² = Σ_j z_j Σ_i P_ij t_i / λ_i`, whose signs can differ, taken by size).
    pub fn explain(&self, x: &[f32]) -> RowExplanation {
        let (d, k) = (self.d, self.k);
        let z: Vec<f64> = (0..d)
            .map(|j| (x[j] as f64 - self.mean[j] as f64) * self.inv_std[j] as f64)
            .collect();
        let p = |i: usize, j: usize| self.components[i * d + j] as f64;
        let t: Vec<f64> = (0..k)
            .map(|i| (0..d).map(|j| p(i, j) * z[j]).sum())
            .collect();
        let fit: Vec<f64> = (0..d)
            .map(|j| (0..k).map(|i| p(i, j) * t[i]).sum())
            .collect();
        let t2: f64 = (0..k)
            .map(|i| t[i] * t[i] * self.inv_lambda[i] as f64)
            .sum();
        let q: f64 = (0..d).map(|j| (z[j] - fit[j]).powi(2)).sum();
        let by_t2 = t2 * self.inv_t2_ucl as f64 >= q * self.inv_q_ucl as f64;
        let parts: Vec<f64> = (0..d)
            .map(|j| {
                if by_t2 {
                    let w: f64 = (0..k)
                        .map(|i| p(i, j) * t[i] * self.inv_lambda[i] as f64)
                        .sum();
                    (z[j] * w).abs()
                } else {
                    (z[j] - fit[j]).powi(2)
                }
            })
            .collect();
        let total: f64 = parts.iter().sum();
        RowExplanation {
            shares: parts
                .iter()
                .map(|v| if total > 0.0 { v / total } else { 0.0 })
                .collect(),
            by_t2,
            expected: (0..d)
                .map(|j| self.mean[j] as f64 + fit[j] / self.inv_std[j] as f64)
                .collect(),
        }
    }
}

/// The scoring kernel on one instruction set.
#[derive(Clone, Copy, Debug)]
pub struct Scorer {
    isa: Isa,
}

impl Scorer {
    /// The kernel on `isa`, or `None` if this CPU lacks it.
    pub fn new(isa: Isa) -> Option<Scorer> {
        isa.is_available().then_some(Scorer { isa })
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Scores `x` (row-major, `model.d` values a row) into `out` (one per row).
    ///
    /// # Panics
    /// If `x.len() != out.len() * model.d`.
    pub fn score(&self, model: &PcaModel, x: &[f32], out: &mut [RowScore]) {
        assert_eq!(x.len(), out.len() * model.d, "x holds out.len() rows");
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Scorer::new` checked that this CPU has AVX2 and FMA.
            Isa::Avx2 => unsafe { x86_64::avx2::score(model, x, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Scorer::new` checked that this CPU has AVX-512F.
            Isa::Avx512 => unsafe { x86_64::avx512::score(model, x, out) },
            _ => scalar::score(model, x, out),
        }
    }
}
