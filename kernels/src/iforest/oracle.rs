//! A deliberately plain model of forest scoring: recursive descent over the unflattened trees, in
//! f64. Used only by tests.

use super::Node;

/// The path length of `row` in `tree`.
fn path(tree: &[Node], at: usize, row: &[f32]) -> f64 {
    match tree[at] {
        Node::Leaf { path_length } => path_length as f64,
        Node::Split {
            feature,
            threshold,
            left,
            right,
        } => {
            // NaN compares false: it goes right.
            if row[feature as usize] <= threshold {
                path(tree, left as usize, row)
            } else {
                path(tree, right as usize, row)
            }
        }
    }
}

/// The sum of path lengths over all trees.
pub(crate) fn path_sum(trees: &[Vec<Node>], row: &[f32]) -> f64 {
    trees.iter().map(|t| path(t, 0, row)).sum()
}
