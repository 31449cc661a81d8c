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
