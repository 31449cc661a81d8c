//! AVX2 path: 8 rows walk a tree at once, scalar tail.
//!
//! A step is a chain of dependent operations (the node's fields, the row's value, the compare),
//! so one block of 8 rows is latency-bound: blocks walk in lockstep so that their chains overlap.
//! Each row's value is read one of two ways ([`Fetch`]), with the same bits: a gather from the
//! rows as they are, or (forests of at most 8 features in heap order) a select from the tile
//! transposed once in blocks of 8 rows, padded to 2, 4 or 8 columns: level 0 loads its column,
//! level 1 blends two, deeper levels pick by a tree of blends on the feature's bits.
//!
//! Measured on the SKAB forest (`cargo bench --bench iforest`, 8 features). On an Intel Xeon
//! (Sapphire Rapids): 16 blocks in lockstep give 3.8–4.2 M rows/s against 2.2 M for 4, although
//! 16 node registers spill; 32 is slower again; gathering beat selecting by blends (1.9–2.1 M at
//! any width, before levels 0 and 1 loaded their columns). On an AMD EPYC (Zen 5), where gathers
//! are slow, the select read wins: 3.6 M rows/s against 2.6 M (8 or 12 blocks in lockstep are
//! slower). [`Fetch::fastest_for`] times both for each forest, so each CPU takes its faster one.

use crate::iforest::{scalar, unpack_heap_node, Fetch, Forest, Heap, TILE};
use crate::isa::Isa;
use core::arch::x86_64::*;

/// Adds tree `t`'s path length to `out[i]` for every row `i` of `x`.
///
/// # Safety
/// The CPU must support AVX2; `x` must hold `out.len()` rows of `forest.n_features` values, and
/// `forest` must have been checked by `Forest::new` (every feature and child index in range), and
/// `out.len() * n_features` must fit in an i32 (the caller passes tiles of at most 512 rows of at
/// most 65536 features).
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn add_tree(forest: &Forest, t: usize, x: &[f32], out: &mut [f32]) {
    if let Some(h) = forest.heap[t] {
        // SAFETY: as for this function; `h` was laid out by `Forest::new` for this tree.
        unsafe { add_heap_tree(forest, t, h, x, out) };
        return;
    }
    let f = forest.n_features;
    let rows = out.len();
    let body = rows - rows % 8;
    let root = _mm256_set1_epi32(forest.root[t] as i32);
    let steps = forest.depth[t];
    let one = _mm256_set1_epi32(1);
    let (fp, tp, cp, vp) = (
        forest.feature.as_ptr() as *const i32,
        forest.threshold.as_ptr(),
        forest.child.as_ptr() as *const i32,
        forest.value.as_ptr(),
    );
    let lane_offsets = _mm256_mullo_epi32(
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        _mm256_set1_epi32(f as i32),
    );
    // A step is a chain of dependent gathers (node fields, then the row's value), so one block of
    // 8 rows is latency-bound: walk LANES blocks in lockstep so their chains overlap (on a forest
    // of depth 12, ψ = 4096: 8 blocks 1.66 M rows/s, 4 or 16 blocks 1.35–1.38 M).
    const LANES: usize = 8;
    let mut r = 0;
    // SAFETY: rows `r..r + 8 * LANES` (or `r..r + 8`) exist; every node index
    // is a valid node (roots and children were checked by `Forest::new`, a leaf points at itself);
    // feature indices are below `f`, so `lane * f + feature` stays inside the 8 rows at `xp`.
    unsafe {
        while r + 8 * LANES <= body {
            let xp: [*const f32; LANES] = core::array::from_fn(|b| x.as_ptr().add((r + 8 * b) * f));
            let mut node = [root; LANES];
            for _ in 0..steps {
                for b in 0..LANES {
                    node[b] = step(fp, tp, cp, xp[b], lane_offsets, one, node[b]);
                }
            }
            for (b, n) in node.iter().enumerate() {
                let h = _mm256_i32gather_ps::<4>(vp, *n);
                let op = out.as_mut_ptr().add(r + 8 * b);
                _mm256_storeu_ps(op, _mm256_add_ps(_mm256_loadu_ps(op), h));
            }
            r += 8 * LANES;
        }
        while r < body {
            let xp = x.as_ptr().add(r * f);
            let mut node = root;
            for _ in 0..steps {
                node = step(fp, tp, cp, xp, lane_offsets, one, node);
            }
            let h = _mm256_i32gather_ps::<4>(vp, node);
            let op = out.as_mut_ptr().add(r);
            _mm256_storeu_ps(op, _mm256_add_ps(_mm256_loadu_ps(op), h));
            r += 8;
        }
    }
    scalar::add_tree(forest, t, &x[body * f..], &mut out[body..]);
}

/// One step of 8 rows down a tree: x <= threshold (false for NaN on either side) goes to the left
/// child, otherwise to the right one (`child + 1`).
///
/// # Safety
/// AVX2; `node` holds valid node indices and `xp` 8 rows whose offsets `lane_offsets + feature`
/// are in bounds.
#[inline(always)]
unsafe fn step(
    fp: *const i32,
    tp: *const f32,
    cp: *const i32,
    xp: *const f32,
    lane_offsets: __m256i,
    one: __m256i,
    node: __m256i,
) -> __m256i {
    // SAFETY: the caller's contract (valid node indices, rows in bounds, AVX2).
    unsafe {
        let feat = _mm256_i32gather_epi32::<4>(fp, node);
        let thr = _mm256_i32gather_ps::<4>(tp, node);
        let child = _mm256_i32gather_epi32::<4>(cp, node);
        let v = _mm256_i32gather_ps::<4>(xp, _mm256_add_epi32(lane_offsets, feat));
        let le = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(v, thr));
        _mm256_add_epi32(child, _mm256_andnot_si256(le, one))
    }
}

/// Levels served from one register each: level `k` has `2^k` nodes, and 8 fit in a register.
const REGISTER_LEVELS: usize = 4;

/// A tree in heap order, ready to walk 8 rows at a time: the first four levels' thresholds and
/// features in one register each, the fifth's in two (16 nodes), deeper levels fetched by one
/// 64-bit gather (threshold and feature together) per 4 rows. Children of node `i` are `2i + 1` and
/// `2i + 2`, so no child index is fetched at all.
struct HeapWalk {
    depth: usize,
    inner: i32,
    thr: [__m256; REGISTER_LEVELS + 2],
    feat: [__m256i; REGISTER_LEVELS + 2],
    nodes: *const i64,
    values: *const f32,
    /// The features levels 0 and 1 test (`[root, left, right]`).
    top: [usize; 3],
}

impl HeapWalk {
    /// # Safety
    /// AVX2; `h` is tree `t`'s heap layout in `forest`.
    #[target_feature(enable = "avx2")]
    unsafe fn new(forest: &Forest, t: usize, h: Heap) -> HeapWalk {
        let depth = forest.depth[t] as usize;
        let nodes = &forest.heap_node[h.node..];
        let mut thr = [_mm256_setzero_ps(); REGISTER_LEVELS + 2];
        let mut feat = [_mm256_setzero_si256(); REGISTER_LEVELS + 2];
        // Register r holds nodes 8r - 1.. for r >= 4 (level 4 = nodes 15..31), level k's 2^k - 1..
        // below (slots past a level's end are unused; the heap is padded so the loads stay inside).
        let levels = REGISTER_LEVELS.min(depth) + if depth > REGISTER_LEVELS { 2 } else { 0 };
        for (r, (t_reg, f_reg)) in thr.iter_mut().zip(&mut feat).enumerate().take(levels) {
            let base = if r < REGISTER_LEVELS {
                (1usize << r) - 1
            } else {
                15 + 8 * (r - REGISTER_LEVELS)
            };
            let level = &nodes[base..base + 8];
            let t8: [f32; 8] = core::array::from_fn(|i| unpack_heap_node(level[i]).0);
            let f8: [u32; 8] = core::array::from_fn(|i| unpack_heap_node(level[i]).1);
            // SAFETY: both arrays hold 8 lanes.
            unsafe {
                *t_reg = _mm256_loadu_ps(t8.as_ptr());
                *f_reg = _mm256_loadu_si256(f8.as_ptr() as *const __m256i);
            }
        }
        let top =
            core::array::from_fn(|i| nodes.get(i).map_or(0, |&n| unpack_heap_node(n).1 as usize));
        HeapWalk {
            top,
            depth,
            inner: (1i32 << depth) - 1,
            thr,
            feat,
            nodes: nodes.as_ptr() as *const i64,
            values: forest.heap_value[h.value..].as_ptr(),
        }
    }

    /// Thresholds and features of the 8 lanes' nodes at `level`.
    ///
    /// # Safety
    /// AVX2; `node` holds heap indices of `level` (below `2^(level + 1) - 1`).
    #[inline(always)]
    unsafe fn fields(&self, level: usize, node: __m256i) -> (__m256, __m256i) {
        // SAFETY: the caller's contract; gathered indices are inside the tree's heap.
        unsafe {
            if level < REGISTER_LEVELS {
                let local = _mm256_sub_epi32(node, _mm256_set1_epi32((1 << level) - 1));
                (
                    _mm256_permutevar8x32_ps(self.thr[level], local),
                    _mm256_permutevar8x32_epi32(self.feat[level], local),
                )
            } else if level == REGISTER_LEVELS {
                // 16 nodes: bit 3 of the node's place picks the register.
                let local = _mm256_sub_epi32(node, _mm256_set1_epi32(15));
                let upper = _mm256_castsi256_ps(_mm256_slli_epi32::<28>(local));
                let (l, h) = (REGISTER_LEVELS, REGISTER_LEVELS + 1);
                (
                    _mm256_blendv_ps(
                        _mm256_permutevar8x32_ps(self.thr[l], local),
                        _mm256_permutevar8x32_ps(self.thr[h], local),
                        upper,
                    ),
                    _mm256_castps_si256(_mm256_blendv_ps(
                        _mm256_castsi256_ps(_mm256_permutevar8x32_epi32(self.feat[l], local)),
                        _mm256_castsi256_ps(_mm256_permutevar8x32_epi32(self.feat[h], local)),
                        upper,
                    )),
                )
            } else {
                let lo = _mm256_i32gather_epi64::<8>(self.nodes, _mm256_castsi256_si128(node));
                let hi =
                    _mm256_i32gather_epi64::<8>(self.nodes, _mm256_extracti128_si256::<1>(node));
                // lo = [t0 f0 t1 f1 | t2 f2 t3 f3], hi = [t4 f4 t5 f5 | t6 f6 t7 f7].
                let (lo, hi) = (_mm256_castsi256_ps(lo), _mm256_castsi256_ps(hi));
                let thr = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi); // t0 t1 t4 t5 | t2 t3 t6 t7
                let feat = _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi);
                (
                    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
                        thr,
                    ))),
                    _mm256_castpd_si256(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
                        feat,
                    ))),
                )
            }
        }
    }

    /// The children the 8 lanes go to: `x <= threshold` (false for NaN) to `2i + 1`, else `2i + 2`.
    ///
    /// # Safety
    /// AVX2.
    #[inline(always)]
    unsafe fn down(node: __m256i, v: __m256, thr: __m256) -> __m256i {
        // SAFETY: register arithmetic only.
        unsafe {
            let one = _mm256_set1_epi32(1);
            let le = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(v, thr));
            let step = _mm256_add_epi32(one, _mm256_andnot_si256(le, one));
            _mm256_add_epi32(_mm256_add_epi32(node, node), step)
        }
    }

    /// Adds the path lengths of the leaves the 8 lanes reached to `op[..8]`.
    ///
    /// # Safety
    /// AVX2; `node` holds last-level indices (after `depth` steps); `op` points at 8 rows.
    #[inline(always)]
    unsafe fn finish(&self, node: __m256i, op: *mut f32) {
        // SAFETY: the caller's contract.
        unsafe {
            let slot = _mm256_sub_epi32(node, _mm256_set1_epi32(self.inner));
            let h = _mm256_i32gather_ps::<4>(self.values, slot);
            _mm256_storeu_ps(op, _mm256_add_ps(_mm256_loadu_ps(op), h));
        }
    }

    /// Walks the blocks of 8 rows of `out` (16 blocks in lockstep, then single blocks), reading
    /// block `b`'s values by `value(self, b, level, node, feat)` (its lanes at `node` of `level`
    /// test features `feat`), and adds their path lengths to `out` (a multiple of 8 long).
    ///
    /// # Safety
    /// AVX2; `value` reads blocks below `out.len() / 8` at every feature index of the tree.
    #[inline(always)]
    unsafe fn walk(
        &self,
        value: impl Fn(&HeapWalk, usize, usize, __m256i, __m256i) -> __m256,
        out: &mut [f32],
    ) {
        const LANES: usize = 16;
        let blocks = out.len() / 8;
        let mut b = 0;
        // SAFETY: blocks `b..b + LANES` (or `b`) exist in `out`; `fields` gets indices of the level
        // being walked, `finish` last-level ones.
        unsafe {
            while b + LANES <= blocks {
                let mut node = [_mm256_setzero_si256(); LANES];
                for level in 0..self.depth {
                    for (k, n) in node.iter_mut().enumerate() {
                        let (thr, feat) = self.fields(level, *n);
                        *n = HeapWalk::down(*n, value(self, b + k, level, *n, feat), thr);
                    }
                }
                for (k, n) in node.iter().enumerate() {
                    self.finish(*n, out.as_mut_ptr().add((b + k) * 8));
                }
                b += LANES;
            }
            while b < blocks {
                let mut node = _mm256_setzero_si256();
                for level in 0..self.depth {
                    let (thr, feat) = self.fields(level, node);
                    node = HeapWalk::down(node, value(self, b, level, node, feat), thr);
                }
                self.finish(node, out.as_mut_ptr().add(b * 8));
                b += 1;
            }
        }
    }
}

/// [`add_tree`] for a tree in heap order, gathering each row's value.
///
/// # Safety
/// As [`add_tree`]; `h` is tree `t`'s heap layout.
#[target_feature(enable = "avx2")]
unsafe fn add_heap_tree(forest: &Forest, t: usize, h: Heap, x: &[f32], out: &mut [f32]) {
    let f = forest.n_features;
    let body = out.len() - out.len() % 8;
    let rows = _mm256_mullo_epi32(
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        _mm256_set1_epi32(f as i32),
    );
    // Block `b`'s 8 rows' values of their features `feat`.
    let value = |_: &HeapWalk, b: usize, _, _, feat: __m256i| {
        // SAFETY: the walk reads blocks below `body / 8`, whose rows are inside `x`, at features
        // below `f` (checked by `Forest::new`).
        unsafe { _mm256_i32gather_ps::<4>(x.as_ptr().add(b * 8 * f), _mm256_add_epi32(rows, feat)) }
    };
    // SAFETY: the caller's contract.
    unsafe { HeapWalk::new(forest, t, h).walk(value, &mut out[..body]) };
    scalar::add_tree(forest, t, &x[body * f..], &mut out[body..]);
}

/// The tile `x` (rows of `f <= 2^L` values) transposed in blocks of 8 rows, each block `2^L`
/// columns of 8 values (zero past `f`), into `cols`; returns the number of whole blocks.
fn transpose<const L: usize>(x: &[f32], f: usize, cols: &mut [f32]) -> usize {
    let blocks = x.len() / f / 8;
    for (r, row) in x.chunks_exact(f).take(blocks * 8).enumerate() {
        let at = (r / 8) * (8 << L) + r % 8;
        for (j, &v) in row.iter().enumerate() {
            cols[at + 8 * j] = v;
        }
    }
    blocks
}

/// Block `b`'s values at features `feat` (of its lanes' nodes `node` at `level` of `walk`'s tree)
/// from its `2^L` columns at `cols`: one column at level 0, one of two at level 1, deeper a tree
/// of blends, each level picking by one bit of the feature.
///
/// # Safety
/// AVX2; block `b`'s columns are in `cols`, every feature of the tree is below `2^L`.
#[inline(always)]
unsafe fn select<const L: usize>(
    cols: *const f32,
    b: usize,
    walk: &HeapWalk,
    level: usize,
    node: __m256i,
    feat: __m256i,
) -> __m256 {
    // SAFETY: the caller's contract.
    unsafe {
        let c = cols.add(b * (8 << L));
        if level == 0 {
            return _mm256_loadu_ps(c.add(8 * walk.top[0]));
        }
        if level == 1 {
            let right = _mm256_castsi256_ps(_mm256_cmpeq_epi32(node, _mm256_set1_epi32(2)));
            return _mm256_blendv_ps(
                _mm256_loadu_ps(c.add(8 * walk.top[1])),
                _mm256_loadu_ps(c.add(8 * walk.top[2])),
                right,
            );
        }
        let mut v = [_mm256_setzero_ps(); 8];
        for (j, v) in v.iter_mut().enumerate().take(1 << L) {
            *v = _mm256_loadu_ps(c.add(8 * j));
        }
        // Bit k of each lane's feature moved to the sign, which blendv reads.
        let bits = [
            _mm256_slli_epi32::<31>(feat),
            _mm256_slli_epi32::<30>(feat),
            _mm256_slli_epi32::<29>(feat),
        ];
        let mut n = 1usize << L;
        for bit in bits {
            if n == 1 {
                break;
            }
            for i in 0..n / 2 {
                v[i] = _mm256_blendv_ps(v[2 * i], v[2 * i + 1], _mm256_castsi256_ps(bit));
            }
            n /= 2;
        }
        v[0]
    }
}

/// Adds every tree's path lengths for one tile of rows (at most [`crate::iforest::TILE`]), tree
/// by tree, so that a tree's nodes stay in L1 while the tile's rows walk it.
///
/// # Safety
/// AVX2; `x` holds `out.len() <= TILE` rows of `forest.n_features` values; `forest` was checked by
/// `Forest::new`.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn add_tile(forest: &Forest, x: &[f32], out: &mut [f32], fetch: Fetch) {
    let f = forest.n_features;
    if fetch == Fetch::Select && Fetch::select_serves(Isa::Avx2, forest) {
        macro_rules! columns {
            ($l:literal) => {{
                let mut cols = [0.0f32; TILE << $l];
                let blocks = transpose::<$l>(x, f, &mut cols);
                let body = blocks * 8;
                let cp = cols.as_ptr();
                for (t, h) in forest.heap.iter().enumerate() {
                    let h = h.expect("every tree is in heap order (checked above)");
                    // SAFETY: as this function; the walk reads blocks below `blocks`, which
                    // `cols` holds, at features below `f <= 2^L`.
                    unsafe {
                        HeapWalk::new(forest, t, h).walk(
                            |walk, b, level, node, feat| {
                                select::<$l>(cp, b, walk, level, node, feat)
                            },
                            &mut out[..body],
                        )
                    };
                    scalar::add_tree(forest, t, &x[body * f..], &mut out[body..]);
                }
            }};
        }
        match f {
            1..=2 => columns!(1),
            3..=4 => columns!(2),
            _ => columns!(3),
        }
        return;
    }
    for t in 0..forest.n_trees() {
        // SAFETY: as this function.
        unsafe { add_tree(forest, t, x, out) };
    }
}
