//! ONNX models through ONNX Runtime (one intra-op thread): rows/s and per-batch latency p50/p99 at
//! batch sizes 1, 16, 256 and 4096 for each shipped model; then the cost of a shadow version: the
//! replay of SKAB's valve1 files with the autoencoder serving alone, and with a second copy of it
//! as a shadow. `cargo bench --bench onnx` (needs the library: `.ci/install-onnxruntime`, or
//! `ORT_DYLIB_PATH`).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil::config::{Config, RawConfig};
use vigil::onnx::OnnxModel;

/// Best records/s of three replays of `files` with `toml`, and the detectors' ns/record.
fn replay_rate(files: &[PathBuf], toml: &str) -> (f64, Vec<(String, f64)>) {
    let raw = RawConfig::from_toml(toml).expect("bench config");
    let mut config = Config::validate(raw).expect("valid");
    let out = std::env::temp_dir().join(format!("vigil-onnx-bench-{}", std::process::id()));
    config.output.alerts = Some(out.with_extension("alerts"));
    config.output.shadow_alerts = out.with_extension("shadow");
    config.output.dead_letter = out.with_extension("dead");
    let mut best = (0.0, Vec::new());
    for _ in 0..3 {
        let r = vigil::replay::replay(
            &config,
            files,
            Arc::new(AtomicBool::new(false)),
            vigil::replay::ReplayOptions::default(),
        )
        .expect("replay");
        if r.records_per_s > best.0 {
            let costs = r
                .detectors
                .iter()
                .map(|d| (d.name.clone(), d.ns_per_record))
                .collect();
            best = (r.records_per_s, costs);
        }
    }
    best
}

const BATCHES: [usize; 4] = [1, 16, 256, 4096];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    println!(
        "{:<16} {:>6} {:>14} {:>12} {:>12}",
        "model", "batch", "rows/s", "p50 µs", "p99 µs"
    );
    for manifest in [
        "models/pump_ae/manifest.toml",
        "models/iforest/manifest.toml",
    ] {
        let model = match OnnxModel::load(&root.join(manifest), None) {
            Ok(m) => m,
            Err(e) => {
                println!("{manifest}: skipped: {e}");
                continue;
            }
        };
        let mut session = model.session().expect("session");
        let width = model.manifest.width();
        for &batch in &BATCHES {
            // Plausible inputs: a slow sine per value, so trees and projections see varied rows.
            let x: Vec<f32> = (0..batch * width)
                .map(|i| 1.0 + (i as f32 * 0.013).sin())
                .collect();
            let mut out = vec![0.0f32; batch];
            // About 0.5 s per point, at least 20 runs.
            let mut times = Vec::new();
            let started = Instant::now();
            while started.elapsed() < Duration::from_millis(500) || times.len() < 20 {
                let t = Instant::now();
                model
                    .score(&mut session, &x, batch, &mut out)
                    .expect("runs");
                times.push(t.elapsed());
            }
            times.sort();
            let total: Duration = times.iter().sum();
            let q = |p: f64| times[((times.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
            println!(
                "{:<16} {:>6} {:>14.0} {:>12.1} {:>12.1}",
                model.manifest.id(),
                batch,
                (batch * times.len()) as f64 / total.as_secs_f64(),
                q(0.5),
                q(0.99)
            );
        }
    }
    // valve1's 16 files, 10 times over (181 600 records).
    let files: Vec<PathBuf> = (0..160)
        .map(|i| {
            root.join(format!(
                "../shared/datasets/skab-dev/data/valve1/{}.csv",
                i % 16
            ))
        })
        .collect();
    let manifest = root.join("models/pump_ae/manifest.toml");
    let detector = |name: &str, role: &str| {
        format!(
            "[[detectors]]\nkind = \"onnx\"\nname = \"{name}\"\nrole = \"{role}\"\nmanifest = {:?}\n",
            manifest.display().to_string()
        )
    };
    let head = "[input]\nignore_columns = [\"anomaly\", \"changepoint\"]\n[pipeline]\nshards = 1\n";
    let alone = replay_rate(
        &files,
        &format!("{head}{}", detector("pump-ae@1", "serving")),
    );
    let with_shadow = replay_rate(
        &files,
        &format!(
            "{head}{}{}",
            detector("pump-ae@1", "serving"),
            detector("pump-ae@2", "shadow")
        ),
    );
    println!(
        "\nreplay of SKAB valve1 ×10 (181 600 records, 1 shard): serving alone {:.0} records/s {:?}; with one shadow {:.0} records/s {:?}: throughput {:+.0} %",
        alone.0,
        alone.1,
        with_shadow.0,
        with_shadow.1,
        (with_shadow.0 / alone.0 - 1.0) * 100.0
    );
}
