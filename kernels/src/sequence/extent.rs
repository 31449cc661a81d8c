//! The extent stage: a reading beyond everything its slot has seen.
//!
//! Each slot keeps the lowest and highest of its readings so far. Once its levels are learnt
//! (`range_warmup` readings), a reading more than `tolerance · (hi − lo)` beyond that extent is an
//! excursion: it scores `score`, which then decays at the rate of the likelihood's smoothing, so
//! the alert policy sees it for as many readings as a smoothed surprise of that size. The extent
//! widens to take the reading in, so only a new record high (or low) scores again: a series that
//! keeps setting records (a growing count) alerts on each, one that settles in a range stays quiet.
//!
//! This is the idea of the spatial anomaly in Numenta's NAB detector (a value outside the min/max
//! seen so far by 5 % of that range), causal as it is there. A one-reading spike far above a
//! channel's past is what the z-score stages cannot hold on to: its surprise is capped and smoothed
//! away before it counts, and in a spiky series the history has learnt that surprises happen.
//!
//! Scalar and shared by every instruction-set path after the vector stages, so every path gives
//! the same bits.

use super::ExtentParams;

/// The extent state of many slots, as columns.
#[derive(Clone, Debug, Default)]
pub struct ExtentSlots {
    /// The lowest and highest finite reading so far (∞ and −∞ before the first).
    pub lo: Vec<f32>,
    pub hi: Vec<f32>,
    /// The decaying score of the slot's last excursion.
    pub excursion: Vec<f32>,
}

impl ExtentSlots {
    /// Appends `n` fresh slots.
    pub(crate) fn grow(&mut self, n: usize) {
        let m = self.lo.len() + n;
        self.lo.resize(m, f32::INFINITY);
        self.hi.resize(m, f32::NEG_INFINITY);
        self.excursion.resize(m, 0.0);
    }

    /// Bytes of state per slot.
    pub(crate) const BYTES_PER_SLOT: usize = 3 * 4;
}

/// Absorbs `x[i]` into slot `start + i` (armed once `count[start + i]` readings reach
/// `p.armed_from`) and raises `score[i]` to the slot's excursion score where that is higher.
/// Non-finite readings leave the slot and their score alone.
pub(crate) fn update(
    p: &ExtentParams,
    s: &mut ExtentSlots,
    count: &[u32],
    start: usize,
    x: &[f32],
    score: &mut [f32],
) {
    let end = start + x.len();
    let lo = &mut s.lo[start..end];
    let hi = &mut s.hi[start..end];
    let exc = &mut s.excursion[start..end];
    let count = &count[start..end];
    for i in 0..x.len() {
        let xi = x[i];
        if !xi.is_finite() {
            continue;
        }
        let (l, h) = (lo[i], hi[i]);
        let margin = p.tolerance * (h - l);
        let beyond = xi > h + margin || xi < l - margin;
        let hit = beyond && h > l && count[i] >= p.armed_from;
        lo[i] = l.min(xi);
        hi[i] = h.max(xi);
        let e = if hit { p.score } else { exc[i] * p.decay };
        exc[i] = e;
        if e > score[i] {
            score[i] = e;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: ExtentParams = ExtentParams {
        tolerance: 0.05,
        score: 10.0,
        decay: 0.5,
        armed_from: 3,
    };

    /// Feeds `xs` one at a time to one slot whose count is the index; returns the scores.
    fn run(xs: &[f32]) -> Vec<f32> {
        let mut s = ExtentSlots::default();
        s.grow(1);
        xs.iter()
            .enumerate()
            .map(|(t, &x)| {
                let mut score = [0.0f32];
                update(&P, &mut s, &[t as u32], 0, &[x], &mut score);
                score[0]
            })
            .collect()
    }

    #[test]
    fn a_new_record_scores_and_decays() {
        // Range 0..10 after three readings; 10.4 is within 5 %, 10.6 beyond it.
        let got = run(&[0.0, 10.0, 5.0, 10.4, 11.0, 5.0, 5.0, 11.2]);
        assert_eq!(got, [0.0, 0.0, 0.0, 0.0, 10.0, 5.0, 2.5, 1.25]);
        // 11.2 is within 5 % of the widened range 0..11; a new low scores like a new high.
        assert_eq!(run(&[0.0, 10.0, 5.0, -0.6])[3], 10.0);
    }

    #[test]
    fn nothing_scores_before_it_is_armed_or_on_a_flat_range() {
        assert_eq!(run(&[0.0, 10.0, 100.0]), [0.0; 3]);
        assert_eq!(run(&[4.0, 4.0, 4.0, 4.0, 9.0]), [0.0; 5]);
    }

    #[test]
    fn non_finite_readings_touch_nothing() {
        let got = run(&[0.0, 10.0, 5.0, f32::NAN, f32::INFINITY, 10.4, -0.4]);
        assert_eq!(got, [0.0; 7]);
    }

    #[test]
    fn a_higher_score_is_kept() {
        let mut s = ExtentSlots::default();
        s.grow(2);
        let mut score = [0.0f32, 50.0];
        update(&P, &mut s, &[9, 9], 0, &[0.0, 0.0], &mut score);
        update(&P, &mut s, &[9, 9], 0, &[1.0, 1.0], &mut score);
        update(&P, &mut s, &[9, 9], 0, &[2.0, 2.0], &mut score);
        assert_eq!(score, [10.0, 50.0]);
    }
}
