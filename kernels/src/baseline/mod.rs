//! Deviation from a learnt baseline: a streaming detector for process sensors that should hold
//! the state they started in (a pump loop, a valve line), where a slow adaptive statistic would
//! absorb a fault that lasts minutes.
//!
//! Each slot learns its baseline from its first `train` readings, then freezes it:
//!
//! ```text
//! while learning:  Welford's running mean and M2 of the first `train` readings   (score 0)
//! at the end:      scale = max(sqrt(M2 / train), rel_floor · |mean|, min_std)
//! then:            z      = min(|x - mean| / scale, Z_CAP)
//!                  smooth = smooth + α·(z - smooth)        α from `smooth_half_life`
//!                  score  = smooth
//! ```
//!
//! The relative floor is a sensor's tolerance: a reading within about `rel_floor` of its usual
//! magnitude is never a deviation, however quiet the training readings were (a few hundred
//! readings understate a channel's natural spread, and a quiet channel would otherwise alert on
//! its own noise). The smoothing asks for a deviation that persists over a few readings.
//!
//! Per slot: 5 numbers. The scalar path and the vector paths use the same IEEE operations in the
//! same order (no fused multiply-add), so scores and state are bit-for-bit equal on every path. A
//! non-finite reading scores NaN and changes nothing.

#[cfg(test)]
mod oracle;
mod scalar;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86_64;

use crate::isa::Isa;
use crate::zscore::ParamError;

/// The highest per-reading deviation, in scales: keeps the smoothed score finite for any finite
/// reading.
pub(crate) const Z_CAP: f32 = 1e6;

/// Parameters, validated by [`BaselineParams::new`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BaselineParams {
    pub(crate) train: u32,
    pub(crate) rel_floor: f32,
    pub(crate) min_std: f32,
    pub(crate) alpha: f32,
}

/// The inputs of [`BaselineParams::new`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BaselineSpec {
    /// Readings that set a slot's baseline (2..=1e7).
    pub train: u32,
    /// The smallest scale, as a fraction of the baseline's magnitude (0..=1).
    pub rel_floor: f32,
    /// The smallest scale in reading units (> 0).
    pub min_std: f32,
    /// Half-life of the smoothing, in readings (> 0; 1 or less: nearly no smoothing).
    pub smooth_half_life: f64,
}

impl Default for BaselineSpec {
    /// The values chosen on the SKAB development subset (see the README's evaluation table).
    fn default() -> Self {
        BaselineSpec {
            train: 400,
            rel_floor: 0.01,
            min_std: 1e-3,
            smooth_half_life: 20.0,
        }
    }
}

impl BaselineParams {
    /// Validates `spec`.
    pub fn new(spec: &BaselineSpec) -> Result<BaselineParams, ParamError> {
        if !(2..=10_000_000).contains(&spec.train) {
            return Err(ParamError(format!(
                "train_rows must be between 2 and 1e7 readings, got {}",
                spec.train
            )));
        }
        if !(spec.rel_floor.is_finite() && (0.0..=1.0).contains(&spec.rel_floor)) {
            return Err(ParamError(format!(
                "rel_floor must be between 0 and 1, got {}",
                spec.rel_floor
            )));
        }
        if !(spec.min_std.is_finite() && spec.min_std > 0.0) {
            return Err(ParamError(format!(
                "min_std must be a positive number, got {}",
                spec.min_std
            )));
        }
        let h = spec.smooth_half_life;
        if !(h.is_finite() && h > 0.0 && h <= 1e8) {
            return Err(ParamError(format!(
                "smooth_half_life must be a positive number of readings, got {h}"
            )));
        }
        Ok(BaselineParams {
            train: spec.train,
            rel_floor: spec.rel_floor,
            min_std: spec.min_std,
            alpha: (1.0 - 0.5f64.powf(1.0 / h)) as f32,
        })
    }

    /// Readings a slot learns from before it scores.
    pub fn train(&self) -> u32 {
        self.train
    }
}

/// The state of many slots, as columns.
#[derive(Clone, Debug, Default)]
pub struct BaselineSlots {
    /// Readings absorbed, saturating at `train`.
    pub count: Vec<u32>,
    /// The running (then frozen) mean.
    pub mean: Vec<f32>,
    /// The running sum of squared deviations (Welford's M2) while learning.
    pub m2: Vec<f32>,
    /// `1 / scale` once learnt (0 before).
    pub inv_scale: Vec<f32>,
    /// The smoothed deviation.
    pub smooth: Vec<f32>,
}

impl BaselineSlots {
    /// `n` fresh slots.
    pub fn new(n: usize) -> BaselineSlots {
        let mut s = BaselineSlots::default();
        s.grow(n);
        s
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.count.len()
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.count.is_empty()
    }

    /// Appends `n` fresh slots.
    pub fn grow(&mut self, n: usize) {
        let to = self.len() + n;
        self.count.resize(to, 0);
        self.mean.resize(to, 0.0);
        self.m2.resize(to, 0.0);
        self.inv_scale.resize(to, 0.0);
        self.smooth.resize(to, 0.0);
    }

    /// The value each slot expects: its baseline mean.
    pub fn expected(&self) -> &[f32] {
        &self.mean
    }

    /// How far `x` lies from slot `slot`'s baseline, in scales (0 while it learns; NaN for a
    /// reading that is not a number): the per-reading term the score smooths.
    ///
    /// # Panics
    /// If the slot does not exist.
    pub fn deviation(&self, slot: usize, x: f32) -> f32 {
        if !x.is_finite() {
            return f32::NAN;
        }
        // `inv_scale` is 0 until the baseline is learnt, and positive after.
        ((x - self.mean[slot]).abs() * self.inv_scale[slot]).min(Z_CAP)
    }

    /// Bytes of state per slot.
    pub const BYTES_PER_SLOT: usize = 5 * 4;
}

/// The baseline kernel on one instruction set. Holding one means the ISA is available.
#[derive(Clone, Copy, Debug)]
pub struct Baseline {
    isa: Isa,
    params: BaselineParams,
}

impl Baseline {
    /// `None` when this CPU cannot run `isa`.
    pub fn new(isa: Isa, params: BaselineParams) -> Option<Baseline> {
        isa.is_available().then_some(Baseline { isa, params })
    }

    /// The path this kernel runs.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The parameters.
    pub fn params(&self) -> &BaselineParams {
        &self.params
    }

    /// Absorbs `x[i]` into slot `start + i` for every `i` and writes its score to `score[i]`
    /// (0 while learning, NaN for a non-finite reading).
    ///
    /// # Panics
    /// If `score` is not as long as `x`, or the slots `start..start + x.len()` do not exist.
    pub fn update(&self, slots: &mut BaselineSlots, start: usize, x: &[f32], score: &mut [f32]) {
        let end = start + x.len();
        assert!(
            score.len() == x.len(),
            "baseline: score and x differ in length"
        );
        assert!(
            end <= slots.len(),
            "baseline: slots {start}..{end} out of {}",
            slots.len()
        );
        let s = Columns {
            count: &mut slots.count[start..end],
            mean: &mut slots.mean[start..end],
            m2: &mut slots.m2[start..end],
            inv_scale: &mut slots.inv_scale[start..end],
            smooth: &mut slots.smooth[start..end],
        };
        match self.isa {
            Isa::Scalar => scalar::update(&self.params, s, x, score),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Baseline::new` only builds an Avx2 kernel when `Isa::Avx2.is_available()`;
            // every column has the length of `x` (checked above).
            Isa::Avx2 => unsafe { x86_64::avx2::update(&self.params, s, x, score) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, for AVX-512.
            Isa::Avx512 => unsafe { x86_64::avx512::update(&self.params, s, x, score) },
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => unreachable!("x86_64 paths are never available elsewhere"),
        }
    }
}

/// A run of slots' columns, all as long as the readings.
pub(crate) struct Columns<'a> {
    pub count: &'a mut [u32],
    pub mean: &'a mut [f32],
    pub m2: &'a mut [f32],
    pub inv_scale: &'a mut [f32],
    pub smooth: &'a mut [f32],
}
