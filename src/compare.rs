//! `vigil compare`: how a shadow version's alerts differ from the serving version's over a span of
//! time, from the alert files (or topic dumps) both wrote, and what each costs per record.
//!
//! Alerts are paired per sensor as episodes (an `open` and its `close`, or still open at the end).
//! A shadow episode matches a serving one of the same sensor when their spans overlap, widened by
//! the tolerance on both sides; each episode matches at most once, earliest first.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One alert episode of one detector on one sensor (epoch ms).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Episode {
    open: i64,
    close: i64,
}

/// Episodes by detector, then sensor, and which detectors were shadows.
#[derive(Debug, Default)]
pub struct Alerts {
    episodes: BTreeMap<String, BTreeMap<String, Vec<Episode>>>,
    shadow: BTreeMap<String, bool>,
}

impl Alerts {
    /// Reads alert JSON lines (`vigil`'s alert shape) from `files`, keeping episodes that open in
    /// `[from, to)`. A line that is not an alert is an error naming the file and line.
    pub fn read(files: &[PathBuf], from: i64, to: i64) -> Result<Alerts, String> {
        let mut out = Alerts::default();
        let mut open: BTreeMap<(String, String, String), i64> = BTreeMap::new();
        let ts = |v: &serde_json::Value, k: &str| {
            v[k].as_str()
                .and_then(|t| crate::time::parse_timestamp(t, crate::time::EpochUnit::Auto))
        };
        for f in files {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let bad = || format!("{}:{}: not a Vigil alert", f.display(), n + 1);
                let v: serde_json::Value = serde_json::from_str(line).map_err(|_| bad())?;
                let (Some(det), Some(sensor), Some(channel), Some(event), Some(at)) = (
                    v["detector"].as_str(),
                    v["sensor"].as_str(),
                    v["channel"].as_str(),
                    v["event"].as_str(),
                    ts(&v, "ts"),
                ) else {
                    return Err(bad());
                };
                out.shadow
                    .insert(det.to_string(), v["role"].as_str() == Some("shadow"));
                let key = (det.to_string(), sensor.to_string(), channel.to_string());
                match event {
                    "open" => {
                        open.insert(key, ts(&v, "streak_start").unwrap_or(at));
                    }
                    "close" => {
                        if let Some(o) = open.remove(&key) {
                            out.push(&key, Episode { open: o, close: at }, from, to);
                        }
                    }
                    _ => return Err(bad()),
                }
            }
        }
        for (key, o) in open {
            out.push(
                &key,
                Episode {
                    open: o,
                    close: i64::MAX,
                },
                from,
                to,
            );
        }
        for sensors in out.episodes.values_mut() {
            for e in sensors.values_mut() {
                e.sort_by_key(|e| e.open);
            }
        }
        Ok(out)
    }

    fn push(&mut self, key: &(String, String, String), e: Episode, from: i64, to: i64) {
        if (from..to).contains(&e.open) {
            self.episodes
                .entry(key.0.clone())
                .or_default()
                .entry(key.1.clone())
                .or_default()
                .push(e);
        }
    }

    /// Detectors seen, and whether each is a shadow.
    pub fn detectors(&self) -> &BTreeMap<String, bool> {
        &self.shadow
    }
}

/// One version against the serving one.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    pub serving: String,
    pub candidate: String,
    pub serving_alerts: usize,
    pub candidate_alerts: usize,
    pub both: usize,
    pub only_serving: usize,
    pub only_candidate: usize,
    /// Candidate's open minus serving's open for alerts both raised, seconds (negative: earlier).
    pub detection_delta_s: Option<DeltaStats>,
    pub serving_ns_per_record: Option<f64>,
    pub candidate_ns_per_record: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeltaStats {
    pub mean: f64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// Why a comparison cannot be made (each is the user's to fix: exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{0}")]
    Alerts(String),
    #[error("{0:?} is not a timestamp")]
    Time(String),
    #[error("no serving alerts in these files: pass --serving NAME")]
    NoServing,
    #[error("several serving detectors {0:?}: pass --serving NAME")]
    SeveralServing(Vec<String>),
    #[error("cannot read {}: {source}", path.display())]
    ReadMetrics {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a summary JSON file", .0.display())]
    NotMetrics(PathBuf),
}

/// What `vigil compare` is asked.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Alert files (JSON lines): the serving alerts and the shadow alerts.
    pub files: Vec<PathBuf>,
    /// The serving detector (default: the one detector not tagged shadow).
    pub serving: Option<String>,
    /// Only alerts opened at or after / before these times.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Episodes of two versions on one sensor match when their spans overlap within this.
    pub tolerance_s: f64,
    /// Summary JSON files (`--metrics-out`) with each detector's cost per record.
    pub metrics: Vec<PathBuf>,
}

/// Every other version of `request`'s files against the serving one.
pub fn run(request: &Request) -> Result<Vec<Comparison>, CompareError> {
    let when = |t: &Option<String>, default: i64| match t {
        None => Ok(default),
        Some(t) => crate::time::parse_timestamp(t, crate::time::EpochUnit::Auto)
            .ok_or_else(|| CompareError::Time(t.clone())),
    };
    let (from, to) = (when(&request.from, i64::MIN)?, when(&request.to, i64::MAX)?);
    let alerts = Alerts::read(&request.files, from, to).map_err(CompareError::Alerts)?;
    let serving = match &request.serving {
        Some(s) => s.clone(),
        None => {
            let serving: Vec<String> = alerts
                .detectors()
                .iter()
                .filter(|(_, shadow)| !**shadow)
                .map(|(n, _)| n.clone())
                .collect();
            match serving.as_slice() {
                [one] => one.clone(),
                [] => return Err(CompareError::NoServing),
                _ => return Err(CompareError::SeveralServing(serving)),
            }
        }
    };
    let costs = costs_per_record(&request.metrics)?;
    let tolerance = (request.tolerance_s * 1000.0) as i64;
    Ok(alerts
        .detectors()
        .keys()
        .filter(|d| **d != serving)
        .map(|d| {
            let mut c = compare(&alerts, &serving, d, tolerance);
            c.serving_ns_per_record = costs.get(&serving).copied();
            c.candidate_ns_per_record = costs.get(d).copied();
            c
        })
        .collect())
}

/// Each detector's `ns_per_record` from summary JSON files (`vigil replay --metrics-out`).
fn costs_per_record(files: &[PathBuf]) -> Result<BTreeMap<String, f64>, CompareError> {
    let mut costs = BTreeMap::new();
    for m in files {
        let text = std::fs::read_to_string(m).map_err(|source| CompareError::ReadMetrics {
            path: m.clone(),
            source,
        })?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|_| CompareError::NotMetrics(m.clone()))?;
        for d in v["detectors"].as_array().into_iter().flatten() {
            if let (Some(n), Some(c)) = (d["name"].as_str(), d["ns_per_record"].as_f64()) {
                costs.insert(n.to_string(), c);
            }
        }
    }
    Ok(costs)
}

/// Compares `candidate`'s episodes with `serving`'s; `tolerance_ms` widens spans when matching.
pub fn compare(alerts: &Alerts, serving: &str, candidate: &str, tolerance_ms: i64) -> Comparison {
    let empty = BTreeMap::new();
    let s = alerts.episodes.get(serving).unwrap_or(&empty);
    let c = alerts.episodes.get(candidate).unwrap_or(&empty);
    let count = |m: &BTreeMap<String, Vec<Episode>>| m.values().map(Vec::len).sum::<usize>();
    let mut deltas = Vec::new();
    for (sensor, se) in s {
        let Some(ce) = c.get(sensor) else { continue };
        let mut used = vec![false; ce.len()];
        for a in se {
            let hit = ce.iter().enumerate().find(|(i, b)| {
                !used[*i]
                    && b.open <= a.close.saturating_add(tolerance_ms)
                    && a.open <= b.close.saturating_add(tolerance_ms)
            });
            if let Some((i, b)) = hit {
                used[i] = true;
                deltas.push((b.open - a.open) as f64 / 1000.0);
            }
        }
    }
    let both = deltas.len();
    deltas.sort_by(f64::total_cmp);
    let stats = (!deltas.is_empty()).then(|| DeltaStats {
        mean: deltas.iter().sum::<f64>() / deltas.len() as f64,
        median: deltas[deltas.len() / 2],
        min: deltas[0],
        max: deltas[deltas.len() - 1],
    });
    Comparison {
        serving: serving.to_string(),
        candidate: candidate.to_string(),
        serving_alerts: count(s),
        candidate_alerts: count(c),
        both,
        only_serving: count(s) - both,
        only_candidate: count(c) - both,
        detection_delta_s: stats,
        serving_ns_per_record: None,
        candidate_ns_per_record: None,
    }
}

/// The table printed for people.
pub fn table(rows: &[Comparison]) -> String {
    let mut s = format!(
        "{:<22} {:<22} {:>8} {:>9} {:>6} {:>12} {:>14} {:>22} {:>16}\n",
        "serving",
        "candidate",
        "serving",
        "candidate",
        "both",
        "only serving",
        "only candidate",
        "Δ detection s (median)",
        "ns/record s / c"
    );
    for r in rows {
        let delta = r
            .detection_delta_s
            .as_ref()
            .map(|d| format!("{:+.1} [{:+.1}, {:+.1}]", d.median, d.min, d.max))
            .unwrap_or_else(|| "-".into());
        let cost = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into());
        s.push_str(&format!(
            "{:<22} {:<22} {:>8} {:>9} {:>6} {:>12} {:>14} {:>22} {:>16}\n",
            r.serving,
            r.candidate,
            r.serving_alerts,
            r.candidate_alerts,
            r.both,
            r.only_serving,
            r.only_candidate,
            delta,
            format!(
                "{} / {}",
                cost(r.serving_ns_per_record),
                cost(r.candidate_ns_per_record)
            )
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(det: &str, role: &str, sensor: &str, event: &str, ts: &str) -> String {
        format!(
            r#"{{"sensor":"{sensor}","channel":"p","detector":"{det}","event":"{event}","ts":"{ts}"{}}}"#,
            if role == "shadow" {
                r#","role":"shadow""#
            } else {
                ""
            }
        )
    }

    #[test]
    fn episodes_pair_by_overlap_and_report_the_detection_delta() {
        let dir = std::env::temp_dir().join(format!("vigil-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let serving = dir.join("a.jsonl");
        let shadow = dir.join("b.jsonl");
        let s = [
            line("v1", "serving", "p1", "open", "2026-01-01T00:00:10Z"),
            line("v1", "serving", "p1", "close", "2026-01-01T00:01:00Z"),
            line("v1", "serving", "p2", "open", "2026-01-01T00:05:00Z"),
            line("v1", "serving", "p2", "close", "2026-01-01T00:05:30Z"),
        ];
        let c = [
            line("v2", "shadow", "p1", "open", "2026-01-01T00:00:05Z"),
            line("v2", "shadow", "p1", "close", "2026-01-01T00:00:40Z"),
            line("v2", "shadow", "p3", "open", "2026-01-01T00:09:00Z"),
        ];
        std::fs::write(&serving, s.join("\n")).expect("write");
        std::fs::write(&shadow, c.join("\n")).expect("write");
        let alerts =
            Alerts::read(&[serving.clone(), shadow.clone()], i64::MIN, i64::MAX).expect("reads");
        assert!(alerts.detectors()["v2"]);
        assert!(!alerts.detectors()["v1"]);
        let r = compare(&alerts, "v1", "v2", 0);
        assert_eq!(
            (
                r.serving_alerts,
                r.candidate_alerts,
                r.both,
                r.only_serving,
                r.only_candidate
            ),
            (2, 2, 1, 1, 1)
        );
        assert_eq!(r.detection_delta_s.expect("a pair").median, -5.0);
        // A span that ends before p2's alert.
        let early = Alerts::read(&[serving, shadow], i64::MIN, 1_767_225_700_000).expect("reads");
        assert_eq!(compare(&early, "v1", "v2", 0).serving_alerts, 1);
        std::fs::write(dir.join("bad.jsonl"), "{\"x\":1}\n").expect("write");
        let e = Alerts::read(&[dir.join("bad.jsonl")], i64::MIN, i64::MAX).expect_err("bad");
        assert!(e.contains("bad.jsonl:1"), "{e}");
    }
}
