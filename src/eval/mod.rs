//! Evaluation against public benchmarks, scored the way the benchmarks define it.

pub mod nab;
pub mod report;
pub mod run;
pub mod skab;
