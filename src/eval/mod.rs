//! Evaluation against public benchmarks, scored the way the benchmarks define it: the scorers
//! ([`nab`], [`skab`]), the harness that runs a detector over a corpus ([`harness`]), the two
//! drivers ([`nab_eval`], [`skab_eval`]) and the HTML report ([`report`]).

pub mod harness;
pub mod nab;
pub mod nab_eval;
pub mod report;
pub mod skab;
pub mod skab_eval;

pub use harness::{EvalError, RowScore};
pub use nab_eval::{eval_nab, NabReport, ProfileLine};
pub use skab_eval::{eval_skab, SkabReport};
