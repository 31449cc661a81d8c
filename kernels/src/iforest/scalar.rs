//! Portable path: one row at a time, stopping at the leaf.

use super::Forest;

/// Adds tree `t`'s path length to `out[i]` for every row `i` of `x`.
pub(crate) fn add_tree(forest: &Forest, t: usize, x: &[f32], out: &mut [f32]) {
    let f = forest.n_features;
    let root = forest.root[t] as usize;
    for (row, o) in x.chunks_exact(f).zip(out.iter_mut()) {
        let mut n = root;
        loop {
            let thr = forest.threshold[n];
            if thr.is_nan() {
                break;
            }
            let v = row[forest.feature[n] as usize];
            let c = forest.child[n] as usize;
            n = if v <= thr { c } else { c + 1 };
        }
        *o += forest.value[n];
    }
}
