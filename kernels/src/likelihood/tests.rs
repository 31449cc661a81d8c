//! Every available path against the f64 oracle, and the paths against each other.

use super::oracle::{self, State};
use super::{Likelihood, LikelihoodParams, LikelihoodSlots, LikelihoodSpec};
use crate::isa::Isa;
use crate::rng::Rng;

/// Short memories so that every stage (warm-up, history warm-up, steady state) is reached fast.
fn spec() -> LikelihoodSpec {
    LikelihoodSpec {
        fast_half_life: 5.0,
        half_life: 20.0,
        warmup: 5,
        min_std: 1e-2,
        clip: 3.0,
        cap: 10.0,
        smooth_half_life: 3.0,
        history_half_life: 50.0,
        history_warmup: 10,
    }
}

/// A reading for slot `s` at step `t`: a per-slot level with noise, a level shift at step 150 in
/// every third slot, rare spikes and (optionally) non-finite values.
fn reading(rng: &mut Rng, s: usize, t: usize, with_bad: bool) -> f32 {
    let shift = if s.is_multiple_of(3) && t >= 150 {
        25.0
    } else {
        0.0
    };
    let level = (s % 7) as f64 * 10.0 - 20.0 + shift;
    let r = rng.unit();
    if with_bad && r < 0.02 {
        return f32::NAN;
    }
    if with_bad && r < 0.03 {
        return f32::INFINITY;
    }
    if r > 0.99 {
        return (level + 40.0 * rng.normal()) as f32;
    }
    (level + rng.normal()) as f32
}

/// The likelihood divides by a small spread, so f32 rounding is amplified: compare with a
/// tolerance relative to the score's scale.
fn close(got: f32, want: f64) -> bool {
    (got as f64 - want).abs() <= 2e-2 * want.abs().max(1.0)
}

fn run_against_oracle(isa: Isa, len: usize, pad: usize, steps: usize, with_bad: bool, seed: u64) {
    let params = LikelihoodParams::new(&spec()).expect("valid");
    let mut det = Likelihood::new(isa, params).expect("available");
    let mut rng = Rng(seed);
    let mut slots = LikelihoodSlots::new(len + 2 * pad);
    let mut want = vec![State::default(); len];
    let mut x = vec![0.0f32; len];
    let mut score = vec![0.0f32; len];
    let mut mismatches = 0;
    let mut compared = 0;
    for t in 0..steps {
        for (s, xs) in x.iter_mut().enumerate() {
            *xs = reading(&mut rng, s, t, with_bad);
        }
        det.update(&mut slots, pad, &x, &mut score);
        for s in 0..len {
            match oracle::step(&spec(), &mut want[s], x[s]) {
                None => assert!(score[s].is_nan(), "{isa} step {t} slot {s}: {}", score[s]),
                Some(w) => {
                    compared += 1;
                    if !close(score[s], w) {
                        mismatches += 1;
                    }
                }
            }
        }
    }
    // f32 and f64 states drift apart slowly; the scores must agree almost everywhere.
    assert!(
        mismatches * 1000 <= compared,
        "{isa} len {len} pad {pad}: {mismatches} of {compared} scores differ from the oracle"
    );
    for i in (0..pad).chain(pad + len..slots.len()) {
        assert!(
            slots.prev[i].is_nan() && slots.slow.count[i] == 0,
            "{isa}: padding {i} touched"
        );
    }
}

#[test]
fn every_path_matches_the_oracle_over_lengths_and_offsets() {
    for isa in Isa::under_test() {
        for len in [0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 67] {
            for pad in [0, 1, 3, 8] {
                run_against_oracle(isa, len, pad, 300, true, (len * 31 + pad) as u64);
            }
        }
    }
}

#[test]
fn every_path_matches_the_oracle_over_long_runs() {
    for isa in Isa::under_test() {
        run_against_oracle(isa, 257, 5, 1000, false, 7);
    }
}

#[test]
fn the_paths_agree_bit_for_bit() {
    let params = LikelihoodParams::new(&spec()).expect("valid");
    let mut rng = Rng(5);
    let len = 131;
    let xs: Vec<Vec<f32>> = (0..400)
        .map(|t| (0..len).map(|s| reading(&mut rng, s, t, true)).collect())
        .collect();
    let run = |isa: Isa| {
        let mut det = Likelihood::new(isa, params).expect("available");
        let mut slots = LikelihoodSlots::new(len);
        let mut score = vec![0.0; len];
        let mut out = Vec::new();
        for x in &xs {
            det.update(&mut slots, 0, x, &mut score);
            out.extend(score.iter().map(|s| s.to_bits()));
        }
        out
    };
    let reference = run(Isa::Scalar);
    for isa in Isa::under_test() {
        assert!(run(isa) == reference, "{isa} differs from scalar");
    }
}

/// The point of the detector: a level shift scores high once, then the history absorbs it, while a
/// noisy series that stays noisy does not keep scoring.
#[test]
fn a_shift_scores_high_then_fades() {
    for isa in Isa::under_test() {
        let params = LikelihoodParams::new(&spec()).expect("valid");
        let mut det = Likelihood::new(isa, params).expect("available");
        let mut slots = LikelihoodSlots::new(2);
        let mut rng = Rng(3);
        let mut score = [0.0f32; 2];
        let mut before = 0.0f32;
        let mut at_shift = 0.0f32;
        let mut late = 0.0f32;
        for t in 0..600 {
            let shift = if t >= 300 { 20.0 } else { 0.0 };
            let x = [(rng.normal() + shift) as f32, (10.0 * rng.normal()) as f32];
            det.update(&mut slots, 0, &x, &mut score);
            if (100..300).contains(&t) {
                before = before.max(score[0]).max(score[1]);
            }
            if (300..320).contains(&t) {
                at_shift = at_shift.max(score[0]);
            }
            if t >= 500 {
                late = late.max(score[0]);
            }
        }
        assert!(
            at_shift > 3.0 * before.max(1.0),
            "{isa}: {before} then {at_shift}"
        );
        assert!(
            late < at_shift / 3.0,
            "{isa}: still {late} long after the shift"
        );
    }
}

#[test]
fn warmup_scores_zero_and_non_finite_scores_nan() {
    let params = LikelihoodParams::new(&spec()).expect("valid");
    for isa in Isa::under_test() {
        let mut det = Likelihood::new(isa, params).expect("available");
        let mut slots = LikelihoodSlots::new(3);
        let mut score = [1.0f32; 3];
        for t in 0..spec().warmup {
            det.update(&mut slots, 0, &[t as f32 * 100.0; 3], &mut score);
            assert_eq!(score, [0.0; 3], "{isa} step {t}");
        }
        let before = slots.clone();
        det.update(
            &mut slots,
            0,
            &[f32::NAN, f32::INFINITY, f32::NEG_INFINITY],
            &mut score,
        );
        assert!(score.iter().all(|s| s.is_nan()), "{isa}: {score:?}");
        assert_eq!(slots.smooth, before.smooth);
        assert_eq!(slots.slow.count, before.slow.count);
        assert_eq!(slots.history.count, before.history.count);
        assert_eq!(
            slots.prev.iter().map(|p| p.to_bits()).collect::<Vec<_>>(),
            before.prev.iter().map(|p| p.to_bits()).collect::<Vec<_>>()
        );
    }
}

#[test]
fn params_are_validated() {
    let ok = spec();
    assert!(LikelihoodParams::new(&ok).is_ok());
    for bad in [
        LikelihoodSpec { cap: 0.0, ..ok },
        LikelihoodSpec {
            cap: f32::NAN,
            ..ok
        },
        LikelihoodSpec {
            fast_half_life: 0.0,
            ..ok
        },
        LikelihoodSpec {
            smooth_half_life: -1.0,
            ..ok
        },
        LikelihoodSpec {
            history_half_life: f64::NAN,
            ..ok
        },
        LikelihoodSpec {
            history_warmup: 0,
            ..ok
        },
        LikelihoodSpec { warmup: 0, ..ok },
    ] {
        let e = LikelihoodParams::new(&bad).expect_err("refused");
        assert!(!e.to_string().is_empty());
    }
}
