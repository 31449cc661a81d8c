//! Integration tests: one binary (see STYLE.md), one module per area.

mod cli;
mod fixture;
mod hostile;
mod iforest;
mod kafka;
mod layers;
mod nab;
mod onnx;
mod pca;
mod replay;
mod support;
mod tls;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vigil-test-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

pub use support::root;

/// `../shared/datasets`, next to the project (as the README describes).
pub fn datasets() -> PathBuf {
    root().join("../shared/datasets")
}

/// Reads a JSON-lines file (missing file: no lines).
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

/// Checks an opening alert's explanation: one to three channels that made its score, each named,
/// largest share first, shares in (0, 1] and summing to at most 1. Returns them.
pub fn contributions(open: &serde_json::Value) -> Vec<(String, f64)> {
    let parts = open["contributions"]
        .as_array()
        .unwrap_or_else(|| panic!("no contributions: {open:#}"));
    let parts: Vec<(String, f64)> = parts
        .iter()
        .map(|p| {
            let channel = p["channel"].as_str().expect("channel name").to_string();
            (channel, p["share"].as_f64().expect("share"))
        })
        .collect();
    assert!((1..=3).contains(&parts.len()), "{open:#}");
    assert!(
        parts.windows(2).all(|w| w[0].1 >= w[1].1),
        "not largest first: {open:#}"
    );
    assert!(
        parts.iter().all(|p| p.1 > 0.0 && p.1 <= 1.0)
            && parts.iter().map(|p| p.1).sum::<f64>() <= 1.0 + 1e-6,
        "{open:#}"
    );
    parts
}
