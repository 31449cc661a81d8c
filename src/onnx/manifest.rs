//! A model's manifest (`manifest.toml` beside the model file): what it is, what it expects, what
//! its output means and how that becomes an anomaly score, its threshold, and where it came from.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a model's output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Meaning {
    /// One number per row: the anomaly score itself.
    Score,
    /// One number per row in [0, 1]: the probability of an anomaly (the score).
    Probability,
    /// The input reconstructed (same shape): the score is the mean over the row's values of
    /// `((x − y) / scale)²`.
    Reconstruction,
    /// One number per row: an isolation forest's sum of path lengths over `trees` trees grown on
    /// `sample_size` rows; the score is `2^(−sum / (trees · c(sample_size)))`.
    PathLengthSum,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The ONNX input's name.
    pub name: String,
    /// Channels in the order the model reads them.
    pub channels: Vec<String>,
    /// Records per sample (1: one record; more: the last `window` records, oldest first, as one
    /// row of `window × channels` values).
    #[serde(default = "one")]
    pub window: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// The ONNX output's name.
    pub name: String,
    pub meaning: Meaning,
    /// Reconstruction: per input value, the error's scale (default 1).
    #[serde(default)]
    pub scale: Vec<f32>,
    /// Scores at or above this are anomalous.
    pub threshold: f32,
    /// PathLengthSum: trees and their subsample size.
    pub trees: Option<usize>,
    pub sample_size: Option<usize>,
}

/// A parsed, checked manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub kind: String,
    /// The model file, relative to the manifest.
    pub file: PathBuf,
    #[serde(default)]
    pub description: String,
    pub input: InputSpec,
    pub output: OutputSpec,
    /// How it was trained, on what: free-form.
    #[serde(default)]
    pub provenance: BTreeMap<String, String>,
}

/// Longest window a manifest may ask for.
pub const MAX_WINDOW: u32 = 4096;

impl Manifest {
    /// Reads and checks `path`; the model file's path comes back resolved against its directory.
    pub fn load(path: &Path) -> Result<Manifest, String> {
        let what = |e: String| format!("manifest {}: {e}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| what(e.to_string()))?;
        let mut m: Manifest =
            toml::from_str(&text).map_err(|e| what(e.message().replace('\n', " ")))?;
        m.check().map_err(what)?;
        m.file = path.parent().unwrap_or(Path::new(".")).join(&m.file);
        Ok(m)
    }

    fn check(&self) -> Result<(), String> {
        if self.kind != "onnx" {
            return Err(format!(
                "kind {:?}: only \"onnx\" manifests name ONNX files",
                self.kind
            ));
        }
        if self.name.is_empty() || self.version.is_empty() {
            return Err("name and version must not be empty".into());
        }
        let c = &self.input.channels;
        if c.is_empty() || (1..c.len()).any(|i| c[..i].contains(&c[i])) {
            return Err("input.channels must be a non-empty list without repeats".into());
        }
        if !(1..=MAX_WINDOW).contains(&self.input.window) {
            return Err(format!("input.window must be 1 to {MAX_WINDOW}"));
        }
        let width = self.width();
        let o = &self.output;
        if !o.threshold.is_finite() {
            return Err("output.threshold must be a number".into());
        }
        match o.meaning {
            Meaning::Reconstruction => {
                if !o.scale.is_empty() && o.scale.len() != width {
                    return Err(format!(
                        "output.scale has {} values; the input has {width}",
                        o.scale.len()
                    ));
                }
                if o.scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
                    return Err("output.scale values must be positive".into());
                }
            }
            Meaning::PathLengthSum => {
                if !(o.trees.is_some_and(|t| t > 0) && o.sample_size.is_some_and(|s| s >= 2)) {
                    return Err("path_length_sum needs output.trees and output.sample_size".into());
                }
            }
            Meaning::Score | Meaning::Probability => {}
        }
        Ok(())
    }

    /// Values per input row: `window × channels`.
    pub fn width(&self) -> usize {
        self.input.window as usize * self.input.channels.len()
    }

    /// `name@version`, as alerts and logs name it.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}
