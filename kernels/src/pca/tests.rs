//! Every available path against the f64 oracle and the paths against each other; fitting against
//! known structure.

use super::*;
use crate::isa::Isa;
use crate::rng::Rng;

/// `n` rows of `d` correlated channels: `latent` factors mixed in, plus noise.
fn rows(rng: &mut Rng, n: usize, d: usize, latent: usize) -> Vec<f32> {
    let mix: Vec<f64> = (0..latent * d).map(|_| rng.unit() * 2.0 - 1.0).collect();
    let mut out = Vec::with_capacity(n * d);
    for _ in 0..n {
        let f: Vec<f64> = (0..latent).map(|_| rng.normal()).collect();
        for j in 0..d {
            let v: f64 = (0..latent).map(|l| mix[l * d + j] * f[l]).sum::<f64>()
                + 0.1 * rng.normal()
                + 10.0 * j as f64;
            out.push(v as f32);
        }
    }
    out
}

/// The rows of `x` scored on `isa`.
fn scored(isa: Isa, model: &PcaModel, x: &[f32]) -> Vec<RowScore> {
    let mut out = vec![RowScore::default(); x.len() / model.d];
    Scorer::new(isa)
        .expect("available")
        .score(model, x, &mut out);
    out
}

fn fitted(rng: &mut Rng, d: usize, latent: usize) -> (PcaModel, Vec<f32>) {
    let train = rows(rng, 400, d, latent);
    let mut acc = Accumulator::new(d);
    for r in train.chunks(d) {
        assert!(acc.push(r));
    }
    (acc.fit(&PcaParams::default()).expect("fits"), train)
}

#[test]
fn every_path_matches_the_oracle_and_the_scalar_path_bit_for_bit() {
    let mut rng = Rng(11);
    for d in [1, 2, 3, 7, 8, 9, 16, 17, 33] {
        let (model, _) = fitted(&mut rng, d, (d / 3).max(1));
        for n in [0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 100] {
            let mut x = rows(&mut rng, n, d, (d / 3).max(1));
            // Some rows far outside the training data, and one huge value.
            for r in (0..n).step_by(5) {
                x[r * d] += 50.0;
            }
            if n > 3 {
                x[3 * d + d - 1] = 1e30;
            }
            let scalar = scored(Isa::Scalar, &model, &x);
            for isa in Isa::under_test() {
                let out = scored(isa, &model, &x);
                for r in 0..n {
                    let (a, b) = (out[r], scalar[r]);
                    assert!(
                        a.t2.to_bits() == b.t2.to_bits()
                            && a.q.to_bits() == b.q.to_bits()
                            && a.score.to_bits() == b.score.to_bits(),
                        "{isa} d {d} n {n} row {r}: {a:?} vs scalar {b:?}"
                    );
                    let (t2, q, s) = oracle::row(&model, &x[r * d..(r + 1) * d]);
                    let close = |got: f32, want: f64| {
                        let tol = 1e-3 * want.abs().max(1.0);
                        (got as f64 - want).abs() <= tol || (!got.is_finite() && want.abs() > 1e30)
                    };
                    assert!(
                        close(a.t2, t2) && close(a.q, q) && close(a.score, s),
                        "{isa} d {d} n {n} row {r}: {a:?} vs oracle ({t2}, {q}, {s})"
                    );
                }
            }
        }
    }
}

#[test]
fn non_finite_readings_score_nan_on_every_path() {
    let mut rng = Rng(3);
    let (model, _) = fitted(&mut rng, 4, 2);
    let mut x = rows(&mut rng, 20, 4, 2);
    x[4 * 4 + 1] = f32::NAN;
    x[9 * 4] = f32::INFINITY;
    for isa in Isa::under_test() {
        let out = scored(isa, &model, &x);
        assert!(out[4].score.is_nan() && out[9].score.is_nan(), "{isa}");
        assert!(out
            .iter()
            .enumerate()
            .all(|(r, o)| r == 4 || r == 9 || o.score.is_finite()));
    }
}

#[test]
fn the_fit_finds_the_latent_structure_and_its_limits_hold_on_normal_rows() {
    let mut rng = Rng(5);
    let (model, train) = fitted(&mut rng, 8, 2);
    // Two factors drive eight channels: two components explain 85 %.
    assert_eq!(model.k, 2, "{model:?}");
    assert!(model.t2_ucl.is_finite() && model.q_ucl.is_finite());
    // Normal rows from the same process stay mostly inside both limits (p = 0.999).
    let fresh = rows(&mut Rng(5), 2000, 8, 2);
    let _ = train;
    let out = scored(Isa::Scalar, &model, &fresh[..]);
    let outside = out.iter().filter(|o| o.score >= 1.0).count();
    assert!(
        outside < 40,
        "{outside} of 2000 normal rows outside the limits"
    );
    // A row that breaks the correlation (one channel moved alone) is far outside Q's limit.
    let mut broken = fresh[..8].to_vec();
    broken[3] += 5.0;
    let one = scored(Isa::Scalar, &model, &broken);
    assert!(
        one[0].q as f64 > 10.0 * model.q_ucl,
        "{:?} q_ucl {}",
        one[0],
        model.q_ucl
    );
}

#[test]
fn an_explanation_names_the_channel_that_broke_the_correlation() {
    let mut rng = Rng(8);
    let (model, _) = fitted(&mut rng, 6, 2);
    let mut row = rows(&mut Rng(9), 1, 6, 2);
    let normal = model.explain(&row);
    assert!((normal.shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    let before = row[4] as f64;
    row[4] += 8.0;
    let e = model.explain(&row);
    // What the model expects of the moved channel is nearer its value before the move.
    assert!(
        (e.expected[4] - before).abs() < (e.expected[4] - row[4] as f64).abs(),
        "expected {} of {before} moved to {}",
        e.expected[4],
        row[4]
    );
    assert!(!e.by_t2, "a broken correlation is Q's");
    let top = (0..6)
        .max_by(|&a, &b| e.shares[a].total_cmp(&e.shares[b]))
        .expect("six");
    assert_eq!(top, 4, "{:?}", e.shares);
    // (PCA smears a residual over the correlated channels: the moved one leads, not alone.)
    assert!(e.shares[4] > 1.5 / 6.0, "{:?}", e.shares);
}

#[test]
fn fitting_refuses_too_few_rows_and_bad_parameters() {
    let mut acc = Accumulator::new(3);
    for r in [[1.0, 2.0, 3.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]] {
        acc.push(&r);
    }
    assert!(!acc.push(&[f32::NAN, 1.0, 1.0]));
    assert_eq!(acc.rows(), 3);
    assert!(acc.fit(&PcaParams::default()).is_err());
    for bad in [
        PcaParams {
            explained: 0.0,
            ..PcaParams::default()
        },
        PcaParams {
            p: 1.0,
            ..PcaParams::default()
        },
        PcaParams {
            min_std: 0.0,
            ..PcaParams::default()
        },
    ] {
        assert!(bad.check().is_err());
    }
    // Constant channels do not divide by zero: the floor of the spread holds.
    let mut flat = Accumulator::new(2);
    for i in 0..50 {
        flat.push(&[1.0, i as f32]);
    }
    let m = flat.fit(&PcaParams::default()).expect("fits");
    assert!(m.inv_std.iter().all(|v| v.is_finite()));
}
