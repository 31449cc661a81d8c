//! The contracts between stages, below every stage: the alert events shards raise, the scores
//! detectors write, the scored batches shards send to the sink stage, the [`Sink`] trait that file
//! and Kafka outputs implement, and the [`ScoreTap`] through which any consumer of scores (the
//! evaluator, for one) sees every batch as it is scored. Nothing here imports a stage.

use crate::ack::Completion;
use crate::record::{Acks, DeadLetter, NameTable, Origin, RecordBatch, SensorId};
use std::io;
use std::sync::Arc;
use std::time::Instant;

/// Which edge of an episode an alert marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertEvent {
    Open,
    Close,
}

impl AlertEvent {
    pub fn name(self) -> &'static str {
        match self {
            AlertEvent::Open => "open",
            AlertEvent::Close => "close",
        }
    }
}

/// One alert event.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub event: AlertEvent,
    pub sensor: SensorId,
    pub channel: Arc<str>,
    pub detector: Arc<str>,
    /// Event time of the reading that opened or closed the alert (epoch ms).
    pub ts: i64,
    /// Open: event time of the first reading of the streak that opened it. Close: when it opened.
    pub since: i64,
    pub score: f32,
    pub value: f32,
    /// What the detector expected (for the z-score, the rolling mean before this reading).
    pub expected: f32,
    /// Highest score of the episode so far.
    pub peak: f32,
    /// The record that opened or closed the alert.
    pub origin: Origin,
    /// Raised by a shadow detector: goes to the shadow destination only.
    pub shadow: bool,
    /// Why a close did not come from the scores (e.g. the detector was removed); `None` otherwise.
    pub reason: Option<&'static str>,
    /// A multivariate detector's account of an opening record: the channels that contributed most
    /// to its score, with their shares (largest first, summing to at most 1); empty otherwise.
    pub contributions: Vec<(Arc<str>, f32)>,
}

/// What a detector says of one record it scored: which channels made its score, and what it
/// expected of the alert's channel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Explanation {
    pub contributions: Vec<(Arc<str>, f32)>,
    pub expected: Option<f32>,
}

/// Scores of one batch, row-major like the batch's values.
#[derive(Debug, Default)]
pub struct Scores {
    pub score: Vec<f32>,
    pub expected: Vec<f32>,
}

impl Scores {
    /// Sizes both columns to `n` (contents unspecified until a detector writes them).
    pub fn reset(&mut self, n: usize) {
        self.score.resize(n, 0.0);
        self.expected.resize(n, 0.0);
    }
}

/// The name tables alerts and dead letters are printed with.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub sensors: Arc<NameTable>,
    /// Files by path, or topic partitions as `topic/partition`.
    pub sources: Arc<NameTable>,
    /// Whether sources are topic partitions (positions are offsets) rather than files (lines).
    pub kafka: bool,
}

/// A destination for the pipeline's output. Called by the one sink thread.
///
/// Each call carries a [`Completion`]: the sink hands it to its
/// [`AckTracker`](crate::ack::AckTracker) once what it wrote is
/// durable (flushed to a file, or acknowledged by the broker), and only then may the records'
/// offsets be committed.
pub trait Sink: Send {
    /// Writes one batch's alerts (possibly none).
    fn alerts(&mut self, alerts: &[Alert], done: Completion) -> io::Result<()>;
    /// Writes dead letters.
    fn dead_letters(&mut self, dead: &[DeadLetter], done: Completion) -> io::Result<()>;
    /// Makes everything written so far durable (flushed, acknowledged).
    fn flush(&mut self) -> io::Result<()>;
}

/// A scored batch on its way to the sink.
#[derive(Debug)]
pub struct Scored {
    pub alerts: Vec<Alert>,
    pub rows: usize,
    pub read_at: Instant,
    pub sent_at: Instant,
    pub acks: Acks,
    pub source_ms: i64,
    /// Rows re-read to rebuild state (not new work).
    pub replay_only: bool,
}

/// Sees every batch as each detector scores it, on the shard's thread, before the batch moves on:
/// a way for any consumer of scores (the evaluator records every row's score) to watch the
/// pipeline without the pipeline knowing what it is for. Called only when one is attached.
pub trait ScoreTap: Send + Sync + std::fmt::Debug {
    /// Detector number `detector` (in the run's order) named `name` has scored `batch` into
    /// `scores`; `alerts` are the events its alert policy raised for this batch, in row order
    /// (before any replay-only suppression).
    fn scored(
        &self,
        detector: usize,
        name: &Arc<str>,
        batch: &RecordBatch,
        scores: &Scores,
        alerts: &[Alert],
    );
}
