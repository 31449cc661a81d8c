//! The validated sections other than the detectors: `[input]`, `[pipeline]`, `[output]`,
//! `[kafka]` with `[http]`. Each is checked from its raw shape by a function of its own; values
//! only, no I/O.

use super::raw::{RawEdge, RawHttp, RawInput, RawKafka, RawMqtt, RawOutput, RawPipeline};
use super::ConfigError;
use crate::record::TopicFields;
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
        raw.into_iter()
            .map(|(key, value)| {
                Ok((
                    key.clone(),
                    secret(&format!("kafka.properties.{key}"), value)?,
                ))
            })
            .collect::<Result<_, _>>()
            .map(Properties)
    }
}

/// A setting that may be a secret: `${env:NAME}` is the environment variable NAME, `${file:PATH}`
/// the contents of the file PATH without its trailing newline (a mounted Kubernetes secret), any
/// other value itself. `what` names the setting in errors; the value is never in one.
fn secret(what: &str, value: String) -> Result<String, ConfigError> {
    Ok(
        match value
            .strip_prefix("${")
            .and_then(|v| v.strip_suffix('}'))
            .and_then(|v| v.split_once(':'))
        {
            Some(("env", name)) => std::env::var(name).map_err(|_| {
                ConfigError::invalid(format!(
                    "{what}: the environment variable {name} is not set"
                ))
            })?,
            Some(("file", path)) => std::fs::read_to_string(path)
                .map_err(|e| ConfigError::invalid(format!("{what}: cannot read {path}: {e}")))?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
            _ => value,
        },
    )
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
        linger: Duration::from_millis(p.linger_ms.unwrap_or(0)),
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

/// Validated `[mqtt]`: the devices' broker `vigil score` reads instead of Kafka topics when
/// `topics` is set.
#[derive(Clone, PartialEq, Eq)]
pub struct MqttConfig {
    /// `host:port` of the broker.
    pub broker: (String, u16),
    /// Topic filters subscribed to (QoS 1). Empty: `vigil score` reads Kafka.
    pub topics: Vec<String>,
    /// Stable across restarts, so the broker keeps the session (subscriptions and unacknowledged
    /// messages) while Vigil is away.
    pub client_id: String,
    pub keep_alive: Duration,
    pub credentials: Option<(String, String)>,
    /// Where the sensor (and channel) of a record is in its topic, tried in order.
    pub layouts: Vec<TopicLayout>,
}

impl std::fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConfig")
            .field("broker", &self.broker)
            .field("topics", &self.topics)
            .field("client_id", &self.client_id)
            .field("keep_alive", &self.keep_alive)
            .field("username", &self.credentials.as_ref().map(|c| &c.0))
            .field("layouts", &self.layouts)
            .finish()
    }
}

/// One level of a topic layout.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Exact(String),
    /// `+`: any one level.
    Any,
    Sensor,
    Channel,
}

/// A topic layout such as `plant/+/{sensor}/{channel}`: literal levels, `+` for any level, and
/// `{sensor}` / `{channel}` for the level that names the record's sensor / channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicLayout {
    text: String,
    levels: Vec<Level>,
}

impl TopicLayout {
    pub fn parse(text: &str) -> Result<TopicLayout, ConfigError> {
        let bad = |why: &str| ConfigError::invalid(format!("mqtt.topic_layouts {text:?}: {why}"));
        let mut levels = Vec::new();
        for level in text.split('/') {
            levels.push(match level {
                "+" => Level::Any,
                "{sensor}" => Level::Sensor,
                "{channel}" => Level::Channel,
                "#" => return Err(bad("`#` cannot name a level; use `+` for each")),
                l if l.contains(['+', '#', '{', '}']) => {
                    return Err(bad("a level is a name, `+`, `{sensor}` or `{channel}`"))
                }
                l => Level::Exact(l.to_string()),
            });
        }
        for (what, level) in [("{sensor}", Level::Sensor), ("{channel}", Level::Channel)] {
            if levels.iter().filter(|l| **l == level).count() > 1 {
                return Err(bad(&format!("{what} appears twice")));
            }
        }
        if !levels.contains(&Level::Sensor) && !levels.contains(&Level::Channel) {
            return Err(bad("names neither {sensor} nor {channel}"));
        }
        Ok(TopicLayout {
            text: text.to_string(),
            levels,
        })
    }

    /// The sensor and channel `topic` names, if it has this layout.
    pub fn fields(&self, topic: &str) -> Option<TopicFields> {
        let mut out = TopicFields::default();
        let mut parts = topic.split('/');
        for level in &self.levels {
            let part = parts.next()?;
            match level {
                Level::Exact(l) if l != part => return None,
                Level::Sensor if part.is_empty() => return None,
                Level::Channel if part.is_empty() => return None,
                Level::Sensor => out.sensor = Some(part.to_string()),
                Level::Channel => out.channel = Some(part.to_string()),
                _ => {}
            }
        }
        parts.next().is_none().then_some(out)
    }
}

pub(super) fn mqtt(m: RawMqtt) -> Result<MqttConfig, ConfigError> {
    let text = m.broker.unwrap_or_else(|| "127.0.0.1:1883".to_string());
    let broker = text
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .filter(|(h, p)| !h.is_empty() && *p > 0)
        .ok_or_else(|| {
            ConfigError::invalid(format!(
                "mqtt.broker {text:?} is not host:port like 127.0.0.1:1883"
            ))
        })?;
    let topics = m.topics.unwrap_or_default();
    for t in &topics {
        let levels: Vec<&str> = t.split('/').collect();
        let ok = !t.is_empty()
            && levels.iter().enumerate().all(|(i, l)| {
                *l == "+" || (*l == "#" && i == levels.len() - 1) || !l.contains(['+', '#'])
            });
        if !ok {
            return Err(ConfigError::invalid(format!(
                "mqtt.topics {t:?} is not an MQTT topic filter (`+` stands for a whole level, \
                 `#` only for the last)"
            )));
        }
    }
    let client_id = m
        .client_id
        .unwrap_or_else(|| format!("vigil-{}", crate::config::hostname()));
    if client_id.is_empty() || client_id.len() > 256 {
        return Err(ConfigError::invalid(
            "mqtt.client_id must be 1 to 256 characters",
        ));
    }
    let credentials = match (m.username, m.password) {
        (Some(u), p) => Some((u, secret("mqtt.password", p.unwrap_or_default())?)),
        (None, Some(_)) => {
            return Err(ConfigError::invalid(
                "mqtt.password is set without mqtt.username",
            ))
        }
        (None, None) => None,
    };
    let keep_alive = m.keep_alive_s.unwrap_or(30);
    if !(5..=65_535).contains(&keep_alive) {
        return Err(ConfigError::invalid(format!(
            "mqtt.keep_alive_s must be 5 to 65535, got {keep_alive}"
        )));
    }
    Ok(MqttConfig {
        broker,
        topics,
        client_id,
        keep_alive: Duration::from_secs(keep_alive),
        credentials,
        layouts: m
            .topic_layouts
            .unwrap_or_default()
            .iter()
            .map(|l| TopicLayout::parse(l))
            .collect::<Result<_, _>>()?,
    })
}

/// Validated `[edge]` spool: where `vigil score`'s output waits for the uplink.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

/// The spool's smallest bound: a dead letter of the largest size Vigil forwards must fit.
pub const SPOOL_MIN_BYTES: u64 = 1 << 20;

pub(super) fn spool(e: RawEdge) -> Result<Option<SpoolConfig>, ConfigError> {
    let max_bytes = e.spool_max_bytes.unwrap_or(1 << 30);
    if max_bytes < SPOOL_MIN_BYTES {
        return Err(ConfigError::invalid(format!(
            "edge.spool_max_bytes must be at least {SPOOL_MIN_BYTES} (1 MiB), got {max_bytes}"
        )));
    }
    match e.spool_dir {
        None if e.spool_max_bytes.is_some() => Err(ConfigError::invalid(
            "edge.spool_max_bytes is set without edge.spool_dir",
        )),
        None => Ok(None),
        Some(dir) if dir.as_os_str().is_empty() => {
            Err(ConfigError::invalid("edge.spool_dir is empty"))
        }
        Some(dir) => Ok(Some(SpoolConfig { dir, max_bytes })),
    }
}

#[cfg(test)]
mod mqtt_tests {
    use super::*;

    #[test]
    fn topic_layouts_name_the_sensor_and_channel_levels() {
        let l = TopicLayout::parse("plant/+/{sensor}/{channel}").expect("layout");
        let f = l.fields("plant/line-1/pump-3/pressure").expect("match");
        assert_eq!(f.sensor.as_deref(), Some("pump-3"));
        assert_eq!(f.channel.as_deref(), Some("pressure"));
        for other in [
            "plant/line-1/pump-3",
            "plant/a/b/c/d",
            "site/a/b/c",
            "plant/a//c",
        ] {
            assert!(l.fields(other).is_none(), "{other}");
        }
        let s = TopicLayout::parse("devices/{sensor}").expect("layout");
        let f = s.fields("devices/valve-7").expect("match");
        assert_eq!((f.sensor.as_deref(), f.channel), (Some("valve-7"), None));
        for bad in ["a/#", "a/b", "a/{sensor}/{sensor}", "a/x+/{sensor}"] {
            assert!(TopicLayout::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mqtt_settings_are_checked() {
        let ok = mqtt(RawMqtt {
            topics: Some(vec!["plant/#".into(), "a/+/b".into()]),
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(ok.broker, ("127.0.0.1".to_string(), 1883));
        assert!(ok.client_id.starts_with("vigil-"));
        for raw in [
            RawMqtt {
                broker: Some("nohost".into()),
                ..Default::default()
            },
            RawMqtt {
                broker: Some(":1883".into()),
                ..Default::default()
            },
            RawMqtt {
                topics: Some(vec!["a/#/b".into()]),
                ..Default::default()
            },
            RawMqtt {
                topics: Some(vec!["a/b+".into()]),
                ..Default::default()
            },
            RawMqtt {
                password: Some("x".into()),
                ..Default::default()
            },
            RawMqtt {
                keep_alive_s: Some(1),
                ..Default::default()
            },
        ] {
            assert!(mqtt(raw).is_err());
        }
        let with = mqtt(RawMqtt {
            username: Some("edge".into()),
            password: Some("s3cret".into()),
            ..Default::default()
        })
        .expect("valid");
        assert!(!format!("{with:?}").contains("s3cret"));
    }
}
