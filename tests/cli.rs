//! The `vigil` binary as a user runs it: exit codes and one-line errors.

use crate::{root, temp_dir};
use std::process::{Command, Output};

fn vigil(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.args(args).current_dir(root()).env_remove("VIGIL_ISA");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run vigil")
}

fn assert_usage_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "want one line, got: {stderr}");
    assert!(lines[0].contains(needle), "{stderr}");
}

#[test]
fn bad_input_flag_or_config_is_one_line_and_exit_2() {
    let dir = temp_dir("cli");
    assert_usage_error(
        &vigil(&["replay", "no/such/file.csv"], &[]),
        "cannot open no/such/file.csv",
    );
    assert_usage_error(
        &vigil(&["replay", "fixtures/pumps.csv", "--bogus"], &[]),
        "unexpected argument '--bogus'",
    );
    assert_usage_error(
        &vigil(&["replay", "fixtures/pumps.csv", "--shards", "many"], &[]),
        "invalid value 'many'",
    );
    assert_usage_error(&vigil(&["replay"], &[]), "required");
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "[pipeline]\nshards = 2\nturbo = true\n").expect("write");
    assert_usage_error(
        &vigil(
            &[
                "replay",
                "fixtures/pumps.csv",
                "--config",
                cfg.to_str().expect("utf8"),
            ],
            &[],
        ),
        "line 3: unknown field `turbo`",
    );
    assert_usage_error(
        &vigil(&["replay", "fixtures/pumps.csv", "--speed", "warp"], &[]),
        "speed must be",
    );
    // VIGIL_ISA is honoured by every command that runs kernels, training and evaluation too.
    for args in [
        &["replay", "fixtures/pumps.csv"][..],
        &[
            "train",
            "iforest",
            "--input",
            "fixtures/pumps.csv",
            "--out",
            "/tmp/never.vigil",
        ],
        &["eval", "skab", "../shared/datasets/skab-dev"],
    ] {
        assert_usage_error(
            &vigil(args, &[("VIGIL_ISA", "sse9")]),
            "VIGIL_ISA: unknown instruction set \"sse9\"",
        );
    }
    let headerless = dir.join("h.csv");
    std::fs::write(&headerless, "a,b\n1,2\n").expect("write");
    assert_usage_error(
        &vigil(&["replay", headerless.to_str().expect("utf8")], &[]),
        "no timestamp column",
    );
    assert_usage_error(
        &vigil(
            &[
                "replay",
                "fixtures/pumps.csv",
                "--alerts",
                "/no/such/dir/a.jsonl",
            ],
            &[],
        ),
        "cannot write /no/such/dir/a.jsonl",
    );
}

#[test]
fn replay_writes_alerts_summary_and_metrics() {
    let dir = temp_dir("cli-ok");
    let metrics = dir.join("m.json");
    let alerts = dir.join("a.jsonl");
    let out = vigil(
        &[
            "replay",
            "fixtures/pumps.csv",
            "--alerts",
            alerts.to_str().expect("utf8"),
            "--metrics-out",
            metrics.to_str().expect("utf8"),
        ],
        &[("VIGIL_ISA", "scalar")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "detectors sequence (sequence), baseline (baseline), kernels scalar (forced by VIGIL_ISA)"
        ),
        "{stderr}"
    );
    for stage in [
        "decode",
        "queue_wait",
        "batch_linger",
        "scoring",
        "alert_policy",
        "sink_write",
        "end_to_end",
    ] {
        assert!(stderr.contains(stage), "summary lacks {stage}: {stderr}");
    }
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metrics).expect("metrics")).expect("JSON");
    assert_eq!(m["records"], 64_800);
    assert_eq!(m["isa"], "scalar");
    assert_eq!(m["stages"].as_array().expect("stages").len(), 8);
    assert_eq!(m["stages"][6]["count"], 64_800);
    assert!(m["alerts_opened"].as_u64().expect("opened") >= 4);
    assert_eq!(
        std::fs::read_to_string(&alerts)
            .expect("alerts")
            .lines()
            .count() as u64,
        m["alerts_opened"].as_u64().expect("o") + m["alerts_closed"].as_u64().expect("c")
    );
}

#[test]
fn the_example_config_is_valid_and_documents_the_defaults() {
    let text = std::fs::read_to_string(root().join("fixtures/vigil.toml")).expect("example config");
    let raw = vigil::config::RawConfig::from_toml(&text).expect("parses");
    let config = vigil::config::Config::validate(raw).expect("valid");
    let defaults = vigil::config::Config::validate(Default::default()).expect("valid");
    let (loaded, default_detectors) = (
        vigil::detectors::load(&config).expect("loads"),
        vigil::detectors::load(&defaults).expect("loads"),
    );
    // The example holds the whole default set, each with its defaults.
    assert_eq!(loaded.len(), default_detectors.len());
    for (i, (l, d)) in loaded.iter().zip(&default_detectors).enumerate() {
        assert_eq!(l.policy, d.policy, "detector {i}");
        assert_eq!(format!("{:?}", l.kind), format!("{:?}", d.kind), "{i}");
        assert_eq!(config.detectors[i].label(), defaults.detectors[i].label());
        assert_eq!(config.detectors[i].channels, defaults.detectors[i].channels);
    }
    assert_eq!(config.pipeline.shards, defaults.pipeline.shards);
    assert_eq!(config.pipeline.batch_size, defaults.pipeline.batch_size);
    assert_eq!(config.pipeline.linger, defaults.pipeline.linger);
    assert_eq!(
        config.pipeline.channel_capacity,
        defaults.pipeline.channel_capacity
    );
}

#[test]
fn train_and_import_write_models_and_refuse_bad_input_with_exit_2() {
    let dir = temp_dir("cli-iforest");
    let out = dir.join("m.vigil");
    let o = out.to_str().expect("utf8");
    let ok = vigil(
        &[
            "train",
            "iforest",
            "--input",
            "fixtures/pumps.csv",
            "--out",
            o,
            "--trees",
            "20",
            "--features",
            "pressure,flow,diff(pressure),mean(flow,5)",
            "--until",
            "2026-01-05T00:55:00Z",
            "--sensors",
            "pump-2",
        ],
        &[],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(
        stderr.contains("trained 20 trees") && stderr.contains("mean(flow,5)"),
        "{stderr}"
    );
    let model = vigil::iforest::model::IForestModel::load(&out).expect("a valid model");
    // pump-2 only, 3300 s before 00:55, less the rows whose derived features need history.
    assert!(
        (3200..=3300).contains(&model.training.rows),
        "{}",
        model.training.rows
    );

    assert_usage_error(
        &vigil(
            &[
                "train",
                "iforest",
                "--input",
                "fixtures/pumps.csv",
                "--out",
                o,
                "--features",
                "torque",
            ],
            &[],
        ),
        "have no channel \"torque\"",
    );
    assert_usage_error(
        &vigil(
            &[
                "train",
                "iforest",
                "--input",
                "fixtures/pumps.csv",
                "--out",
                o,
                "--features",
                "mean(flow,1)",
            ],
            &[],
        ),
        "the window must be",
    );
    assert_usage_error(
        &vigil(
            &[
                "train",
                "iforest",
                "--input",
                "fixtures/pumps.csv",
                "--out",
                o,
                "--contamination",
                "0.7",
            ],
            &[],
        ),
        "contamination must be in (0, 0.5)",
    );
    assert_usage_error(
        &vigil(
            &[
                "train",
                "iforest",
                "--input",
                "fixtures/pumps.csv",
                "--out",
                o,
                "--until",
                "soon",
            ],
            &[],
        ),
        "is not a timestamp",
    );
    let ok = vigil(
        &[
            "import",
            "iforest",
            "models/iforest/skab_sklearn.onnx",
            "--out",
            o,
        ],
        &[],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let garbage = dir.join("g.onnx");
    std::fs::write(&garbage, b"\x0a\xff\xff\xff").expect("write");
    assert_usage_error(
        &vigil(
            &[
                "import",
                "iforest",
                garbage.to_str().expect("utf8"),
                "--out",
                o,
            ],
            &[],
        ),
        "g.onnx",
    );
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[detectors]]\nkind = \"iforest\"\nmodel = {:?}\n",
            garbage.display().to_string()
        ),
    )
    .expect("write");
    assert_usage_error(
        &vigil(
            &[
                "replay",
                "fixtures/pumps.csv",
                "--config",
                cfg.to_str().expect("utf8"),
            ],
            &[],
        ),
        "not a Vigil model file",
    );
    // The imported model over a lower size limit.
    std::fs::write(
        &cfg,
        format!("[[detectors]]\nkind = \"iforest\"\nmodel = {o:?}\n"),
    )
    .expect("write");
    let c = cfg.to_str().expect("utf8");
    assert_usage_error(
        &vigil(
            &["replay", "fixtures/pumps.csv", "--config", c],
            &[("VIGIL_MAX_MODEL_BYTES", "100")],
        ),
        "is more than the limit of 100 (VIGIL_MAX_MODEL_BYTES raises it)",
    );
    assert_usage_error(
        &vigil(
            &[
                "import",
                "iforest",
                "models/iforest/skab_sklearn.onnx",
                "--out",
                o,
            ]
            .into_iter()
            .chain(["--sample", "1000000000"])
            .collect::<Vec<_>>(),
            &[],
        ),
        "sample size must be between 2 and 16777216",
    );
    let train_to = |out: &str, input: &str, extra: &[&str]| {
        let mut args = vec![
            "train", "iforest", "--input", input, "--out", out, "--trees", "5",
        ];
        args.extend_from_slice(extra);
        vigil(&args, &[])
    };
    let train = |input: &str, extra: &[&str]| train_to(o, input, extra);
    assert_usage_error(
        &train(
            "fixtures/pumps.csv",
            &["--features", "pressure,flow,pressure"],
        ),
        "feature pressure appears twice",
    );
    // A channel that never varies: refused when named, left out (with a warning) by default.
    let flat = dir.join("flat.csv");
    let mut text = String::from("timestamp,p,stuck\n");
    for i in 0..500 {
        text.push_str(&format!("{},{}.5,3.0\n", 1_700_000_000 + i, i % 9));
    }
    std::fs::write(&flat, text).expect("write");
    let flat = flat.to_str().expect("utf8");
    assert_usage_error(
        &train(flat, &["--features", "p,stuck"]),
        "stuck never vary in the training data",
    );
    let out = train(flat, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("left out feature(s) stuck"), "{err}");
    let model = vigil::iforest::model::IForestModel::load(std::path::Path::new(o)).expect("model");
    let names: Vec<String> = model.features.iter().map(|f| f.to_string()).collect();
    assert_eq!(names, ["p"]);
    // Where the model goes: a missing directory is a usage error before training, a failed
    // write after it a runtime one.
    assert_usage_error(
        &train_to("/no/such/dir/m.vigil", flat, &[]),
        "no such directory",
    );
    let out = train_to("/dev/full", flat, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn shadow_alerts_go_to_their_own_file_and_compare_reports_both_versions() {
    let dir = temp_dir("cli-shadow");
    let (serving, shadow, metrics) = (dir.join("a.jsonl"), dir.join("s.jsonl"), dir.join("m.json"));
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[output]\nshadow_alerts = {:?}\n[[detectors]]\nkind = \"zscore\"\nname = \"zscore@1\"\n[[detectors]]\nkind = \"likelihood\"\nname = \"likelihood@1\"\nrole = \"shadow\"\n[detectors.alerts]\nopen = 5\nclose = 2.5\n",
            shadow.display().to_string()
        ),
    )
    .expect("write");
    let path = |p: &std::path::Path| p.to_str().expect("utf8").to_string();
    let out = vigil(
        &[
            "replay",
            "fixtures/pumps.csv",
            "--config",
            &path(&cfg),
            "--alerts",
            &path(&serving),
            "--metrics-out",
            &path(&metrics),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = crate::read_jsonl(&serving);
    let h = crate::read_jsonl(&shadow);
    assert!(!s.is_empty() && !h.is_empty());
    assert!(s
        .iter()
        .all(|a| a["detector"] == "zscore@1" && a.get("role").is_none()));
    assert!(h
        .iter()
        .all(|a| a["detector"] == "likelihood@1" && a["role"] == "shadow"));
    let out = vigil(
        &[
            "compare",
            &path(&serving),
            &path(&shadow),
            "--metrics",
            &path(&metrics),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let r = &rows[0];
    assert_eq!(
        (r["serving"].as_str(), r["candidate"].as_str()),
        (Some("zscore@1"), Some("likelihood@1"))
    );
    let opens = |v: &[serde_json::Value]| v.iter().filter(|a| a["event"] == "open").count() as u64;
    assert_eq!(r["serving_alerts"].as_u64(), Some(opens(&s)));
    assert_eq!(r["candidate_alerts"].as_u64(), Some(opens(&h)));
    assert_eq!(
        r["both"].as_u64().expect("both") + r["only_serving"].as_u64().expect("only"),
        opens(&s)
    );
    assert!(
        r["serving_ns_per_record"].as_f64().is_some()
            && r["candidate_ns_per_record"].as_f64().is_some()
    );
    assert_usage_error(
        &vigil(&["compare", &path(&serving), "--from", "yesterday"], &[]),
        "is not a timestamp",
    );
    let bad = dir.join("r.toml");
    std::fs::write(
        &bad,
        "[[detectors]]\nkind = \"zscore\"\nrole = \"canary\"\n",
    )
    .expect("write");
    assert_usage_error(
        &vigil(
            &["replay", "fixtures/pumps.csv", "--config", &path(&bad)],
            &[],
        ),
        "role must be \"serving\" or \"shadow\"",
    );
}

/// Vigil without ONNX models never loads ONNX Runtime (a library path that does not exist is not
/// looked at); with an ONNX model configured, a missing library is one line, exit code 2, naming
/// what to do.
#[test]
fn onnx_runtime_is_needed_only_by_onnx_models() {
    let dir = temp_dir("cli-no-ort");
    let missing = dir.join("no-such-libonnxruntime.so");
    let missing = missing.to_str().expect("utf8");
    let alerts = dir.join("a.jsonl");
    let out = vigil(
        &[
            "replay",
            "fixtures/pumps.csv",
            "--alerts",
            alerts.to_str().expect("utf8"),
        ],
        &[("ORT_DYLIB_PATH", missing)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = dir.join("onnx.toml");
    std::fs::write(
        &cfg,
        "[[detectors]]\nkind = \"model\"\nmanifest = \"models/pump_ae/manifest.toml\"\n",
    )
    .expect("config");
    assert_usage_error(
        &vigil(
            &[
                "replay",
                "fixtures/pumps.csv",
                "--config",
                cfg.to_str().expect("utf8"),
            ],
            &[("ORT_DYLIB_PATH", missing)],
        ),
        "run .ci/install-onnxruntime, or set onnx.runtime / ORT_DYLIB_PATH",
    );
}
