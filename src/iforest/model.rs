//! The isolation-forest model file: versioned, self-describing JSON (`.vigil`).
//!
//! It holds the features in order and how each is computed, the trees, ψ, the alert threshold (the
//! `1 − contamination` quantile of the training scores), the seed and a summary of the training
//! data, so that a model can be checked and explained without the data it came from.

use super::features::Feature;
use serde::{Deserialize, Serialize};
use std::path::Path;
use vigil_kernels::iforest::{Forest, Node};

/// The `format` field of every model file.
pub const FORMAT: &str = "vigil-model";
/// The model-file version this build reads and writes.
pub const VERSION: u32 = 1;

/// A loaded, checked isolation-forest model.
#[derive(Debug, Clone)]
pub struct IForestModel {
    pub features: Vec<Feature>,
    pub forest: Forest,
    /// Scores at or above this are anomalous.
    pub threshold: f32,
    pub training: Training,
}

/// Where a model came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Training {
    /// How it was made, e.g. `vigil train iforest` or `scikit-learn IsolationForest via ONNX`.
    pub method: String,
    pub sources: Vec<String>,
    pub rows: u64,
    pub seed: Option<u64>,
    pub contamination: Option<f64>,
    /// Per feature, in order (empty when the data are unknown, e.g. an imported model).
    pub summary: Vec<FeatureSummary>,
}

/// The training data of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSummary {
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
}

impl FeatureSummary {
    /// The summary of column `j` of `rows` (row-major, `f` columns).
    pub fn of(rows: &[f32], f: usize, j: usize) -> FeatureSummary {
        let n = (rows.len() / f).max(1) as f64;
        let col = || rows.iter().skip(j).step_by(f).map(|&v| v as f64);
        let mean = col().sum::<f64>() / n;
        let var = col().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        FeatureSummary {
            mean,
            std: var.sqrt(),
            min: col().fold(f64::INFINITY, f64::min),
            max: col().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// One tree as columns: `feature` is -1 at a leaf; `left`/`right` index the same tree's nodes;
/// `path_length` (depth + c(points at the leaf)) is set at leaves.
#[derive(Debug, Serialize, Deserialize)]
struct TreeFile {
    feature: Vec<i64>,
    threshold: Vec<f32>,
    left: Vec<u32>,
    right: Vec<u32>,
    path_length: Vec<f32>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    format: String,
    version: u32,
    kind: String,
    features: Vec<String>,
    sample_size: usize,
    threshold: f32,
    training: Training,
    trees: Vec<TreeFile>,
}

/// Largest model file loaded by default: 128 MiB, about 13,000 trees of ψ = 256 (a 100-tree
/// forest is under 1 MB). `VIGIL_MAX_MODEL_BYTES` sets another limit.
pub const MAX_MODEL_BYTES: u64 = 128 << 20;

fn max_model_bytes() -> Result<u64, String> {
    match std::env::var("VIGIL_MAX_MODEL_BYTES") {
        Err(_) => Ok(MAX_MODEL_BYTES),
        Ok(v) => v
            .parse()
            .map_err(|_| format!("VIGIL_MAX_MODEL_BYTES must be a number of bytes, got {v:?}")),
    }
}

impl IForestModel {
    /// Reads and checks a model file. Errors are one line, naming the file.
    pub fn load(path: &Path) -> Result<IForestModel, String> {
        let what = |e: String| format!("model {}: {e}", path.display());
        let limit = max_model_bytes().map_err(&what)?;
        let len = std::fs::metadata(path)
            .map_err(|e| what(e.to_string()))?
            .len();
        if len > limit {
            return Err(what(format!(
                "{len} bytes is more than the limit of {limit} (VIGIL_MAX_MODEL_BYTES raises it)"
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| what(e.to_string()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| what("not a Vigil model file (not UTF-8 text)".into()))?;
        IForestModel::from_json(&text).map_err(what)
    }

    /// Parses and checks a model file's text.
    pub fn from_json(text: &str) -> Result<IForestModel, String> {
        let file: ModelFile =
            serde_json::from_str(text).map_err(|e| format!("not a Vigil model file ({e})"))?;
        if file.format != FORMAT {
            return Err(format!("format is {:?}, not {FORMAT:?}", file.format));
        }
        if file.version != VERSION {
            return Err(format!(
                "model file version {} (this Vigil reads version {VERSION})",
                file.version
            ));
        }
        if file.kind != "iforest" {
            return Err(format!("kind is {:?}, not \"iforest\"", file.kind));
        }
        let features = file
            .features
            .iter()
            .map(|s| Feature::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, f) in features.iter().enumerate() {
            if features[..i].contains(f) {
                return Err(format!("feature {f} appears twice"));
            }
        }
        if !(file.threshold > 0.0 && file.threshold <= 1.0) {
            return Err(format!("threshold {} is not in (0, 1]", file.threshold));
        }
        if !file.training.summary.is_empty() && file.training.summary.len() != features.len() {
            return Err(format!(
                "{} features but a training summary of {}",
                features.len(),
                file.training.summary.len()
            ));
        }
        let trees = file
            .trees
            .iter()
            .enumerate()
            .map(|(t, tree)| tree_nodes(t, tree))
            .collect::<Result<Vec<_>, _>>()?;
        let forest = Forest::new(features.len(), file.sample_size, &trees).map_err(|e| e.0)?;
        Ok(IForestModel {
            features,
            forest,
            threshold: file.threshold,
            training: file.training,
        })
    }

    /// The model file's text.
    pub fn to_json(&self) -> String {
        let trees = self
            .forest
            .trees()
            .into_iter()
            .map(|nodes| {
                let mut t = TreeFile {
                    feature: Vec::with_capacity(nodes.len()),
                    threshold: Vec::with_capacity(nodes.len()),
                    left: Vec::with_capacity(nodes.len()),
                    right: Vec::with_capacity(nodes.len()),
                    path_length: Vec::with_capacity(nodes.len()),
                };
                for n in nodes {
                    let (f, thr, l, r, h) = match n {
                        Node::Split {
                            feature,
                            threshold,
                            left,
                            right,
                        } => (feature as i64, threshold, left, right, 0.0),
                        Node::Leaf { path_length } => (-1, 0.0, 0, 0, path_length),
                    };
                    t.feature.push(f);
                    t.threshold.push(thr);
                    t.left.push(l);
                    t.right.push(r);
                    t.path_length.push(h);
                }
                t
            })
            .collect();
        let file = ModelFile {
            format: FORMAT.to_string(),
            version: VERSION,
            kind: "iforest".to_string(),
            features: self.features.iter().map(|f| f.to_string()).collect(),
            sample_size: self.forest.sample_size(),
            threshold: self.threshold,
            training: self.training.clone(),
            trees,
        };
        serde_json::to_string(&file).expect("a model serializes")
    }

    /// Writes the model file.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        std::fs::write(path, self.to_json())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

fn tree_nodes(t: usize, tree: &TreeFile) -> Result<Vec<Node>, String> {
    let n = tree.feature.len();
    if [
        tree.threshold.len(),
        tree.left.len(),
        tree.right.len(),
        tree.path_length.len(),
    ]
    .iter()
    .any(|&l| l != n)
    {
        return Err(format!("tree {t}: its columns differ in length"));
    }
    (0..n)
        .map(|i| {
            let f = tree.feature[i];
            if f < 0 {
                Ok(Node::Leaf {
                    path_length: tree.path_length[i],
                })
            } else {
                Ok(Node::Split {
                    feature: u32::try_from(f)
                        .map_err(|_| format!("tree {t}: node {i} has feature {f}"))?,
                    threshold: tree.threshold[i],
                    left: tree.left[i],
                    right: tree.right[i],
                })
            }
        })
        .collect()
}

/// The `1 − contamination` quantile of `scores` (the alert threshold), e.g. 0.01 → the 99th
/// percentile.
pub fn threshold_for(scores: &[f32], contamination: f64) -> Result<f32, String> {
    if !(contamination > 0.0 && contamination < 0.5) {
        return Err(format!(
            "contamination must be in (0, 0.5), got {contamination}"
        ));
    }
    if scores.is_empty() {
        return Err("no training scores".into());
    }
    let mut s = scores.to_vec();
    s.sort_by(f32::total_cmp);
    let k = (((1.0 - contamination) * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    Ok(s[k])
}
