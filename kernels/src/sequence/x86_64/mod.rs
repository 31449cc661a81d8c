//! x86_64 paths: the readings of 8 (AVX2) or 16 (AVX-512) slots are quantised and their contexts
//! hashed in the lanes of one register; each slot's memory (a bitset of its own, read and written
//! at hashed positions) is then visited lane by lane through [`super::scalar::remember`], the step
//! every path shares. A block where any slot is still learning its range or reads a non-finite
//! value goes through the scalar step as a whole.

pub(crate) mod avx2;
pub(crate) mod avx512;

use super::NoveltyParams;

/// The hour of reading `i` for the scalar step (unused unless `p.time_of_day`).
#[inline]
fn hour(p: &NoveltyParams, hours: &[i32], i: usize) -> i32 {
    if p.time_of_day {
        hours[i]
    } else {
        0
    }
}
