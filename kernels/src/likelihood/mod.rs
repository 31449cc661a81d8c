//! Anomaly likelihood over multi-scale z-scores: a streaming detector that fires once when a
//! series behaves unlike its own recent history, at several time scales at once.
//!
//! For every reading `x` of a slot, three robust z-scores ([`crate::zscore`]) measure surprise:
//!
//! ```text
//! z_fast  = zscore(x)            half-life `fast_half_life` (a short memory: sudden changes)
//! z_slow  = zscore(x)            half-life `half_life`      (the level the series usually has)
//! z_diff  = zscore(x - x_prev)   half-life `half_life`      (the change of a reading: jumps, noise bursts)
//! raw     = max(min(z, cap))     over the three (a missing z counts 0)
//! smooth  = smooth + β·(raw - smooth)            β from `smooth_half_life`
//! score   = zscore(smooth)       half-life `history_half_life`, no clip (the likelihood)
//! ```
//!
//! The last step is the idea of Numenta's anomaly likelihood: a series that is always noisy has a
//! high raw surprise all the time, so what counts is how far the recent (smoothed) surprise stands
//! above that series' own long-run surprise. Noisy series stop crying wolf, quiet series still alert
//! on small changes, and an anomaly scores high for a short while and then stops (the history
//! absorbs it), so an alert opens once per episode. The likelihood learns nothing while the
//! z-scores are still warming up (their zeros would teach it a false calm).
//!
//! Everything is per slot, constant memory (14 numbers per slot), and runs as four calls of the
//! z-score kernel on the chosen instruction set plus one elementwise pass, so every path is
//! bit-identical to the scalar one, like the z-score kernel itself. A non-finite reading scores
//! NaN and changes nothing, except that the next difference is taken against the last finite
//! reading.

#[cfg(test)]
mod oracle;
#[cfg(test)]
mod tests;

use crate::isa::Isa;
use crate::zscore::{ParamError, ZParams, ZScore, ZSlots};

/// Parameters, validated by [`LikelihoodParams::new`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LikelihoodParams {
    pub(crate) fast: ZParams,
    pub(crate) slow: ZParams,
    pub(crate) history: ZParams,
    pub(crate) cap: f32,
    pub(crate) beta: f32,
}

/// The inputs of [`LikelihoodParams::new`], in readings and standard deviations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LikelihoodSpec {
    pub fast_half_life: f64,
    pub half_life: f64,
    pub warmup: u32,
    pub min_std: f32,
    pub clip: f32,
    pub cap: f32,
    pub smooth_half_life: f64,
    pub history_half_life: f64,
    pub history_warmup: u32,
}

impl Default for LikelihoodSpec {
    /// The values tuned on NAB (see the README's evaluation table).
    fn default() -> Self {
        LikelihoodSpec {
            fast_half_life: 30.0,
            half_life: 300.0,
            warmup: 60,
            min_std: 1e-3,
            clip: 3.0,
            cap: 10.0,
            smooth_half_life: 10.0,
            history_half_life: 2000.0,
            history_warmup: 200,
        }
    }
}

/// The floor of the likelihood's standard deviation: smoothed surprise is a number of order 1.
const HISTORY_MIN_STD: f32 = 1e-3;

impl LikelihoodParams {
    /// Validates `spec`; each z-score's parameters are checked as [`ZParams::new`] checks them.
    pub fn new(spec: &LikelihoodSpec) -> Result<LikelihoodParams, ParamError> {
        // A z-score's error names its own `half_life` / `warmup`: rename them to the keys the
        // user wrote.
        let named = |half_life: &str, warmup: &str, r: Result<ZParams, ParamError>| {
            r.map_err(|ParamError(e)| {
                let e = match e.strip_prefix("half_life") {
                    Some(rest) => format!("{half_life}{rest}"),
                    None => e,
                };
                ParamError(match e.strip_prefix("warmup") {
                    Some(rest) => format!("{warmup}{rest}"),
                    None => e,
                })
            })
        };
        let fast = named(
            "fast_half_life",
            "warmup",
            ZParams::new(spec.fast_half_life, spec.warmup, spec.min_std, spec.clip),
        )?;
        let slow = named(
            "half_life",
            "warmup",
            ZParams::new(spec.half_life, spec.warmup, spec.min_std, spec.clip),
        )?;
        let history = named(
            "history_half_life",
            "history_warmup",
            ZParams::new(
                spec.history_half_life,
                spec.history_warmup,
                HISTORY_MIN_STD,
                f32::INFINITY,
            ),
        )?;
        if !(spec.cap.is_finite() && spec.cap > 0.0) {
            return Err(ParamError(format!(
                "cap must be a positive number of standard deviations, got {}",
                spec.cap
            )));
        }
        let beta = named(
            "smooth_half_life",
            "warmup",
            ZParams::new(spec.smooth_half_life, 1, 1.0, 1.0),
        )?
        .alpha();
        Ok(LikelihoodParams {
            fast,
            slow,
            history,
            cap: spec.cap,
            beta,
        })
    }
}

/// The state of many slots, as columns.
#[derive(Clone, Debug, Default)]
pub struct LikelihoodSlots {
    pub fast: ZSlots,
    pub slow: ZSlots,
    pub diff: ZSlots,
    pub history: ZSlots,
    /// The last finite reading (NaN before the first).
    pub prev: Vec<f32>,
    /// The smoothed raw surprise.
    pub smooth: Vec<f32>,
}

impl LikelihoodSlots {
    /// Bytes of state per slot: four z-scores (mean, variance, count), the last reading and the
    /// smoothed surprise.
    pub const BYTES_PER_SLOT: usize = 4 * 3 * 4 + 2 * 4;

    /// `n` fresh slots.
    pub fn new(n: usize) -> LikelihoodSlots {
        let mut s = LikelihoodSlots::default();
        s.grow(n);
        s
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.prev.len()
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.prev.is_empty()
    }

    /// Appends `n` fresh slots and returns the index of the first.
    pub fn grow(&mut self, n: usize) -> usize {
        let base = self.len();
        for z in [
            &mut self.fast,
            &mut self.slow,
            &mut self.diff,
            &mut self.history,
        ] {
            z.grow(n);
        }
        self.prev.resize(base + n, f32::NAN);
        self.smooth.resize(base + n, 0.0);
        base
    }

    /// The slow level each slot expects (its long-run mean).
    pub fn expected(&self) -> &[f32] {
        &self.slow.mean
    }
}

/// The detector on one instruction set, with its scratch columns.
#[derive(Clone, Debug)]
pub struct Likelihood {
    params: LikelihoodParams,
    fast: ZScore,
    slow: ZScore,
    history: ZScore,
    z_fast: Vec<f32>,
    z_slow: Vec<f32>,
    z_diff: Vec<f32>,
    work: Vec<f32>,
    warm: Vec<bool>,
}

impl Likelihood {
    /// `None` when this CPU cannot run `isa`.
    pub fn new(isa: Isa, params: LikelihoodParams) -> Option<Likelihood> {
        Some(Likelihood {
            params,
            fast: ZScore::new(isa, params.fast)?,
            slow: ZScore::new(isa, params.slow)?,
            history: ZScore::new(isa, params.history)?,
            z_fast: Vec::new(),
            z_slow: Vec::new(),
            z_diff: Vec::new(),
            work: Vec::new(),
            warm: Vec::new(),
        })
    }

    /// The path this detector runs.
    pub fn isa(&self) -> Isa {
        self.slow.isa()
    }

    /// Absorbs `x[i]` into slot `start + i` for every `i` and writes its likelihood score to
    /// `score[i]` (0 while warming up, NaN for a non-finite reading).
    ///
    /// # Panics
    /// If `score` is not as long as `x`, or the slots `start..start + x.len()` do not exist.
    pub fn update(
        &mut self,
        slots: &mut LikelihoodSlots,
        start: usize,
        x: &[f32],
        score: &mut [f32],
    ) {
        let mut work = std::mem::take(&mut self.work);
        work.resize(x.len(), 0.0);
        self.surprise(slots, start, x, &mut work);
        self.history.update(&mut slots.history, start, &work, score);
        self.work = work;
        // A reading that has a z-score but no likelihood yet scores 0.
        for (s, z) in score.iter_mut().zip(&self.z_slow) {
            if s.is_nan() && !z.is_nan() {
                *s = 0.0;
            }
        }
    }

    /// The stages before the likelihood: writes each reading's smoothed raw surprise to
    /// `smooth[i]` (NaN for a non-finite reading or while the z-scores warm up), updating every
    /// state but the history's.
    ///
    /// # Panics
    /// As [`Likelihood::update`].
    fn surprise(
        &mut self,
        slots: &mut LikelihoodSlots,
        start: usize,
        x: &[f32],
        smooth: &mut [f32],
    ) {
        let n = x.len();
        let end = start + n;
        assert!(
            smooth.len() == n,
            "likelihood: smooth and x differ in length"
        );
        assert!(
            end <= slots.len(),
            "likelihood: slots {start}..{end} out of {}",
            slots.len()
        );
        for v in [&mut self.z_fast, &mut self.z_slow, &mut self.z_diff] {
            v.resize(n, 0.0);
        }
        let warmup = self.params.slow.warmup();
        self.warm.clear();
        self.warm
            .extend(slots.slow.count[start..end].iter().map(|&c| c >= warmup));

        self.fast
            .update(&mut slots.fast, start, x, &mut self.z_fast);
        self.slow
            .update(&mut slots.slow, start, x, &mut self.z_slow);
        // The change since the last finite reading (NaN when there is none, or x is not finite).
        for ((d, &xi), prev) in smooth.iter_mut().zip(x).zip(&mut slots.prev[start..end]) {
            *d = xi - *prev;
            if xi.is_finite() {
                *prev = xi;
            }
        }
        self.slow
            .update(&mut slots.diff, start, smooth, &mut self.z_diff);

        let (cap, beta) = (self.params.cap, self.params.beta);
        // Plain comparisons and selects (no NaN-aware min/max calls), so that this pass compiles
        // to branch-free vector code. A NaN z fails every comparison and counts 0.
        let capped = |z: f32| {
            let z = if z > 0.0 { z } else { 0.0 };
            if z < cap {
                z
            } else {
                cap
            }
        };
        let max = |a: f32, b: f32| if a > b { a } else { b };
        let columns = smooth
            .iter_mut()
            .zip(&mut slots.smooth[start..end])
            .zip(self.z_fast.iter().zip(&self.z_slow))
            .zip(self.z_diff.iter().zip(&self.warm));
        for (((out, s), (&zf, &zs)), (&zd, &warm)) in columns {
            let raw = max(max(capped(zf), capped(zs)), capped(zd));
            let next = *s + beta * (raw - *s);
            let seen = !zs.is_nan();
            *s = if seen { next } else { *s };
            *out = if seen & warm { next } else { f32::NAN };
        }
    }
}
