//! The bench command that prints measured ratios against Vigil's targets (best of several runs):
//! z-score ns per slot in cache, AVX2 over scalar, z-score bandwidth over the triad's at 10 M slots,
//! and replay records/s of the fixture. `cargo bench --bench ratios`.
//!
//! It reports; it does not fail. Criterion (`cargo bench --bench kernels`, `--bench pipeline`)
//! gives the full distributions.

mod common;
use common::best;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use vigil::config::{Config, RawConfig};
use vigil_kernels::bandwidth::triad;
use vigil_kernels::isa::Isa;
use vigil_kernels::zscore::{ZParams, ZScore, ZSlots};

fn zscore_time(isa: Isa, n: usize, runs: usize) -> Duration {
    let params = ZParams::new(300.0, 60, 1e-3, 3.0).expect("valid params");
    let kernel = ZScore::new(isa, params).expect("available");
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 * 0.01 + 50.0)
        .collect();
    let mut slots = ZSlots::new(n);
    let mut score = vec![0.0f32; n];
    best(runs, || {
        kernel.update(&mut slots, 0, black_box(&x), &mut score)
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "meets target"
    } else {
        "MISSES target"
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    println!(
        "vigil ratios (best of several runs on this machine: {})\n",
        common::cpu()
    );
    let in_cache = 4096;
    let reps = 2000;
    let mut per_slot = Vec::new();
    for isa in Isa::available() {
        let params = ZParams::new(300.0, 60, 1e-3, 3.0).expect("valid params");
        let kernel = ZScore::new(isa, params).expect("available");
        let x: Vec<f32> = (0..in_cache).map(|i| (i % 97) as f32).collect();
        let mut slots = ZSlots::new(in_cache);
        let mut score = vec![0.0f32; in_cache];
        let t = best(5, || {
            for _ in 0..reps {
                kernel.update(&mut slots, 0, black_box(&x), &mut score);
            }
        });
        let ns = t.as_nanos() as f64 / (reps * in_cache) as f64;
        per_slot.push((isa, ns));
    }
    for (isa, ns) in &per_slot {
        println!("z-score update, {in_cache} slots in cache, {isa:>6}: {ns:.3} ns/slot");
    }
    let best_ns = per_slot.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    println!(
        "  target <= 0.5 ns/slot: {:.3} -> {}",
        best_ns,
        verdict(best_ns <= 0.5)
    );
    if let Some(scalar) = per_slot.iter().find(|p| p.0 == Isa::Scalar) {
        for (isa, ns) in per_slot.iter().filter(|p| p.0 != Isa::Scalar) {
            println!("  {isa} / scalar speed-up: {:.2}x", scalar.1 / ns);
        }
    }

    let n = 10_000_000;
    let z = zscore_time(Isa::best(), n, 5);
    let z_gbs = (32 * n) as f64 / z.as_secs_f64() / 1e9;
    let m = n * 20 / 12;
    let (mut a, b, c) = (vec![0.0f32; m], vec![1.0f32; m], vec![2.0f32; m]);
    let t = best(5, || triad(&mut a, black_box(&b), black_box(&c), 1.5));
    let t_gbs = (12 * m) as f64 / t.as_secs_f64() / 1e9;
    println!(
        "\n10 M slots: z-score {} {:.2} GB/s ({:.3} ns/slot), triad {:.2} GB/s",
        Isa::best(),
        z_gbs,
        z.as_nanos() as f64 / n as f64,
        t_gbs
    );
    println!(
        "  target z-score/triad >= 0.8: {:.2} -> {}",
        z_gbs / t_gbs,
        verdict(z_gbs / t_gbs >= 0.8)
    );

    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/pumps.csv");
    let out = std::env::temp_dir().join(format!("vigil-ratios-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&out);
    println!();
    for shards in [1usize, 2] {
        let raw =
            RawConfig::from_toml(&format!("[pipeline]\nshards = {shards}\n")).expect("config");
        let mut config = Config::validate(raw).expect("valid");
        config.output.alerts = Some(out.join("alerts.jsonl"));
        config.output.dead_letter = out.join("dead.jsonl");
        let mut records = 0;
        let t = best(5, || {
            let r = vigil::replay::replay(
                &config,
                std::slice::from_ref(&fixture),
                Arc::new(AtomicBool::new(false)),
                vigil::replay::ReplayOptions::default(),
            )
            .expect("replay");
            records = r.records;
        });
        let rate = records as f64 / t.as_secs_f64();
        println!(
            "replay fixtures/pumps.csv ({records} records), {shards} shard(s): {:.2} M records/s -> {} (>= 1 M/s)",
            rate / 1e6,
            verdict(rate >= 1e6)
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
