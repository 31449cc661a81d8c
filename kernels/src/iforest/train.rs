//! Growing an isolation forest: each tree on a subsample of ψ rows drawn without replacement,
//! splitting on a random feature at a random value between that feature's minimum and maximum in the
//! node, down to a height limit of `ceil(log2 ψ)` (Liu, Ting and Zhou, 2008).

use super::{average_path_length, Forest, ForestError, Node};
use crate::rng::Rng;

/// How to grow a forest.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainParams {
    /// Trees (default 100).
    pub trees: usize,
    /// ψ: rows per tree (default 256; fewer if there are fewer rows).
    pub sample_size: usize,
    /// The seed: the same rows, parameters and seed give the same forest.
    pub seed: u64,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            trees: 100,
            sample_size: 256,
            seed: 0,
        }
    }
}

/// Grows a forest on `x`: rows of `n_features` values, row-major, all finite.
pub fn train(x: &[f32], n_features: usize, p: &TrainParams) -> Result<Forest, ForestError> {
    if n_features == 0 || !x.len().is_multiple_of(n_features) {
        return Err(ForestError(format!(
            "{} values are not rows of {n_features} features",
            x.len()
        )));
    }
    let rows = x.len() / n_features;
    if rows < 2 {
        return Err(ForestError(format!(
            "training needs at least 2 rows, got {rows}"
        )));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(ForestError(format!(
            "row {} has a value that is not finite",
            i / n_features
        )));
    }
    if p.trees == 0 || p.trees > 100_000 {
        return Err(ForestError(format!(
            "trees must be between 1 and 100000, got {}",
            p.trees
        )));
    }
    if p.sample_size < 2 {
        return Err(ForestError(format!(
            "sample size must be at least 2, got {}",
            p.sample_size
        )));
    }
    let psi = p.sample_size.min(rows);
    let limit = (psi as f64).log2().ceil() as u32;
    let mut rng = Rng(p.seed);
    let mut index: Vec<u32> = (0..rows as u32).collect();
    let mut trees = Vec::with_capacity(p.trees);
    for _ in 0..p.trees {
        // Partial Fisher-Yates: the first ψ entries become the subsample.
        for i in 0..psi {
            let j = i + rng.below(rows - i);
            index.swap(i, j);
        }
        let mut sample = index[..psi].to_vec();
        trees.push(grow(x, n_features, &mut sample, limit, &mut rng));
    }
    Forest::new(n_features, psi, &trees)
}

/// One tree over the rows in `sample` (reordered in place).
fn grow(x: &[f32], f: usize, sample: &mut [u32], limit: u32, rng: &mut Rng) -> Vec<Node> {
    let mut nodes = vec![Node::Leaf { path_length: 0.0 }];
    // (node, first row, end row, depth)
    let mut work = vec![(0usize, 0usize, sample.len(), 0u32)];
    let mut features: Vec<u32> = (0..f as u32).collect();
    while let Some((at, lo, hi, depth)) = work.pop() {
        let rows = &mut sample[lo..hi];
        let leaf = Node::Leaf {
            path_length: (depth as f64 + average_path_length(rows.len() as f64)) as f32,
        };
        if depth >= limit || rows.len() <= 1 {
            nodes[at] = leaf;
            continue;
        }
        // A random feature that is not constant in this node (tried in random order).
        let mut split = None;
        for k in 0..f {
            let j = k + rng.below(f - k);
            features.swap(k, j);
            let q = features[k] as usize;
            let (mn, mx) = rows
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &r| {
                    let v = x[r as usize * f + q];
                    (a.min(v), b.max(v))
                });
            if mn < mx {
                let mut t = (mn as f64 + rng.unit() * (mx as f64 - mn as f64)) as f32;
                if t >= mx {
                    t = mn;
                }
                split = Some((q, t));
                break;
            }
        }
        let Some((q, t)) = split else {
            nodes[at] = leaf;
            continue;
        };
        // Partition: rows with x[q] <= t first.
        let mut mid = 0;
        for i in 0..rows.len() {
            if x[rows[i] as usize * f + q] <= t {
                rows.swap(i, mid);
                mid += 1;
            }
        }
        let left = nodes.len();
        nodes.push(Node::Leaf { path_length: 0.0 });
        nodes.push(Node::Leaf { path_length: 0.0 });
        nodes[at] = Node::Split {
            feature: q as u32,
            threshold: t,
            left: left as u32,
            right: left as u32 + 1,
        };
        work.push((left + 1, lo + mid, hi, depth + 1));
        work.push((left, lo, lo + mid, depth + 1));
    }
    nodes
}
