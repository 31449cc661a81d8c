//! The pipeline: threads joined by bounded channels.
//!
//! ```text
//! source ─chunks─▶ decode ─batches─▶ route ─┬─▶ shard 0 ─┐
//!                    │                      ├─▶ shard 1 ─┼─scored─▶ sink
//!                    │                      └─▶ shard N ─┘            ▲
//!                    └──────────────dead letters──────────────────────┘
//! ```
//!
//! Every channel is bounded: a slow stage blocks the one before it (backpressure), nothing is
//! dropped. Closing the input drains the pipeline stage by stage. Sources differ (files for
//! replay); everything from decode on is this one pipeline.

pub mod ack;
pub mod route;
pub mod shard;
pub mod sink;

use crate::alert::AlertPolicy;
use crate::config::Config;
use crate::decode::{DecodeCounts, Decoder, Input};
use crate::detectors;
use crate::record::{DeadLetter, NameTable, RecordBatch};
use crate::sinks::Sink;
use crate::telemetry::report::Report;
use crate::telemetry::{Counters, Stage, Telemetry};
use ack::AckTracker;
use crossbeam_channel::{bounded, Sender};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

/// What can stop a running pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot start thread {0}: {1}")]
    Spawn(&'static str, std::io::Error),
    #[error("writing output failed: {0}")]
    Sink(std::io::Error),
    #[error("the {0} stage panicked")]
    Panicked(&'static str),
    #[error("{0}")]
    Detector(String),
}

/// A started pipeline. Send chunks to [`Running::input`], drop it, then [`Running::finish`].
#[derive(Debug)]
pub struct Running {
    input: Option<Sender<Input>>,
    controls: Vec<Sender<shard::Control>>,
    decode: JoinHandle<DecodeCounts>,
    route: JoinHandle<()>,
    shards: Vec<JoinHandle<u64>>,
    sink: JoinHandle<std::io::Result<()>>,
}

/// What a finished pipeline reports.
#[derive(Debug, Clone, Copy)]
pub struct Finished {
    pub decode: DecodeCounts,
    pub alerts_open_at_end: u64,
}

fn spawn<T: Send + 'static>(
    name: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, PipelineError> {
    thread::Builder::new()
        .name(format!("vigil-{name}"))
        .spawn(f)
        .map_err(|e| PipelineError::Spawn(name, e))
}

/// Starts decode, route, shards and sink. The sink must report to `tracker`.
pub fn start(
    config: &Config,
    mut decoder: Decoder,
    sink: Box<dyn Sink>,
    sensor_names: Arc<NameTable>,
    counters: Arc<Counters>,
    telemetry: &Telemetry,
    tracker: Arc<AckTracker>,
) -> Result<Running, PipelineError> {
    let p = &config.pipeline;
    let cap = p.channel_capacity;
    let (input_tx, input_rx) = bounded::<Input>(cap);
    let (batch_tx, batch_rx) = bounded::<RecordBatch>(cap);
    let (dead_tx, dead_rx) = bounded::<Vec<DeadLetter>>(cap);
    let (scored_tx, scored_rx) = bounded::<shard::Scored>(cap * p.shards);

    let sink = {
        let (counters, rec) = (counters.clone(), telemetry.recorders());
        spawn("sink", move || {
            sink::run(scored_rx, dead_rx, sink, counters, rec)
        })?
    };

    let mut shard_txs = Vec::with_capacity(p.shards);
    let mut shards = Vec::with_capacity(p.shards);
    let mut controls = Vec::with_capacity(p.shards);
    for _ in 0..p.shards {
        let (tx, rx) = bounded::<RecordBatch>(cap);
        shard_txs.push(tx);
        let dets = detectors::build(&config.detectors, p.isa, &sensor_names)
            .map_err(PipelineError::Detector)?
            .into_iter()
            .zip(&config.detectors)
            .map(|(detector, c)| shard::DetectorSlot {
                detector,
                policy: AlertPolicy::new(c.policy),
                shadow: c.shadow,
                identity: c.identity.clone(),
            })
            .collect();
        let (control_tx, control_rx) = crossbeam_channel::unbounded();
        controls.push(control_tx);
        let worker = shard::Shard::new(
            dets,
            counters.clone(),
            p.batch_size,
            p.linger,
            p.emit_scores,
        )
        .with_control(control_rx);
        let (out, rec) = (scored_tx.clone(), telemetry.recorders());
        shards.push(spawn("shard", move || worker.run(rx, out, rec))?);
    }
    drop(scored_tx);

    let route = {
        let rec = telemetry.recorders();
        spawn("route", move || {
            route::run(batch_rx, shard_txs, sensor_names, rec)
        })?
    };

    let decode = {
        let mut rec = telemetry.recorders();
        spawn("decode", move || {
            let mut dead = Vec::new();
            for input in input_rx {
                rec.record(Stage::QueueWait, input.sent_at().elapsed());
                let t0 = Instant::now();
                let produced = |c: &DecodeCounts| c.records + c.rewound + c.dead_letters;
                let before = produced(&decoder.counts);
                let mut emit = |mut b: RecordBatch| {
                    b.sent_at = Instant::now();
                    batch_tx.send(b).is_ok()
                };
                let mut ok = decoder.input(&input, &mut dead, &mut emit);
                rec.record(Stage::Decode, t0.elapsed());
                if !dead.is_empty() {
                    ok &= dead_tx.send(std::mem::take(&mut dead)).is_ok();
                }
                if let Input::Messages(m) = &input {
                    tracker.expect(m.ticket, produced(&decoder.counts) - before);
                }
                let c = decoder.counts;
                counters.records.store(c.records, Ordering::Relaxed);
                counters
                    .dead_letters
                    .store(c.dead_letters, Ordering::Relaxed);
                counters
                    .readings_skipped
                    .store(c.readings_skipped, Ordering::Relaxed);
                if !ok {
                    break;
                }
            }
            decoder.counts
        })?
    };

    Ok(Running {
        input: Some(input_tx),
        controls,
        decode,
        route,
        shards,
        sink,
    })
}

impl Finished {
    /// The run's summary: counts, throughput since `started`, and every stage's latency.
    pub fn report(
        &self,
        started: Instant,
        counters: &Counters,
        pipeline: &crate::config::PipelineConfig,
        telemetry: &Telemetry,
    ) -> Report {
        let elapsed = started.elapsed().as_secs_f64();
        let records = self.decode.records;
        Report {
            elapsed_s: elapsed,
            records,
            records_per_s: records as f64 / elapsed.max(1e-9),
            dead_letters: self.decode.dead_letters,
            readings_skipped: self.decode.readings_skipped,
            alerts_opened: Counters::get(&counters.alerts_opened),
            alerts_closed: Counters::get(&counters.alerts_closed),
            alerts_open_at_end: self.alerts_open_at_end,
            isa: pipeline.isa.name().to_string(),
            shards: pipeline.shards,
            stages: telemetry.snapshot(),
            detectors: crate::telemetry::report::DetectorLine::from_counters(counters),
        }
    }
}

impl Running {
    /// Replaces the detectors with `detectors`, between batches, in every shard. Detectors of an
    /// identity already running keep their state; the others are built here, on the caller's
    /// thread (off the hot path), one per shard. Fails, changing nothing, if one cannot be built.
    pub fn reconfigure(
        &self,
        running: &[crate::config::DetectorConfig],
        detectors: &[crate::config::DetectorConfig],
        isa: vigil_kernels::isa::Isa,
        sensor_names: &Arc<crate::record::NameTable>,
    ) -> Result<(), String> {
        let mut per_shard = Vec::with_capacity(self.controls.len());
        for _ in &self.controls {
            let fresh = detectors
                .iter()
                .map(|d| {
                    if running.iter().any(|r| r.identity == d.identity) {
                        Ok(None)
                    } else {
                        detectors::build(std::slice::from_ref(d), isa, sensor_names)
                            .map(|mut v| v.pop())
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            per_shard.push(fresh);
        }
        for (tx, fresh) in self.controls.iter().zip(per_shard) {
            let _ = tx.send(shard::Control {
                detectors: detectors.to_vec(),
                fresh,
            });
        }
        Ok(())
    }

    /// Where the source sends its input.
    pub fn input(&self) -> Sender<Input> {
        self.input.clone().expect("input is only taken by finish")
    }

    /// Closes the input, waits for every stage to drain, and reports.
    pub fn finish(mut self) -> Result<Finished, PipelineError> {
        drop(self.input.take());
        let decode = self
            .decode
            .join()
            .map_err(|_| PipelineError::Panicked("decode"))?;
        self.route
            .join()
            .map_err(|_| PipelineError::Panicked("route"))?;
        let mut open = 0;
        for s in self.shards {
            open += s.join().map_err(|_| PipelineError::Panicked("shard"))?;
        }
        self.sink
            .join()
            .map_err(|_| PipelineError::Panicked("sink"))?
            .map_err(PipelineError::Sink)?;
        Ok(Finished {
            decode,
            alerts_open_at_end: open,
        })
    }
}
