//! Sequence novelty: a streaming detector for series whose readings stay in their usual range but
//! arrive in an order the series has never shown (a daily cycle that skips a beat, a machine that
//! stalls mid-cycle), combined with the multi-scale z-scores and the anomaly likelihood of
//! [`crate::likelihood`].
//!
//! Each slot quantises its readings into levels of a fixed width, learnt from its own first
//! readings (no knowledge of the series' future range: a level beyond the learnt range is simply a
//! new level), and remembers which short sequences of levels — the current level alone, and with
//! the 1, 2, … `order - 1` levels before it — it has seen. Contexts of quantised values are the
//! idea of Smirnov's CAD OSE; this memory is a bounded one:
//!
//! ```text
//! level    = floor((x - lo) / step)       lo, step = min, (max - min)/levels of the first `range_warmup` readings
//! key_k    = hash(level_t, level_t-1, …, level_t-k)          k = 0 … order-1
//! novelty  = (number of keys not in memory) / order          then every key goes into memory
//! smooth   = smooth + beta · (novelty - smooth)              beta of the likelihood's smoothing
//! surprise = z-score of smooth against its own history       the likelihood's history parameters
//! score    = max(likelihood of the reading, weight · surprise)
//! ```
//!
//! The value likelihood catches readings outside their usual range; the novelty's own history
//! catches a run of unfamiliar sequences in a series where novelty is usually rare, and stays
//! quiet in one (like a noisy count) where it is common. A reading beyond everything the slot has
//! seen scores on its own ([`extent`]): a spike the z-scores' cap and smoothing would dilute.
//!
//! The memory of a slot is two bitsets of `2^memory_bits` bits (current and previous
//! generation): a key is known when its bit is set in either. When the current one holds
//! `2^memory_bits / 4` keys it becomes the previous one and a fresh one starts, so a slot
//! forgets sequences it has not seen for two generations and its memory never grows. Novelty is
//! not scored while a slot learns (`range_warmup + learn` readings).
//!
//! The novelty pass is integer arithmetic after one subtraction and one multiplication, so every
//! instruction-set path gives the same bits; the z-score stages run on the chosen path as the
//! likelihood detector's do.

pub mod extent;
#[cfg(test)]
mod oracle;
mod scalar;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86_64;

use crate::isa::Isa;
use crate::likelihood::{Likelihood, LikelihoodParams, LikelihoodSlots, LikelihoodSpec};
use crate::zscore::{ParamError, ZScore, ZSlots};
use extent::ExtentSlots;

/// Smoothed novelty below this is 0 (novelty is a multiple of `1 / order`).
const NOVELTY_FLOOR: f32 = 1e-12;

/// The most levels a context spans.
pub const MAX_ORDER: usize = 8;

/// Parameters, validated by [`SequenceParams::new`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SequenceParams {
    pub(crate) likelihood: LikelihoodParams,
    pub(crate) novelty: NoveltyParams,
    pub(crate) extent: ExtentParams,
}

/// The extent stage's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ExtentParams {
    /// Beyond the extent by this fraction of it, a reading is an excursion.
    pub(crate) tolerance: f32,
    /// The score of an excursion (0: the stage never scores).
    pub(crate) score: f32,
    /// Per reading, the excursion score is multiplied by this.
    pub(crate) decay: f32,
    /// Readings a slot has absorbed before an excursion scores.
    pub(crate) armed_from: u32,
}

/// The novelty stage's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct NoveltyParams {
    pub(crate) levels: f32,
    pub(crate) order: usize,
    pub(crate) range_warmup: u32,
    /// `range_warmup + learn`: from this count on, novelty scores.
    pub(crate) scoring_from: u32,
    pub(crate) memory_bits: u32,
    pub(crate) weight: f32,
    /// Whether a context of the reading's hour of the day joins the level contexts.
    pub(crate) time_of_day: bool,
}

impl NoveltyParams {
    /// Contexts per reading: the `order` level contexts, and the hour of the day's.
    pub(crate) fn keys(&self) -> usize {
        self.order + self.time_of_day as usize
    }

    /// 32-bit words per bitset of a slot.
    pub(crate) fn words(&self) -> usize {
        1 << (self.memory_bits - 5)
    }

    /// Keys a generation holds before it is retired.
    pub(crate) fn generation(&self) -> u32 {
        1 << (self.memory_bits - 2)
    }
}

/// The inputs of [`SequenceParams::new`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SequenceSpec {
    pub likelihood: LikelihoodSpec,
    /// Levels across the range of the first `range_warmup` readings.
    pub levels: u32,
    /// Levels per context (1..=8).
    pub order: u32,
    /// Readings that set a slot's levels.
    pub range_warmup: u32,
    /// Readings after that which only fill the memory.
    pub learn: u32,
    /// Bits of each of a slot's two memory generations, as a power of two (10..=20).
    pub memory_bits: u32,
    /// The raw surprise of a reading none of whose contexts is known.
    pub weight: f32,
    /// A reading beyond the lowest or highest so far by this fraction of their span is an
    /// excursion (Numenta's spatial tolerance, 0.05).
    pub extent_tolerance: f32,
    /// The score of an excursion, which then decays as the likelihood's smoothing does; 0 turns
    /// the extent stage off.
    pub extent_score: f32,
    /// Whether the contexts include the reading's level (at half resolution) in its hour of the
    /// day, so a reading usual at noon and never seen at 3 a.m. is new at 3 a.m.
    pub time_of_day: bool,
}

impl Default for SequenceSpec {
    /// The values tuned on NAB (see the README's evaluation table).
    fn default() -> Self {
        SequenceSpec {
            likelihood: LikelihoodSpec::default(),
            levels: 16,
            order: 3,
            range_warmup: 300,
            learn: 300,
            memory_bits: 12,
            weight: 1.0,
            extent_tolerance: 0.05,
            extent_score: 10.0,
            time_of_day: true,
        }
    }
}

impl SequenceParams {
    /// Validates `spec`.
    pub fn new(spec: &SequenceSpec) -> Result<SequenceParams, ParamError> {
        let likelihood = LikelihoodParams::new(&spec.likelihood)?;
        if !(1..=1 << 20).contains(&spec.levels) {
            return Err(ParamError(format!(
                "levels must be between 1 and 2^20, got {}",
                spec.levels
            )));
        }
        if !(1..=MAX_ORDER as u32).contains(&spec.order) {
            return Err(ParamError(format!(
                "order must be between 1 and {MAX_ORDER}, got {}",
                spec.order
            )));
        }
        if !(2..=1_000_000_000).contains(&spec.range_warmup) {
            return Err(ParamError(format!(
                "range_warmup must be between 2 and 1e9 readings, got {}",
                spec.range_warmup
            )));
        }
        if spec.learn > 1_000_000_000 {
            return Err(ParamError(format!(
                "learn must be at most 1e9 readings, got {}",
                spec.learn
            )));
        }
        if !(10..=20).contains(&spec.memory_bits) {
            return Err(ParamError(format!(
                "memory_bits must be between 10 and 20, got {}",
                spec.memory_bits
            )));
        }
        if !(spec.weight.is_finite() && spec.weight >= 0.0) {
            return Err(ParamError(format!(
                "weight must be a non-negative number, got {}",
                spec.weight
            )));
        }
        if !(spec.extent_tolerance.is_finite() && spec.extent_tolerance >= 0.0) {
            return Err(ParamError(format!(
                "extent_tolerance must be a non-negative number, got {}",
                spec.extent_tolerance
            )));
        }
        if !(spec.extent_score.is_finite() && spec.extent_score >= 0.0) {
            return Err(ParamError(format!(
                "extent_score must be a non-negative number, got {}",
                spec.extent_score
            )));
        }
        Ok(SequenceParams {
            extent: ExtentParams {
                tolerance: spec.extent_tolerance,
                score: spec.extent_score,
                decay: 1.0 - likelihood.beta,
                armed_from: spec.range_warmup,
            },
            likelihood,
            novelty: NoveltyParams {
                levels: spec.levels as f32,
                order: spec.order as usize,
                range_warmup: spec.range_warmup,
                scoring_from: spec.range_warmup + spec.learn,
                memory_bits: spec.memory_bits,
                weight: spec.weight,
                time_of_day: spec.time_of_day,
            },
        })
    }

    /// Bytes of state per slot.
    pub fn bytes_per_slot(&self) -> usize {
        let n = &self.novelty;
        2 * n.words() * 4
            + MAX_ORDER * 4
            + 5 * 4
            + LikelihoodSlots::BYTES_PER_SLOT
            + ExtentSlots::BYTES_PER_SLOT
    }
}

/// The novelty stage's state of many slots, as columns.
#[derive(Clone, Debug, Default)]
pub struct NoveltySlots {
    /// Readings absorbed (saturating at the count from which novelty scores).
    pub count: Vec<u32>,
    /// The lowest and highest of the first `range_warmup` readings.
    pub lo: Vec<f32>,
    pub hi: Vec<f32>,
    /// `levels / (hi - lo)` once the range is learnt (0 before).
    pub inv_step: Vec<f32>,
    /// Keys in the current generation.
    pub fill: Vec<u32>,
    /// The last `MAX_ORDER - 1` levels, most recent first (column k: the level k + 1 readings ago).
    pub hist: [Vec<i32>; MAX_ORDER - 1],
    /// Current and previous generation, `words` per slot.
    pub current: Vec<u32>,
    pub previous: Vec<u32>,
    words: usize,
}

impl NoveltySlots {
    fn grow(&mut self, n: usize, words: usize) {
        let base = self.count.len();
        self.words = words;
        self.count.resize(base + n, 0);
        self.lo.resize(base + n, f32::INFINITY);
        self.hi.resize(base + n, f32::NEG_INFINITY);
        self.inv_step.resize(base + n, 0.0);
        self.fill.resize(base + n, 0);
        for h in &mut self.hist {
            h.resize(base + n, i32::MIN);
        }
        self.current.resize((base + n) * words, 0);
        self.previous.resize((base + n) * words, 0);
    }
}

/// The state of many slots: the likelihood's and the novelty memory.
#[derive(Clone, Debug, Default)]
pub struct SequenceSlots {
    pub likelihood: LikelihoodSlots,
    pub novelty: NoveltySlots,
    /// The smoothed novelty.
    pub smooth: Vec<f32>,
    /// The smoothed novelty's history.
    pub history: ZSlots,
    pub extent: ExtentSlots,
}

impl SequenceSlots {
    /// `n` fresh slots for `params`.
    pub fn new(n: usize, params: &SequenceParams) -> SequenceSlots {
        let mut s = SequenceSlots::default();
        s.grow(n, params);
        s
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.likelihood.len()
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.likelihood.is_empty()
    }

    /// Appends `n` fresh slots for `params`.
    pub fn grow(&mut self, n: usize, params: &SequenceParams) {
        self.likelihood.grow(n);
        self.novelty.grow(n, params.novelty.words());
        self.smooth.resize(self.smooth.len() + n, 0.0);
        self.history.grow(n);
        self.extent.grow(n);
    }

    /// The slow level each slot expects.
    pub fn expected(&self) -> &[f32] {
        self.likelihood.expected()
    }
}

/// The detector on one instruction set, with its scratch column.
#[derive(Clone, Debug)]
pub struct Sequence {
    params: SequenceParams,
    likelihood: Likelihood,
    history: ZScore,
    novelty: Vec<f32>,
    surprise: Vec<f32>,
}

impl Sequence {
    /// `None` when this CPU cannot run `isa`.
    pub fn new(isa: Isa, params: SequenceParams) -> Option<Sequence> {
        Some(Sequence {
            params,
            likelihood: Likelihood::new(isa, params.likelihood)?,
            history: ZScore::new(isa, params.likelihood.history)?,
            novelty: Vec::new(),
            surprise: Vec::new(),
        })
    }

    /// The path this detector runs.
    pub fn isa(&self) -> Isa {
        self.likelihood.isa()
    }

    /// The parameters.
    pub fn params(&self) -> &SequenceParams {
        &self.params
    }

    /// Whether [`Sequence::update`] reads each reading's hour of the day.
    pub fn timed(&self) -> bool {
        self.params.novelty.time_of_day
    }

    /// Absorbs `x[i]` into slot `start + i` for every `i` and writes its score to `score[i]`
    /// (0 while warming up, NaN for a non-finite reading). `hours[i]` is the hour of the day
    /// (0..24) of `x[i]` when the detector is [`Sequence::timed`]; otherwise `hours` is not read
    /// and may be empty.
    ///
    /// # Panics
    /// If `score` (or, when timed, `hours`) is not as long as `x`, or the slots
    /// `start..start + x.len()` do not exist.
    pub fn update(
        &mut self,
        slots: &mut SequenceSlots,
        start: usize,
        x: &[f32],
        hours: &[i32],
        score: &mut [f32],
    ) {
        let n = x.len();
        assert!(score.len() == n, "sequence: score and x differ in length");
        assert!(
            !self.timed() || hours.len() == n,
            "sequence: hours and x differ in length"
        );
        assert!(
            start + n <= slots.len(),
            "sequence: slots {start}..{} out of {}",
            start + n,
            slots.len()
        );
        self.novelty.resize(n, 0.0);
        self.surprise.resize(n, 0.0);
        let p = &self.params.novelty;
        novelty(
            self.isa(),
            p,
            &mut slots.novelty,
            start,
            x,
            hours,
            &mut self.novelty,
        );
        self.likelihood
            .update(&mut slots.likelihood, start, x, score);
        // The smoothed novelty (NaN while learning: its zeros would teach the history a false
        // calm), then its likelihood.
        let beta = self.params.likelihood.beta;
        for (nv, sm) in self
            .novelty
            .iter_mut()
            .zip(&mut slots.smooth[start..start + n])
        {
            let next = *sm + beta * (*nv - *sm);
            // A long run of known contexts decays the smoothed novelty towards 0; flushing it
            // there before it turns subnormal keeps the arithmetic off the CPU's slow path (a
            // hundredfold slower per operation) at no cost in meaning.
            let next = if next < NOVELTY_FLOOR { 0.0 } else { next };
            // -1 while learning, NaN for a non-finite reading.
            let scored = *nv >= 0.0;
            *sm = if scored { next } else { *sm };
            *nv = if scored { next } else { f32::NAN };
        }
        self.history
            .update(&mut slots.history, start, &self.novelty, &mut self.surprise);
        let w = p.weight;
        for (s, &z) in score.iter_mut().zip(&self.surprise) {
            let z = w * z;
            *s = if z > *s { z } else { *s };
        }
        extent::update(
            &self.params.extent,
            &mut slots.extent,
            &slots.novelty.count,
            start,
            x,
            score,
        );
    }
}

/// The novelty pass on `isa` (which the caller holds as available); `hours` as long as `x`
/// when `p.time_of_day`.
fn novelty(
    isa: Isa,
    p: &NoveltyParams,
    s: &mut NoveltySlots,
    start: usize,
    x: &[f32],
    hours: &[i32],
    out: &mut [f32],
) {
    match isa {
        Isa::Scalar => scalar::novelty(p, s, start, x, hours, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Sequence::new` only builds an Avx2 detector when `Isa::Avx2.is_available()`,
        // and `Sequence::update` checked the lengths.
        Isa::Avx2 => unsafe { x86_64::avx2::novelty(p, s, start, x, hours, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX-512.
        Isa::Avx512 => unsafe { x86_64::avx512::novelty(p, s, start, x, hours, out) },
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx2 | Isa::Avx512 => unreachable!("x86_64 paths are never available elsewhere"),
    }
}

/// The mixing step of a context's hash (a multiply and a shift: the same bits in every lane).
#[inline(always)]
pub(crate) fn mix(h: u32, level: i32) -> u32 {
    let h = (h ^ level as u32).wrapping_mul(0x9E37_79B1);
    h ^ (h >> 15)
}

/// The seed of order k's hash, so that contexts of different lengths have different keys.
#[inline(always)]
pub(crate) fn seed(k: usize) -> u32 {
    (k as u32 + 1).wrapping_mul(0x85EB_CA77)
}

/// The key of a reading's level (at half resolution: a level and its neighbour share an hour's
/// context) in its hour of the day, `shift` bits dropped as for the level contexts.
#[inline(always)]
pub(crate) fn hour_key(level: i32, hour: i32, shift: u32) -> u32 {
    mix(mix(seed(MAX_ORDER), level >> 1), hour) >> shift
}

/// The hour of the day (0..24, UTC) of a time in epoch milliseconds.
#[inline]
pub fn hour_of_day(ms: i64) -> i32 {
    (ms.rem_euclid(86_400_000) / 3_600_000) as i32
}

/// The highest magnitude of a level: readings further out share the outermost level.
pub(crate) const LEVEL_LIMIT: f32 = 16_777_216.0;
