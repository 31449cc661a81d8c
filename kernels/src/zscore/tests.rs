//! Every available path against the f64 oracle, and the paths against each other.
#![allow(clippy::needless_range_loop)] // slot-indexed loops read best against the oracle

use super::oracle::{self, Slot};
use super::{ZParams, ZScore, ZSlots};
use crate::isa::Isa;
use crate::rng::Rng;

const HALF_LIFE: f64 = 20.0;
const WARMUP: u32 = 5;
const MIN_STD: f32 = 1e-3;
const CLIP: f32 = 4.0;

fn params() -> ZParams {
    ZParams::new(HALF_LIFE, WARMUP, MIN_STD, CLIP).expect("valid params")
}

fn oracle_params() -> oracle::Params {
    oracle::Params {
        half_life: HALF_LIFE,
        warmup: WARMUP,
        min_std: MIN_STD as f64,
        clip: CLIP as f64,
    }
}

fn close(got: f32, want: f64) -> bool {
    (got as f64 - want).abs() <= 2e-3 * want.abs().max(1.0)
}

/// A reading for slot `s` at step `t`: a per-slot level and noise, with rare spikes and non-finite
/// values.
fn reading(rng: &mut Rng, s: usize, with_bad: bool) -> f32 {
    let level = (s % 7) as f64 * 10.0 - 20.0;
    let r = rng.unit();
    if with_bad && r < 0.02 {
        return f32::NAN;
    }
    if with_bad && r < 0.03 {
        return if r < 0.025 {
            f32::INFINITY
        } else {
            f32::NEG_INFINITY
        };
    }
    if r > 0.99 {
        return (level + 40.0 * rng.normal()) as f32;
    }
    (level + rng.normal()) as f32
}

/// Runs `steps` updates over slots `pad..pad + len` of a padded state on `isa`, checking every score
/// and the final state against the oracle, and that the padding is untouched.
fn run_against_oracle(isa: Isa, len: usize, pad: usize, steps: usize, with_bad: bool, seed: u64) {
    let kernel = ZScore::new(isa, params()).expect("isa available");
    let mut rng = Rng(seed);
    let mut slots = ZSlots::new(len + 2 * pad);
    for i in 0..slots.len() {
        slots.mean[i] = 123.0;
        slots.var[i] = 7.0;
        slots.count[i] = 3;
    }
    for i in pad..pad + len {
        slots.mean[i] = 0.0;
        slots.var[i] = 0.0;
        slots.count[i] = 0;
    }
    let mut want = vec![Slot::default(); len];
    let mut x = vec![0.0f32; len];
    let mut score = vec![0.0f32; len];
    for t in 0..steps {
        for (s, xs) in x.iter_mut().enumerate() {
            *xs = reading(&mut rng, s, with_bad);
        }
        kernel.update(&mut slots, pad, &x, &mut score);
        for s in 0..len {
            match oracle::step(&oracle_params(), &mut want[s], x[s]) {
                None => assert!(
                    score[s].is_nan(),
                    "{isa} len {len} step {t} slot {s}: {} for {}",
                    score[s],
                    x[s]
                ),
                Some(w) => assert!(
                    close(score[s], w),
                    "{isa} len {len} pad {pad} step {t} slot {s}: score {} want {w}",
                    score[s]
                ),
            }
        }
    }
    for s in 0..len {
        let i = pad + s;
        assert!(
            close(slots.mean[i], want[s].mean),
            "{isa} mean {} want {}",
            slots.mean[i],
            want[s].mean
        );
        assert!(
            close(slots.var[i], want[s].var),
            "{isa} var {} want {}",
            slots.var[i],
            want[s].var
        );
        assert_eq!(slots.count[i], want[s].count, "{isa} count");
    }
    for i in (0..pad).chain(pad + len..slots.len()) {
        assert_eq!(
            (slots.mean[i], slots.var[i], slots.count[i]),
            (123.0, 7.0, 3),
            "{isa}: padding {i} touched"
        );
    }
}

#[test]
fn every_path_matches_the_oracle_over_lengths_and_offsets() {
    for isa in Isa::under_test() {
        for len in 0..=67 {
            for pad in [0, 1, 3, 7, 8, 13] {
                run_against_oracle(isa, len, pad, 40, true, (len * 31 + pad) as u64);
            }
        }
    }
}

#[test]
fn every_path_matches_the_oracle_over_long_runs() {
    for isa in Isa::under_test() {
        run_against_oracle(isa, 1000, 5, 500, false, 7);
        run_against_oracle(isa, 333, 2, 500, true, 8);
    }
}

#[test]
fn the_paths_agree_bit_for_bit() {
    let params = params();
    let mut rng = Rng(99);
    let len = 1003;
    let xs: Vec<Vec<f32>> = (0..300)
        .map(|_| (0..len).map(|s| reading(&mut rng, s, true)).collect())
        .collect();
    let run = |isa: Isa| {
        let kernel = ZScore::new(isa, params).expect("available");
        let mut slots = ZSlots::new(len);
        let mut scores = Vec::new();
        let mut score = vec![0.0; len];
        for x in &xs {
            kernel.update(&mut slots, 0, x, &mut score);
            scores.extend(score.iter().map(|s| s.to_bits()));
        }
        let state: Vec<(u32, u32, u32)> = (0..len)
            .map(|i| {
                (
                    slots.mean[i].to_bits(),
                    slots.var[i].to_bits(),
                    slots.count[i],
                )
            })
            .collect();
        (scores, state)
    };
    let reference = run(Isa::Scalar);
    for isa in Isa::under_test() {
        assert!(run(isa) == reference, "{isa} differs from scalar");
    }
}

#[test]
fn empty_input_is_a_no_op() {
    for isa in Isa::under_test() {
        let kernel = ZScore::new(isa, params()).expect("available");
        let mut slots = ZSlots::new(4);
        kernel.update(&mut slots, 2, &[], &mut []);
        kernel.update(&mut slots, 4, &[], &mut []);
        assert_eq!(slots.count, vec![0; 4]);
    }
}

#[test]
fn one_element() {
    for isa in Isa::under_test() {
        run_against_oracle(isa, 1, 0, 50, true, 1);
    }
}

#[test]
fn constant_input_scores_zero_and_stays_finite() {
    for isa in Isa::under_test() {
        let kernel = ZScore::new(isa, params()).expect("available");
        let mut slots = ZSlots::new(19);
        let x = vec![42.5f32; 19];
        let mut score = vec![0.0; 19];
        for _ in 0..100 {
            kernel.update(&mut slots, 0, &x, &mut score);
            assert!(score.iter().all(|&s| s == 0.0), "{isa}: {score:?}");
        }
        assert!(slots.mean.iter().all(|&m| m == 42.5));
        assert!(slots.var.iter().all(|&v| v == 0.0));
        // A step after a flat line meets the std floor, not a division by zero.
        let step = vec![43.5f32; 19];
        kernel.update(&mut slots, 0, &step, &mut score);
        assert!(
            score.iter().all(|&s| (s - 1.0 / MIN_STD).abs() < 1.0),
            "{isa}: {score:?}"
        );
    }
}

#[test]
fn non_finite_readings_never_poison_the_state() {
    for isa in Isa::under_test() {
        let kernel = ZScore::new(isa, params()).expect("available");
        let n = 11;
        let mut slots = ZSlots::new(n);
        let mut score = vec![0.0; n];
        for t in 0..50 {
            let x: Vec<f32> = (0..n).map(|s| (s + t % 3) as f32).collect();
            kernel.update(&mut slots, 0, &x, &mut score);
        }
        let before = slots.clone();
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -f32::NAN] {
            kernel.update(&mut slots, 0, &vec![bad; n], &mut score);
            assert!(score.iter().all(|s| s.is_nan()), "{isa}: {score:?}");
            assert_eq!(slots.mean, before.mean, "{isa}");
            assert_eq!(slots.var, before.var, "{isa}");
            assert_eq!(slots.count, before.count, "{isa}");
        }
        // Huge finite readings that would overflow the state are scored but not absorbed.
        for huge in [f32::MAX, -f32::MAX, f32::MAX, -f32::MAX] {
            kernel.update(&mut slots, 0, &vec![huge; n], &mut score);
            assert!(score.iter().all(|s| *s > 1e30), "{isa}: {score:?}");
            assert!(
                slots.mean.iter().chain(&slots.var).all(|v| v.is_finite()),
                "{isa}"
            );
        }
    }
}

#[test]
fn warmup_scores_zero_then_scores() {
    for isa in Isa::under_test() {
        let kernel = ZScore::new(isa, params()).expect("available");
        let mut slots = ZSlots::new(9);
        let mut score = vec![0.0; 9];
        for t in 0..WARMUP {
            kernel.update(&mut slots, 0, &[t as f32 * 100.0; 9], &mut score);
            assert!(score.iter().all(|&s| s == 0.0), "{isa} step {t}");
        }
        kernel.update(&mut slots, 0, &[1e4; 9], &mut score);
        assert!(score.iter().all(|&s| s > 10.0), "{isa}: {score:?}");
    }
}

#[test]
fn params_are_validated() {
    assert!(ZParams::new(0.0, 5, 1e-3, 4.0).is_err());
    assert!(ZParams::new(f64::NAN, 5, 1e-3, 4.0).is_err());
    assert!(ZParams::new(10.0, 0, 1e-3, 4.0).is_err());
    assert!(ZParams::new(10.0, 5, 0.0, 4.0).is_err());
    assert!(ZParams::new(10.0, 5, 1e-30, 4.0).is_err());
    assert!(ZParams::new(10.0, 5, 1e-3, -1.0).is_err());
    assert!(ZParams::new(10.0, 5, 1e-3, f32::INFINITY).is_ok());
}

#[test]
#[should_panic(expected = "out of")]
fn out_of_range_slots_panic() {
    let kernel = ZScore::new(Isa::Scalar, params()).expect("available");
    let mut slots = ZSlots::new(3);
    kernel.update(&mut slots, 2, &[1.0, 2.0], &mut [0.0; 2]);
}

/// A slot whose readings settle at 0, or never change, keeps a state of normal numbers or zeros:
/// subnormal state would put every later update on the CPU's slow path.
#[test]
fn settled_slots_never_go_subnormal() {
    let params = ZParams::new(5.0, 3, 1e-3, 4.0).expect("valid params");
    for isa in Isa::under_test() {
        let kernel = ZScore::new(isa, params).expect("isa available");
        // 19 slots: a vector body and a scalar tail on every path. Even slots wobble by 1e-3
        // around 0, then read 0; odd ones wobble around 50, then read 50 (the mean holds, the
        // variance decays).
        let n = 19;
        let mut slots = ZSlots::new(n);
        let mut score = vec![0.0f32; n];
        let level = |i: usize| if i.is_multiple_of(2) { 0.0 } else { 50.0 };
        for t in 0..10 {
            let wobble = if t % 2 == 0 { 1e-3 } else { -1e-3 };
            let x: Vec<f32> = (0..n).map(|i| level(i) + wobble).collect();
            kernel.update(&mut slots, 0, &x, &mut score);
        }
        let then: Vec<f32> = (0..n).map(level).collect();
        // Half-life 5: without the flush the state is subnormal after about 600 steps.
        for t in 0..3000 {
            kernel.update(&mut slots, 0, &then, &mut score);
            for i in 0..n {
                for (what, v) in [("mean", slots.mean[i]), ("var", slots.var[i])] {
                    assert!(
                        v == 0.0 || v.is_normal(),
                        "{isa}: slot {i} {what} {v:e} at step {t}"
                    );
                }
            }
        }
        assert_eq!(slots.mean[0], 0.0, "{isa}: a slot at 0 settles at 0");
    }
}
