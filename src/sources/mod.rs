//! Where records come from. Replay reads files ([`file`]); every source feeds the same pipeline.

pub mod file;
pub mod kafka;
