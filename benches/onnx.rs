//! ONNX models through ONNX Runtime (one intra-op thread): rows/s and per-batch latency p50/p99 at
//! batch sizes 1, 16, 256 and 4096 for each shipped model. `cargo bench --bench onnx` (needs the
//! library: `.ci/install-onnxruntime`, or `ORT_DYLIB_PATH`).

use std::path::Path;
use std::time::{Duration, Instant};
use vigil::onnx::OnnxModel;

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
}
