//! x86_64 paths: the readings of 8 (AVX2) or 16 (AVX-512) slots are quantised and their contexts
//! hashed in the lanes of one register; each slot's memory (a bitset of its own, read and written
//! at hashed positions) is then visited lane by lane through [`super::scalar::remember`], the step
//! every path shares. A block where any slot is still learning its range or reads a non-finite
//! value goes through the scalar step as a whole.

pub(crate) mod avx2;
pub(crate) mod avx512;
