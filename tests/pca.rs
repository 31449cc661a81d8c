//! The PCA T²+Q detector in replay, on SKAB files: each sensor learns from its first records, then
//! raises one alert on the valve closure, named on the first channel.

use crate::replay::run;
use crate::{datasets, temp_dir};

const TOML: &str =
    "[input]\nignore_columns = [\"anomaly\", \"changepoint\"]\n[[detectors]]\nkind = \"pca\"\n";

/// The file's anomalous lines (1-based, the header is line 1).
fn anomaly_lines(path: &std::path::Path) -> std::ops::RangeInclusive<u64> {
    let text = std::fs::read_to_string(path).expect("SKAB file");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(';').collect();
    let col = header
        .iter()
        .position(|h| *h == "anomaly")
        .expect("anomaly");
    let flagged: Vec<u64> = lines
        .enumerate()
        .filter(|(_, l)| l.split(';').nth(col).is_some_and(|v| v.trim() == "1.0"))
        .map(|(i, _)| i as u64 + 2)
        .collect();
    flagged[0]..=flagged[flagged.len() - 1]
}

#[test]
fn a_sensor_learns_then_alerts_on_the_valve_closure() {
    let file = datasets().join("skab-dev/data/valve1/0.csv");
    let anomaly = anomaly_lines(&file);
    let (report, alerts) = run(&[file], TOML, None, &temp_dir("pca-replay"));
    assert_eq!(report.dead_letters, 0);
    let opens: Vec<_> = alerts.iter().filter(|a| a["event"] == "open").collect();
    assert_eq!(opens.len(), 1, "{alerts:?}");
    let line = opens[0]["line"].as_u64().expect("line");
    assert!(
        anomaly.contains(&line),
        "opened at line {line}, anomaly {anomaly:?}"
    );
    assert_eq!(opens[0]["detector"], "pca");
    assert_eq!(opens[0]["channel"], "Accelerometer1RMS");
    assert!(opens[0]["score"].as_f64().expect("score") >= 1.0);
    // It explains itself: the channels that made the score, largest share first, and what the
    // model expected of the alert's channel.
    crate::contributions(opens[0]);
    assert!(opens[0]["expected"].as_f64().is_some_and(f64::is_finite));
    // A close says nothing of contributions.
    assert!(alerts
        .iter()
        .filter(|a| a["event"] == "close")
        .all(|a| a.get("contributions").is_none()));
}

#[test]
fn nothing_scores_while_a_sensor_trains() {
    // 2000 training records: longer than the file, so nothing is ever scored.
    let file = datasets().join("skab-dev/data/valve1/0.csv");
    let toml = format!("{TOML}train_rows = 2000\n");
    let (_, alerts) = run(&[file], &toml, None, &temp_dir("pca-train"));
    assert!(alerts.is_empty(), "{alerts:?}");
}

#[test]
fn bad_pca_settings_are_refused_in_one_line() {
    for (extra, want) in [
        (
            "train_rows = 3\nchannels = [\"a\", \"b\"]\n",
            "train_rows must be",
        ),
        ("explained = 1.5\n", "explained must be in (0, 1]"),
        ("p = 1\n", "p must be in (0.5, 1)"),
    ] {
        let raw = vigil::config::RawConfig::from_toml(&format!("{TOML}{extra}")).expect("parses");
        let e = vigil::config::Config::validate(raw)
            .expect_err(extra)
            .to_string();
        assert!(e.contains(want) && !e.contains('\n'), "{e}");
    }
}

#[test]
fn same_alerts_and_explanations_for_every_isa_shard_count_and_batch_size() {
    // The fixture's six pumps, four channels each: every sensor learns its own model.
    let fixture = crate::replay::fixture();
    let run_with = |isa: vigil_kernels::isa::Isa, shards: usize, batch: usize| {
        let toml = format!(
            "[pipeline]\nshards = {shards}\nbatch_size = {batch}\n[[detectors]]\nkind = \"pca\"\ntrain_rows = 600\n"
        );
        let (_, alerts) = run(
            std::slice::from_ref(&fixture),
            &toml,
            Some(isa),
            &temp_dir("pca-det"),
        );
        let mut lines: Vec<String> = alerts
            .into_iter()
            .map(|mut a| {
                a.as_object_mut().map(|o| o.remove("raised_at"));
                a.to_string()
            })
            .collect();
        lines.sort();
        lines
    };
    let reference = run_with(vigil_kernels::isa::Isa::Scalar, 1, 1024);
    assert!(
        !reference.is_empty(),
        "the fixture's faults raise PCA alerts"
    );
    for isa in vigil_kernels::isa::Isa::under_test() {
        for (shards, batch) in [(1, 1024), (4, 333)] {
            assert!(
                run_with(isa, shards, batch) == reference,
                "{isa} with {shards} shards, batch {batch} differs"
            );
        }
    }
}
