//! Isolation-forest scoring, in one run on the same model and data, one thread each: Vigil's
//! kernel (every path this CPU has: scalar, AVX2, AVX-512 with both ways of reading values), ONNX
//! Runtime through ort on the same forest as one TreeEnsembleRegressor node, and the peers
//! `models/iforest/bench_peers.py` times (scikit-learn, treelite's GTIL and tl2cgen-compiled C on
//! the same forest, isotree on its own forest grown with the same parameters). Prints rows/s for
//! each and the ratios against the targets (Vigil's best ≥ 3× ONNX Runtime, ≥ 1.5× the best peer,
//! ≥ 30× scikit-learn), then Vigil's paths on a forest of 16 features.
//! `cargo bench --bench iforest`.
//!
//! The model is `models/iforest/skab_sklearn.onnx` (100 trees, ψ = 256, 8 features), imported into
//! Vigil's format; the data are 100 000 rows tiled from SKAB's valve1 recordings. ONNX Runtime is
//! found through `ORT_DYLIB_PATH` (`.ci/run` and the README fetch it); Python through
//! `VIGIL_PYTHON` (default `python3`) with `models/iforest/requirements-bench.txt`. A part that is
//! missing is reported as skipped, with how to get it.

mod common;
use common::best;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};
use vigil::iforest::model::IForestModel;
use vigil::iforest::onnx::{import, ImportOptions};
use vigil_kernels::iforest::{Fetch, Scorer};
use vigil_kernels::isa::Isa;

const ROWS: usize = 100_000;
const FEATURES: usize = 8;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// 100 000 rows of SKAB's eight channels, tiled from the valve1 files in order.
fn data() -> Vec<f32> {
    let dir = root().join("../shared/datasets/skab-dev/data/valve1");
    let mut rows = Vec::new();
    for i in 0..16 {
        let text = std::fs::read_to_string(dir.join(format!("{i}.csv"))).expect("SKAB data");
        for line in text.lines().skip(1) {
            let v: Vec<f32> = line
                .split(';')
                .skip(1)
                .take(FEATURES)
                .filter_map(|s| s.parse().ok())
                .collect();
            if v.len() == FEATURES {
                rows.extend(v);
            }
        }
    }
    eprintln!("{} distinct rows tiled to {ROWS}", rows.len() / FEATURES);
    rows.iter().cycle().take(ROWS * FEATURES).copied().collect()
}

fn onnx_runtime(model: &Path, x: &[f32]) -> Result<(Duration, Vec<f32>), String> {
    let lib = std::env::var("ORT_DYLIB_PATH")
        .map_err(|_| "ORT_DYLIB_PATH is not set (see the README's setup)".to_string())?;
    let env = ort::init_from(&lib)
        .map_err(|e| format!("cannot load ONNX Runtime from {lib}: {e}"))?
        .build()
        .map_err(|e| e.to_string())?;
    let builder = ort::session::Session::builder(&env)
        .map_err(|e| e.to_string())?
        .with_intra_threads(1)
        .map_err(|e| e.to_string())?
        .with_inter_threads(1)
        .map_err(|e| e.to_string())?;
    let mut builder = builder;
    let mut session = builder
        .commit_from_file(model)
        .map_err(|e| format!("ONNX Runtime cannot load {}: {e}", model.display()))?;
    let input = ndarray::ArrayView2::from_shape((ROWS, FEATURES), x).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut run = || -> Result<(), String> {
        let tensor = ort::value::TensorRef::from_array_view(input).map_err(|e| e.to_string())?;
        let outputs = session
            .run(ort::inputs!["X" => tensor])
            .map_err(|e| e.to_string())?;
        let (_, y) = outputs["Y"]
            .try_extract_tensor::<f32>()
            .map_err(|e| e.to_string())?;
        out = y.to_vec();
        Ok(())
    };
    run()?;
    let mut err = None;
    let t = best(5, || {
        if let Err(e) = run() {
            err = Some(e);
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok((t, out)),
    }
}

/// What `bench_peers.py` measured: each peer's rows/s (or why it was skipped), and for those that
/// score the same forest, their largest difference from scikit-learn's scores.
struct Peer {
    name: String,
    rate: Result<f64, String>,
    agree: Option<String>,
}

fn peers(x: &[f32]) -> Result<Vec<Peer>, String> {
    let python = std::env::var("VIGIL_PYTHON").unwrap_or_else(|_| "python3".into());
    let data = std::env::temp_dir().join(format!("vigil-iforest-bench-{}.f32", std::process::id()));
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&data, bytes).map_err(|e| e.to_string())?;
    let script = root().join("models/iforest/bench_peers.py");
    let skab = root().join("../shared/datasets/skab-dev");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&skab)
        .arg(&data)
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"));
    let _ = std::fs::remove_file(&data);
    let out = out?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{python} {}: {} (pip install -r models/iforest/requirements-bench.txt, then VIGIL_PYTHON=that python)",
            script.display(),
            err.lines().last().unwrap_or("failed")
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found: Vec<Peer> = Vec::new();
    for line in text.lines() {
        let mut w = line.splitn(3, ' ');
        let (Some(kind), Some(name), rest) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        let rest = rest.unwrap_or("").trim();
        match kind {
            "rows_per_s" => found.push(Peer {
                name: name.into(),
                rate: rest
                    .parse()
                    .map_err(|_| format!("unexpected output: {line}")),
                agree: None,
            }),
            "skipped" => found.push(Peer {
                name: name.into(),
                rate: Err(format!("not installed ({rest})")),
                agree: None,
            }),
            "agree" => {
                if let Some(p) = found.iter_mut().find(|p| p.name == name) {
                    p.agree = Some(rest.into());
                }
            }
            _ => {}
        }
    }
    if found.is_empty() {
        return Err(format!("unexpected output: {text}"));
    }
    Ok(found)
}

/// `met` or `MISSED` for a ratio against its target.
fn verdict(ratio: f64, target: f64) -> &'static str {
    if ratio >= target {
        "met"
    } else {
        "MISSED"
    }
}

/// Vigil's paths on this CPU: scalar and AVX2, and AVX-512 with each way of reading values.
fn vigil_paths() -> Vec<(String, Scorer)> {
    let mut paths = Vec::new();
    for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512] {
        if !isa.is_available() {
            println!(
                "{:<28} skipped: this CPU lacks it",
                format!("vigil {}", isa.name())
            );
            continue;
        }
        let fetches: &[Fetch] = if isa == Isa::Scalar {
            &[Fetch::Gather]
        } else {
            &Fetch::ALL
        };
        for &fetch in fetches {
            let Some(scorer) = Scorer::with_fetch(isa, fetch) else {
                continue;
            };
            let name = if isa != Isa::Scalar {
                format!("vigil {isa} {}", fetch.name())
            } else {
                format!("vigil {isa}")
            };
            paths.push((name, scorer));
        }
    }
    paths
}

fn main() {
    let onnx = root().join("models/iforest/skab_sklearn.onnx");
    let bytes = std::fs::read(&onnx).expect("committed model");
    let model: IForestModel = import(&bytes, "skab_sklearn.onnx", &ImportOptions::default())
        .expect("the committed model imports");
    let x = data();
    println!(
        "isolation forest: {} trees, ψ = {}, {FEATURES} features, {ROWS} rows, one thread (best of 5), {}\n",
        model.forest.n_trees(),
        model.forest.sample_size(),
        common::cpu()
    );
    println!("{}\n", chosen_read(&model.forest));
    let mut rates = Vec::new();
    let mut vigil_out = Vec::new();
    for (name, scorer) in vigil_paths() {
        let mut out = vec![0.0f32; ROWS];
        let t = best(5, || {
            scorer.path_sums(&model.forest, black_box(&x), &mut out)
        });
        let rate = ROWS as f64 / t.as_secs_f64();
        println!("{name:<28} {rate:>12.0} rows/s");
        rates.push((name, rate));
        vigil_out = out;
    }
    let vigil_best = rates.iter().map(|r| r.1).fold(0.0, f64::max);
    match onnx_runtime(&onnx, &x) {
        Ok((t, y)) => {
            let rate = ROWS as f64 / t.as_secs_f64();
            // Same forest, same sums (f32 sums in a different order: close, not equal).
            let worst = y
                .iter()
                .zip(&vigil_out)
                .map(|(a, b)| ((a - b) / b).abs())
                .fold(0.0f32, f32::max);
            println!(
                "{:<28} {:>12.0} rows/s   (path sums agree with Vigil's to {worst:.1e} relative)",
                "onnx runtime (1 thread)", rate
            );
            println!(
                "  vigil best / onnx runtime = {:.2}  (target ≥ 3: {})",
                vigil_best / rate,
                verdict(vigil_best / rate, 3.0)
            );
            for (name, r) in rates.iter().skip(1) {
                println!("  {name} / onnx runtime = {:.2}", r / rate);
            }
        }
        Err(e) => println!("{:<28} skipped: {e}", "onnx runtime"),
    }
    match peers(&x) {
        Ok(peers) => {
            let mut best_peer: Option<(&str, f64)> = None;
            for p in &peers {
                match &p.rate {
                    Ok(rate) => {
                        let agree = match &p.agree {
                            Some(d) => format!("   (scores agree with scikit-learn's to {d})"),
                            None if p.name == "isotree" => {
                                "   (its own forest, same parameters)".into()
                            }
                            None => String::new(),
                        };
                        println!("{:<28} {rate:>12.0} rows/s{agree}", p.name);
                        println!("  vigil best / {} = {:.2}", p.name, vigil_best / rate);
                        if best_peer.is_none_or(|(_, r)| *rate > r) {
                            best_peer = Some((&p.name, *rate));
                        }
                    }
                    Err(e) => println!("{:<28} skipped: {e}", p.name),
                }
            }
            if let Some((name, rate)) = best_peer {
                println!(
                    "  vigil best / best peer ({name}) = {:.2}  (target ≥ 1.5: {})",
                    vigil_best / rate,
                    verdict(vigil_best / rate, 1.5)
                );
            }
            if let Some(Ok(rate)) = peers
                .iter()
                .find(|p| p.name == "scikit-learn")
                .map(|p| &p.rate)
            {
                println!(
                    "  vigil best / scikit-learn = {:.1}  (target ≥ 30: {})",
                    vigil_best / rate,
                    verdict(vigil_best / rate, 30.0)
                );
            }
        }
        Err(e) => println!("{:<28} skipped: {e}", "peers"),
    }
    if let [(_, scalar), vector @ ..] = &rates[..] {
        for (name, rate) in vector {
            println!("  {name} / scalar = {:.2}", rate / scalar);
        }
    }
    wide(&x);
}

/// Which read each of Vigil's vector paths takes for `forest` on this CPU (it times both when a
/// model loads), and how long choosing took.
fn chosen_read(forest: &vigil_kernels::iforest::Forest) -> String {
    let chosen: Vec<String> = [Isa::Avx512, Isa::Avx2]
        .into_iter()
        .filter(|isa| isa.is_available())
        .map(|isa| {
            let start = Instant::now();
            let fetch = Fetch::fastest_for(isa, forest);
            format!(
                "{isa} {} (timed in {:.1} ms)",
                fetch.name(),
                start.elapsed().as_secs_f64() * 1e3
            )
        })
        .collect();
    if chosen.is_empty() {
        return "(no vector path here: no read to choose)".into();
    }
    format!(
        "(the reads Vigil chooses for this forest when it loads: {})",
        chosen.join(", ")
    )
}

/// A forest Vigil trains itself on 16 features (the 8 channels and their differences from the
/// previous row, as `diff(c)` features give), scored on every path.
fn wide(x: &[f32]) {
    let w = 2 * FEATURES;
    let mut rows = Vec::with_capacity(ROWS * w);
    for r in 0..ROWS {
        let now = &x[r * FEATURES..(r + 1) * FEATURES];
        let before = &x[r.saturating_sub(1) * FEATURES..][..FEATURES];
        rows.extend_from_slice(now);
        rows.extend(now.iter().zip(before).map(|(a, b)| a - b));
    }
    let params = vigil_kernels::iforest::train::TrainParams {
        trees: 100,
        sample_size: 256,
        seed: 7,
    };
    let forest = vigil_kernels::iforest::train::train(&rows[..20_000 * w], w, &params)
        .expect("trains on finite rows");
    println!(
        "\nVigil's own forest on {w} features (channels and differences), 100 trees, ψ = 256:"
    );
    println!("{}", chosen_read(&forest));
    for (name, scorer) in vigil_paths() {
        let mut out = vec![0.0f32; ROWS];
        let t = best(5, || scorer.path_sums(&forest, black_box(&rows), &mut out));
        println!("{name:<28} {:>12.0} rows/s", ROWS as f64 / t.as_secs_f64());
    }
}
