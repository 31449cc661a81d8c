//! The NAB scorer reproduces the published scoreboard from the published per-row scores.

use crate::datasets;
use vigil::eval::nab::{
    read_results, read_windows, score_at_threshold, score_corpus, ScoredFile, PROFILES,
};

fn published(detector: &str) -> Vec<ScoredFile> {
    let nab = datasets().join("nab");
    let windows = read_windows(&nab.join("labels/combined_windows.json")).expect("windows");
    windows
        .iter()
        .map(|(name, w)| {
            let (category, file) = name.split_once('/').expect("category/file");
            let path = nab.join(format!(
                "results_raw/{detector}/{category}/{detector}_{file}"
            ));
            let (ts, scores) = read_results(&path).expect("results file");
            ScoredFile {
                name: name.clone(),
                ts,
                scores,
                windows: w.clone(),
            }
        })
        .collect()
}

/// NAB's committed thresholds (`config/thresholds.json`) of one detector, by profile.
fn committed_thresholds(detector: &str) -> serde_json::Value {
    let text =
        std::fs::read_to_string(datasets().join("nab/config/thresholds.json")).expect("thresholds");
    serde_json::from_str::<serde_json::Value>(&text).expect("JSON")[detector].clone()
}

#[test]
fn published_scores_are_reproduced_to_0_01() {
    for (detector, want) in [
        ("windowedGaussian", [39.6495, 20.8680, 47.4100]),
        ("numenta", [70.1011, 63.1168, 74.3202]),
    ] {
        let files = published(detector);
        assert_eq!(files.len(), 58);
        let committed = committed_thresholds(detector);
        for (p, w) in PROFILES.iter().zip(want) {
            // NAB's scorer at its committed threshold gives the published score...
            let t = committed[p.name]["threshold"].as_f64().expect("threshold");
            let s = score_at_threshold(&files, p, t).expect("score");
            assert!(
                (s.normalized - w).abs() < 0.01,
                "{detector} {} at {t}: {} (want {w})",
                p.name,
                s.normalized
            );
            // ...and the sweep finds that threshold or a better one (numenta's committed
            // low-FP threshold is not the optimum: the sweep reaches 63.21 there).
            let swept = score_corpus(&files, p).expect("sweep");
            assert!(
                swept.normalized >= w - 0.01,
                "{detector} {}: sweep {} < {w}",
                p.name,
                swept.normalized
            );
            if (detector, p.name) != ("numenta", "reward_low_FP_rate") {
                assert!(
                    (swept.normalized - w).abs() < 0.01,
                    "{detector} {}: sweep {}",
                    p.name,
                    swept.normalized
                );
            }
        }
    }
}

#[test]
fn eval_nab_runs_the_detector_causally_and_writes_nab_s_results_layout() {
    let out = crate::temp_dir("eval-nab");
    let raw = vigil::config::RawConfig::from_toml("").expect("config");
    let config = vigil::config::Config::validate(raw).expect("valid");
    let html = out.join("report.html");
    let report = vigil::eval::eval_nab(
        &config,
        &datasets().join("nab"),
        None,
        Some(&out),
        Some(&html),
    )
    .expect("eval");
    let page = std::fs::read_to_string(&html).expect("report");
    assert_eq!(page.matches("<svg").count(), 58, "one plot per file");
    assert!(page.contains("alert open, rows"), "episodes are drawn");
    assert_eq!(report.files, 58);
    assert_eq!(report.records, 365_558);
    assert_eq!(report.profiles.len(), 3);
    // The default set is evaluated as one, under one name.
    assert_eq!(report.detector, "sequence+baseline");
    // Another scorer reading the written results gets the same numbers.
    let nab = datasets().join("nab");
    let windows = read_windows(&nab.join("labels/combined_windows.json")).expect("windows");
    let files: Vec<ScoredFile> = windows
        .iter()
        .map(|(name, w)| {
            let (category, file) = name.split_once('/').expect("category/file");
            let (ts, scores) = read_results(&out.join(format!(
                "sequence+baseline/{category}/sequence+baseline_{file}"
            )))
            .expect("results");
            ScoredFile {
                name: name.clone(),
                ts,
                scores,
                windows: w.clone(),
            }
        })
        .collect();
    for (p, line) in PROFILES.iter().zip(&report.profiles) {
        let again = score_corpus(&files, p).expect("score");
        assert!(
            (again.normalized - line.score).abs() < 1e-6,
            "{}: {} vs {}",
            p.name,
            again.normalized,
            line.score
        );
    }
    assert!(matches!(
        vigil::eval::eval_nab(&config, &datasets().join("nab"), Some("nope"), None, None),
        Err(vigil::eval::EvalError::Usage(_))
    ));
}

#[test]
fn eval_skab_scores_the_test_rows_with_skab_s_metrics() {
    let raw = vigil::config::RawConfig::from_toml("").expect("config");
    let config = vigil::config::Config::validate(raw).expect("valid");
    let html = crate::temp_dir("eval-skab").join("report.html");
    let report = vigil::eval::eval_skab(&config, &datasets().join("skab-dev"), None, Some(&html))
        .expect("eval");
    let page = std::fs::read_to_string(&html).expect("report");
    assert_eq!(page.matches("<svg").count(), 16, "one plot per file");
    assert!(page.contains("valve1/0.csv") && page.contains("labelled window"));
    // Each alert's open → close span is drawn: as many bands as the report counts episodes.
    let episodes: usize = page
        .split("alert episodes</h2>")
        .filter_map(|s| s.rsplit(", ").next()?.trim().parse::<usize>().ok())
        .sum();
    assert!(episodes > 0);
    assert_eq!(page.matches("alert open, rows").count(), episodes);
    assert_eq!(report.files, 16, "valve1/0..15; anomaly-free is not scored");
    let rows: usize = (0..16)
        .map(|i| {
            let text =
                std::fs::read_to_string(datasets().join(format!("skab-dev/data/valve1/{i}.csv")))
                    .expect("file");
            text.lines().filter(|l| !l.trim().is_empty()).count() - 1 - 400
        })
        .sum();
    assert_eq!(report.test_rows, rows);
    let o = report.outliers;
    assert_eq!((o.tp + o.fp + o.fn_ + o.tn) as usize, rows);
    assert!(o.f1 > 0.0 && o.f1 <= 1.0);
    assert_eq!(report.changepoints.len(), 3);
}

fn config(toml: &str) -> vigil::config::Config {
    let raw = vigil::config::RawConfig::from_toml(toml).expect("config");
    vigil::config::Config::validate(raw).expect("valid")
}

/// The issues' goals, kept: the likelihood detector scores above Random Cut Forest (51.7) on NAB's
/// standard profile and above 0.6 F1 on SKAB's outliers; the z-score detector keeps its SKAB F1;
/// the default (sequence) detector scores above the likelihood on NAB and keeps 0.6 F1 on SKAB.
#[test]
fn the_likelihood_detector_beats_random_cut_forest_on_nab_and_0_6_f1_on_skab() {
    let likelihood = config("[[detectors]]\nkind = \"likelihood\"\n");
    let nab = vigil::eval::eval_nab(&likelihood, &datasets().join("nab"), None, None, None)
        .expect("eval");
    let standard = nab.profiles[0].score;
    assert!(standard > 51.7, "NAB standard {standard}");
    let skab = vigil::eval::eval_skab(&likelihood, &datasets().join("skab-dev"), None, None)
        .expect("eval");
    assert!(skab.outliers.f1 > 0.6, "SKAB F1 {}", skab.outliers.f1);
    let zscore = config("[[detectors]]\nkind = \"zscore\"\n");
    let zscore =
        vigil::eval::eval_skab(&zscore, &datasets().join("skab-dev"), None, None).expect("eval");
    assert!(zscore.outliers.f1 > 0.6, "SKAB F1 {}", zscore.outliers.f1);
    let default = config("");
    let nab =
        vigil::eval::eval_nab(&default, &datasets().join("nab"), None, None, None).expect("eval");
    assert!(
        nab.profiles[0].score > standard,
        "default NAB standard {} <= likelihood's {standard}",
        nab.profiles[0].score
    );
    let skab =
        vigil::eval::eval_skab(&default, &datasets().join("skab-dev"), None, None).expect("eval");
    assert!(
        skab.outliers.f1 > 0.6,
        "default SKAB F1 {}",
        skab.outliers.f1
    );
}

/// Issue 12's NAB goals, kept by the default set run causally (no file's range known ahead):
/// standard above Numenta HTM's 70.1, low FP at least 63 and low FN at least 75. The extent stage
/// carries most of it (without it the same detector loses the spikes beyond a series' past), the
/// hour context some.
#[test]
fn the_default_set_beats_numenta_htm_on_nab() {
    let nab = vigil::eval::eval_nab(&config(""), &datasets().join("nab"), None, None, None)
        .expect("eval");
    let score = |name: &str| {
        nab.profiles
            .iter()
            .find(|p| p.profile == name)
            .map(|p| p.score)
            .expect("profile")
    };
    let (standard, low_fp, low_fn) = (
        score("standard"),
        score("reward_low_FP_rate"),
        score("reward_low_FN_rate"),
    );
    assert!(
        standard > 70.1 && low_fp >= 63.0 && low_fn >= 75.0,
        "NAB {standard} / {low_fp} / {low_fn}"
    );
    // The default set with one sequence key changed: NAB standard.
    let with_sequence_key = |key: &str| {
        let set = format!(
            "[[detectors]]\nkind = \"sequence\"\nmax_channels = 1\n{key}\n\
             [[detectors]]\nkind = \"baseline\"\nmin_channels = 2\n"
        );
        vigil::eval::eval_nab(&config(&set), &datasets().join("nab"), None, None, None)
            .expect("eval")
            .profiles[0]
            .score
    };
    for (key, what, by) in [
        ("extent_score = 0", "the extent stage", 5.0),
        ("time_of_day = false", "the hour context", 1.0),
    ] {
        let without = with_sequence_key(key);
        assert!(
            without < standard - by,
            "without {what}: {without} against {standard}"
        );
    }
}

/// Issue 12's SKAB goals, kept by the baseline detector at its defaults (chosen on SKAB's
/// development subset): outliers F1 at least 0.82 with FAR at most 20 %, changepoints NAB
/// standard at least 30 — above SKAB's published leaders (Conv-AE 0.78, MSCRED 32.4 the only
/// changepoint score higher). Its NAB score without retuning is reported, not a goal: NAB's
/// series drift away from any baseline.
#[test]
fn the_baseline_detector_beats_skab_s_leaders_at_its_defaults() {
    let baseline = config("[[detectors]]\nkind = \"baseline\"\n");
    let skab =
        vigil::eval::eval_skab(&baseline, &datasets().join("skab-dev"), None, None).expect("eval");
    let o = &skab.outliers;
    assert!(
        o.f1 >= 0.82 && o.far <= 20.0,
        "SKAB F1 {} FAR {} %",
        o.f1,
        o.far
    );
    let standard = &skab.changepoints[0];
    assert_eq!(standard.profile, "standard");
    assert!(standard.nab >= 30.0, "SKAB changepoints {}", standard.nab);
}

/// Two folders of a corpus may hold files of the same name (full SKAB: `valve1/0.csv`,
/// `valve2/0.csv`); each file is still its own sensor with its own detector state. Two copies of
/// one file in two folders score exactly as that file alone (F1, FAR and MAR are ratios).
#[test]
fn same_named_files_in_two_folders_are_scored_independently() {
    let dir = crate::temp_dir("eval-skab-twins");
    let one = dir.join("one");
    let two = dir.join("two");
    let file = datasets().join("skab-dev/data/valve1/5.csv");
    for (corpus, folders) in [(&one, &["valve1"][..]), (&two, &["valve1", "valve2"][..])] {
        for folder in folders {
            let to = corpus.join("data").join(folder);
            std::fs::create_dir_all(&to).expect("dir");
            std::fs::copy(&file, to.join("3.csv")).expect("copy");
        }
    }
    let alone = vigil::eval::eval_skab(&config(""), &one, None, None).expect("eval");
    let twins = vigil::eval::eval_skab(&config(""), &two, None, None).expect("eval");
    assert_eq!(twins.files, 2);
    assert_eq!(twins.test_rows, 2 * alone.test_rows);
    let (a, t) = (&alone.outliers, &twins.outliers);
    assert!(a.tp > 0, "the file has detections to compare: {a:?}");
    assert_eq!(
        (t.tp, t.fp, t.fn_, t.tn),
        (2 * a.tp, 2 * a.fp, 2 * a.fn_, 2 * a.tn)
    );
}
