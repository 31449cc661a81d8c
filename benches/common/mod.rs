//! Helpers shared by the bench commands (`ratios`, `iforest`, `pipeline`, `kafka`).
#![allow(dead_code)] // each bench uses some of them

use std::path::Path;
use std::time::{Duration, Instant};

/// Best wall time of `f` over `runs` runs (after one warm-up run).
pub fn best(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// This machine's CPU as `/proc/cpuinfo` names it, and the kernels' best instruction set: the
/// line every printed figure is read against.
pub fn cpu() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{model}, {}", vigil_kernels::isa::Isa::best())
}

/// The fixture's rows as (sensor, JSON values in the fixture's column order), for the records the
/// load generator sends.
pub fn fixture_rows(fixture: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(fixture)
        .expect("fixture")
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let v = |s: &str| {
                if s.is_empty() {
                    "null".to_string()
                } else {
                    s.to_string()
                }
            };
            (
                f[1].to_string(),
                format!(
                    "\"pressure\":{},\"flow\":{},\"temperature\":{},\"vibration\":{}",
                    v(f[2]),
                    v(f[3]),
                    v(f[4]),
                    v(f[5])
                ),
            )
        })
        .collect()
}

/// One record as the load generator sends it.
pub fn payload(sensor: &str, ts: i64, values: &str) -> String {
    format!("{{\"sensor\":\"{sensor}\",\"ts\":{ts},\"values\":{{{values}}}}}")
}
