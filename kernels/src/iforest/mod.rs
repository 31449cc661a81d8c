//! Isolation forests (Liu, Ting and Zhou, 2008): training, and scoring with a vectorized kernel.
//!
//! A forest is flattened into columns over all its nodes (structure of arrays):
//!
//! ```text
//! feature[n]    feature a split tests (0 at a leaf)
//! threshold[n]  x[feature] <= threshold goes to child[n], otherwise to child[n] + 1
//!               (NaN at a leaf: the comparison fails, and a leaf's child[n] + 1 is itself)
//! child[n]      index of the left child; the right child follows it
//! value[n]      at a leaf: the path length h = depth + c(size), c the average path length of an
//!               unsuccessful search in a binary tree of `size` points; 0 elsewhere
//! ```
//!
//! Because a leaf points at itself, every row can take exactly `depth[t]` steps through tree `t`
//! (its deepest leaf) with no test for "have I arrived": the vector paths walk 8 or 16 rows through
//! a tree at once with gathers, and rows that reach a leaf early simply stay there. Trees of depth
//! ≤ [`HEAP_MAX_DEPTH`] are also kept in heap order, where the same holds without child indices;
//! the scalar path walks those 8 rows at a time, branch-free, and stops at the leaf in the others.
//! Every path adds the trees' path lengths per row in tree order in f32, so they are bit-identical.
//! The score is `2^(-Σh / (trees · c(ψ)))` in (0, 1]: about 0.5 and below for normal points, towards
//! 1 for points isolated in few splits (scikit-learn's `score_samples` is its negation).
//!
//! **NaN**: a NaN feature fails every `<=` test, so it always goes right (as ONNX's
//! TreeEnsemble does by default). A row of NaNs gets a finite score; callers that want "no
//! observation" for incomplete rows check for NaN themselves.

mod scalar;
pub mod train;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(test)]
mod oracle;
#[cfg(test)]
mod tests;

use crate::isa::Isa;
use std::fmt;

/// `c(n)`: the average path length of an unsuccessful search in a binary search tree of `n` points,
/// the normaliser of isolation depths (`2H(n−1) − 2(n−1)/n`, `H(i) ≈ ln i + γ`).
pub fn average_path_length(n: f64) -> f64 {
    if n <= 1.0 {
        0.0
    } else if n <= 2.0 {
        1.0
    } else {
        2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
    }
}

/// One node of a tree as built or imported, before flattening. Children are indices into the same
/// tree's node list and must come after their parent.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Split {
        feature: u32,
        threshold: f32,
        left: u32,
        right: u32,
    },
    /// `path_length`: depth + c(points that reached the leaf).
    Leaf { path_length: f32 },
}

/// Why a forest was refused.
#[derive(Clone, Debug, PartialEq)]
pub struct ForestError(pub String);

impl fmt::Display for ForestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ForestError {}

/// A flattened forest, ready to score.
#[derive(Clone, Debug)]
pub struct Forest {
    n_features: usize,
    feature: Vec<u32>,
    threshold: Vec<f32>,
    child: Vec<u32>,
    value: Vec<f32>,
    /// Root node of each tree.
    root: Vec<u32>,
    /// Steps from the root to the deepest leaf of each tree.
    depth: Vec<u32>,
    /// Each tree of depth <= [`HEAP_MAX_DEPTH`] again as a complete binary tree in heap order
    /// (children of `i` at `2i + 1`, `2i + 2`; leaves above the last level repeated down to it), so
    /// that the vector path needs no child indices and can serve the first levels from registers.
    heap: Vec<Option<Heap>>,
    /// Heap node `threshold` (low 32 bits, f32) and `feature` (high 32 bits), all heap trees.
    heap_node: Vec<u64>,
    /// Path length of each heap tree's last-level slots.
    heap_value: Vec<f32>,
    /// `trees · c(ψ)`.
    norm: f64,
    sample_size: usize,
    /// [`Fetch::fastest_for`]'s answer for the AVX2 and the AVX-512 path, once timed: every
    /// scorer made for this forest (one per shard) then reads the same way without timing again.
    fastest: [std::sync::OnceLock<Fetch>; 2],
}

/// Equal when every column is bit-for-bit equal (leaves hold NaN thresholds).
impl PartialEq for Forest {
    fn eq(&self, o: &Forest) -> bool {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        self.n_features == o.n_features
            && self.feature == o.feature
            && bits(&self.threshold) == bits(&o.threshold)
            && self.child == o.child
            && bits(&self.value) == bits(&o.value)
            && self.root == o.root
            && self.depth == o.depth
            && self.norm.to_bits() == o.norm.to_bits()
            && self.sample_size == o.sample_size
    }
}

/// Deepest tree kept in heap order as well (2^11 − 1 heap nodes).
pub const HEAP_MAX_DEPTH: u32 = 10;

/// Where a heap tree lives in [`Forest::heap_node`] and [`Forest::heap_value`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heap {
    pub node: usize,
    pub value: usize,
}

/// A heap node as [`Forest::heap_node`] stores it: threshold in the low 32 bits (the vector paths
/// gather both halves at once), feature in the high 32.
pub(crate) fn pack_heap_node(threshold: f32, feature: u32) -> u64 {
    threshold.to_bits() as u64 | (feature as u64) << 32
}

/// The threshold and feature of a node [`pack_heap_node`] made.
#[inline(always)]
pub(crate) fn unpack_heap_node(node: u64) -> (f32, u32) {
    (f32::from_bits(node as u32), (node >> 32) as u32)
}

/// Heap padding after each tree, so that loading 8 nodes of any of its first levels stays inside.
const HEAP_PAD: usize = 8;

/// Largest ψ (rows each tree is grown on): far beyond any useful forest, small enough that the
/// path-length normalisation stays exact.
pub const MAX_SAMPLE: usize = 1 << 24;

/// Most nodes a forest may have (node indices stay far below `i32::MAX` for gathers).
pub const MAX_NODES: usize = 1 << 28;

impl Forest {
    /// Flattens `trees` over `n_features` features, trained on subsamples of `sample_size` points.
    /// Checks every index, so that scoring never reads out of bounds.
    pub fn new(
        n_features: usize,
        sample_size: usize,
        trees: &[Vec<Node>],
    ) -> Result<Forest, ForestError> {
        let err = |m: String| Err(ForestError(m));
        if n_features == 0 || n_features > 1 << 16 {
            return err(format!(
                "a forest needs 1 to 65536 features, got {n_features}"
            ));
        }
        if trees.is_empty() {
            return err("a forest needs at least one tree".into());
        }
        if !(2..=MAX_SAMPLE).contains(&sample_size) {
            return err(format!(
                "sample size must be between 2 and {MAX_SAMPLE}, got {sample_size}"
            ));
        }
        let total: usize = trees.iter().map(|t| t.len() + 1).sum();
        if total > MAX_NODES {
            return err(format!("{total} nodes is more than {MAX_NODES}"));
        }
        let mut f = Forest {
            n_features,
            feature: Vec::with_capacity(total),
            threshold: Vec::with_capacity(total),
            child: Vec::with_capacity(total),
            value: Vec::with_capacity(total),
            root: Vec::with_capacity(trees.len()),
            depth: Vec::with_capacity(trees.len()),
            heap: Vec::with_capacity(trees.len()),
            heap_node: Vec::new(),
            heap_value: Vec::new(),
            norm: trees.len() as f64 * average_path_length(sample_size as f64),
            sample_size,
            fastest: Default::default(),
        };
        for (t, nodes) in trees.iter().enumerate() {
            f.push_tree(t, n_features, nodes)?;
        }
        Ok(f)
    }

    /// Lays tree `t` out so that each split's children are adjacent (left, then right).
    fn push_tree(
        &mut self,
        t: usize,
        n_features: usize,
        nodes: &[Node],
    ) -> Result<(), ForestError> {
        let bad = |m: String| ForestError(format!("tree {t}: {m}"));
        if nodes.is_empty() {
            return Err(bad("no nodes".into()));
        }
        let mut parents = vec![0u32; nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            match *n {
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    if feature as usize >= n_features {
                        return Err(bad(format!(
                            "node {i} tests feature {feature} of {n_features}"
                        )));
                    }
                    if threshold.is_nan() {
                        return Err(bad(format!("node {i} has a NaN threshold")));
                    }
                    for c in [left, right] {
                        if c as usize >= nodes.len() || c as usize <= i {
                            return Err(bad(format!(
                                "node {i} has child {c} out of order or range"
                            )));
                        }
                        parents[c as usize] += 1;
                    }
                }
                Node::Leaf { path_length } => {
                    if !(path_length.is_finite() && path_length >= 0.0) {
                        return Err(bad(format!("leaf {i} has path length {path_length}")));
                    }
                }
            }
        }
        if parents[0] != 0 || parents[1..].iter().any(|&p| p != 1) {
            return Err(bad("nodes do not form one tree".into()));
        }
        // Breadth-first from the root, placing each split's children as a pair.
        let base = self.feature.len() as u32;
        let mut order: Vec<(usize, u32)> = vec![(0, 0)]; // (node, depth)
        let mut placed = vec![u32::MAX; nodes.len()];
        placed[0] = base;
        self.push_slot();
        let mut depth = 0;
        let mut k = 0;
        while k < order.len() {
            let (i, d) = order[k];
            k += 1;
            depth = depth.max(d);
            let at = placed[i] as usize;
            match nodes[i] {
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    let c = self.feature.len() as u32;
                    self.push_slot();
                    self.push_slot();
                    placed[left as usize] = c;
                    placed[right as usize] = c + 1;
                    self.feature[at] = feature;
                    self.threshold[at] = threshold;
                    self.child[at] = c;
                    order.push((left as usize, d + 1));
                    order.push((right as usize, d + 1));
                }
                Node::Leaf { path_length } => {
                    self.threshold[at] = f32::NAN;
                    // `child + 1` is the leaf itself (wrapping for a leaf at index 0).
                    self.child[at] = (at as u32).wrapping_sub(1);
                    self.value[at] = path_length;
                }
            }
        }
        self.root.push(base);
        self.depth.push(depth);
        let heap = self.heap_tree(nodes, depth);
        self.heap.push(heap);
        Ok(())
    }

    /// Lays `nodes` (depth `depth`) out in heap order, if it is shallow enough.
    fn heap_tree(&mut self, nodes: &[Node], depth: u32) -> Option<Heap> {
        if depth > HEAP_MAX_DEPTH {
            return None;
        }
        let h = Heap {
            node: self.heap_node.len(),
            value: self.heap_value.len(),
        };
        let inner = (1usize << depth) - 1;
        self.heap_node.resize(h.node + inner + HEAP_PAD, 0);
        self.heap_value.resize(h.value + (1usize << depth), 0.0);
        // (explicit node, heap index, level)
        let mut work = vec![(0usize, 0usize, 0u32)];
        while let Some((i, at, level)) = work.pop() {
            if level == depth {
                if let Node::Leaf { path_length } = nodes[i] {
                    self.heap_value[h.value + at - inner] = path_length;
                }
                continue;
            }
            match nodes[i] {
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    self.heap_node[h.node + at] = pack_heap_node(threshold, feature);
                    work.push((left as usize, 2 * at + 1, level + 1));
                    work.push((right as usize, 2 * at + 2, level + 1));
                }
                // A leaf above the last level: both ways lead to copies of it.
                Node::Leaf { .. } => {
                    work.push((i, 2 * at + 1, level + 1));
                    work.push((i, 2 * at + 2, level + 1));
                }
            }
        }
        Some(h)
    }

    fn push_slot(&mut self) {
        self.feature.push(0);
        self.threshold.push(f32::NAN);
        self.child.push(0);
        self.value.push(0.0);
    }

    /// Features each row has.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Trees in the forest.
    pub fn n_trees(&self) -> usize {
        self.root.len()
    }

    /// Nodes over all trees.
    pub fn n_nodes(&self) -> usize {
        self.feature.len()
    }

    /// ψ, the subsample size the trees were grown on.
    pub fn sample_size(&self) -> usize {
        self.sample_size
    }

    /// The median of the thresholds the forest splits feature `feature` at: where the data it was
    /// grown on sit, as the forest sees them (`None` if it never splits on it). A reference value
    /// for explaining a score by occlusion when the training data are unknown.
    pub fn median_threshold(&self, feature: usize) -> Option<f32> {
        let mut t: Vec<f32> = self
            .feature
            .iter()
            .zip(&self.threshold)
            .filter(|&(&f, t)| f as usize == feature && !t.is_nan())
            .map(|(_, &t)| t)
            .collect();
        if t.is_empty() {
            return None;
        }
        let mid = t.len() / 2;
        let (_, m, _) = t.select_nth_unstable_by(mid, f32::total_cmp);
        Some(*m)
    }

    /// The anomaly score of a sum of path lengths over all trees.
    #[inline]
    pub fn score_of(&self, path_sum: f32) -> f32 {
        (-(path_sum as f64) / self.norm).exp2() as f32
    }

    /// Back to one node list per tree (children adjacent, breadth-first), e.g. to save the forest.
    pub fn trees(&self) -> Vec<Vec<Node>> {
        let ends: Vec<usize> = self
            .root
            .iter()
            .skip(1)
            .map(|&r| r as usize)
            .chain([self.n_nodes()])
            .collect();
        self.root
            .iter()
            .zip(ends)
            .map(|(&r, end)| {
                let r = r as usize;
                (r..end)
                    .map(|n| {
                        if self.threshold[n].is_nan() {
                            Node::Leaf {
                                path_length: self.value[n],
                            }
                        } else {
                            Node::Split {
                                feature: self.feature[n],
                                threshold: self.threshold[n],
                                left: self.child[n] - r as u32,
                                right: self.child[n] + 1 - r as u32,
                            }
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

/// Rows scored per tree before moving to the next tree: keeps a tree's nodes in cache while many
/// rows walk it.
pub(crate) const TILE: usize = 512;

/// Widest forest (in features) a path's [`Fetch::Select`] read serves; wider ones gather.
pub(crate) const fn select_max_features(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 16,
        Isa::Avx2 => 8,
        Isa::Scalar => 0,
    }
}

/// How a vector path reads each row's value at the feature a node tests. Both give the same
/// bits; which is faster depends on the core (gathers are quick on some and slow on others, e.g.
/// AMD's, or Intel's with the microcode that mitigates Gather Data Sampling), so
/// [`Fetch::fastest_for`] times them. The scalar path loads values and ignores this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetch {
    /// One gather per step from the rows as they are.
    Gather,
    /// Each tile laid out once so that a step selects each lane's value from registers. AVX-512:
    /// blocks of 16 rows padded to 2, 4, 8 or 16 features, picked by two-register permutes
    /// (forests of at most 16 features). AVX2: blocks of 8 rows transposed, padded to 2, 4 or 8
    /// columns, picked by a tree of blends on the feature's bits (at most 8 features). Wider
    /// forests gather.
    Select,
}

impl Fetch {
    /// Every way, for tests and benches.
    pub const ALL: [Fetch; 2] = [Fetch::Gather, Fetch::Select];

    /// The faster way for `isa`'s path to read `forest`'s values on this CPU, timed once per
    /// forest and path: two tiles of rows made from the forest's own thresholds are scored both
    /// ways, alternately, and the best of five of each compared (2.4–2.7 ms for 100 trees of ψ 256
    /// on an AMD EPYC). [`Fetch::Gather`] where there is nothing to choose: `isa` not available,
    /// or its select read does not serve the forest.
    pub fn fastest_for(isa: Isa, forest: &Forest) -> Fetch {
        match isa {
            Isa::Scalar => Fetch::Gather,
            Isa::Avx2 => *forest.fastest[0].get_or_init(|| Fetch::time(isa, forest)),
            Isa::Avx512 => *forest.fastest[1].get_or_init(|| Fetch::time(isa, forest)),
        }
    }

    /// [`Fetch::fastest_for`], timed now.
    fn time(isa: Isa, forest: &Forest) -> Fetch {
        let ways = Fetch::ALL.map(|fetch| Scorer::with_fetch(isa, fetch));
        let ([Some(gather), Some(select)], true) = (ways, Fetch::select_serves(isa, forest)) else {
            return Fetch::Gather;
        };
        let x = probe_rows(forest, 2 * TILE);
        let mut out = vec![0.0f32; 2 * TILE];
        let mut best = [std::time::Duration::MAX; 2];
        for _ in 0..5 {
            for (i, scorer) in [gather, select].iter().enumerate() {
                let start = std::time::Instant::now();
                scorer.path_sums(forest, &x, &mut out);
                best[i] = best[i].min(start.elapsed());
            }
        }
        if best[1] < best[0] {
            Fetch::Select
        } else {
            Fetch::Gather
        }
    }

    /// Whether `isa`'s path selects `forest`'s values from registers when asked to: at most
    /// 16 features on AVX-512, 8 on AVX2, never on the scalar path; every tree in heap order.
    pub fn select_serves(isa: Isa, forest: &Forest) -> bool {
        forest.n_features <= select_max_features(isa) && forest.heap.iter().all(Option::is_some)
    }

    /// The name benches and logs print.
    pub fn name(self) -> &'static str {
        match self {
            Fetch::Gather => "gather",
            Fetch::Select => "select",
        }
    }
}

/// `n` rows that walk `forest` the way data does: each value is one of the thresholds the forest
/// splits that feature at, nudged to one side or the other (both picked by the kernels' seeded
/// generator), so rows go left and right. 0 for a feature no split tests.
fn probe_rows(forest: &Forest, n: usize) -> Vec<f32> {
    let f = forest.n_features;
    let mut cuts = vec![Vec::new(); f];
    for (&feature, &threshold) in forest.feature.iter().zip(&forest.threshold) {
        if !threshold.is_nan() {
            cuts[feature as usize].push(threshold);
        }
    }
    let mut rng = crate::rng::Rng(0x5eed);
    (0..n * f)
        .map(|i| {
            let cut = &cuts[i % f];
            if cut.is_empty() {
                return 0.0;
            }
            let t = cut[rng.below(cut.len())];
            let nudge = t.abs().max(1.0) * 1e-3;
            if rng.unit() < 0.5 {
                t - nudge
            } else {
                t + nudge
            }
        })
        .collect()
}

/// The scoring kernel on one instruction set. Holding one means the ISA is available.
#[derive(Clone, Copy, Debug)]
pub struct Scorer {
    isa: Isa,
    fetch: Fetch,
}

impl Scorer {
    /// A scorer of `forest` on `isa`, `None` when this CPU cannot run it (the AVX-512 path hands
    /// the forests it does not cover to the AVX2 one, so it needs both). It reads values the way
    /// [`Fetch::fastest_for`] finds faster for this forest here.
    pub fn new(isa: Isa, forest: &Forest) -> Option<Scorer> {
        Scorer::with_fetch(isa, Fetch::fastest_for(isa, forest))
    }

    /// A scorer on `isa` that reads values as `fetch` says (the vector paths only; the sums are
    /// the same either way).
    pub fn with_fetch(isa: Isa, fetch: Fetch) -> Option<Scorer> {
        let ok = isa.is_available() && (isa != Isa::Avx512 || Isa::Avx2.is_available());
        ok.then_some(Scorer { isa, fetch })
    }

    /// The path this scorer runs.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// How its AVX-512 path reads values.
    pub fn fetch(&self) -> Fetch {
        self.fetch
    }

    /// Sums each row's path lengths over all trees: `x` holds rows of `forest.n_features()` values,
    /// row-major; `out[i]` gets row `i`'s sum.
    ///
    /// # Panics
    /// If `x.len()` is not `out.len() * forest.n_features()`.
    pub fn path_sums(&self, forest: &Forest, x: &[f32], out: &mut [f32]) {
        let f = forest.n_features;
        assert!(
            x.len() == out.len() * f,
            "iforest: {} values for {} rows of {f} features",
            x.len(),
            out.len()
        );
        for (xt, ot) in x.chunks(TILE * f).zip(out.chunks_mut(TILE)) {
            ot.fill(0.0);
            match self.isa {
                Isa::Scalar => {
                    for t in 0..forest.n_trees() {
                        scalar::add_tree(forest, t, xt, ot);
                    }
                }
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `Scorer::new` only builds an Avx2 scorer when AVX2 is available; the
                // chunk holds `ot.len() <= TILE` rows of `f` values (checked above), and
                // `Forest::new` checked every feature and child index.
                Isa::Avx2 => unsafe { x86_64::avx2::add_tile(forest, xt, ot, self.fetch) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as for Avx2: an Avx512 scorer exists only where AVX-512F and AVX2 are.
                Isa::Avx512 => unsafe { x86_64::avx512::add_tile(forest, xt, ot, self.fetch) },
                #[cfg(not(target_arch = "x86_64"))]
                Isa::Avx2 | Isa::Avx512 => {
                    unreachable!("x86_64 paths are never available elsewhere")
                }
            }
        }
    }

    /// Scores rows: `out[i]` in (0, 1], higher is more anomalous.
    pub fn score(&self, forest: &Forest, x: &[f32], out: &mut [f32]) {
        self.path_sums(forest, x, out);
        for s in out.iter_mut() {
            *s = forest.score_of(*s);
        }
    }
}
