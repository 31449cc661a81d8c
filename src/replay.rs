//! Offline replay: recorded files through the same pipeline the live scorer uses.

use crate::ack::AckTracker;
use crate::config::Config;
use crate::contract::{Names, ScoreTap, Sink};
use crate::decode::SensorNaming;
use crate::detectors::LoadError;
use crate::pipeline::PipelineError;
use crate::record::Interner;
use crate::run::Run;
use crate::sinks::file::FileSink;
use crate::sources::file::{self, InputError};
use crate::telemetry::report::Report;
use crate::telemetry::Counters;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A file cannot be opened or has no usable header (a usage error: nothing ran).
    #[error(transparent)]
    Input(InputError),
    /// A detector's model cannot be loaded (a usage error: nothing ran).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// An output file cannot be created (a usage error: nothing ran).
    #[error("cannot write {path}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An output would overwrite an input (a usage error: nothing ran).
    #[error("{output} is also an input: refusing to overwrite the recording")]
    OutputIsInput { output: PathBuf },
    /// Reading input failed part-way.
    #[error("reading input failed: {0}")]
    Read(InputError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

impl ReplayError {
    /// Whether the error is the user's to fix before anything ran (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ReplayError::Input(e) if !matches!(e, InputError::Stopped { .. })
        ) || matches!(
            self,
            ReplayError::Output { .. } | ReplayError::OutputIsInput { .. } | ReplayError::Load(_)
        )
    }
}

/// How a replay runs beyond its configuration.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Draw a progress bar on stderr when it is a terminal.
    pub progress: bool,
    /// How files without a sensor column name their sensor.
    pub naming: SensorNaming,
    /// Shown every scored batch (see [`ScoreTap`]).
    pub tap: Option<Arc<dyn ScoreTap>>,
}

/// Replays `files` in order into the configured alert files. `stop` ends the replay early (the
/// pipeline still drains).
pub fn replay(
    config: &Config,
    files: &[PathBuf],
    stop: Arc<AtomicBool>,
    options: ReplayOptions,
) -> Result<Report, ReplayError> {
    check_outputs(config, files)?;
    replay_into(config, files, stop, options, |names, tracker| {
        let sink = FileSink::create(
            config.output.alerts.as_deref(),
            &config.output.shadow_alerts,
            &config.output.dead_letter,
            names,
            tracker,
        )
        .map_err(|(path, source)| ReplayError::Output { path, source })?;
        Ok(Box::new(sink))
    })
}

/// Refuses outputs that are inputs, and a metrics file whose directory is missing, before
/// anything is opened for writing.
fn check_outputs(config: &Config, files: &[PathBuf]) -> Result<(), ReplayError> {
    let out = &config.output;
    let outputs = out
        .alerts
        .iter()
        .chain([&out.shadow_alerts, &out.dead_letter])
        .chain(out.metrics.iter());
    for output in outputs {
        if files.iter().any(|f| file::same_file(f, output)) {
            return Err(ReplayError::OutputIsInput {
                output: output.clone(),
            });
        }
    }
    if let Some(metrics) = &out.metrics {
        if !crate::sinks::file::in_existing_dir(metrics) {
            return Err(ReplayError::Output {
                path: metrics.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
            });
        }
    }
    Ok(())
}

/// [`replay`] into the sink `make_sink` builds (from the name tables and the ack tracker it must
/// report to).
pub fn replay_into(
    config: &Config,
    files: &[PathBuf],
    stop: Arc<AtomicBool>,
    options: ReplayOptions,
    make_sink: impl FnOnce(Names, Arc<AckTracker>) -> Result<Box<dyn Sink>, ReplayError>,
) -> Result<Report, ReplayError> {
    let run = Run::prepare(config, false)?;
    let mut decoder = run.decoder(config, options.naming).with_stop(stop.clone());
    let mut sources = Interner::new(run.names.sources.clone());
    let inputs = files
        .iter()
        .map(|f| file::open(f, &mut decoder, &mut sources, &stop))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ReplayError::Input)?;
    let total_bytes: u64 = inputs.iter().map(|i| i.len).sum();
    let sink = make_sink(run.names.clone(), run.tracker.clone())?;

    tracing::info!(
        "replaying {} file(s): {}",
        files.len(),
        run.describe(config)
    );
    let counters = run.counters.clone();
    let started = Instant::now();
    let running = run.start(config, decoder, sink, options.tap)?;
    let source = {
        let (tx, counters, stop) = (running.input(), counters.clone(), stop.clone());
        std::thread::Builder::new()
            .name("vigil-source".into())
            .spawn(move || file::read(inputs, &tx, &stop, &counters.bytes_read))
            .map_err(|e| PipelineError::Spawn("source", e))?
    };
    let done = Arc::new(AtomicBool::new(false));
    let bar = (options.progress && std::io::stderr().is_terminal()).then(|| {
        let (done, counters) = (done.clone(), counters.clone());
        std::thread::spawn(move || progress_bar(&done, &counters, total_bytes, started))
    });

    let read = source
        .join()
        .map_err(|_| PipelineError::Panicked("source"))?;
    let finished = running.finish();
    done.store(true, Ordering::Relaxed);
    if let Some(bar) = bar {
        let _ = bar.join();
    }
    let finished = finished?;
    read.map_err(ReplayError::Read)?;
    Ok(finished.report(started, &counters, &config.pipeline, &run.telemetry))
}

fn progress_bar(done: &AtomicBool, counters: &Counters, total: u64, started: Instant) {
    let mut err = std::io::stderr();
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        let read = Counters::get(&counters.bytes_read);
        let frac = if total == 0 {
            1.0
        } else {
            read as f64 / total as f64
        };
        let filled = (frac * 30.0) as usize;
        let records = Counters::get(&counters.records_done);
        let rate = records as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let _ = write!(
            err,
            "\r[{}{}] {:>3.0}%  {} records  {:.0} records/s ",
            "#".repeat(filled.min(30)),
            " ".repeat(30 - filled.min(30)),
            frac * 100.0,
            records,
            rate
        );
    }
    let _ = write!(err, "\r{}\r", " ".repeat(80));
}

/// Writes the report as JSON.
pub fn write_metrics(report: &Report, path: &Path) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(path, json)
}
