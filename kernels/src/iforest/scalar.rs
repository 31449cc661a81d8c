//! Portable path. Trees in heap order: 8 rows walk a tree together, branch-free, for exactly its
//! depth (shallow leaves are repeated down to the last level), so the 8 rows' independent chains
//! overlap. Other trees: one row at a time, stopping at the leaf.

use super::{unpack_heap_node, Forest, Heap};

/// Adds tree `t`'s path length to `out[i]` for every row `i` of `x`.
pub(crate) fn add_tree(forest: &Forest, t: usize, x: &[f32], out: &mut [f32]) {
    if let Some(h) = forest.heap[t] {
        return add_heap_tree(forest, t, h, x, out);
    }
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

/// [`add_tree`] for a tree in heap order: children of `i` at `2i + 1` (`x <= threshold`, false for
/// NaN) and `2i + 2`.
fn add_heap_tree(forest: &Forest, t: usize, h: Heap, x: &[f32], out: &mut [f32]) {
    const ROWS: usize = 8;
    let f = forest.n_features;
    let depth = forest.depth[t] as usize;
    let inner = (1usize << depth) - 1;
    let nodes = &forest.heap_node[h.node..h.node + inner];
    let values = &forest.heap_value[h.value..h.value + inner + 1];
    let step = |n: usize, row: &[f32]| {
        let (threshold, feature) = unpack_heap_node(nodes[n]);
        2 * n
            + if row[feature as usize] <= threshold {
                1
            } else {
                2
            }
    };
    let mut xs = x.chunks_exact(f * ROWS);
    let mut outs = out.chunks_exact_mut(ROWS);
    for (xb, ob) in (&mut xs).zip(&mut outs) {
        let mut n = [0usize; ROWS];
        for _ in 0..depth {
            for (k, n) in n.iter_mut().enumerate() {
                *n = step(*n, &xb[k * f..(k + 1) * f]);
            }
        }
        for (o, n) in ob.iter_mut().zip(n) {
            *o += values[n - inner];
        }
    }
    for (row, o) in xs.remainder().chunks_exact(f).zip(outs.into_remainder()) {
        let mut n = 0;
        for _ in 0..depth {
            n = step(n, row);
        }
        *o += values[n - inner];
    }
}
