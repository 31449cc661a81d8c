//! Per-stage latency and run counters.
//!
//! Each stage thread records into its own [`Recorders`] (hdrhistograms behind a lock only it and
//! the reporter ever take); [`Telemetry::snapshot`] merges them whenever the summary, the periodic
//! log or `/metrics` asks. Latencies are recorded per batch, never per event, except end-to-end,
//! which is weighted by the batch's record count so its percentiles are per record.

pub mod http;
pub mod report;

use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A measured stage of the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Parsing one chunk of input into batches.
    Decode,
    /// A batch waiting in a channel between two stages (one sample per hop).
    QueueWait,
    /// A shard holding rows while it fills a batch.
    BatchLinger,
    /// Running the detectors over one batch.
    Scoring,
    /// The alert policy (hysteresis) over one batch's scores.
    AlertPolicy,
    /// Writing one batch's alerts to the sink.
    SinkWrite,
    /// From the source reading a record to its alerts being written (per record).
    EndToEnd,
    /// From a record's Kafka timestamp to the broker acknowledging its alerts (live only,
    /// millisecond resolution).
    KafkaToAck,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::Decode,
        Stage::QueueWait,
        Stage::BatchLinger,
        Stage::Scoring,
        Stage::AlertPolicy,
        Stage::SinkWrite,
        Stage::EndToEnd,
        Stage::KafkaToAck,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::QueueWait => "queue_wait",
            Stage::BatchLinger => "batch_linger",
            Stage::Scoring => "scoring",
            Stage::AlertPolicy => "alert_policy",
            Stage::SinkWrite => "sink_write",
            Stage::EndToEnd => "end_to_end",
            Stage::KafkaToAck => "kafka_to_ack",
        }
    }
}

/// Latencies up to an hour, in nanoseconds, 2 significant digits (a quantile within 1 %). A
/// snapshot merges every thread's histograms: at 2 digits each is 34 KB and a snapshot took
/// 130 µs; at 3 digits, 270 KB and 2 ms (measured on an AMD EPYC), which a scraper polling
/// `/metrics` often took from the pipeline's cores.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 2).expect("static histogram bounds are valid")
}

type StageHistograms = Arc<Mutex<Vec<Histogram<u64>>>>;

/// Every thread's histograms, merged on demand.
#[derive(Debug, Default)]
pub struct Telemetry {
    threads: Mutex<Vec<StageHistograms>>,
}

impl Telemetry {
    /// A set of recorders for one thread.
    pub fn recorders(&self) -> Recorders {
        let h: StageHistograms = Arc::new(Mutex::new(
            Stage::ALL.iter().map(|_| new_histogram()).collect(),
        ));
        self.threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(h.clone());
        Recorders { per_stage: h }
    }

    /// Merges every thread's histograms as they are now and summarizes each stage.
    pub fn snapshot(&self) -> Vec<StageStats> {
        let mut merged: Vec<Histogram<u64>> = Stage::ALL.iter().map(|_| new_histogram()).collect();
        for t in self
            .threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let t = t.lock().unwrap_or_else(PoisonError::into_inner);
            for (m, h) in merged.iter_mut().zip(t.iter()) {
                // Same bounds on both sides: adding cannot fail.
                let _ = m.add(h);
            }
        }
        Stage::ALL
            .iter()
            .zip(&merged)
            .map(|(stage, h)| StageStats::of(stage.name(), h))
            .collect()
    }
}

/// One thread's histograms. Recording takes an uncontended lock, once per batch (the reporter
/// takes it only while it merges), which keeps snapshots fresh at any time.
#[derive(Debug)]
pub struct Recorders {
    per_stage: StageHistograms,
}

impl Recorders {
    /// Records one sample.
    #[inline]
    pub fn record(&mut self, stage: Stage, d: Duration) {
        self.record_n(stage, d, 1);
    }

    /// Records `n` samples of the same value.
    #[inline]
    pub fn record_n(&mut self, stage: Stage, d: Duration, n: u64) {
        let ns = (d.as_nanos() as u64).max(1);
        let mut h = self
            .per_stage
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        h[stage as usize].saturating_record_n(ns, n);
    }
}

/// Percentiles of one stage, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct StageStats {
    pub stage: &'static str,
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

impl StageStats {
    fn of(stage: &'static str, h: &Histogram<u64>) -> StageStats {
        let us = |ns: u64| ns as f64 / 1000.0;
        StageStats {
            stage,
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1000.0,
        }
    }
}

/// Run-wide counts, published by the stages once per chunk or batch.
#[derive(Debug, Default)]
pub struct Counters {
    pub bytes_read: AtomicU64,
    pub records: AtomicU64,
    pub dead_letters: AtomicU64,
    pub readings_skipped: AtomicU64,
    pub records_done: AtomicU64,
    /// When `records_done` last grew, in µs since the Unix epoch (0: not yet).
    pub last_done_us: AtomicU64,
    pub alerts_opened: AtomicU64,
    pub alerts_closed: AtomicU64,
    /// Detector reconfigurations applied, and refused (the running detectors stayed).
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    /// Per detector, by name: time spent scoring and records scored (all shards).
    pub detectors: std::sync::Mutex<Vec<DetectorCost>>,
    /// The store-and-forward spool, when one is set (`None` otherwise).
    pub spool: std::sync::OnceLock<std::sync::Arc<SpoolGauges>>,
}

/// What the spool holds and has done.
#[derive(Debug, Default)]
pub struct SpoolGauges {
    /// Bytes of its segments on disk.
    pub bytes: AtomicU64,
    /// Messages stored and not yet acknowledged by the uplink.
    pub messages: AtomicU64,
    /// 1 while it is full and input waits.
    pub full: AtomicU64,
    /// Messages the uplink acknowledged.
    pub forwarded: AtomicU64,
    /// Torn records skipped after a crash.
    pub torn: AtomicU64,
}

/// One detector's cost so far.
#[derive(Debug, Clone)]
pub struct DetectorCost {
    pub name: std::sync::Arc<str>,
    /// Its role at the last batch.
    pub role: &'static str,
    pub records: u64,
    /// Records it scored while serving (the rest while shadow).
    pub serving_records: u64,
    pub ns: u64,
}

impl Counters {
    /// Adds `ns` spent scoring `records` records to `name`'s cost.
    pub fn detector_cost(&self, name: &std::sync::Arc<str>, shadow: bool, records: u64, ns: u64) {
        let mut d = self
            .detectors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match d.iter_mut().find(|c| c.name == *name) {
            Some(c) => {
                c.records += records;
                c.serving_records += if shadow { 0 } else { records };
                c.ns += ns;
                c.role = if shadow { "shadow" } else { "serving" };
            }
            None => d.push(DetectorCost {
                name: name.clone(),
                role: if shadow { "shadow" } else { "serving" },
                records,
                serving_records: if shadow { 0 } else { records },
                ns,
            }),
        }
    }
}

impl Counters {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}
