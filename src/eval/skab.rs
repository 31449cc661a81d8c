//! SKAB scoring (Skoltech Anomaly Benchmark), as `../shared/datasets/skab-dev/SCORING.md` describes:
//! the outlier track (F1, FAR, MAR over the test rows) and SKAB's NAB variant for changepoints.

/// The test rows of one file, with a detector's binary outlier predictions.
#[derive(Debug, Clone, Default)]
pub struct SkabFile {
    /// Row timestamps, epoch ms.
    pub ts: Vec<i64>,
    pub anomaly: Vec<bool>,
    pub changepoint: Vec<bool>,
    pub pred: Vec<bool>,
}

/// Rows a file's detector may learn from before scoring starts (`train_size=400`).
pub const TRAIN_ROWS: usize = 400;

/// The outlier track's counts and rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Outliers {
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub tn: u64,
    /// `TP / (TP + (FP + FN) / 2)`
    pub f1: f64,
    /// `100 FP / (FP + TN)`
    pub far: f64,
    /// `100 FN / (FN + TP)`
    pub mar: f64,
}

/// Pointwise counts summed over every test row of every file.
pub fn outliers(files: &[SkabFile]) -> Outliers {
    let mut o = Outliers::default();
    for f in files {
        for (&a, &p) in f.anomaly.iter().zip(&f.pred) {
            match (a, p) {
                (true, true) => o.tp += 1,
                (false, true) => o.fp += 1,
                (true, false) => o.fn_ += 1,
                (false, false) => o.tn += 1,
            }
        }
    }
    let (tp, fp, fn_, tn) = (o.tp as f64, o.fp as f64, o.fn_ as f64, o.tn as f64);
    o.f1 = if tp + fp + fn_ > 0.0 {
        tp / (tp + (fp + fn_) / 2.0)
    } else {
        0.0
    };
    o.far = if fp + tn > 0.0 {
        100.0 * fp / (fp + tn)
    } else {
        0.0
    };
    o.mar = if fn_ + tp > 0.0 {
        100.0 * fn_ / (fn_ + tp)
    } else {
        0.0
    };
    o
}

/// Changepoint alarms from outlier predictions: `|diff(pred)|` with `cp[0] = pred[0]`.
pub fn changepoints(pred: &[bool]) -> Vec<bool> {
    pred.iter()
        .enumerate()
        .map(|(i, &p)| if i == 0 { p } else { p != pred[i - 1] })
        .collect()
}

/// A changepoint profile: (A_tp, A_fp, A_fn), the last two negative.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpProfile {
    pub name: &'static str,
    pub tp: f64,
    pub fp: f64,
    pub fn_: f64,
}

/// SKAB's three changepoint profiles.
pub const CP_PROFILES: [CpProfile; 3] = [
    CpProfile {
        name: "standard",
        tp: 1.0,
        fp: -0.11,
        fn_: -1.0,
    },
    CpProfile {
        name: "low_FP",
        tp: 1.0,
        fp: -0.22,
        fn_: -1.0,
    },
    CpProfile {
        name: "low_FN",
        tp: 1.0,
        fp: -0.11,
        fn_: -2.0,
    },
];

/// The changepoint track under one profile.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ChangepointScore {
    pub profile: &'static str,
    /// `round(100 (S − S_null) / (S_perfect − S_null), 2)`
    pub nab: f64,
    pub missed: u64,
    pub false_alarms: u64,
}

/// Window width after each true changepoint, ms.
const WINDOW_MS: i64 = 60_000;

/// `y[event]` of SKAB's tanh-shaped TP curve: A_tp at the window's left edge, A_fp at its right.
fn tp_value(p: &CpProfile, event: usize) -> f64 {
    let half_pi = std::f64::consts::FRAC_PI_2;
    let x = -half_pi + (2.0 * half_pi) * event as f64 / 999.0;
    (p.tp - p.fp) / 2.0 * (-x.tanh() / half_pi.tanh()) + (p.tp - p.fp) / 2.0 + p.fp
}

/// SKAB's NAB variant over `files` (their predictions turned into changepoint alarms).
pub fn changepoint_nab(files: &[SkabFile], p: &CpProfile) -> ChangepointScore {
    let (mut s, mut s_null, mut s_perfect) = (0.0, 0.0, 0.0);
    let (mut missed, mut false_alarms) = (0, 0);
    for f in files {
        let alarms: Vec<i64> = changepoints(&f.pred)
            .iter()
            .zip(&f.ts)
            .filter(|(c, _)| **c)
            .map(|(_, &t)| t)
            .collect();
        let mut windows: Vec<(i64, i64)> = f
            .changepoint
            .iter()
            .zip(&f.ts)
            .filter(|(c, _)| **c)
            .map(|(_, &t)| (t, t + WINDOW_MS))
            .collect();
        for i in 1..windows.len() {
            if windows[i - 1].1 >= windows[i].0 {
                windows[i].0 = windows[i - 1].1; // "cut right window"
            }
        }
        for &(left, right) in &windows {
            match alarms.iter().find(|&&t| t >= left && t <= right) {
                Some(&t) => {
                    let span = (right - left).max(1) as f64;
                    let event = (((t - left) as f64 / span * 1000.0) as usize).min(999);
                    s += tp_value(p, event);
                }
                None => {
                    missed += 1;
                    s += p.fn_;
                }
            }
        }
        let fps = alarms
            .iter()
            .filter(|&&t| !windows.iter().any(|&(l, r)| t >= l && t <= r))
            .count() as u64;
        false_alarms += fps;
        s += p.fp * fps as f64;
        s_null += windows.len() as f64 * p.fn_;
        s_perfect += windows.len() as f64 * p.tp;
    }
    let nab = if s_perfect > s_null {
        (100.0 * (s - s_null) / (s_perfect - s_null) * 100.0).round() / 100.0
    } else {
        0.0
    };
    ChangepointScore {
        profile: p.name,
        nab,
        missed,
        false_alarms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 200 rows at 1 s; an anomaly over rows 50..110 with changepoints at its start and end.
    fn file(pred: impl Fn(usize) -> bool) -> SkabFile {
        let n = 200;
        SkabFile {
            ts: (0..n as i64).map(|i| i * 1000).collect(),
            anomaly: (0..n).map(|i| (50..110).contains(&i)).collect(),
            changepoint: (0..n).map(|i| i == 50 || i == 110).collect(),
            pred: (0..n).map(pred).collect(),
        }
    }

    #[test]
    fn perfect_and_null_detectors() {
        let perfect = [file(|i| (50..110).contains(&i))];
        let o = outliers(&perfect);
        assert_eq!((o.f1, o.far, o.mar), (1.0, 0.0, 0.0));
        for p in &CP_PROFILES {
            let c = changepoint_nab(&perfect, p);
            assert_eq!(
                (c.nab, c.missed, c.false_alarms),
                (100.0, 0, 0),
                "{}",
                p.name
            );
        }
        let null = [file(|_| false)];
        let o = outliers(&null);
        assert_eq!((o.f1, o.far, o.mar), (0.0, 0.0, 100.0));
        assert_eq!(changepoint_nab(&null, &CP_PROFILES[0]).nab, 0.0);
    }

    #[test]
    fn pointwise_rates() {
        // Predict rows 60..120: 50 TP, 10 FP, 10 FN.
        let o = outliers(&[file(|i| (60..120).contains(&i))]);
        assert_eq!((o.tp, o.fp, o.fn_, o.tn), (50, 10, 10, 130));
        assert!((o.f1 - 50.0 / 60.0).abs() < 1e-12);
        assert!((o.far - 100.0 * 10.0 / 140.0).abs() < 1e-12);
        assert!((o.mar - 100.0 * 10.0 / 60.0).abs() < 1e-12);
    }

    #[test]
    fn changepoint_alarms_windows_and_the_tp_curve() {
        assert_eq!(
            changepoints(&[true, true, false, true]),
            vec![true, false, true, true]
        );
        let p = CP_PROFILES[0];
        assert!((tp_value(&p, 0) - 1.0).abs() < 1e-12);
        assert!((tp_value(&p, 999) + 0.11).abs() < 1e-12);
        // Alarms 30 s late on both edges (rows 80 and 140): each worth y[500]; no FP.
        let late = changepoint_nab(&[file(|i| (80..140).contains(&i))], &p);
        let y = tp_value(&p, 500);
        assert!(
            (late.nab - (100.0 * (2.0 * y + 2.0) / 4.0 * 100.0).round() / 100.0).abs() < 1e-9,
            "{late:?}"
        );
        // An alarm 2 minutes after the last window is a false alarm; a missed window costs A_fn.
        let fa = changepoint_nab(&[file(|i| (50..190).contains(&i))], &p);
        assert_eq!((fa.missed, fa.false_alarms), (1, 1));
    }
}
