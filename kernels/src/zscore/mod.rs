//! Rolling z-scores over many (sensor, channel) slots at once.
//!
//! Each slot keeps an exponentially weighted mean and variance (West's incremental form) and a
//! warm-up counter, laid out as columns ([`ZSlots`]): one kernel call updates a contiguous run of
//! slots with one new reading each and writes each reading's score.
//!
//! For a reading `x` against the slot's state before the update:
//!
//! ```text
//! α     = max(1 - 2^(-1/half_life), 1/(n + 1))   n = readings absorbed so far
//! d     = x - mean
//! std   = sqrt(max(var, min_std²))
//! score = |d| / std                      (0 while count < warmup, NaN when x is not finite)
//! dc    = clamp(d, -clip·std, clip·std)  (d itself while warming up)
//! mean' = mean + α·dc
//! var'  = (1 - α)·(var + dc·α·dc)        (var itself when |d| > clip·std: an outlier)
//! ```
//!
//! A fresh slot (mean 0, var 0, count 0) gives its first reading weight 1: `mean = x, var = 0`. While `1/(n + 1)` exceeds the
//! half-life's weight, the statistics are plain running means (no start-up bias, so a long
//! half-life does not make the first scores after warm-up too high). This is a robust (Huber-style) EWMA: an
//! outlier moves the mean by at most `α·clip·std` and says nothing about the spread, so one spike
//! barely moves the state, a level shift is absorbed at a bounded rate (its alert stays open for a
//! while instead of fading in seconds as the variance balloons), and a drift faster than that rate
//! keeps scoring high for as long as it lasts.
//!
//! **Non-finite readings never poison the state**: a NaN or ±Inf reading leaves the slot unchanged
//! and scores NaN ("no observation"); the caller counts them. A finite reading whose update would
//! overflow the state (|x| near `f32::MAX`) is scored but not absorbed.
//!
//! **All paths round identically.** The vector paths use the same IEEE operations in the same order as
//! the scalar path and deliberately no fused multiply-add, so scores and state are bit-for-bit equal
//! whichever path runs: alerts never depend on the CPU. Tests check this beside the f64 oracle.

mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(test)]
pub(crate) mod oracle;
#[cfg(test)]
mod tests;

use crate::isa::Isa;
use std::fmt;

/// Detector parameters, validated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ZParams {
    /// Weight of a new reading: `1 - 2^(-1/half_life)`.
    pub(crate) alpha: f32,
    /// Readings a slot must have absorbed before it scores (at least 1).
    pub(crate) warmup: u32,
    /// Where a slot's count saturates: `max(warmup, ceil(1/alpha))`, so that `1/(n + 1) < alpha`
    /// once it is reached.
    pub(crate) count_cap: u32,
    /// Floor of the variance: `min_std²`.
    pub(crate) min_var: f32,
    /// Clip of the update, in standard deviations (may be +Inf: no clipping).
    pub(crate) clip: f32,
    /// A new mean of smaller magnitude is stored as 0, and a new variance below `tiny_var` as 0:
    /// a slot whose readings settle at 0 (a pump switched off) or never change (a stuck sensor)
    /// would otherwise decay its state into subnormal numbers, on which every operation takes the
    /// CPU's slow path. Both are a millionth of `min_std` (and its square) or the smallest normal
    /// number: far below what the score can see, since the spread is floored at `min_std`.
    pub(crate) tiny_mean: f32,
    pub(crate) tiny_var: f32,
}

/// Why [`ZParams::new`] refused its arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamError(pub(crate) String);

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParamError {}

impl ZParams {
    /// `half_life` in readings (0 < half_life <= 1e8), `warmup` in readings (1..=1e9), `min_std` > 0, `clip` > 0
    /// (`f32::INFINITY` turns clipping off).
    pub fn new(
        half_life: f64,
        warmup: u32,
        min_std: f32,
        clip: f32,
    ) -> Result<ZParams, ParamError> {
        if !(half_life.is_finite() && half_life > 0.0 && half_life <= 1e8) {
            return Err(ParamError(format!(
                "half_life must be a positive number of readings, got {half_life}"
            )));
        }
        if !(1..=1_000_000_000).contains(&warmup) {
            return Err(ParamError(format!(
                "warmup must be between 1 and 1e9 readings, got {warmup}"
            )));
        }
        let min_var = min_std * min_std;
        if !(min_std.is_finite() && min_std > 0.0 && min_var > 0.0 && min_var.is_finite()) {
            return Err(ParamError(format!(
                "min_std must be positive and representable squared, got {min_std}"
            )));
        }
        if clip.is_nan() || clip <= 0.0 {
            return Err(ParamError(format!(
                "clip must be positive (or inf), got {clip}"
            )));
        }
        let alpha = (1.0 - 0.5f64.powf(1.0 / half_life)) as f32;
        if alpha <= 0.0 {
            return Err(ParamError(format!(
                "half_life {half_life} is too long for f32 state"
            )));
        }
        let count_cap = warmup.max((1.0 / alpha as f64).ceil() as u32);
        let tiny_mean = (min_std * 1e-6).max(f32::MIN_POSITIVE);
        let tiny_var = (tiny_mean * tiny_mean).max(f32::MIN_POSITIVE);
        Ok(ZParams {
            alpha,
            warmup,
            count_cap,
            min_var,
            clip,
            tiny_mean,
            tiny_var,
        })
    }

    /// Weight of a new reading.
    pub fn alpha(&self) -> f32 {
        self.alpha
    }

    /// Readings before a slot scores.
    pub fn warmup(&self) -> u32 {
        self.warmup
    }
}

/// The state of many slots, as columns.
#[derive(Clone, Debug, Default)]
pub struct ZSlots {
    /// Exponentially weighted mean.
    pub mean: Vec<f32>,
    /// Exponentially weighted variance (never negative, never NaN).
    pub var: Vec<f32>,
    /// Readings absorbed, saturating at `max(warmup, ceil(1/alpha))`.
    pub count: Vec<u32>,
}

impl ZSlots {
    /// `n` fresh slots.
    pub fn new(n: usize) -> ZSlots {
        ZSlots {
            mean: vec![0.0; n],
            var: vec![0.0; n],
            count: vec![0; n],
        }
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.mean.len()
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.mean.is_empty()
    }

    /// Appends `n` fresh slots and returns the index of the first.
    pub fn grow(&mut self, n: usize) -> usize {
        let base = self.len();
        self.mean.resize(base + n, 0.0);
        self.var.resize(base + n, 0.0);
        self.count.resize(base + n, 0);
        base
    }
}

/// The z-score kernel on one instruction set. Holding one means the ISA is available.
#[derive(Clone, Copy, Debug)]
pub struct ZScore {
    isa: Isa,
    params: ZParams,
}

impl ZScore {
    /// `None` when this CPU cannot run `isa`.
    pub fn new(isa: Isa, params: ZParams) -> Option<ZScore> {
        isa.is_available().then_some(ZScore { isa, params })
    }

    /// The path this kernel runs.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The parameters.
    pub fn params(&self) -> &ZParams {
        &self.params
    }

    /// Absorbs `x[i]` into slot `start + i` for every `i` and writes its score to `score[i]`.
    ///
    /// # Panics
    /// If `score` is not as long as `x`, or the slots `start..start + x.len()` do not exist.
    #[inline]
    pub fn update(&self, slots: &mut ZSlots, start: usize, x: &[f32], score: &mut [f32]) {
        let end = start + x.len();
        assert!(
            score.len() == x.len(),
            "zscore: score and x differ in length"
        );
        assert!(
            end <= slots.len(),
            "zscore: slots {start}..{end} out of {}",
            slots.len()
        );
        let mean = &mut slots.mean[start..end];
        let var = &mut slots.var[start..end];
        let count = &mut slots.count[start..end];
        match self.isa {
            Isa::Scalar => scalar::update(&self.params, mean, var, count, x, score),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `ZScore::new` only builds an Avx2 kernel when `Isa::Avx2.is_available()`
            // confirmed AVX2 and FMA on this CPU; all slices have the length of `x` (checked above).
            Isa::Avx2 => unsafe { x86_64::avx2::update(&self.params, mean, var, count, x, score) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `ZScore::new` only builds an Avx512 kernel when `Isa::Avx512.is_available()`
            // confirmed AVX-512F on this CPU; all slices have the length of `x` (checked above).
            Isa::Avx512 => unsafe {
                x86_64::avx512::update(&self.params, mean, var, count, x, score)
            },
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => unreachable!("x86_64 paths are never available elsewhere"),
        }
    }
}
