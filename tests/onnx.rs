//! ONNX models through real ONNX Runtime (the library `.ci/install-onnxruntime` fetches, or
//! `ORT_DYLIB_PATH`): outputs against the committed reference outputs, load errors, the detector in
//! replay. Without the library the tests are skipped, said in one line (`support::Tool::require`).

use crate::support::Tool;
use crate::{datasets, root, temp_dir};
use vigil::manifest::Manifest;
use vigil::onnx::OnnxModel;

fn model(manifest: &str) -> std::sync::Arc<OnnxModel> {
    OnnxModel::load(&root().join(manifest), None).unwrap_or_else(|e| {
        panic!("{e}\n(the ONNX tests need ONNX Runtime: run .ci/install-onnxruntime once)")
    })
}

/// The first `n` rows of a SKAB file's eight channels, as f32.
fn skab_rows(name: &str, n: usize) -> Vec<Vec<f32>> {
    let text = std::fs::read_to_string(datasets().join("skab-dev/data").join(name)).expect("SKAB");
    text.lines()
        .skip(1)
        .take(n)
        .map(|l| {
            l.split(';')
                .skip(1)
                .take(8)
                .map(|v| v.parse::<f32>().expect("number"))
                .collect()
        })
        .collect()
}

/// `file -> [(row, score)]` from a committed reference file.
fn expected(path: &str, file: &str) -> Vec<(usize, f64)> {
    std::fs::read_to_string(root().join(path))
        .expect("reference outputs")
        .lines()
        .skip(1)
        .filter(|l| l.starts_with(file))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].parse().expect("row"), f[2].parse().expect("score"))
        })
        .collect()
}

#[test]
fn the_autoencoder_matches_its_reference_outputs() {
    let Some(_) = Tool::OnnxRuntime.require() else {
        return;
    };
    let m = model("models/pump_ae/manifest.toml");
    assert_eq!(m.manifest.id(), "pump-ae@1");
    assert_eq!(m.manifest.width(), 32);
    let mut session = m.session().expect("session");
    for file in ["valve1/0.csv", "valve1/1.csv"] {
        let want = expected("models/pump_ae/pump_ae.expected.csv", file);
        let rows = skab_rows(file, want.len() + 3);
        let x: Vec<f32> = (3..rows.len())
            .flat_map(|end| rows[end - 3..=end].concat())
            .collect();
        let mut got = vec![0.0f32; want.len()];
        m.score(&mut session, &x, want.len(), &mut got)
            .expect("runs");
        for ((row, w), g) in want.iter().zip(&got) {
            assert!(
                (*g as f64 - w).abs() <= 1e-5 * w.abs().max(1.0),
                "{file} window ending at row {row}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn the_forest_as_a_tree_ensemble_scores_as_scikit_learn_does() {
    let Some(_) = Tool::OnnxRuntime.require() else {
        return;
    };
    let m = model("models/iforest/manifest.toml");
    let mut session = m.session().expect("session");
    let want = expected("models/iforest/skab_sklearn.expected.csv", "valve1/0.csv");
    let x: Vec<f32> = skab_rows("valve1/0.csv", want.len()).concat();
    let mut got = vec![0.0f32; want.len()];
    m.score(&mut session, &x, want.len(), &mut got)
        .expect("runs");
    for ((row, w), g) in want.iter().zip(&got) {
        assert!(
            (*g as f64 - w).abs() <= 1e-5,
            "row {row}: {g} vs scikit-learn {w}"
        );
    }
    // Any other output than a reconstruction is explained by occlusion: a channel's weight is how
    // far the score falls with that channel at its typical value.
    let rows = skab_rows("valve1/0.csv", want.len());
    let c = rows[0].len();
    let typical: Vec<f32> = (0..c)
        .map(|k| rows.iter().map(|r| r[k]).sum::<f32>() / rows.len() as f32)
        .collect();
    let top = (0..got.len())
        .max_by(|&a, &b| got[a].total_cmp(&got[b]))
        .expect("rows");
    let e = m
        .explain(&mut session, &rows[top], got[top], &typical)
        .expect("explains");
    assert_eq!(e.expected, None);
    assert_eq!(e.weights.len(), c);
    for k in 0..c {
        let mut occluded = rows[top].clone();
        occluded[k] = typical[k];
        let mut s = [0.0f32];
        m.score(&mut session, &occluded, 1, &mut s).expect("runs");
        let want = (got[top] as f64 - s[0] as f64).max(0.0);
        assert!((e.weights[k] - want).abs() < 1e-9, "channel {k}: {e:?}");
    }
    assert!(e.weights.iter().any(|w| *w > 0.0), "{e:?}");
    assert!(m
        .explain(&mut session, &rows[top][1..], got[top], &typical)
        .is_err());
}

/// Writes a manifest like pump-ae's into a temporary directory with `edit` applied, next to
/// `model_file` (copied), and returns the manifest's path.
fn variant(
    name: &str,
    model_file: &std::path::Path,
    edit: impl Fn(String) -> String,
) -> std::path::PathBuf {
    let dir = temp_dir(name);
    let text =
        std::fs::read_to_string(root().join("models/pump_ae/manifest.toml")).expect("manifest");
    std::fs::copy(model_file, dir.join("pump_ae.onnx")).expect("copy");
    let path = dir.join("manifest.toml");
    std::fs::write(&path, edit(text)).expect("write");
    path
}

#[test]
fn bad_models_and_manifests_are_clear_errors_at_load() {
    let Some(_) = Tool::OnnxRuntime.require() else {
        return;
    };
    let ae = root().join("models/pump_ae/pump_ae.onnx");
    let cases: Vec<(std::path::PathBuf, &str)> = vec![
        (
            variant("onnx-window", &ae, |t| {
                t.replace("window = 4", "window = 3")
                    .lines()
                    .filter(|l| !l.starts_with("scale ="))
                    .collect::<Vec<_>>()
                    .join("\n")
            }),
            "need (N, 24)",
        ),
        (
            variant("onnx-input", &ae, |t| {
                t.replacen("name = \"X\"", "name = \"input\"", 1)
            }),
            "no input named \"input\"",
        ),
        (
            variant("onnx-output", &ae, |t| {
                t.replacen("name = \"Y\"", "name = \"out\"", 1)
            }),
            "no output named \"out\"",
        ),
        (
            variant(
                "onnx-opset",
                &root().join("fixtures/onnx/unknown_opset.onnx"),
                |t| t,
            ),
            "ONNX Runtime cannot load it",
        ),
        (
            variant("onnx-corrupt", &root().join("fixtures/pumps.csv"), |t| t),
            "ONNX Runtime cannot load it",
        ),
        (
            variant("onnx-scale", &ae, |t| {
                t.replace("scale = [", "scale = [1.0, ")
            }),
            "output.scale has 33 values",
        ),
        (
            variant("onnx-kind", &ae, |t| {
                t.replace("kind = \"onnx\"", "kind = \"zscore\"")
            }),
            "only \"onnx\"",
        ),
        (
            variant("onnx-field", &ae, |t| {
                t.replace("[provenance]", "colour = 3\n[provenance]")
            }),
            "unknown field",
        ),
    ];
    for (path, want) in cases {
        let e = OnnxModel::load(&path, None).expect_err(want);
        assert!(e.contains(want) && !e.contains('\n'), "{want}: {e}");
    }
    assert!(Manifest::load(&root().join("models/pump_ae/manifest.toml")).is_ok());
    let missing =
        vigil::onnx::runtime::locate(Some(std::path::Path::new("/no/such/libonnxruntime.so")))
            .expect_err("missing library");
    assert!(missing.contains(".ci/install-onnxruntime"), "{missing}");
}

#[test]
fn the_onnx_detector_scores_a_recording_in_replay() {
    let Some(_) = Tool::OnnxRuntime.require() else {
        return;
    };
    let out = temp_dir("onnx-replay");
    let manifest = root().join("models/pump_ae/manifest.toml");
    let toml = format!(
        "[input]\nignore_columns = [\"anomaly\", \"changepoint\"]\n[[detectors]]\nkind = \"onnx\"\nmanifest = {:?}\n[detectors.alerts]\nopen_after = 1\n",
        manifest.display().to_string()
    );
    let file = datasets().join("skab-dev/data/valve1/0.csv");
    let (report, alerts) = crate::replay::run(&[file], &toml, None, &out);
    assert_eq!(report.dead_letters, 0);
    // valve1 runs in another state than anomaly-free.csv: the autoencoder flags it at once.
    let first = alerts
        .iter()
        .find(|a| a["event"] == "open")
        .expect("an alert");
    assert_eq!(first["detector"], "pump-ae@1");
    assert_eq!(first["channel"], "Accelerometer1RMS");
    assert!(first["score"].as_f64().expect("score") > 1.33);
    // A reconstruction explains itself: each channel's part of the error, and what the model
    // reconstructed of the alert's channel. Flow is the channel furthest from anomaly-free.csv.
    let named = crate::contributions(first);
    assert_eq!(named[0].0, "Volume Flow RateRMS", "{first:#}");
    assert!(
        first["expected"].as_f64().is_some_and(f64::is_finite),
        "{first:#}"
    );
    assert_ne!(first["expected"], first["value"]);
}

/// `kind = "model"` takes any registry manifest: onnx, iforest (Vigil's own file, channels checked)
/// and zscore (parameters in the manifest).
#[test]
fn registry_manifests_of_every_kind_load_and_check_their_channels() {
    let Some(_) = Tool::OnnxRuntime.require() else {
        return;
    };
    use vigil::config::{Config, RawConfig};
    use vigil::detectors::{load, DetectorKind};
    let entry = |m: &std::path::Path, extra: &str| {
        format!(
            "[[detectors]]\nkind = \"model\"\nmanifest = {:?}\n{extra}",
            m.display().to_string()
        )
    };
    let text = [
        entry(&root().join("models/zscore/manifest.toml"), ""),
        entry(
            &root().join("models/pumps_iforest/manifest.toml"),
            "role = \"shadow\"\n",
        ),
        entry(
            &root().join("models/pump_ae/manifest.toml"),
            "role = \"shadow\"\n",
        ),
    ]
    .concat();
    let config = Config::validate(RawConfig::from_toml(&text).expect("parses")).expect("valid");
    let detectors = load(&config).expect("loads");
    let got: Vec<(&str, bool)> = detectors.iter().map(|d| (&*d.name, d.shadow)).collect();
    assert_eq!(
        got,
        [
            ("zscore@1", false),
            ("pumps-iforest@1", true),
            ("pump-ae@1", true)
        ]
    );
    assert!(matches!(detectors[0].kind, DetectorKind::ZScore(_)));
    assert!(matches!(detectors[1].kind, DetectorKind::IForest { .. }));
    assert!(matches!(detectors[2].kind, DetectorKind::Onnx { .. }));
    // The z-score's manifest holds the defaults: its identity matches the built-in detector's.
    let builtin = RawConfig::from_toml("[[detectors]]\nkind = \"zscore\"\n").expect("parses");
    let defaults = load(&Config::validate(builtin).expect("valid")).expect("loads");
    assert_eq!(
        format!("{:?}", detectors[0].kind),
        format!("{:?}", defaults[0].kind)
    );
    assert!(detectors[1]
        .files
        .iter()
        .any(|f| f.ends_with("manifest.toml")));

    // An iforest manifest whose channels are the model's in another order is refused.
    let dir = temp_dir("registry");
    std::fs::copy(
        root().join("models/pumps_iforest/pumps.vigil"),
        dir.join("pumps.vigil"),
    )
    .expect("copy");
    let manifest = std::fs::read_to_string(root().join("models/pumps_iforest/manifest.toml"))
        .expect("manifest");
    for (edit, want) in [
        (
            manifest.replace(
                r#"["pressure", "flow", "temperature", "vibration"]"#,
                r#"["flow", "pressure", "temperature", "vibration"]"#,
            ),
            "a reordering of",
        ),
        (
            manifest.replace(r#", "vibration"]"#, "]"),
            "are not the model's",
        ),
        (
            manifest.replace("kind = \"iforest\"", "kind = \"tree\""),
            "kind \"tree\"",
        ),
    ] {
        std::fs::write(dir.join("manifest.toml"), edit).expect("write");
        let raw = RawConfig::from_toml(&entry(&dir.join("manifest.toml"), "")).expect("parses");
        let config = Config::validate(raw).expect("valid: manifests are read at load");
        let e = load(&config).expect_err(want).to_string();
        assert!(e.contains(want) && !e.contains('\n'), "{e}");
    }
}
