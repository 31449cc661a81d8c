//! Kernel benches: the z-score update on every available instruction set over sizes from in-cache
//! to far out of cache, the likelihood detector (four z-score passes and a combine) in and out of
//! cache, the sequence and baseline detectors in steady state, PCA T²+Q scoring of 8-channel rows, and the memory-bandwidth reference (a STREAM triad over the same footprint).
//!
//! `cargo bench --bench kernels`. `cargo bench --bench ratios` prints the ratios against targets.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use vigil_kernels::bandwidth::triad;
use vigil_kernels::baseline::{Baseline, BaselineParams, BaselineSlots, BaselineSpec};
use vigil_kernels::isa::Isa;
use vigil_kernels::likelihood::{Likelihood, LikelihoodParams, LikelihoodSlots, LikelihoodSpec};
use vigil_kernels::pca::{Accumulator, PcaParams, RowScore, Scorer as PcaScorer};
use vigil_kernels::sequence::{Sequence, SequenceParams, SequenceSlots, SequenceSpec};
use vigil_kernels::zscore::{ZParams, ZScore, ZSlots};

const SIZES: [usize; 4] = [1_000, 65_536, 1_000_000, 10_000_000];

/// Bytes the z-score update moves per slot: reads x, mean, var, count; writes mean, var, count, score.
pub const ZSCORE_BYTES_PER_SLOT: u64 = 32;

fn readings(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 * 0.01 + 50.0)
        .collect()
}

fn zscore(c: &mut Criterion) {
    let params = ZParams::new(300.0, 60, 1e-3, 3.0).expect("valid params");
    let mut group = c.benchmark_group("zscore_update");
    for &n in &SIZES {
        if n >= 1_000_000 {
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(3));
        } else {
            group
                .sample_size(50)
                .measurement_time(Duration::from_secs(2));
        }
        group.throughput(Throughput::Elements(n as u64));
        let x = readings(n);
        for isa in Isa::available() {
            let kernel = ZScore::new(isa, params).expect("available");
            let mut slots = ZSlots::new(n);
            let mut score = vec![0.0f32; n];
            group.bench_with_input(BenchmarkId::new(isa.name(), n), &n, |b, _| {
                b.iter(|| kernel.update(&mut slots, 0, black_box(&x), &mut score))
            });
        }
    }
    group.finish();
}

fn likelihood(c: &mut Criterion) {
    let params = LikelihoodParams::new(&LikelihoodSpec::default()).expect("valid params");
    let mut group = c.benchmark_group("likelihood_update");
    for &n in &[SIZES[0], SIZES[2]] {
        group
            .sample_size(if n >= 1_000_000 { 10 } else { 50 })
            .measurement_time(Duration::from_secs(2));
        group.throughput(Throughput::Elements(n as u64));
        let x = readings(n);
        for isa in Isa::available() {
            let mut kernel = Likelihood::new(isa, params).expect("available");
            let mut slots = LikelihoodSlots::new(n);
            let mut score = vec![0.0f32; n];
            group.bench_with_input(BenchmarkId::new(isa.name(), n), &n, |b, _| {
                b.iter(|| kernel.update(&mut slots, 0, black_box(&x), &mut score))
            });
        }
    }
    group.finish();
}

/// The sequence detector (novelty, then the likelihood of values and of novelty) in steady state:
/// every slot past its learning, its memory holding contexts. 1 KiB of memory per slot, so 65 536
/// slots are far out of cache.
fn sequence(c: &mut Criterion) {
    let params = SequenceParams::new(&SequenceSpec::default()).expect("valid params");
    let mut group = c.benchmark_group("sequence_update");
    for &n in &[SIZES[0], SIZES[1]] {
        group
            .sample_size(if n >= 65_536 { 10 } else { 50 })
            .measurement_time(Duration::from_secs(2));
        group.throughput(Throughput::Elements(n as u64));
        // Eight shifted copies of the readings, so that successive calls make new contexts.
        let xs: Vec<Vec<f32>> = (0..8).map(|r| readings(n + r).split_off(r)).collect();
        // Every reading in one hour of the day (the time context is on by default).
        let hours = vec![9i32; n];
        for isa in Isa::available() {
            let mut kernel = Sequence::new(isa, params).expect("available");
            let mut slots = SequenceSlots::new(n, &params);
            let mut score = vec![0.0f32; n];
            for t in 0..700 {
                kernel.update(&mut slots, 0, &xs[t % 8], &hours, &mut score);
            }
            let mut t = 0;
            group.bench_with_input(BenchmarkId::new(isa.name(), n), &n, |b, _| {
                b.iter(|| {
                    t += 1;
                    kernel.update(&mut slots, 0, black_box(&xs[t % 8]), &hours, &mut score)
                })
            });
        }
    }
    group.finish();
}

/// The baseline detector in steady state: every slot's baseline learnt, scoring its smoothed
/// deviation. 20 bytes per slot.
fn baseline(c: &mut Criterion) {
    let params = BaselineParams::new(&BaselineSpec::default()).expect("valid params");
    let mut group = c.benchmark_group("baseline_update");
    for &n in &SIZES[..3] {
        group
            .sample_size(if n >= 65_536 { 20 } else { 50 })
            .measurement_time(Duration::from_secs(2));
        group.throughput(Throughput::Elements(n as u64));
        let x = readings(n);
        for isa in Isa::available() {
            let kernel = Baseline::new(isa, params).expect("available");
            let mut slots = BaselineSlots::new(n);
            let mut score = vec![0.0f32; n];
            for _ in 0..params.train() {
                kernel.update(&mut slots, 0, &x, &mut score);
            }
            group.bench_with_input(BenchmarkId::new(isa.name(), n), &n, |b, _| {
                b.iter(|| kernel.update(&mut slots, 0, black_box(&x), &mut score))
            });
        }
    }
    group.finish();
}

/// PCA T²+Q over 8 correlated channels (SKAB's shape), 4096 rows a call.
fn pca(c: &mut Criterion) {
    let (d, n) = (8usize, 4096usize);
    let row = |i: usize| -> Vec<f32> {
        let f = ((i * 7919) % 1000) as f32 * 0.01;
        (0..d)
            .map(|j| f * (j as f32 + 1.0) + ((i * 31 + j * 17) % 97) as f32 * 0.001)
            .collect()
    };
    let mut acc = Accumulator::new(d);
    for i in 0..400 {
        acc.push(&row(i));
    }
    let model = acc.fit(&PcaParams::default()).expect("fits");
    let x: Vec<f32> = (0..n).flat_map(row).collect();
    let mut out = vec![
        RowScore {
            t2: 0.0,
            q: 0.0,
            score: 0.0
        };
        n
    ];
    let mut group = c.benchmark_group("pca_score_8_channels");
    group.throughput(Throughput::Elements(n as u64));
    for isa in Isa::available() {
        let scorer = PcaScorer::new(isa).expect("available");
        group.bench_function(BenchmarkId::new(isa.name(), n), |b| {
            b.iter(|| scorer.score(&model, black_box(&x), &mut out))
        });
    }
    group.finish();
}

fn bandwidth(c: &mut Criterion) {
    let n = 10_000_000;
    let mut group = c.benchmark_group("memory_bandwidth_10M_slots");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let params = ZParams::new(300.0, 60, 1e-3, 3.0).expect("valid params");
    let isa = Isa::best();
    let kernel = ZScore::new(isa, params).expect("available");
    let x = readings(n);
    let mut slots = ZSlots::new(n);
    let mut score = vec![0.0f32; n];
    group.throughput(Throughput::Bytes(ZSCORE_BYTES_PER_SLOT * n as u64));
    group.bench_function(format!("zscore_{}", isa.name()), |b| {
        b.iter(|| kernel.update(&mut slots, 0, black_box(&x), &mut score))
    });
    // The triad over the same footprint (5 f32 columns per slot = 20 bytes; 3 per triad element).
    let m = n * 20 / 12;
    let (mut a, bb, cc) = (vec![0.0f32; m], readings(m), readings(m));
    group.throughput(Throughput::Bytes(12 * m as u64));
    group.bench_function("triad", |b| {
        b.iter(|| triad(&mut a, black_box(&bb), black_box(&cc), 1.5))
    });
    group.finish();
}

criterion_group!(benches, zscore, likelihood, sequence, baseline, pca, bandwidth);
criterion_main!(benches);
