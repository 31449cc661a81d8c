//! x86_64 paths.

pub(crate) mod avx2;
