//! AVX-512 path: 16 rows walk a tree at once, for forests of at most [`MAX_FEATURES`] features
//! whose trees are all in heap order (scikit-learn's and Vigil's own, ψ ≤ 1024). Any other forest
//! runs the AVX2 path (a scorer holds this path only where AVX2 is available too).
//!
//! A step gathers each row's value from the rows as they are; the last rows of a tile that do not
//! fill a block of 16 walk as one block padded with zeros, so no row is left to a scalar tail. The
//! first six levels of a tree come from registers: levels 0 to 4 (at most 16 nodes) by one permute
//! each, level 5 (32 nodes) by one two-register permute; deeper levels by two 64-bit gathers
//! (threshold and feature together) per 16 rows.
//!
//! Measured on the SKAB forest (`cargo bench --bench iforest`), the walk is bound by the latency
//! of each step's chain, not by the vector ports: 8 blocks in lockstep beat 4 by 15 % (16 spill),
//! gathering the values beats selecting them from a transposed tile by 7 mask blends, and serving
//! level 6 from four registers (two permutes and a blend per field) loses to gathering it.

use super::avx2;
use crate::iforest::{unpack_heap_node, Forest, Heap, TILE};
use core::arch::x86_64::*;

/// Most features a forest may have for this path (a padded block stays on the stack, 4 KiB).
pub(crate) const MAX_FEATURES: usize = 64;

/// Levels served from registers: 0..=4 from one register each, 5 from two.
const REGISTER_LEVELS: usize = 6;

/// A tree in heap order, ready to walk 16 rows at a time.
struct HeapWalk {
    depth: usize,
    inner: i32,
    /// Levels 0..=4 in `[0..5]`; level 5's low and high 16 nodes in `[5]` and `[6]`.
    thr: [__m512; REGISTER_LEVELS + 1],
    feat: [__m512i; REGISTER_LEVELS + 1],
    nodes: *const i64,
    values: *const f32,
}

impl HeapWalk {
    /// # Safety
    /// AVX-512F; `h` is tree `t`'s heap layout in `forest`.
    #[target_feature(enable = "avx512f")]
    unsafe fn new(forest: &Forest, t: usize, h: Heap) -> HeapWalk {
        let depth = forest.depth[t] as usize;
        let inner = (1usize << depth) - 1;
        let nodes = &forest.heap_node[h.node..h.node + inner];
        let mut thr = [_mm512_setzero_ps(); REGISTER_LEVELS + 1];
        let mut feat = [_mm512_setzero_si512(); REGISTER_LEVELS + 1];
        // Register r holds heap nodes `first..first + 16` of its level (fewer on levels 0 to 3;
        // unused lanes stay zero and are never selected).
        for r in 0..REGISTER_LEVELS + 1 {
            let (level, first) = if r < 5 {
                (r, (1usize << r) - 1)
            } else {
                (5, 31 + 16 * (r - 5))
            };
            if level >= depth {
                break;
            }
            let len = (1usize << level).min(16);
            let mut t16 = [0.0f32; 16];
            let mut f16 = [0u32; 16];
            for (i, &n) in nodes[first..first + len].iter().enumerate() {
                (t16[i], f16[i]) = unpack_heap_node(n);
            }
            // SAFETY: both arrays hold 16 lanes.
            unsafe {
                thr[r] = _mm512_loadu_ps(t16.as_ptr());
                feat[r] = _mm512_loadu_si512(f16.as_ptr() as *const __m512i);
            }
        }
        HeapWalk {
            depth,
            inner: inner as i32,
            thr,
            feat,
            nodes: nodes.as_ptr() as *const i64,
            values: forest.heap_value[h.value..].as_ptr(),
        }
    }

    /// Thresholds and features of the 16 lanes' nodes at `level`.
    ///
    /// # Safety
    /// AVX-512F; `node` holds heap indices of `level` (below `2^(level + 1) - 1`).
    #[inline(always)]
    unsafe fn fields(&self, level: usize, node: __m512i) -> (__m512, __m512i) {
        // SAFETY: the caller's contract; gathered indices are inside the tree's heap.
        unsafe {
            if level < 5 {
                let local = _mm512_sub_epi32(node, _mm512_set1_epi32((1 << level) - 1));
                (
                    _mm512_permutexvar_ps(local, self.thr[level]),
                    _mm512_permutexvar_epi32(local, self.feat[level]),
                )
            } else if level == 5 {
                // 32 nodes: bit 4 of the node's place picks the register.
                let local = _mm512_sub_epi32(node, _mm512_set1_epi32(31));
                (
                    _mm512_permutex2var_ps(self.thr[5], local, self.thr[6]),
                    _mm512_permutex2var_epi32(self.feat[5], local, self.feat[6]),
                )
            } else {
                let lo = _mm512_i32gather_epi64::<8>(_mm512_castsi512_si256(node), self.nodes);
                let hi =
                    _mm512_i32gather_epi64::<8>(_mm512_extracti64x4_epi64::<1>(node), self.nodes);
                // lo = [t0 f0 t1 f1 .. t7 f7], hi = [t8 f8 .. t15 f15] as 32-bit lanes.
                let even =
                    _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
                let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
                (
                    _mm512_castsi512_ps(_mm512_permutex2var_epi32(lo, even, hi)),
                    _mm512_permutex2var_epi32(lo, odd, hi),
                )
            }
        }
    }

    /// The children the 16 lanes go to: `x <= threshold` (false for NaN) to `2i + 1`, else
    /// `2i + 2`.
    ///
    /// # Safety
    /// AVX-512F.
    #[inline(always)]
    unsafe fn down(node: __m512i, v: __m512, thr: __m512) -> __m512i {
        // SAFETY: register arithmetic only.
        unsafe {
            let le = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(v, thr);
            let right = _mm512_add_epi32(_mm512_add_epi32(node, node), _mm512_set1_epi32(2));
            _mm512_mask_sub_epi32(right, le, right, _mm512_set1_epi32(1))
        }
    }

    /// Adds the path lengths of the leaves the 16 lanes reached to `acc[..16]`.
    ///
    /// # Safety
    /// AVX-512F; `node` holds last-level indices (after `depth` steps); `acc` points at 16 sums.
    #[inline(always)]
    unsafe fn finish(&self, node: __m512i, acc: *mut f32) {
        // SAFETY: the caller's contract.
        unsafe {
            let slot = _mm512_sub_epi32(node, _mm512_set1_epi32(self.inner));
            let h = _mm512_i32gather_ps::<4>(slot, self.values);
            _mm512_storeu_ps(acc, _mm512_add_ps(_mm512_loadu_ps(acc), h));
        }
    }

    /// Walks `blocks` blocks of 16 rows of `x` (8 in lockstep, so that their dependent chains
    /// overlap, then single ones) and adds their path lengths to `acc`.
    ///
    /// # Safety
    /// AVX-512F; `x` holds `blocks` × 16 rows of `f` values (`f` ≤ [`MAX_FEATURES`]), `acc`
    /// `blocks` × 16 sums, and every feature index of the tree is below `f`.
    #[inline(always)]
    unsafe fn walk(&self, x: &[f32], f: usize, acc: &mut [f32], blocks: usize) {
        const LANES: usize = 8;
        // SAFETY: register arithmetic only.
        let rows = unsafe {
            _mm512_mullo_epi32(
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                _mm512_set1_epi32(f as i32),
            )
        };
        // SAFETY: blocks below `blocks` are inside `xt` and `acc`; `fields` gets indices of the
        // level being walked, `finish` last-level ones.
        unsafe {
            let mut b = 0;
            while b + LANES <= blocks {
                let mut node = [_mm512_setzero_si512(); LANES];
                for level in 0..self.depth {
                    for (k, n) in node.iter_mut().enumerate() {
                        let (thr, feat) = self.fields(level, *n);
                        *n = HeapWalk::down(*n, value(x, (b + k) * 16 * f, rows, feat), thr);
                    }
                }
                for (k, n) in node.iter().enumerate() {
                    self.finish(*n, acc.as_mut_ptr().add((b + k) * 16));
                }
                b += LANES;
            }
            while b < blocks {
                let mut node = _mm512_setzero_si512();
                for level in 0..self.depth {
                    let (thr, feat) = self.fields(level, node);
                    node = HeapWalk::down(node, value(x, b * 16 * f, rows, feat), thr);
                }
                self.finish(node, acc.as_mut_ptr().add(b * 16));
                b += 1;
            }
        }
    }
}

/// The values of 16 rows' features `feat`, the rows starting at `x[start]` (`rows` holds each
/// lane's row offset, `lane · f`).
///
/// # Safety
/// AVX-512F; `start + rows[lane] + feat[lane]` is inside `x` for every lane.
#[inline(always)]
unsafe fn value(x: &[f32], start: usize, rows: __m512i, feat: __m512i) -> __m512 {
    // SAFETY: the caller's contract.
    unsafe { _mm512_i32gather_ps::<4>(_mm512_add_epi32(rows, feat), x.as_ptr().add(start)) }
}

/// Adds every tree's path lengths for one tile of rows (at most [`TILE`]), in tree order, to
/// `out` (which the caller zeroed, so the sums are bit-identical to the other paths').
///
/// # Safety
/// AVX-512F and AVX2; `x` holds `out.len() <= TILE` rows of `forest.n_features` values; `forest`
/// was checked by `Forest::new`.
#[target_feature(enable = "avx512f,avx2")]
pub(crate) unsafe fn add_tile(forest: &Forest, x: &[f32], out: &mut [f32]) {
    let f = forest.n_features;
    if f > MAX_FEATURES || forest.heap.iter().any(Option::is_none) {
        // SAFETY: as this function (AVX2 is available).
        unsafe { avx2::add_tile(forest, x, out) };
        return;
    }
    let rows = out.len();
    let (full, rest) = (rows / 16, rows % 16);
    let mut tail = [0.0f32; 16 * MAX_FEATURES];
    tail[..rest * f].copy_from_slice(&x[full * 16 * f..]);
    let mut acc = [0.0f32; TILE];
    let (body, last) = acc[..rows.div_ceil(16) * 16].split_at_mut(full * 16);
    // Every tree is in heap order (checked above).
    for (t, h) in forest
        .heap
        .iter()
        .enumerate()
        .filter_map(|(t, h)| Some((t, (*h)?)))
    {
        // SAFETY: as this function; `x` holds `full` blocks, `tail` one (its padding rows walk
        // valid nodes with zeros and are dropped below); features are below `f`.
        unsafe {
            let walk = HeapWalk::new(forest, t, h);
            walk.walk(x, f, body, full);
            if rest > 0 {
                walk.walk(&tail, f, last, 1);
            }
        }
    }
    for (o, a) in out.iter_mut().zip(&acc) {
        *o += a;
    }
}
