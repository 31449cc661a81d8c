//! Isolation forests end to end: scikit-learn's forest imported from ONNX scores as scikit-learn
//! does, training is deterministic, and a forest trained on the fixture's normal part flags its
//! multichannel fault in replay.

use crate::replay::{fixture, ms, run};
use crate::{datasets, root, temp_dir};
use vigil::config::{Config, RawConfig};
use vigil::iforest::model::IForestModel;
use vigil::iforest::onnx::{import, ImportOptions};
use vigil::train::{train_iforest, TrainOptions};
use vigil_kernels::iforest::train::TrainParams;
use vigil_kernels::iforest::{Fetch, Scorer};
use vigil_kernels::isa::Isa;

/// The first `n` rows of a SKAB file's eight channels, parsed as Vigil parses them (f32).
fn skab_rows(name: &str, n: usize) -> Vec<f32> {
    let text = std::fs::read_to_string(datasets().join("skab-dev/data").join(name)).expect("SKAB");
    text.lines()
        .skip(1)
        .take(n)
        .flat_map(|l| {
            l.split(';')
                .skip(1)
                .take(8)
                .map(|v| v.parse::<f32>().expect("number"))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_scikit_learn_forest_imported_from_onnx_scores_as_scikit_learn_does() {
    let dir = root().join("models/iforest");
    let bytes = std::fs::read(dir.join("skab_sklearn.onnx")).expect("committed model");
    let model = import(&bytes, "skab_sklearn.onnx", &ImportOptions::default()).expect("imports");
    assert_eq!(model.forest.n_trees(), 100);
    assert_eq!(model.forest.sample_size(), 256);
    assert_eq!(model.features.len(), 8);
    assert_eq!(model.threshold, 0.5, "-offset_ of contamination='auto'");
    // Through the model file and back, as `vigil import iforest` writes it.
    let model = IForestModel::from_json(&model.to_json()).expect("round trip");
    let expected = std::fs::read_to_string(dir.join("skab_sklearn.expected.csv")).expect("scores");
    let mut checked = 0;
    for file in ["valve1/0.csv", "valve1/1.csv"] {
        let want: Vec<f64> = expected
            .lines()
            .skip(1)
            .filter(|l| l.starts_with(file))
            .map(|l| {
                l.rsplit(',')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("score")
            })
            .collect();
        let x = skab_rows(file, want.len());
        // Every path, and both of the AVX-512 path's reads.
        let scorers = Isa::under_test()
            .into_iter()
            .flat_map(|isa| Fetch::ALL.map(|fetch| Scorer::with_fetch(isa, fetch)));
        for scorer in scorers {
            let scorer = scorer.expect("available");
            let mut got = vec![0.0f32; want.len()];
            scorer.score(&model.forest, &x, &mut got);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (*g as f64 - w).abs() <= 1e-5,
                    "{scorer:?} {file} row {i}: {g} vs scikit-learn {w}"
                );
            }
            checked += got.len();
        }
    }
    assert!(checked >= 1200);
}

#[test]
fn imports_refuse_reordered_features_and_broken_files() {
    let bytes = std::fs::read(root().join("models/iforest/skab_sklearn.onnx")).expect("model");
    let mut names: Vec<String> = "Accelerometer1RMS,Accelerometer2RMS,Current,Pressure,Temperature,Thermocouple,Voltage,Volume Flow RateRMS"
        .split(',')
        .map(str::to_string)
        .collect();
    let ok = ImportOptions {
        features: Some(names.clone()),
        ..ImportOptions::default()
    };
    assert!(import(&bytes, "m", &ok).is_ok());
    names.swap(2, 3);
    let reordered = ImportOptions {
        features: Some(names),
        ..ImportOptions::default()
    };
    let e = import(&bytes, "m", &reordered).expect_err("reordered");
    assert!(e.contains("reordered"), "{e}");
    // Truncated or garbage bytes are an error, never a panic.
    for cut in [0, 1, 100, 5000, bytes.len() / 2, bytes.len() - 1] {
        assert!(import(&bytes[..cut], "m", &ok).is_err(), "cut at {cut}");
    }
    assert!(import(b"not an onnx file at all", "m", &ok).is_err());
    // Bytes changed anywhere (lengths, tags, node lists, floats): an error or a forest that passed
    // every check, never a panic or an allocation the file's size does not justify.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut refused, mut accepted) = (0, 0);
    for _ in 0..2000 {
        let mut b = bytes.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % b.len() as u64) as usize;
            b[at] = next() as u8;
        }
        match std::panic::catch_unwind(|| import(&b, "m", &ok)) {
            Ok(Ok(_)) => accepted += 1,
            Ok(Err(_)) => refused += 1,
            Err(_) => panic!("import panicked on changed bytes"),
        }
    }
    assert!(
        refused > 0 && accepted > 0,
        "{refused} refused, {accepted} accepted"
    );
}

fn train_on_fixture(seed: u64) -> IForestModel {
    let config = Config::validate(RawConfig::default()).expect("config");
    let opts = TrainOptions {
        inputs: vec![fixture()],
        params: TrainParams {
            trees: 100,
            sample_size: 256,
            seed,
        },
        features: None,
        // One training row in 500 above the threshold: with 3 consecutive rows to open, a few
        // false alerts in 18 pump-hours.
        contamination: 0.002,
        sensors: Vec::new(),
        // The fixture's first fault starts at 01:00.
        until_ms: Some(ms(&serde_json::json!("2026-01-05T00:55:00Z"))),
        head: None,
    };
    train_iforest(&config, &opts).expect("trains").model
}

#[test]
fn training_is_deterministic_and_the_forest_flags_the_valve_closure_in_replay() {
    let a = train_on_fixture(3);
    assert_eq!(
        a.to_json(),
        train_on_fixture(3).to_json(),
        "same seed, same file"
    );
    assert_ne!(a.to_json(), train_on_fixture(4).to_json());
    let names: Vec<String> = a.features.iter().map(|f| f.to_string()).collect();
    assert_eq!(names, ["pressure", "flow", "temperature", "vibration"]);
    assert_eq!(
        a.training.rows, 19_764,
        "6 pumps × 3300 s, less rows with a missing reading"
    );
    assert!(a.threshold > 0.5 && a.threshold < 0.7, "{}", a.threshold);

    let out = temp_dir("iforest-replay");
    let path = out.join("pumps.vigil");
    a.save(&path).expect("save");
    // What is written loads back to the same model, every number to the bit (the fuzzer found
    // serde_json's fast float parser one unit off on a summary mean of this very model).
    let saved = std::fs::read_to_string(&path).expect("read");
    let loaded = IForestModel::from_json(&saved).expect("loads");
    assert_eq!(loaded.to_json(), a.to_json());
    let toml = format!(
        "[[detectors]]\nkind = \"iforest\"\nmodel = {:?}\n",
        path.display().to_string()
    );
    let (_, alerts) = run(&[fixture()], &toml, None, &out);
    let opened = |sensor: &str, from: &str, to: &str| {
        alerts.iter().any(|a| {
            a["event"] == "open"
                && a["sensor"] == sensor
                && a["detector"] == "iforest"
                && (ms(&serde_json::json!(from))..=ms(&serde_json::json!(to)))
                    .contains(&ms(&a["ts"]))
        })
    };
    // Valve closure on pump-2: pressure up, flow down, 01:30:00–01:39:59.
    assert!(
        opened("pump-2", "2026-01-05T01:30:00Z", "2026-01-05T01:40:00Z"),
        "{alerts:?}"
    );
    // The pressure spike on pump-1 at 01:00:00.
    assert!(opened(
        "pump-1",
        "2026-01-05T01:00:00Z",
        "2026-01-05T01:01:00Z"
    ));
    // Alerts name the model's first channel, carry the score the policy opened on, and say which
    // channels made it (by occlusion): the spike and the closure are pressure's doing.
    for a in alerts.iter().filter(|a| a["event"] == "open") {
        assert_eq!(a["channel"], "pressure");
        assert!(a["score"].as_f64().expect("score") >= a_threshold(&a_json(&path)));
        let named = crate::contributions(a);
        let at = ms(&a["ts"]);
        let during = |from: &str, to: &str| {
            (ms(&serde_json::json!(from))..=ms(&serde_json::json!(to))).contains(&at)
        };
        if a["sensor"] == "pump-1" && during("2026-01-05T01:00:00Z", "2026-01-05T01:01:00Z")
            || a["sensor"] == "pump-2" && during("2026-01-05T01:30:00Z", "2026-01-05T01:40:00Z")
        {
            assert!(["pressure", "flow"].contains(&named[0].0.as_str()), "{a:#}");
        }
    }
    // Quiet parts raise few false alerts: at most 8 opens in all (5 faults) over 18 pump-hours.
    assert!(
        alerts.iter().filter(|a| a["event"] == "open").count() <= 8,
        "{alerts:?}"
    );
}

fn a_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("model")).expect("JSON")
}

fn a_threshold(model: &serde_json::Value) -> f64 {
    model["threshold"].as_f64().expect("threshold") - 1e-6
}

#[test]
fn bad_model_files_are_one_line_errors() {
    let dir = temp_dir("iforest-bad");
    let good = train_on_fixture(1).to_json();
    for (text, want) in [
        ("{", "not a Vigil model file"),
        (&good.replace("\"version\":1", "\"version\":9"), "version 9"),
        (
            &good.replace("\"kind\":\"iforest\"", "\"kind\":\"onnx\""),
            "not \"iforest\"",
        ),
        (
            &good.replace("\"threshold\":0.", "\"threshold\":-0."),
            "not in (0, 1]",
        ),
        (
            &good.replacen("\"left\":[1,", "\"left\":[7777,", 1),
            "out of order or range",
        ),
    ] {
        let path = dir.join("m.vigil");
        std::fs::write(&path, text).expect("write");
        let e = IForestModel::load(&path).expect_err(want);
        assert!(e.contains(want) && !e.contains('\n'), "{e}");
        let toml = format!(
            "[[detectors]]\nkind = \"iforest\"\nmodel = {:?}\n",
            path.display().to_string()
        );
        let raw = RawConfig::from_toml(&toml).expect("parses");
        let config = Config::validate(raw).expect("valid: the model is read at load");
        let e = vigil::detectors::load(&config)
            .expect_err("refused")
            .to_string();
        assert!(e.contains("detector iforest: model"), "{e}");
    }
}
