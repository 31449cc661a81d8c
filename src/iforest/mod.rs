//! Isolation-forest models: their features, their file format, training from recordings, and
//! import from ONNX. Scoring and growing trees are compute kernels (`vigil_kernels::iforest`).

pub mod features;
pub mod model;
pub mod onnx;
pub mod train;
