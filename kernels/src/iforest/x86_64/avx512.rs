//! AVX-512 path: 16 rows walk a tree at once, for forests of at most [`MAX_FEATURES`] features
//! whose trees are all in heap order (scikit-learn's and Vigil's own, ψ ≤ 1024). Any other forest
//! runs the AVX2 path (a scorer holds this path only where AVX2 is available too).
//!
//! The first six levels of a tree come from registers: levels 0 to 4 (at most 16 nodes) by one
//! permute each, level 5 (32 nodes) by one two-register permute; deeper levels by two 64-bit
//! gathers (threshold and feature together) per 16 rows. Each row's value at the feature its node
//! tests is read one of two ways ([`Fetch`]), with the same bits:
//!
//! - **Gather**: one gather per step from the rows as they are; the last rows of a tile that do
//!   not fill a block of 16 walk as one block padded with zeros.
//! - **Permute** (forests of at most 16 features): each tile is laid out once in blocks of 16 rows
//!   padded to 2, 4, 8 or 16 features ([`Padded`]); a step picks the values from the block's
//!   registers with two-register permutes (4 and 3 blends for 8 features), and levels 0 and 1,
//!   where every lane tests one of at most two features, load them from a transposed copy.
//!
//! Measured on the SKAB forest (`cargo bench --bench iforest`, 8 features): the walk is bound by
//! each step's chain and by the gathers' cost, not by the vector ports. On an Intel Xeon (Sapphire
//! Rapids) gathers are cheap: 8 blocks in lockstep beat 4 by 15 % (16 spill), and gathering beat
//! selecting values from a transposed tile by 7 mask blends. On an AMD EPYC (Zen 5) a gather costs
//! about as much as 16 loads: permutes score 7.0 M rows/s against 3.2 M for gathers (blends of
//! transposed columns 5.5 M, and 6.0 M with levels 0 and 1 loaded). Which read wins is not
//! assumed from the vendor: [`Fetch::fastest_for`] times both when a scorer is made for a forest
//! (it picks permutes on that EPYC). Serving level 6 from four registers lost to gathering it on
//! the Xeon and gained nothing measurable on the EPYC.
//!
//! Tried on the EPYC and not kept (8 / 16 features; this code: 7.3 M / 5.3 M rows/s): walking
//! each lane's place in its level instead of its heap index (one subtraction less a step)
//! 6.5–6.7 M / 5.2 M; merging the permutes by writemasks (`vpermi2ps` writes its lanes only and
//! leaves indices in the others, so no blends) 7.1 M / 3.6 M as one chain, 6.6 M / 4.6 M in pairs
//! and blends. Fewer instructions a step did not make the walk faster; longer chains of
//! dependent permutes made it slower.

use super::avx2;
use crate::iforest::{select_max_features, unpack_heap_node, Fetch, Forest, Heap, TILE};
use crate::isa::Isa;
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
    /// The features levels 0 and 1 test (`[root, left, right]`).
    top: [usize; 3],
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
        let top =
            core::array::from_fn(|i| nodes.get(i).map_or(0, |&n| unpack_heap_node(n).1 as usize));
        HeapWalk {
            top,
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

    /// The values of block `b`'s rows at the features its lanes' nodes `node` (of `level`) test,
    /// `feat`. Where the values are columns, levels 0 and 1 load their one or two columns.
    ///
    /// # Safety
    /// As [`Values::value`].
    #[inline(always)]
    unsafe fn value<V: Values>(
        &self,
        x: &V,
        b: usize,
        level: usize,
        node: __m512i,
        feat: __m512i,
    ) -> __m512 {
        // SAFETY: the caller's contract; `top` holds features of the tree.
        unsafe {
            if V::COLUMNS && level == 0 {
                x.column(b, self.top[0])
            } else if V::COLUMNS && level == 1 {
                let right = _mm512_cmpeq_epi32_mask(node, _mm512_set1_epi32(2));
                _mm512_mask_blend_ps(right, x.column(b, self.top[1]), x.column(b, self.top[2]))
            } else {
                x.value(b, feat)
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
    /// AVX-512F; `x` holds `blocks` blocks of 16 rows, `acc` `blocks` × 16 sums, and every
    /// feature index of the tree is a feature of `x`.
    #[inline(always)]
    unsafe fn walk<V: Values>(&self, x: &V, acc: &mut [f32], blocks: usize) {
        const LANES: usize = 8;
        // SAFETY: blocks below `blocks` are inside `xt` and `acc`; `fields` gets indices of the
        // level being walked, `finish` last-level ones.
        unsafe {
            let mut b = 0;
            while b + LANES <= blocks {
                let mut node = [_mm512_setzero_si512(); LANES];
                for level in 0..self.depth {
                    for (k, n) in node.iter_mut().enumerate() {
                        let (thr, feat) = self.fields(level, *n);
                        *n = HeapWalk::down(*n, self.value(x, b + k, level, *n, feat), thr);
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
                    node = HeapWalk::down(node, self.value(x, b, level, node, feat), thr);
                }
                self.finish(node, acc.as_mut_ptr().add(b * 16));
                b += 1;
            }
        }
    }
}

/// Where a walk reads each lane's feature value from.
trait Values {
    /// The values of block `b`'s 16 rows at features `feat` (one per lane).
    ///
    /// # Safety
    /// AVX-512F; block `b` is inside the values and every lane of `feat` is one of their features.
    unsafe fn value(&self, b: usize, feat: __m512i) -> __m512;

    /// Whether [`Values::column`] is a plain load.
    const COLUMNS: bool;

    /// Block `b`'s rows at one feature.
    ///
    /// # Safety
    /// As [`Values::value`].
    unsafe fn column(&self, b: usize, feature: usize) -> __m512;
}

/// The rows as they are (row-major, `f` values each): one gather per step ([`Fetch::Gather`]).
struct Rows<'a> {
    x: &'a [f32],
    f: usize,
    /// Each lane's row offset, `lane · f`.
    offsets: __m512i,
}

impl<'a> Rows<'a> {
    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn new(x: &'a [f32], f: usize) -> Rows<'a> {
        let offsets = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(f as i32),
        );
        Rows { x, f, offsets }
    }
}

impl Values for Rows<'_> {
    const COLUMNS: bool = false;

    #[inline(always)]
    unsafe fn column(&self, b: usize, feature: usize) -> __m512 {
        // SAFETY: the caller's contract.
        unsafe { self.value(b, _mm512_set1_epi32(feature as i32)) }
    }

    #[inline(always)]
    unsafe fn value(&self, b: usize, feat: __m512i) -> __m512 {
        // SAFETY: the caller's contract: block `b`'s rows, and their features `feat`, are in `x`.
        unsafe {
            _mm512_i32gather_ps::<4>(
                _mm512_add_epi32(self.offsets, feat),
                self.x.as_ptr().add(b * 16 * self.f),
            )
        }
    }
}

/// A tile laid out twice, in blocks of 16 rows padded with zeros to `W = 2^L` features (`L` in
/// 1..=4), for [`Fetch::Select`]: `rows` row-major (a block is `W` registers, two of them hold
/// `32 / W` rows, so `W / 2` two-register permutes and `W / 2 − 1` constant-mask blends pick
/// each lane's value), and `cols` transposed (a block is `W` columns, so that levels 0 and 1,
/// where every lane tests one of at most two features, load their values).
struct Padded<'a, const L: usize> {
    rows: &'a [f32],
    cols: &'a [f32],
}

impl<const L: usize> Padded<'_, L> {
    /// Lanes one permute serves: the rows in two registers.
    const SPAN: usize = 32 >> L;
}

impl<const L: usize> Values for Padded<'_, L> {
    const COLUMNS: bool = true;

    #[inline(always)]
    unsafe fn column(&self, b: usize, feature: usize) -> __m512 {
        // SAFETY: the caller's contract: block `b` is in `cols` and `feature < W`.
        unsafe { _mm512_loadu_ps(self.cols.as_ptr().add(b * (16 << L) + 16 * feature)) }
    }

    #[inline(always)]
    unsafe fn value(&self, b: usize, feat: __m512i) -> __m512 {
        // SAFETY: the caller's contract: block `b`'s `W` registers are in `rows`, and every lane's
        // index (its row's place among the permute's rows × W + its feature) is below 32.
        unsafe {
            let r = self.rows.as_ptr().add(b * (16 << L));
            let place: [i32; 16] = core::array::from_fn(|l| ((l % Self::SPAN) << L) as i32);
            let idx = _mm512_add_epi32(feat, _mm512_loadu_si512(place.as_ptr() as *const _));
            let mut v = [_mm512_setzero_ps(); 8];
            for (j, v) in v.iter_mut().enumerate().take(1 << (L - 1)) {
                *v = _mm512_permutex2var_ps(
                    _mm512_loadu_ps(r.add(32 * j)),
                    idx,
                    _mm512_loadu_ps(r.add(32 * j + 16)),
                );
            }
            // Merge neighbours: the upper of each pair of `width`-lane groups from the second.
            let (mut n, mut width) = (1usize << (L - 1), Self::SPAN);
            while n > 1 {
                let upper = (0..16)
                    .filter(|l| (l / width) % 2 == 1)
                    .fold(0u16, |m, l| m | 1 << l);
                for i in 0..n / 2 {
                    v[i] = _mm512_mask_blend_ps(upper, v[2 * i], v[2 * i + 1]);
                }
                n /= 2;
                width *= 2;
            }
            v[0]
        }
    }
}

/// Widest padding [`Padded`] takes: `2^MAX_PAD_LEVEL` = 16 features.
const MAX_PAD_LEVEL: usize = select_max_features(Isa::Avx512).trailing_zeros() as usize;

/// Lays `x` (rows of `f ≤ 2^L` values) out as [`Padded`] in `rows` and `cols`, which the caller
/// zeroed (the padding stays zero); returns the number of blocks.
fn pad<const L: usize>(x: &[f32], f: usize, rows: &mut [f32], cols: &mut [f32]) -> usize {
    let blocks = (x.len() / f).div_ceil(16);
    for (r, row) in x.chunks_exact(f).enumerate() {
        rows[r << L..(r << L) + f].copy_from_slice(row);
        let at = (r / 16) * (16 << L) + r % 16;
        for (j, &v) in row.iter().enumerate() {
            cols[at + 16 * j] = v;
        }
    }
    blocks
}

/// Adds every tree's path lengths for one tile of rows (at most [`TILE`]), in tree order, to
/// `out` (which the caller zeroed, so the sums are bit-identical to the other paths'), reading
/// the rows' values as `fetch` says (forests of more than `2^MAX_PAD_LEVEL` features always
/// gather).
///
/// # Safety
/// AVX-512F and AVX2; `x` holds `out.len() <= TILE` rows of `forest.n_features` values; `forest`
/// was checked by `Forest::new`.
#[target_feature(enable = "avx512f,avx2")]
pub(crate) unsafe fn add_tile(forest: &Forest, x: &[f32], out: &mut [f32], fetch: Fetch) {
    let f = forest.n_features;
    if f > MAX_FEATURES || forest.heap.iter().any(Option::is_none) {
        // SAFETY: as this function (AVX2 is available).
        unsafe { avx2::add_tile(forest, x, out, Fetch::Gather) };
        return;
    }
    let rows = out.len();
    let mut acc = [0.0f32; TILE];
    // Every tree is in heap order (checked above).
    let trees = || {
        forest
            .heap
            .iter()
            .enumerate()
            .filter_map(|(t, h)| Some((t, (*h)?)))
    };
    if fetch == Fetch::Select && f <= 1 << MAX_PAD_LEVEL {
        macro_rules! permute {
            ($l:literal) => {{
                // Zeroed once, as wide as this forest's padding.
                let (mut rows, mut cols) = ([0.0f32; TILE << $l], [0.0f32; TILE << $l]);
                let blocks = pad::<$l>(x, f, &mut rows, &mut cols);
                let values = Padded::<$l> {
                    rows: &rows,
                    cols: &cols,
                };
                for (t, h) in trees() {
                    // SAFETY: as this function; `values` holds `blocks` blocks of `2^L >= f`
                    // features, `acc` their sums; features are below `f`.
                    unsafe { HeapWalk::new(forest, t, h).walk(&values, &mut acc, blocks) };
                }
            }};
        }
        match f {
            1..=2 => permute!(1),
            3..=4 => permute!(2),
            5..=8 => permute!(3),
            _ => permute!(4),
        }
    } else {
        let (full, rest) = (rows / 16, rows % 16);
        let mut tail = [0.0f32; 16 * MAX_FEATURES];
        tail[..rest * f].copy_from_slice(&x[full * 16 * f..]);
        let (body, last) = acc[..rows.div_ceil(16) * 16].split_at_mut(full * 16);
        // SAFETY: AVX-512F.
        let (rows_x, rows_tail) = unsafe { (Rows::new(x, f), Rows::new(&tail, f)) };
        for (t, h) in trees() {
            // SAFETY: as this function; `x` holds `full` blocks, `tail` one (its padding rows
            // walk valid nodes with zeros and are dropped below); features are below `f`.
            unsafe {
                let walk = HeapWalk::new(forest, t, h);
                walk.walk(&rows_x, body, full);
                if rest > 0 {
                    walk.walk(&rows_tail, last, 1);
                }
            }
        }
    }
    for (o, a) in out.iter_mut().zip(&acc) {
        *o += a;
    }
}
