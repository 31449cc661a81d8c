//! Every available path against the oracle, bit for bit (the novelty stage is exact arithmetic),
//! the whole detector's paths against each other, and the behaviour it exists for.
#![allow(clippy::needless_range_loop)] // slot-indexed loops read best against the oracle

use super::oracle::{self, Slot};
use super::{novelty, Sequence, SequenceParams, SequenceSlots, SequenceSpec};
use crate::isa::Isa;
use crate::likelihood::LikelihoodSpec;
use crate::rng::Rng;

/// Short warm-ups and a small memory, so that learning, scoring and generation turnover are all
/// reached within a few hundred steps.
fn spec() -> SequenceSpec {
    SequenceSpec {
        likelihood: LikelihoodSpec {
            fast_half_life: 5.0,
            half_life: 20.0,
            warmup: 5,
            min_std: 1e-2,
            clip: 3.0,
            cap: 10.0,
            smooth_half_life: 3.0,
            history_half_life: 50.0,
            history_warmup: 10,
        },
        levels: 8,
        order: 3,
        range_warmup: 20,
        learn: 30,
        memory_bits: 10,
        weight: 1.0,
        extent_tolerance: 0.05,
        extent_score: 10.0,
        time_of_day: true,
    }
}

fn oracle_params(s: &SequenceSpec) -> oracle::Params {
    oracle::Params {
        levels: s.levels,
        order: s.order as usize,
        range_warmup: s.range_warmup,
        learn: s.learn,
        memory_bits: s.memory_bits,
        time_of_day: s.time_of_day,
    }
}

/// The hour of the day of slot `s` at step `t`: changing every few steps, differently per slot.
fn hour(s: usize, t: usize) -> i32 {
    ((t / (3 + s % 4) + s) % 24) as i32
}

/// A reading of slot `s` at step `t`: a per-slot cycle with noise, a wide wander in some slots
/// (new levels and sequences all the time, which turns generations over), flat slots, and
/// (optionally) non-finite values.
fn reading(rng: &mut Rng, s: usize, t: usize, with_bad: bool) -> f32 {
    let r = rng.unit();
    if with_bad && r < 0.02 {
        return f32::NAN;
    }
    if with_bad && r < 0.03 {
        return f32::NEG_INFINITY;
    }
    match s % 5 {
        0 => 7.0,
        1 => (1e6 * rng.normal()) as f32,
        _ => {
            let phase = (t % (4 + s % 3)) as f64;
            (10.0 * phase + rng.normal() + (s as f64) * 3.0) as f32
        }
    }
}

/// Runs `steps` novelty passes over slots `pad..pad + len` of a padded state on `isa`, checking
/// every output against the oracle bit for bit, and that the padding is untouched.
fn run_against_oracle(isa: Isa, len: usize, pad: usize, steps: usize, with_bad: bool, seed: u64) {
    for timed in [true, false] {
        run_against_oracle_timed(isa, len, pad, steps, with_bad, seed, timed);
    }
}

fn run_against_oracle_timed(
    isa: Isa,
    len: usize,
    pad: usize,
    steps: usize,
    with_bad: bool,
    seed: u64,
    timed: bool,
) {
    let spec = SequenceSpec {
        time_of_day: timed,
        ..spec()
    };
    let params = SequenceParams::new(&spec).expect("valid spec");
    let op = oracle_params(&spec);
    let mut slots = SequenceSlots::new(len + 2 * pad, &params);
    let untouched = slots.novelty.clone();
    let mut want: Vec<Slot> = vec![Slot::default(); len];
    let mut rng = Rng(seed);
    let mut x = vec![0.0f32; len];
    let mut out = vec![0.0f32; len];
    let mut hours = vec![0i32; len];
    for t in 0..steps {
        for s in 0..len {
            x[s] = reading(&mut rng, s, t, with_bad);
            hours[s] = hour(s, t);
        }
        // Untimed, the hours are not read: an empty slice.
        let h = if timed { &hours[..] } else { &[] };
        novelty(
            isa,
            &params.novelty,
            &mut slots.novelty,
            pad,
            &x,
            h,
            &mut out,
        );
        for s in 0..len {
            let w = oracle::step(&op, &mut want[s], x[s], hours[s]).unwrap_or(-1.0);
            assert!(
                out[s].to_bits() == w.to_bits(),
                "{isa} timed {timed} len {len} pad {pad} step {t} slot {s}: got {} want {w}",
                out[s]
            );
        }
    }
    let n = &slots.novelty;
    for j in (0..pad).chain(pad + len..len + 2 * pad) {
        assert_eq!(
            n.count[j], untouched.count[j],
            "{isa}: padding slot {j} changed"
        );
        assert_eq!(
            n.hist[0][j], untouched.hist[0][j],
            "{isa}: padding slot {j} changed"
        );
        let w = params.novelty.words();
        assert!(n.current[j * w..(j + 1) * w].iter().all(|&b| b == 0));
    }
}

#[test]
fn every_path_matches_the_oracle_over_lengths_and_offsets() {
    for isa in Isa::under_test() {
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 33] {
            for pad in [0, 3] {
                run_against_oracle(isa, len, pad, 160, true, 7 + len as u64);
            }
        }
    }
}

#[test]
fn every_path_matches_the_oracle_over_long_runs() {
    for isa in Isa::under_test() {
        // 2500 steps: the wandering slots fill and retire many generations of 256 keys.
        run_against_oracle(isa, 48, 1, 2500, false, 11);
        run_against_oracle(isa, 35, 2, 1200, true, 12);
    }
}

#[test]
fn the_paths_agree_bit_for_bit() {
    let params = SequenceParams::new(&spec()).expect("valid spec");
    let len = 37;
    let mut kernels: Vec<(Sequence, SequenceSlots)> = Isa::under_test()
        .into_iter()
        .map(|isa| {
            let k = Sequence::new(isa, params).expect("available");
            (k, SequenceSlots::new(len, &params))
        })
        .collect();
    let mut rng = Rng(3);
    let mut x = vec![0.0f32; len];
    let mut scores = vec![vec![0.0f32; len]; kernels.len()];
    let mut hours = vec![0i32; len];
    for t in 0..800 {
        for s in 0..len {
            x[s] = reading(&mut rng, s, t, true);
            hours[s] = hour(s, t);
        }
        for ((k, slots), score) in kernels.iter_mut().zip(&mut scores) {
            k.update(slots, 0, &x, &hours, score);
        }
        for (i, score) in scores.iter().enumerate().skip(1) {
            for s in 0..len {
                assert!(
                    score[s].to_bits() == scores[0][s].to_bits(),
                    "{} vs {} step {t} slot {s}: {} vs {}",
                    kernels[i].0.isa(),
                    kernels[0].0.isa(),
                    score[s],
                    scores[0][s]
                );
            }
        }
    }
}

/// The highest score of a familiar cycle's last 1000 readings, then of 40 readings in which
/// the cycle breaks (10 20 10 20 …: every value and every step familiar, the order new), with novelty weighted `w`.
fn familiar_then_broken(isa: Isa, w: f32) -> (f32, f32) {
    let params = SequenceParams::new(&SequenceSpec {
        weight: w,
        ..SequenceSpec::default()
    })
    .expect("valid spec");
    let mut k = Sequence::new(isa, params).expect("available");
    let mut slots = SequenceSlots::new(1, &params);
    let mut rng = Rng(5);
    let cycle = [0.0, 10.0, 20.0, 30.0, 20.0, 10.0];
    let mut score = [0.0f32];
    let mut calm = 0.0f32;
    for t in 0..4000 {
        let x = cycle[t % cycle.len()] + 0.3 * rng.normal() as f32;
        k.update(&mut slots, 0, &[x], &[12], &mut score);
        if t >= 3000 {
            calm = calm.max(score[0]);
        }
    }
    let mut broken = 0.0f32;
    for t in 0..40 {
        let x = if t % 2 == 0 { 10.0 } else { 20.0 } + 0.3 * rng.normal() as f32;
        k.update(&mut slots, 0, &[x], &[12], &mut score);
        broken = broken.max(score[0]);
    }
    (calm, broken)
}

/// A cycle that breaks while its values stay in range: the value likelihood alone hardly moves,
/// the sequence detector stands out.
#[test]
fn a_broken_cycle_scores_high_and_a_familiar_one_does_not() {
    for isa in Isa::under_test() {
        let (calm, broken) = familiar_then_broken(isa, 1.0);
        let (_, values_only) = familiar_then_broken(isa, 0.0);
        assert!(
            broken > 2.0 * calm.max(values_only),
            "{isa}: broken cycle {broken}, familiar cycle at most {calm}, values alone {values_only}"
        );
    }
}

/// The highest score of 60 days of a daily cycle (a sine, a reading every 10 minutes), then of
/// half a day that runs the cycle half a day out of phase: every level and every step between
/// levels is familiar, only their hour is not.
fn cycle_then_out_of_phase(isa: Isa, time_of_day: bool) -> (f32, f32) {
    let params = SequenceParams::new(&SequenceSpec {
        time_of_day,
        ..SequenceSpec::default()
    })
    .expect("valid spec");
    let mut k = Sequence::new(isa, params).expect("available");
    let mut slots = SequenceSlots::new(1, &params);
    let mut rng = Rng(8);
    let mut score = [0.0f32];
    let (mut calm, mut shifted) = (0.0f32, 0.0f32);
    let per_day = 144usize;
    for t in 0..60 * per_day + per_day / 2 {
        let hour = ((t % per_day) / 6) as i32;
        let out_of_phase = t >= 60 * per_day;
        let phase = std::f64::consts::TAU * (t % per_day) as f64 / per_day as f64;
        let phase = if out_of_phase {
            phase + std::f64::consts::PI
        } else {
            phase
        };
        let x = (5.0 * phase.sin() + 0.3 * rng.normal()) as f32;
        k.update(&mut slots, 0, &[x], &[hour], &mut score);
        if out_of_phase {
            shifted = shifted.max(score[0]);
        } else if t >= 30 * per_day {
            calm = calm.max(score[0]);
        }
    }
    (calm, shifted)
}

/// A cycle that runs out of phase, its levels usual but at the wrong hours: without the hour's
/// context it scores like any quiet stretch; with it, above everything the month in phase scored
/// (whose highest scores are the value likelihood's on the noise, the same either way).
#[test]
fn a_cycle_out_of_phase_stands_out_with_the_time_of_day() {
    for isa in Isa::under_test() {
        let (calm, shifted) = cycle_then_out_of_phase(isa, true);
        let (_, untimed) = cycle_then_out_of_phase(isa, false);
        assert!(
            shifted > calm && shifted > 3.0 * untimed,
            "{isa}: out of phase {shifted}, in phase at most {calm}, untimed {untimed}"
        );
    }
}

#[test]
fn learning_scores_zero_and_non_finite_scores_nan() {
    let params = SequenceParams::new(&spec()).expect("valid spec");
    for isa in Isa::under_test() {
        let mut k = Sequence::new(isa, params).expect("available");
        let mut slots = SequenceSlots::new(2, &params);
        let mut score = [0.0f32; 2];
        for t in 0..10 {
            k.update(&mut slots, 0, &[t as f32, f32::NAN], &[0, 0], &mut score);
            assert_eq!(score[0], 0.0, "{isa}: step {t} while learning");
            assert!(score[1].is_nan(), "{isa}: a NaN reading scores NaN");
        }
    }
}

#[test]
fn params_are_validated() {
    let ok = spec();
    assert!(SequenceParams::new(&ok).is_ok());
    let bad = [
        SequenceSpec { levels: 0, ..ok },
        SequenceSpec { order: 0, ..ok },
        SequenceSpec { order: 9, ..ok },
        SequenceSpec {
            range_warmup: 1,
            ..ok
        },
        SequenceSpec {
            memory_bits: 9,
            ..ok
        },
        SequenceSpec {
            memory_bits: 21,
            ..ok
        },
        SequenceSpec { weight: -1.0, ..ok },
        SequenceSpec {
            weight: f32::NAN,
            ..ok
        },
        SequenceSpec {
            extent_tolerance: -0.1,
            ..ok
        },
        SequenceSpec {
            extent_tolerance: f32::INFINITY,
            ..ok
        },
        SequenceSpec {
            extent_score: f32::NAN,
            ..ok
        },
    ];
    for b in bad {
        assert!(SequenceParams::new(&b).is_err(), "{b:?} accepted");
    }
}
