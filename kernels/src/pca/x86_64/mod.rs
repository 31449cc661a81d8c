//! x86_64 paths: one row per lane.

pub(crate) mod avx2;
pub(crate) mod avx512;
