//! Vigil: real-time anomaly detection for sensor streams.
//!
//! Records flow through one pipeline of threads joined by bounded channels (see [`pipeline`]):
//! a source (files for [`replay`]), [`decode`], route, shard workers that own their sensors' state
//! and run the [`detectors`] and the [`alert`] policy, and a sink. Compute kernels live in the
//! `vigil-kernels` crate, apart from all I/O.
//!
//! ARCHITECTURE.md beside the README describes the threads, channels and stages in detail.

// Ground: types, contracts and configuration, importing nothing above them.
pub mod ack;
pub mod config;
pub mod contract;
pub mod manifest;
pub mod record;
pub mod telemetry;
pub mod time;

// Compute and decoding: detectors and their models, the alert policy, decoders.
pub mod alert;
pub mod decode;
pub mod detectors;
pub mod iforest;
pub mod onnx;

// Stages: where records come from and alerts go.
pub mod kafka;
pub mod sinks;
pub mod sources;

// The pipeline of threads that joins them.
pub mod pipeline;

// Entry points: what the `vigil` commands run.
pub mod compare;
pub mod eval;
pub mod produce;
pub mod replay;
pub mod run;
pub mod score;
pub mod simulate;
pub mod train;
