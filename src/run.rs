//! What `vigil replay`, `vigil score` and `vigil eval` assemble the same way before their sources
//! differ: the detectors loaded, the name tables, the telemetry, the counters and the ack
//! tracker, then the pipeline started over them.

use crate::ack::AckTracker;
use crate::config::Config;
use crate::contract::{Names, ScoreTap, Sink};
use crate::decode::{Decoder, SensorNaming};
use crate::detectors::{self, LoadError, LoadedDetector};
use crate::pipeline::{self, Ends, PipelineError, Running};
use crate::record::NameTable;
use crate::telemetry::{Counters, Telemetry};
use std::sync::Arc;

/// One run's shared parts.
#[derive(Debug)]
pub struct Run {
    pub detectors: Vec<LoadedDetector>,
    pub names: Names,
    pub telemetry: Arc<Telemetry>,
    pub counters: Arc<Counters>,
    pub tracker: Arc<AckTracker>,
}

impl Run {
    /// Loads `config`'s detectors (reading their models) and makes the run's tables; `kafka`:
    /// its sources are topic partitions (alerts then name offsets, not lines).
    pub fn prepare(config: &Config, kafka: bool) -> Result<Run, LoadError> {
        note_scalar_fallback(config);
        let detectors = detectors::load(config)?;
        let telemetry = Arc::new(Telemetry::default());
        let tracker = Arc::new(AckTracker::new(telemetry.recorders()));
        Ok(Run {
            detectors,
            names: Names {
                sensors: Arc::new(NameTable::default()),
                sources: Arc::new(NameTable::default()),
                kafka,
            },
            telemetry,
            counters: Arc::new(Counters::default()),
            tracker,
        })
    }

    /// A decoder interning into this run's sensor table.
    pub fn decoder(&self, config: &Config, naming: SensorNaming) -> Decoder {
        Decoder::new(
            config.input.clone(),
            self.names.sensors.clone(),
            config.pipeline.batch_size,
            config.pipeline.speed,
        )
        .with_sensor_naming(naming)
    }

    /// Starts the pipeline from `decoder` into `sink`, showing scored batches to `tap`.
    pub fn start(
        &self,
        config: &Config,
        decoder: Decoder,
        sink: Box<dyn Sink>,
        tap: Option<Arc<dyn ScoreTap>>,
    ) -> Result<Running, PipelineError> {
        let ends = Ends {
            decoder,
            sink,
            sensor_names: self.names.sensors.clone(),
            counters: self.counters.clone(),
            tracker: self.tracker.clone(),
        };
        pipeline::start(config, &self.detectors, tap, ends, &self.telemetry)
    }

    /// `detectors …, kernels …, N shards` for the start-up log line.
    pub fn describe(&self, config: &Config) -> String {
        format!(
            "detectors {}, kernels {}, {} shards",
            detectors::names(&self.detectors),
            config.pipeline.isa.describe(),
            config.pipeline.shards
        )
    }
}

/// Says once per process that the kernels run the portable path because this CPU has no vector
/// path they use (a forced `scalar` is not a fallback). Every command that runs kernels calls it.
pub fn note_scalar_fallback(config: &Config) {
    static SAID: std::sync::Once = std::sync::Once::new();
    let choice = config.pipeline.isa;
    if choice.reason == vigil_kernels::isa::Reason::Auto
        && choice.isa == vigil_kernels::isa::Isa::Scalar
    {
        SAID.call_once(|| {
            tracing::warn!(
                "this CPU has neither AVX2 nor AVX-512: the kernels run their portable scalar path"
            )
        });
    }
}
