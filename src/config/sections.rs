//! The validated sections other than the detectors: `[input]`, `[pipeline]`, `[output]`,
//! `[kafka]` with `[http]`. Each is checked from its raw shape by a function of its own; values
//! only, no I/O.

use super::raw::{RawHttp, RawInput, RawKafka, RawOutput, RawPipeline};
use super::ConfigError;
use crate::time::EpochUnit;
use std::path::PathBuf;
use std::time::Duration;
use vigil_kernels::isa::{self, Isa};

/// Replay pacing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// As fast as the pipeline goes.
    Max,
    /// Event time runs this many times faster than wall time (1.0 is real time).
    Factor(f64),
}

impl Speed {
    /// Parses `max`, `realtime` or a positive factor.
    pub fn parse(text: &str) -> Result<Speed, ConfigError> {
        match text {
            "max" => Ok(Speed::Max),
            "realtime" => Ok(Speed::Factor(1.0)),
            _ => match text.parse::<f64>() {
                Ok(f) if f.is_finite() && f > 0.0 => Ok(Speed::Factor(f)),
                _ => Err(ConfigError::invalid(format!(
                    "speed must be max, realtime or a positive factor, got {text:?}"
                ))),
            },
        }
    }
}

/// Validated `[input]`.
#[derive(Debug, Clone)]
pub struct InputConfig {
    pub ignore_columns: Vec<String>,
    pub timestamp_column: Option<String>,
    pub sensor_column: Option<String>,
    pub epoch_unit: EpochUnit,
    /// `None`: detect from the header.
    pub delimiter: Option<u8>,
}

/// Validated `[pipeline]`.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub shards: usize,
    pub batch_size: usize,
    pub linger: Duration,
    pub channel_capacity: usize,
    /// The kernels' instruction set, and what chose it (`VIGIL_ISA`, `pipeline.isa`, the CPU).
    pub isa: isa::Choice,
    pub speed: Speed,
}

impl PipelineConfig {
    /// The instruction set the kernels run.
    pub fn isa(&self) -> Isa {
        self.isa.isa
    }
}

/// Validated `[output]`.
#[derive(Debug, Clone)]
pub struct OutputConfig {
    pub alerts: Option<PathBuf>,
    pub shadow_alerts: PathBuf,
    pub dead_letter: PathBuf,
    pub metrics: Option<PathBuf>,
}

/// Validated `[kafka]` and `[http]`.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    pub group_id: String,
    /// Empty when none are configured (`vigil score` then refuses to start).
    pub input_topics: Vec<String>,
    pub alert_topic: String,
    pub shadow_alert_topic: String,
    pub dead_letter_topic: String,
    pub rewind: u64,
    pub producer_queue: u32,
    pub shutdown_timeout: Duration,
    pub properties: Properties,
    pub http_listen: Option<std::net::SocketAddr>,
    pub log_interval: Duration,
    /// `http.stall_s`: how long records may wait with none finished before `/healthz` fails.
    pub stall: Duration,
    pub delivery: Delivery,
}

/// `[kafka.properties]`, with `${env:NAME}` and `${file:PATH}` values resolved. Its `Debug` shows
/// the keys only: values may be secrets and must never reach a log.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Properties(pub Vec<(String, String)>);

impl std::fmt::Debug for Properties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Properties {
    /// Resolves each value: `${env:NAME}` is the environment variable NAME, `${file:PATH}` the
    /// contents of the file PATH without its trailing newline (a mounted Kubernetes secret), any
    /// other value itself.
    fn resolve(raw: std::collections::BTreeMap<String, String>) -> Result<Properties, ConfigError> {
        let mut out = Vec::with_capacity(raw.len());
        for (key, value) in raw {
            let value = match value
                .strip_prefix("${")
                .and_then(|v| v.strip_suffix('}'))
                .and_then(|v| v.split_once(':'))
            {
                Some(("env", name)) => std::env::var(name).map_err(|_| {
                    ConfigError::invalid(format!(
                        "kafka.properties.{key}: the environment variable {name} is not set"
                    ))
                })?,
                Some(("file", path)) => std::fs::read_to_string(path)
                    .map_err(|e| {
                        ConfigError::invalid(format!(
                            "kafka.properties.{key}: cannot read {path}: {e}"
                        ))
                    })?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
                _ => value,
            };
            out.push((key, value));
        }
        Ok(Properties(out))
    }
}

/// `kafka.delivery`: what a crash can do to the alert topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Offsets are committed after the alerts are acknowledged: a crash may publish some twice.
    AtLeastOnce,
    /// Alerts, dead letters and offsets commit together in one transaction every `interval`.
    ExactlyOnce {
        transactional_id: String,
        interval: Duration,
    },
}

pub(super) fn positive<T: PartialOrd + Default + std::fmt::Display>(
    name: &str,
    v: T,
) -> Result<T, ConfigError> {
    if v > T::default() {
        Ok(v)
    } else {
        Err(ConfigError::invalid(format!(
            "{name} must be positive, got {v}"
        )))
    }
}

pub(super) fn at_most(name: &str, v: usize, max: usize) -> Result<usize, ConfigError> {
    if v <= max {
        Ok(v)
    } else {
        Err(ConfigError::invalid(format!(
            "{name} must be at most {max}, got {v}"
        )))
    }
}

pub(super) fn input(raw: RawInput) -> Result<InputConfig, ConfigError> {
    Ok(InputConfig {
        ignore_columns: raw.ignore_columns,
        timestamp_column: raw.timestamp_column,
        sensor_column: raw.sensor_column,
        epoch_unit: match raw.epoch_unit.as_deref() {
            None => EpochUnit::Auto,
            Some(name) => EpochUnit::from_name(name).ok_or_else(|| {
                ConfigError::invalid(format!(
                    "input.epoch_unit must be auto, s, ms, us or ns, got {name:?}"
                ))
            })?,
        },
        delimiter: match raw.delimiter.as_deref() {
            None | Some("auto") => None,
            Some(",") => Some(b','),
            Some(";") => Some(b';'),
            Some("\t") | Some("tab") | Some("\\t") => Some(b'\t'),
            Some(other) => {
                return Err(ConfigError::invalid(format!(
                    "input.delimiter must be ',', ';', tab or auto, got {other:?}"
                )))
            }
        },
    })
}

pub(super) fn pipeline(p: RawPipeline) -> Result<PipelineConfig, ConfigError> {
    let pipeline = PipelineConfig {
        shards: positive("pipeline.shards", p.shards.unwrap_or(2))?,
        batch_size: positive("pipeline.batch_size", p.batch_size.unwrap_or(1024))?,
        linger: Duration::from_millis(p.linger_ms.unwrap_or(5)),
        channel_capacity: positive(
            "pipeline.channel_capacity",
            p.channel_capacity.unwrap_or(16),
        )?,
        isa: isa::choose(p.isa.as_deref()).map_err(ConfigError::Isa)?,
        speed: Speed::parse(p.speed.as_deref().unwrap_or("max"))?,
    };
    // Bounds that keep what the queues can hold (capacity × batch rows, per stage) in memory.
    at_most("pipeline.shards", pipeline.shards, 256)?;
    at_most("pipeline.batch_size", pipeline.batch_size, 1 << 20)?;
    at_most("pipeline.channel_capacity", pipeline.channel_capacity, 4096)?;
    Ok(pipeline)
}

pub(super) fn output(raw: RawOutput) -> OutputConfig {
    OutputConfig {
        alerts: raw.alerts,
        shadow_alerts: raw
            .shadow_alerts
            .unwrap_or_else(|| PathBuf::from("shadow-alerts.jsonl")),
        dead_letter: raw
            .dead_letter
            .unwrap_or_else(|| PathBuf::from("dead-letters.jsonl")),
        metrics: raw.metrics,
    }
}

fn topic(name: &str, v: Option<String>, default: &str) -> Result<String, ConfigError> {
    let t = v.unwrap_or_else(|| default.to_string());
    if t.is_empty()
        || t.len() > 249
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(ConfigError::invalid(format!(
            "kafka.{name} {t:?} is not a valid topic name"
        )));
    }
    Ok(t)
}

pub(super) fn kafka(k: RawKafka, http: RawHttp) -> Result<KafkaConfig, ConfigError> {
    let mut input_topics = Vec::new();
    for t in k.input_topics.unwrap_or_default() {
        input_topics.push(topic("input_topics", Some(t), "")?);
    }
    let http_listen = match http.listen.as_deref() {
        Some("off") => None,
        other => {
            let text = other.unwrap_or("127.0.0.1:9898");
            Some(text.parse().map_err(|_| {
                ConfigError::invalid(format!(
                    "http.listen {text:?} is not an address like 127.0.0.1:9898"
                ))
            })?)
        }
    };
    let kafka = KafkaConfig {
        bootstrap_servers: k
            .bootstrap_servers
            .unwrap_or_else(|| "127.0.0.1:9092".to_string()),
        group_id: k.group_id.unwrap_or_else(|| "vigil".to_string()),
        input_topics,
        alert_topic: topic("alert_topic", k.alert_topic, "vigil-alerts")?,
        dead_letter_topic: topic(
            "dead_letter_topic",
            k.dead_letter_topic,
            "vigil-dead-letters",
        )?,
        shadow_alert_topic: topic(
            "shadow_alert_topic",
            k.shadow_alert_topic,
            "vigil-shadow-alerts",
        )?,
        rewind: k.rewind.unwrap_or(2000),
        producer_queue: positive("kafka.producer_queue", k.producer_queue.unwrap_or(100_000))?,
        shutdown_timeout: Duration::from_secs(k.shutdown_timeout_s.unwrap_or(30)),
        properties: Properties::resolve(k.properties)?,
        http_listen,
        log_interval: Duration::from_secs(positive(
            "http.log_interval_s",
            http.log_interval_s.unwrap_or(10),
        )?),
        stall: Duration::from_secs(positive("http.stall_s", http.stall_s.unwrap_or(120))?),
        delivery: Delivery::AtLeastOnce,
    };
    let delivery = match k.delivery.as_deref() {
        None | Some("at-least-once") => Delivery::AtLeastOnce,
        Some("exactly-once") => {
            let id = k.transactional_id.unwrap_or_else(|| {
                format!("vigil-{}-{}", kafka.group_id, crate::config::hostname())
            });
            if id.is_empty() {
                return Err(ConfigError::invalid(
                    "kafka.transactional_id must not be empty",
                ));
            }
            Delivery::ExactlyOnce {
                transactional_id: id,
                interval: Duration::from_millis(positive(
                    "kafka.transaction_interval_ms",
                    k.transaction_interval_ms.unwrap_or(100),
                )?),
            }
        }
        Some(other) => {
            return Err(ConfigError::invalid(format!(
                "kafka.delivery must be \"at-least-once\" or \"exactly-once\", got {other:?}"
            )))
        }
    };
    let kafka = KafkaConfig { delivery, ..kafka };
    if kafka.group_id.is_empty() {
        return Err(ConfigError::invalid("kafka.group_id must not be empty"));
    }
    if kafka
        .bootstrap_servers
        .split(',')
        .all(|b| b.trim().is_empty())
    {
        return Err(ConfigError::invalid(format!(
            "kafka.bootstrap_servers must name at least one broker (host:port), got {:?}",
            kafka.bootstrap_servers
        )));
    }
    if let Some(addr) = kafka.http_listen.filter(|a| !a.ip().is_loopback()) {
        tracing::info!(
            "http.listen {addr}: /metrics, /healthz and /readyz are reachable from other hosts"
        );
    }
    Ok(kafka)
}
