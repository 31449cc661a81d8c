//! Vigil: real-time anomaly detection for sensor streams.
//!
//! Records flow through one pipeline of threads joined by bounded channels (see [`pipeline`]):
//! a source (files for [`replay`]), [`decode`], route, shard workers that own their sensors' state
//! and run the [`detectors`] and the [`alert`] policy, and a sink. Compute kernels live in the
//! `vigil-kernels` crate, apart from all I/O.
//!
//! ARCHITECTURE.md beside the README describes the threads, channels and stages in detail.

pub mod alert;
pub mod compare;
pub mod config;
pub mod decode;
pub mod detectors;
pub mod eval;
pub mod iforest;
pub mod onnx;
pub mod pipeline;
pub mod produce;
pub mod record;
pub mod replay;
pub mod score;
pub mod simulate;
pub mod sinks;
pub mod sources;
pub mod telemetry;
pub mod time;
