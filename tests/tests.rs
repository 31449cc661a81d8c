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
