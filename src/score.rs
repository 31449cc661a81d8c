//! The long-running scorer: Kafka (or MQTT) in, the same pipeline as replay, Kafka out.

use crate::config::{Config, Delivery, Overrides};
use crate::decode::SensorNaming;
use crate::detectors::{LoadError, LoadedDetector};
use crate::kafka::health::Health;
use crate::kafka::ConsumerStatus;
use crate::pipeline::{self, PipelineError};
use crate::record::{Interner, NameTable};
use crate::run::Run;
use crate::sinks::kafka::{KafkaSink, SinkError, SpoolSetup};
use crate::sources::kafka::KafkaSource;
use crate::sources::mqtt::MqttSource;
use crate::telemetry::http::{self, HttpState};
use crate::telemetry::report::Report;
use crate::telemetry::{Counters, Stage, Telemetry};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Why the scorer stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error(
        "no input topics: set kafka.input_topics, VIGIL_INPUT_TOPICS or --topic (Kafka), or \
         mqtt.topics or VIGIL_MQTT_TOPICS (MQTT)"
    )]
    NoTopics,
    #[error("both kafka.input_topics and mqtt.topics are set: one scorer reads one of them")]
    TwoInputs,
    #[error(
        "kafka.delivery = \"exactly-once\" needs Kafka input: an MQTT acknowledgement cannot \
         join a Kafka transaction (use at-least-once with mqtt.topics)"
    )]
    MqttExactlyOnce,
    #[error(
        "edge.spool_dir cannot be used with kafka.delivery = \"exactly-once\": spooled alerts \
         leave the transaction that commits their input"
    )]
    SpoolExactlyOnce,
    /// The spool directory cannot be opened or read.
    #[error("{0}")]
    Spool(String),
    /// A detector's model cannot be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// librdkafka refused the settings (e.g. an unknown or unsupported property).
    #[error("cannot create the Kafka {client}: {error}")]
    Client {
        client: &'static str,
        error: rdkafka::error::KafkaError,
    },
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        addr: std::net::SocketAddr,
        error: std::io::Error,
    },
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// TLS or SASL refused: a configuration error (exit 2).
    #[error("{0}")]
    Security(String),
    /// Exactly-once mode: a transaction could not be started or committed.
    #[error("{0}")]
    Transaction(String),
}

impl ScoreError {
    /// Whether it is the user's to fix before anything ran (exit code 2).
    pub fn is_usage(&self) -> bool {
        !matches!(self, ScoreError::Pipeline(_) | ScoreError::Transaction(_))
    }
}

/// Where `vigil score` re-reads its detectors from while it runs.
#[derive(Debug, Clone)]
pub struct Reload {
    /// The configuration file.
    pub config: std::path::PathBuf,
    /// The command line's settings, applied again over the file on reload.
    pub overrides: Overrides,
    /// Set by SIGHUP: reload now.
    pub hup: Arc<AtomicBool>,
    /// How often the files are checked for changes.
    pub every: Duration,
}

/// The files a reload depends on: the configuration and every model file and manifest it names.
fn watched(config_path: &std::path::Path, detectors: &[LoadedDetector]) -> Vec<std::path::PathBuf> {
    let mut files = vec![config_path.to_path_buf()];
    files.extend(detectors.iter().flat_map(|d| d.files.iter().cloned()));
    files
}

fn mtimes(files: &[std::path::PathBuf]) -> Vec<Option<std::time::SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

/// Watches the configuration (and the models it names) and SIGHUP; on a change, loads and checks
/// the new detectors here, off the hot path, and hands them to the shards, which swap them in
/// between batches. A configuration or model that fails to load leaves the running detectors in
/// place and is reported with its reason. Only `[[detectors]]`, `[alerts]` and `[onnx]` are
/// re-read; a change to any other section is named in a warning: it takes effect on restart.
fn watch(
    started_with: &Config,
    reload: &Reload,
    running: &pipeline::Running,
    mut current: Vec<LoadedDetector>,
    sensor_names: &Arc<NameTable>,
    counters: &Counters,
    watching: &AtomicBool,
) {
    let mut files = watched(&reload.config, &current);
    let mut seen = mtimes(&files);
    let mut next = Instant::now() + reload.every;
    while watching.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let hup = reload.hup.swap(false, Ordering::Relaxed);
        if !hup && Instant::now() < next {
            continue;
        }
        next = Instant::now() + reload.every;
        let now = mtimes(&files);
        if !hup && now == seen {
            continue;
        }
        seen = now;
        let result = crate::config::load(Some(&reload.config), &reload.overrides)
            .map_err(|e| format!("{:#}", anyhow::Error::new(e)))
            .and_then(|new| {
                let restart = needs_restart(started_with, &new);
                if !restart.is_empty() {
                    tracing::warn!(
                        "{}: the changes to {} take effect only when vigil restarts; the running \
                         ones stay",
                        reload.config.display(),
                        restart.join(", ")
                    );
                }
                let detectors = crate::detectors::load(&new)
                    .map_err(|e| format!("{:#}", anyhow::Error::new(e)))?;
                running
                    .reconfigure(&current, &detectors, new.pipeline.isa(), sensor_names)
                    .map_err(|e| format!("{:#}", anyhow::Error::new(e)))?;
                Ok(detectors)
            });
        match result {
            Ok(new) => {
                Counters::add(&counters.reloads, 1);
                tracing::info!(
                    "reloaded {}: detectors {}",
                    reload.config.display(),
                    describe(&new)
                );
                files = watched(&reload.config, &new);
                seen = mtimes(&files);
                current = new;
            }
            Err(e) => {
                Counters::add(&counters.reload_failures, 1);
                tracing::error!(
                    "reload of {} failed, the running detectors stay: {e}",
                    reload.config.display()
                );
            }
        }
    }
}

/// The sections a reload does not apply that differ between `old` and `new`.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    [
        ("[input]", differs(&old.input, &new.input)),
        ("[pipeline]", differs(&old.pipeline, &new.pipeline)),
        ("[output]", differs(&old.output, &new.output)),
        ("[kafka]", differs(&old.kafka, &new.kafka)),
        ("[mqtt]", differs(&old.mqtt, &new.mqtt)),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

fn describe(d: &[LoadedDetector]) -> String {
    d.iter()
        .map(|d| format!("{}{}", d.name, if d.shadow { " (shadow)" } else { "" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where `vigil score` reads records.
#[derive(Debug)]
enum Source {
    Kafka(KafkaSource),
    Mqtt(Box<MqttSource>),
}

impl Source {
    fn run(
        self,
        out: crossbeam_channel::Sender<crate::decode::Input>,
        stop: &AtomicBool,
        drained: crossbeam_channel::Receiver<()>,
    ) -> Result<(), String> {
        match self {
            Source::Kafka(s) => s.run(out, stop, drained),
            Source::Mqtt(s) => s.run(out, stop, drained),
        }
    }
}

/// Runs until `stop` is set (SIGINT/SIGTERM) or the pipeline fails, then drains: stops consuming,
/// scores what is in flight, waits for the broker to acknowledge every alert, commits, and reports.
/// With `reload`, detectors are swapped in while it runs when their configuration changes.
pub fn score(
    config: &Config,
    stop: Arc<AtomicBool>,
    reload: Option<Reload>,
) -> Result<Report, ScoreError> {
    let k = &config.kafka;
    let mqtt = !config.mqtt.topics.is_empty();
    match (k.input_topics.is_empty(), mqtt) {
        (true, false) => return Err(ScoreError::NoTopics),
        (false, true) => return Err(ScoreError::TwoInputs),
        _ => {}
    }
    if mqtt && k.delivery != Delivery::AtLeastOnce {
        return Err(ScoreError::MqttExactlyOnce);
    }
    if config.spool.is_some() && k.delivery != Delivery::AtLeastOnce {
        return Err(ScoreError::SpoolExactlyOnce);
    }
    let run = Run::prepare(config, true)?;
    crate::kafka::check_security(k).map_err(ScoreError::Security)?;
    let (names, tracker, telemetry, counters) = (
        run.names.clone(),
        run.tracker.clone(),
        run.telemetry.clone(),
        run.counters.clone(),
    );
    let decoder = run.decoder(config, SensorNaming::default());
    let health = Arc::new(Health::default());
    let spool = config.spool.as_ref().map(|c| SpoolSetup {
        config: c,
        gauges: counters.spool.get_or_init(Default::default).clone(),
        stop: stop.clone(),
    });
    let (sink, failed) = KafkaSink::new(k, names.clone(), tracker.clone(), health.clone(), spool)
        .map_err(|error| match error {
        SinkError::Kafka(rdkafka::error::KafkaError::Transaction(e)) => ScoreError::Transaction(
            format!("cannot start the producer's transactions (is the broker reachable?): {e}"),
        ),
        SinkError::Kafka(error) => ScoreError::Client {
            client: "producer",
            error,
        },
        e @ SinkError::Spool(..) => ScoreError::Spool(e.to_string()),
    })?;
    let status = Arc::new(Mutex::new(ConsumerStatus::default()));
    let source = if mqtt {
        Source::Mqtt(Box::new(MqttSource::new(
            &config.mqtt,
            Interner::new(names.sources.clone()),
            tracker.clone(),
            status.clone(),
        )))
    } else {
        Source::Kafka(
            KafkaSource::new(
                k,
                Interner::new(names.sources.clone()),
                tracker.clone(),
                status.clone(),
                sink.transactions(),
                health.clone(),
            )
            .map_err(|error| ScoreError::Client {
                client: "consumer",
                error,
            })?,
        )
    };
    let listener = match k.http_listen {
        Some(addr) => {
            Some(TcpListener::bind(addr).map_err(|error| ScoreError::Listen { addr, error })?)
        }
        None => None,
    };
    let running = run.start(config, decoder, Box::new(sink), None)?;
    let from = if mqtt {
        let m = &config.mqtt;
        format!(
            "MQTT {:?} from {}:{} as client {:?}",
            m.topics, m.broker.0, m.broker.1, m.client_id
        )
    } else {
        format!(
            "{:?} from {} as group {:?}",
            k.input_topics, k.bootstrap_servers, k.group_id
        )
    };
    tracing::info!(
        "scoring {from}: alerts to {:?} on {}, dead letters to {:?}{}, {}{}",
        k.alert_topic,
        k.bootstrap_servers,
        k.dead_letter_topic,
        config
            .spool
            .as_ref()
            .map(|s| format!(
                " (through the spool in {}, at most {} bytes)",
                s.dir.display(),
                s.max_bytes
            ))
            .unwrap_or_default(),
        run.describe(config),
        k.http_listen
            .map(|a| format!(", http://{a}/metrics"))
            .unwrap_or_default()
    );
    let started = Instant::now();
    let (drained_tx, drained_rx) = crossbeam_channel::bounded::<()>(1);
    let source = {
        let (tx, stop) = (running.input(), stop.clone());
        std::thread::Builder::new()
            .name("vigil-source".into())
            .spawn(move || source.run(tx, &stop, drained_rx))
            .map_err(|e| PipelineError::Spawn("source", e))?
    };
    let done = Arc::new(AtomicBool::new(false));
    let server = listener.map(|l| {
        let state = Arc::new(HttpState::new(
            counters.clone(),
            telemetry.clone(),
            status.clone(),
            health.clone(),
            k.stall,
        ));
        let done = done.clone();
        std::thread::spawn(move || http::serve(l, state, done))
    });
    let logger = {
        let (done, counters, telemetry, status) = (
            done.clone(),
            counters.clone(),
            telemetry.clone(),
            status.clone(),
        );
        let every = k.log_interval;
        std::thread::spawn(move || periodic_log(&done, &counters, &telemetry, &status, every))
    };

    let watching = AtomicBool::new(true);
    std::thread::scope(|scope| {
        if let Some(reload) = &reload {
            let (running, counters, names) = (&running, &counters, &names.sensors);
            let (current, stopped) = (run.detectors.clone(), &watching);
            scope.spawn(move || watch(config, reload, running, current, names, counters, stopped));
        }
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        watching.store(false, Ordering::Relaxed);
    });
    tracing::info!("stopping: draining the pipeline");
    let finished = running.finish();
    let _ = drained_tx.send(());
    let consumed = source
        .join()
        .unwrap_or_else(|_| Err("the consumer thread panicked".into()));
    done.store(true, Ordering::Relaxed);
    let _ = logger.join();
    if let Some(s) = server {
        let _ = s.join();
    }
    let finished = finished?;
    consumed.map_err(ScoreError::Transaction)?;
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        tracing::error!("{failed} messages could not be delivered");
    }
    Ok(finished.report(started, &counters, &config.pipeline, &telemetry))
}

fn periodic_log(
    done: &AtomicBool,
    counters: &Counters,
    telemetry: &Telemetry,
    status: &Mutex<ConsumerStatus>,
    every: Duration,
) {
    let mut last = (Instant::now(), 0u64);
    let mut next = Instant::now() + every;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if Instant::now() < next {
            continue;
        }
        next += every;
        let records = Counters::get(&counters.records_done);
        let rate = (records - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-9);
        last = (Instant::now(), records);
        let (lag, partitions) = {
            let s = status.lock().unwrap_or_else(PoisonError::into_inner);
            (
                s.partitions.iter().map(|p| p.2.max(0)).sum::<i64>(),
                s.partitions.len(),
            )
        };
        let p99 = telemetry
            .snapshot()
            .into_iter()
            .find(|s| s.stage == Stage::EndToEnd.name())
            .map_or(0.0, |s| s.p99_us);
        tracing::info!(
            "{rate:.0} records/s, {records} done, lag {lag} over {partitions} partitions, end-to-end p99 {:.2} ms, alerts opened {}, dead letters {}",
            p99 / 1000.0,
            Counters::get(&counters.alerts_opened),
            Counters::get(&counters.dead_letters)
        );
    }
}
