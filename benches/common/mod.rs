//! Helpers shared by the bench commands that print figures (`ratios`, `iforest`).

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
