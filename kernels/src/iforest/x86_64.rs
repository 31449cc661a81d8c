//! AVX2 path: 8 rows walk a tree at once with gathers, scalar tail.

use super::{scalar, Forest};
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
    // SAFETY: rows `r..r + 8` exist (r < body); every node index is a valid node (roots and
    // children were checked by `Forest::new`, a leaf points at itself); feature indices are below
    // `f`, so `lane * f + feature` stays inside the 8 rows starting at `xp`.
    unsafe {
        let mut r = 0;
        while r < body {
            let xp = x.as_ptr().add(r * f);
            let mut node = root;
            for _ in 0..steps {
                let feat = _mm256_i32gather_epi32::<4>(fp, node);
                let thr = _mm256_i32gather_ps::<4>(tp, node);
                let v = _mm256_i32gather_ps::<4>(xp, _mm256_add_epi32(lane_offsets, feat));
                let child = _mm256_i32gather_epi32::<4>(cp, node);
                // x <= thr (false for NaN on either side): left = child, else right = child + 1.
                let le = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(v, thr));
                node = _mm256_add_epi32(child, _mm256_andnot_si256(le, one));
            }
            let h = _mm256_i32gather_ps::<4>(vp, node);
            let op = out.as_mut_ptr().add(r);
            _mm256_storeu_ps(op, _mm256_add_ps(_mm256_loadu_ps(op), h));
            r += 8;
        }
    }
    scalar::add_tree(forest, t, &x[body * f..], &mut out[body..]);
}
