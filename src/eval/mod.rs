//! Evaluation against public benchmarks, scored the way the benchmarks define it.

pub mod nab;
pub mod run;
pub mod skab;
