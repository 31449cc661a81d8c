//! Every available path against the f64 oracle, and the paths against each other.

use super::oracle::{self, Slot};
use super::{Baseline, BaselineParams, BaselineSlots, BaselineSpec};
use crate::isa::Isa;
use crate::rng::Rng;

const SPEC: BaselineSpec = BaselineSpec {
    train: 50,
    rel_floor: 0.01,
    min_std: 1e-3,
    smooth_half_life: 4.0,
};

fn params() -> BaselineParams {
    BaselineParams::new(&SPEC).expect("valid params")
}

fn oracle_params() -> oracle::Params {
    oracle::Params {
        train: SPEC.train as usize,
        rel_floor: SPEC.rel_floor as f64,
        min_std: SPEC.min_std as f64,
        smooth_half_life: SPEC.smooth_half_life,
    }
}

/// A reading of slot `s`: a per-slot level (some near 0, where the absolute floor rules, some
/// large, where the relative one does) and noise, a fault after step 120 on every third slot,
/// and non-finite readings.
fn reading(rng: &mut Rng, s: usize, t: usize, with_bad: bool) -> f32 {
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
    let level = [0.0, 0.05, 30.0, 230.0, -80.0][s % 5];
    let noise = [1e-4, 0.01, 0.5, 0.1, 2.0][s % 3];
    let fault = if t > 120 && s.is_multiple_of(3) {
        5.0
    } else {
        0.0
    };
    (level + fault + noise * rng.normal()) as f32
}

fn run_against_oracle(isa: Isa, len: usize, pad: usize, steps: usize, with_bad: bool, seed: u64) {
    let kernel = Baseline::new(isa, params()).expect("isa available");
    let mut rng = Rng(seed);
    let mut slots = BaselineSlots::new(len + 2 * pad);
    for i in (0..pad).chain(pad + len..len + 2 * pad) {
        slots.count[i] = 7;
        slots.mean[i] = 123.0;
        slots.smooth[i] = 9.0;
    }
    let mut want = vec![Slot::default(); len];
    let mut x = vec![0.0f32; len];
    let mut score = vec![0.0f32; len];
    for t in 0..steps {
        for (s, xs) in x.iter_mut().enumerate() {
            *xs = reading(&mut rng, s, t, with_bad);
        }
        kernel.update(&mut slots, pad, &x, &mut score);
        for s in 0..len {
            match oracle::step(&oracle_params(), &mut want[s], x[s]) {
                None => assert!(score[s].is_nan(), "{isa} step {t} slot {s}: {}", score[s]),
                Some(w) => assert!(
                    (score[s] as f64 - w).abs() <= 1e-3 * w.abs().max(1.0),
                    "{isa} len {len} step {t} slot {s}: got {} want {w}",
                    score[s]
                ),
            }
        }
    }
    for i in (0..pad).chain(pad + len..len + 2 * pad) {
        assert_eq!(
            (slots.count[i], slots.mean[i], slots.smooth[i]),
            (7, 123.0, 9.0),
            "{isa}: padding slot {i} was touched"
        );
    }
}

#[test]
fn every_available_path_matches_the_oracle() {
    for isa in Isa::under_test() {
        for len in [1, 7, 8, 15, 16, 17, 33, 100] {
            run_against_oracle(isa, len, 3, 300, false, len as u64 + 1);
            run_against_oracle(isa, len, 0, 300, true, len as u64 + 99);
        }
    }
}

#[test]
fn every_path_gives_the_scalar_bits() {
    let scalar = Baseline::new(Isa::Scalar, params()).expect("scalar");
    for isa in Isa::under_test() {
        let kernel = Baseline::new(isa, params()).expect("isa available");
        let len = 37;
        let (mut a, mut b) = (BaselineSlots::new(len), BaselineSlots::new(len));
        let mut rng = Rng(5);
        let (mut sa, mut sb) = (vec![0.0f32; len], vec![0.0f32; len]);
        for t in 0..400 {
            let x: Vec<f32> = (0..len).map(|s| reading(&mut rng, s, t, true)).collect();
            scalar.update(&mut a, 0, &x, &mut sa);
            kernel.update(&mut b, 0, &x, &mut sb);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&sa), bits(&sb), "{isa} step {t}: scores");
        }
        assert_eq!(a.count, b.count);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        for (x, y) in [
            (&a.mean, &b.mean),
            (&a.m2, &b.m2),
            (&a.inv_scale, &b.inv_scale),
            (&a.smooth, &b.smooth),
        ] {
            assert_eq!(bits(x), bits(y), "{isa}: state");
        }
    }
}

#[test]
fn a_fault_scores_high_and_noise_within_tolerance_does_not() {
    let kernel = Baseline::new(Isa::best(), params()).expect("best");
    let mut slots = BaselineSlots::new(2);
    let mut score = [0.0f32; 2];
    let mut rng = Rng(11);
    for t in 0..200 {
        // A flow of 32 whose training readings barely move, then 0.5 % noise (inside the 1 %
        // tolerance), against one that drops by 10 %.
        let wobble = if t < SPEC.train as usize { 1e-4 } else { 0.16 };
        let a = 32.0 + wobble * rng.normal() as f32;
        let b = if t < 100 { 32.0 } else { 28.8 };
        kernel.update(&mut slots, 0, &[a, b], &mut score);
        if t < SPEC.train as usize {
            assert_eq!(score, [0.0, 0.0]);
        }
    }
    assert!(score[0] < 1.0, "noise inside the tolerance: {}", score[0]);
    assert!(score[1] > 9.0, "a 10 % drop is 10 tolerances: {}", score[1]);
}

#[test]
fn huge_readings_stay_finite_and_bad_params_are_refused() {
    let kernel = Baseline::new(Isa::best(), params()).expect("best");
    let mut slots = BaselineSlots::new(1);
    let mut score = [0.0f32];
    for _ in 0..SPEC.train {
        kernel.update(&mut slots, 0, &[1.0], &mut score);
    }
    kernel.update(&mut slots, 0, &[f32::MAX], &mut score);
    assert!(score[0].is_finite() && score[0] > 1e4);
    kernel.update(&mut slots, 0, &[f32::MAX], &mut score);
    kernel.update(&mut slots, 0, &[-f32::MAX], &mut score);
    assert!(score[0].is_finite());
    for bad in [
        BaselineSpec { train: 1, ..SPEC },
        BaselineSpec {
            rel_floor: -0.1,
            ..SPEC
        },
        BaselineSpec {
            rel_floor: f32::NAN,
            ..SPEC
        },
        BaselineSpec {
            min_std: 0.0,
            ..SPEC
        },
        BaselineSpec {
            smooth_half_life: 0.0,
            ..SPEC
        },
    ] {
        assert!(BaselineParams::new(&bad).is_err(), "{bad:?}");
    }
}
