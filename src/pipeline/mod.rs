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

pub mod decode;
pub mod route;
pub mod shard;
pub mod sink;
pub mod slots;

use crate::ack::AckTracker;
use crate::config::Config;
use crate::contract::{ScoreTap, Scored, Sink};
use crate::decode::{DecodeCounts, Decoder, Input};
use crate::detectors::{self, BuildError, LoadedDetector};
use crate::record::{DeadLetter, NameTable, RecordBatch};
use crate::telemetry::report::Report;
use crate::telemetry::{Counters, Telemetry};
use crossbeam_channel::{bounded, Sender};
use slots::{DetectorSlot, Slots};
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
    #[error(transparent)]
    Detector(#[from] BuildError),
}

/// A started pipeline. Send chunks to [`Running::input`], drop it, then [`Running::finish`].
#[derive(Debug)]
pub struct Running {
    input: Option<Sender<Input>>,
    controls: Vec<Sender<slots::Control>>,
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

/// The stage ends a pipeline is started with.
pub struct Ends {
    pub decoder: Decoder,
    /// Must report what it made durable to `tracker`.
    pub sink: Box<dyn Sink>,
    pub sensor_names: Arc<NameTable>,
    pub counters: Arc<Counters>,
    pub tracker: Arc<AckTracker>,
}

impl std::fmt::Debug for Ends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ends")
            .field("decoder", &self.decoder)
            .finish_non_exhaustive()
    }
}

/// Starts decode, route, shards (each running its own instances of `detectors`, showing every
/// scored batch to `tap` when there is one) and sink.
pub fn start(
    config: &Config,
    detectors: &[LoadedDetector],
    tap: Option<Arc<dyn ScoreTap>>,
    ends: Ends,
    telemetry: &Telemetry,
) -> Result<Running, PipelineError> {
    let Ends {
        decoder,
        sink,
        sensor_names,
        counters,
        tracker,
    } = ends;
    let p = &config.pipeline;
    let cap = p.channel_capacity;
    let (input_tx, input_rx) = bounded::<Input>(cap);
    let (batch_tx, batch_rx) = bounded::<RecordBatch>(cap);
    let (dead_tx, dead_rx) = bounded::<Vec<DeadLetter>>(cap);
    let (scored_tx, scored_rx) = bounded::<Scored>(cap * p.shards);

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
        let dets = detectors::build(detectors, p.isa(), &sensor_names)?
            .into_iter()
            .zip(detectors)
            .map(|(detector, c)| DetectorSlot::new(detector, c))
            .collect();
        let (control_tx, control_rx) = crossbeam_channel::unbounded();
        controls.push(control_tx);
        let worker = shard::Shard::new(
            Slots::new(dets).with_control(control_rx),
            counters.clone(),
            p.batch_size,
            p.linger,
        )
        .with_tap(tap.clone());
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
        let rec = telemetry.recorders();
        let out = decode::Outputs {
            batches: batch_tx,
            dead: dead_tx,
        };
        spawn("decode", move || {
            decode::run(input_rx, decoder, out, &tracker, &counters, rec)
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
            isa: pipeline.isa().name().to_string(),
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
        running: &[LoadedDetector],
        detectors: &[LoadedDetector],
        isa: vigil_kernels::isa::Isa,
        sensor_names: &Arc<crate::record::NameTable>,
    ) -> Result<(), BuildError> {
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
            let _ = tx.send(slots::Control {
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
