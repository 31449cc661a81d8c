//! The config file as written: every field documented, unknown fields refused. Parsing checks
//! only the TOML's shape; [`super::Config::validate`] checks the values.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// The config file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// How input files and records are read.
    #[serde(default)]
    pub input: RawInput,
    /// Threads, channels and batching.
    #[serde(default)]
    pub pipeline: RawPipeline,
    /// The default alert policy, for detectors that do not set their own.
    #[serde(default)]
    pub alerts: RawPolicy,
    /// Detectors run on every record. Empty: one z-score detector with default parameters.
    #[serde(default)]
    pub detectors: Vec<RawDetector>,
    /// Where results go.
    #[serde(default)]
    pub output: RawOutput,
    /// The Kafka connection of `vigil score` and `vigil produce`.
    #[serde(default)]
    pub kafka: RawKafka,
    /// The MQTT broker `vigil score` reads devices from (instead of Kafka topics).
    #[serde(default)]
    pub mqtt: RawMqtt,
    /// The operations endpoint of `vigil score`.
    #[serde(default)]
    pub http: RawHttp,
    /// Running at the edge: the store-and-forward spool of `vigil score`'s output.
    #[serde(default)]
    pub edge: RawEdge,
    #[serde(default)]
    pub onnx: RawOnnx,
}

/// `[onnx]`: only read when an ONNX detector is configured.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOnnx {
    /// The ONNX Runtime library (libonnxruntime.so.1.31.1). Default: `ORT_DYLIB_PATH`, then
    /// `.ci/cache/onnxruntime/`, then `/usr/local/lib/`.
    pub runtime: Option<PathBuf>,
}

/// `[kafka]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafka {
    /// Brokers to bootstrap from (`VIGIL_BOOTSTRAP_SERVERS`). Default `127.0.0.1:9092`.
    pub bootstrap_servers: Option<String>,
    /// Consumer group: instances with the same group share the partitions (`VIGIL_GROUP_ID`).
    /// Default `vigil`.
    pub group_id: Option<String>,
    /// Topics of sensor records, JSON as `vigil produce` writes them (`VIGIL_INPUT_TOPICS`,
    /// comma-separated). Required by `vigil score`.
    pub input_topics: Option<Vec<String>>,
    /// Topic alerts are published to, keyed by sensor (`VIGIL_ALERT_TOPIC`). Default `vigil-alerts`.
    pub alert_topic: Option<String>,
    /// Topic for records that fail to decode (`VIGIL_DEAD_LETTER_TOPIC`). Default
    /// `vigil-dead-letters`.
    pub dead_letter_topic: Option<String>,
    /// Topic for the alerts of shadow detectors. Default `vigil-shadow-alerts`.
    pub shadow_alert_topic: Option<String>,
    /// Records per partition re-read (without alerting) when a partition is assigned, to rebuild
    /// the detectors' state after a restart or rebalance. 0 turns it off. Default 2000.
    pub rewind: Option<u64>,
    /// Most messages the producer may hold undelivered; a full queue slows consumption instead of
    /// growing memory. Default 100000.
    pub producer_queue: Option<u32>,
    /// How long shutdown waits for the broker to acknowledge what is in flight, in seconds.
    /// Default 30.
    pub shutdown_timeout_s: Option<u64>,
    /// `at-least-once` (the default: a crash may publish an alert twice) or `exactly-once`: each
    /// stretch of alerts, dead letters and input offsets is one Kafka transaction, so a
    /// `read_committed` reader sees every alert once across crashes.
    pub delivery: Option<String>,
    /// The producer's `transactional.id` in `exactly-once` mode (`VIGIL_TRANSACTIONAL_ID`): stable
    /// across restarts of one instance, distinct between instances. Default
    /// `vigil-<group_id>-<hostname>`.
    pub transactional_id: Option<String>,
    /// How often, in milliseconds, `exactly-once` mode commits a transaction (alerts become
    /// visible to `read_committed` readers then). Default 100.
    pub transaction_interval_ms: Option<u64>,
    /// Raw librdkafka properties for both the consumer and the producer (TLS, SASL, tuning), e.g.
    /// `"security.protocol" = "SASL_SSL"`. They override Vigil's own settings.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// `[mqtt]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    /// `host:port` of the MQTT broker (`VIGIL_MQTT_BROKER`). Default `127.0.0.1:1883`.
    pub broker: Option<String>,
    /// Topic filters to subscribe to, with `+` and `#` wildcards (`VIGIL_MQTT_TOPICS`,
    /// comma-separated). When set, `vigil score` reads records from MQTT instead of
    /// `kafka.input_topics`; alerts and dead letters still go to Kafka.
    pub topics: Option<Vec<String>>,
    /// The client id, stable across restarts so the broker keeps the session. Default
    /// `vigil-<hostname>`.
    pub client_id: Option<String>,
    /// Seconds between keep-alive pings. Default 30.
    pub keep_alive_s: Option<u64>,
    pub username: Option<String>,
    /// `${env:NAME}` or `${file:PATH}` to keep it out of the file.
    pub password: Option<String>,
    /// Layouts like `plant/+/{sensor}/{channel}`: a message whose topic has one of them takes its
    /// sensor (and channel) from the topic. Default none: every payload is a whole record.
    pub topic_layouts: Option<Vec<String>>,
}

/// `[edge]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEdge {
    /// A directory for the store-and-forward spool (`VIGIL_SPOOL_DIR`): every alert and dead
    /// letter is written there (append-only, checksummed segments, synced) before its input is
    /// acknowledged, and forwarded to Kafka in order from there. Default none: straight to Kafka.
    pub spool_dir: Option<PathBuf>,
    /// The most the spool holds on disk; when full, input pauses until the uplink takes some.
    /// Default 1 GiB; at least 1 MiB.
    pub spool_max_bytes: Option<u64>,
}

/// `[http]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// Address of `/metrics`, `/healthz` and `/readyz` (`VIGIL_HTTP_LISTEN`); `off` disables.
    /// Default `127.0.0.1:9898`.
    pub listen: Option<String>,
    /// Seconds between the one-line throughput/lag/latency log of `vigil score`. Default 10.
    pub log_interval_s: Option<u64>,
    /// Seconds without a finished record, while records wait, after which `/healthz` reports the
    /// pipeline wedged (503). Default 120.
    pub stall_s: Option<u64>,
}

/// `[input]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInput {
    /// Columns (CSV) or value names (JSON lines) that are not channels, e.g. label columns
    /// `["anomaly", "changepoint"]`. Names absent from a file are fine.
    #[serde(default)]
    pub ignore_columns: Vec<String>,
    /// The CSV timestamp column. Default: the first of `timestamp`, `datetime`, `time`, `ts`,
    /// `date` (any case).
    pub timestamp_column: Option<String>,
    /// The CSV sensor column. Default: `sensor` or `sensor_id` if present; without one, a file is
    /// one sensor named after the file (its name without extension).
    pub sensor_column: Option<String>,
    /// Unit of numeric timestamps: `auto` (by magnitude), `s`, `ms`, `us` or `ns`. Default `auto`.
    pub epoch_unit: Option<String>,
    /// CSV delimiter: `,`, `;`, `\t` (or `tab`), or `auto` (the most frequent of the three in the
    /// header). Default `auto`.
    pub delimiter: Option<String>,
}

/// `[pipeline]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    /// Shard workers; each owns the state of the sensors hashed to it. Default 2.
    pub shards: Option<usize>,
    /// Rows a shard collects before it scores. Default 1024.
    pub batch_size: Option<usize>,
    /// Longest a shard waits for more rows before it scores a batch, in milliseconds. Default 0:
    /// it scores what has arrived as soon as its input is empty, so batches are as large as the
    /// load makes them.
    pub linger_ms: Option<u64>,
    /// Batches each channel between stages holds before the sender waits. Default 16.
    pub channel_capacity: Option<usize>,
    /// Kernel instruction set: `auto`, `avx512`, `avx2` or `scalar`. `VIGIL_ISA` overrides. Default
    /// `auto` (the fastest this CPU has).
    pub isa: Option<String>,
    /// Replay speed: `max`, `realtime`, or a factor of real time such as `10`. Default `max`.
    pub speed: Option<String>,
}

/// An alert policy (hysteresis). Every field optional: unset fields inherit.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// A channel opens an alert when its score is at or above this... Default 6.
    pub open: Option<f32>,
    /// ...for this many consecutive records. Default 3.
    pub open_after: Option<u32>,
    /// An open alert closes when the score is below this (lower than `open`)... Default 3.
    pub close: Option<f32>,
    /// ...for this many consecutive records. Default 10.
    pub close_after: Option<u32>,
    /// After a close, the channel does not open again for this many readings (repeated
    /// detections of one event are suppressed). Default 0.
    pub holdoff: Option<u32>,
}

/// The fields every `[[detectors]]` entry has, whatever its kind.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCommon {
    /// `serving` (default): alerts go to the alert file or topic. `shadow`: the detector runs on
    /// the same stream but its alerts go to the shadow file or topic, tagged `"role": "shadow"`.
    pub role: Option<String>,
    /// Name in alerts. Default: the kind (`zscore`, `likelihood`, `iforest`), or the manifest's
    /// `name@version` for `onnx` and `model`.
    pub name: Option<String>,
    /// This detector's alert policy; unset fields inherit: from `[alerts]`, then from the kind's
    /// defaults. For detectors with a model threshold (iforest, onnx) only `[alerts]`'s
    /// `open_after` and `close_after` carry over (its thresholds are in z-score units), and the
    /// defaults are: open at the model's threshold after 3, close below 0.97 (iforest) or 0.95
    /// (onnx) of it after 10.
    #[serde(default)]
    pub alerts: RawPolicy,
    /// Records with fewer channels than this are not this detector's (it scores them as no
    /// observation). Default 1.
    pub min_channels: Option<u32>,
    /// Records with more channels than this are not this detector's. Default: no limit.
    pub max_channels: Option<u32>,
}

/// One `[[detectors]]` entry: the common part and the kind's own fields (`kind = "..."` picks
/// them). Unknown fields are refused, as everywhere.
#[derive(Debug, Clone)]
pub struct RawDetector {
    pub common: RawCommon,
    pub kind: RawKind,
}

/// The kind of a `[[detectors]]` entry, with its own fields.
#[derive(Debug, Clone)]
pub enum RawKind {
    /// Rolling z-score per (sensor, channel).
    Zscore(RawZscore),
    /// Anomaly likelihood over multi-scale z-scores per (sensor, channel).
    Likelihood(RawLikelihood),
    /// An isolation forest over a sensor's channels together.
    Iforest(RawIforest),
    /// An ONNX model run by ONNX Runtime, described by its manifest.
    Onnx(RawModel),
    /// Any model of the registry by its manifest (`kind` in the manifest: onnx, iforest, zscore).
    Model(RawModel),
    /// PCA T² and Q over a sensor's channels together, learned from its first records.
    Pca(RawPca),
    /// Sequence novelty with the anomaly likelihood per (sensor, channel).
    Sequence(RawSequence),
    /// Deviation from a baseline learnt from each (sensor, channel)'s first readings.
    Baseline(RawBaseline),
}

/// The names `kind` may take.
pub const DETECTOR_KINDS: [&str; 8] = [
    "baseline",
    "zscore",
    "likelihood",
    "iforest",
    "onnx",
    "model",
    "pca",
    "sequence",
];

impl RawKind {
    /// The `kind` as written.
    pub fn name(&self) -> &'static str {
        match self {
            RawKind::Zscore(_) => "zscore",
            RawKind::Likelihood(_) => "likelihood",
            RawKind::Iforest(_) => "iforest",
            RawKind::Onnx(_) => "onnx",
            RawKind::Model(_) => "model",
            RawKind::Pca(_) => "pca",
            RawKind::Sequence(_) => "sequence",
            RawKind::Baseline(_) => "baseline",
        }
    }
}

impl<'de> Deserialize<'de> for RawDetector {
    /// The common keys go to [`RawCommon`], the rest to the kind's struct, each refusing unknown
    /// fields (serde's `flatten` cannot be combined with `deny_unknown_fields`).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut table = toml::Table::deserialize(d)?;
        let kind = match table.remove("kind") {
            Some(toml::Value::String(k)) => k,
            Some(_) => return Err(D::Error::custom("`kind` must be a string")),
            None => return Err(D::Error::missing_field("kind")),
        };
        let mut common = toml::Table::new();
        for key in ["role", "name", "alerts", "min_channels", "max_channels"] {
            if let Some(v) = table.remove(key) {
                common.insert(key.to_string(), v);
            }
        }
        let common: RawCommon = common.try_into().map_err(D::Error::custom)?;
        fn rest<'a, T: Deserialize<'a>, E: serde::de::Error>(t: toml::Table) -> Result<T, E> {
            t.try_into()
                .map_err(|e: toml::de::Error| E::custom(e.message().trim()))
        }
        let kind = match kind.as_str() {
            "zscore" => RawKind::Zscore(rest(table)?),
            "likelihood" => RawKind::Likelihood(rest(table)?),
            "iforest" => RawKind::Iforest(rest(table)?),
            "onnx" => RawKind::Onnx(rest(table)?),
            "model" => RawKind::Model(rest(table)?),
            "pca" => RawKind::Pca(rest(table)?),
            "baseline" => RawKind::Baseline(rest(table)?),
            "sequence" => {
                let mut novelty = toml::Table::new();
                for key in RawNovelty::KEYS {
                    if let Some(v) = table.remove(key) {
                        novelty.insert(key.to_string(), v);
                    }
                }
                RawKind::Sequence(RawSequence {
                    novelty: rest(novelty)?,
                    likelihood: rest(table)?,
                })
            }
            other => return Err(D::Error::unknown_variant(other, &DETECTOR_KINDS)),
        };
        Ok(RawDetector { common, kind })
    }
}

/// `kind = "onnx"` and `kind = "model"`: a registry entry by its manifest.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// The model's manifest (`models/NAME/manifest.toml`), relative to the working directory.
    pub manifest: Option<PathBuf>,
    /// ONNX models: longest a single ONNX Runtime call may take, in milliseconds: a batch's rows
    /// are run in chunks whose size adapts to stay under it. Default 5.
    pub max_run_ms: Option<f64>,
    /// Sensors it applies to. Default: every sensor whose records carry the model's channels.
    #[serde(default)]
    pub sensors: Vec<String>,
}

/// `kind = "pca"`: see `vigil_kernels::pca`. Its default policy: open at 1 (a control limit)
/// after 3, close below 0.9 after 10.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPca {
    /// Records each sensor learns its model from (standardisation, components, limits) before it
    /// scores; they score no observation. Default 400 (SKAB's training rows).
    pub train_rows: Option<u32>,
    /// Share of the standardised variance the principal components explain. Default 0.85.
    pub explained: Option<f64>,
    /// Confidence of the control limits. Default 0.999.
    pub p: Option<f64>,
    /// Floor of a channel's standard deviation in the training records. Default 0.001.
    pub min_std: Option<f64>,
    /// The channels read together, in order. Default: every channel of the sensor's records.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Sensors it applies to. Default: every sensor.
    #[serde(default)]
    pub sensors: Vec<String>,
}

/// `kind = "iforest"`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIforest {
    /// The model file (`vigil train iforest`, `vigil import iforest`), relative to the working
    /// directory.
    pub model: Option<PathBuf>,
    /// Sensors it applies to. Default: every sensor whose records carry the model's channels.
    #[serde(default)]
    pub sensors: Vec<String>,
}

/// `kind = "likelihood"`: see `vigil_kernels::likelihood`. Its default policy: open at 3 after
/// 1, close below 1.5 after 30.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLikelihood {
    /// Half-life of the short-memory z-score, in readings. Default 30.
    pub fast_half_life: Option<f64>,
    /// Half-life of the level and change z-scores, in readings. Default 300.
    pub half_life: Option<f64>,
    /// Readings before the z-scores score (and the likelihood starts learning). Default 60.
    pub warmup: Option<u32>,
    /// Floor of the z-scores' standard deviation, in the channel's unit. Default 0.001.
    pub min_std: Option<f32>,
    /// Clip of the z-scores' updates, in standard deviations. Default 3.
    pub clip: Option<f32>,
    /// Each z-score counts at most this much in the raw surprise. Default 10.
    pub cap: Option<f32>,
    /// Half-life of the smoothing of the raw surprise, in readings. Default 10.
    pub smooth_half_life: Option<f64>,
    /// Half-life of the surprise's own history (mean and spread), in readings. Default 2000.
    pub history_half_life: Option<f64>,
    /// Smoothed surprises the history absorbs before the detector scores. Default 200.
    pub history_warmup: Option<u32>,
}

/// `kind = "sequence"`: see `vigil_kernels::sequence`. The likelihood's keys and the novelty's,
/// side by side in one entry. Its default policy is the likelihood's.
#[derive(Debug, Default, Clone)]
pub struct RawSequence {
    pub novelty: RawNovelty,
    pub likelihood: RawLikelihood,
}

/// The novelty keys of `kind = "sequence"`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNovelty {
    /// Levels across the range of a channel's first `range_warmup` readings. Default 16.
    pub levels: Option<u32>,
    /// Levels per remembered context (1..=8). Default 3.
    pub order: Option<u32>,
    /// Readings that set a channel's levels. Default 300.
    pub range_warmup: Option<u32>,
    /// Readings after that which only fill the memory. Default 300.
    pub learn: Option<u32>,
    /// Each memory generation holds 2^memory_bits bits per channel (10..=20). Default 12.
    pub memory_bits: Option<u32>,
    /// Raw surprise of a reading none of whose contexts is known, in standard deviations.
    /// Default 1.
    pub weight: Option<f32>,
    /// A reading beyond the channel's lowest or highest so far by this fraction of their span
    /// is an excursion. Default 0.05.
    pub extent_tolerance: Option<f32>,
    /// The score of an excursion; 0 turns the check off. Default 10.
    pub extent_score: Option<f32>,
    /// Whether the contexts include a reading's level in its hour of the day. Default true.
    pub time_of_day: Option<bool>,
}

impl RawNovelty {
    /// The keys, as written.
    pub const KEYS: [&'static str; 9] = [
        "levels",
        "order",
        "range_warmup",
        "learn",
        "memory_bits",
        "weight",
        "extent_tolerance",
        "extent_score",
        "time_of_day",
    ];
}

/// `kind = "baseline"`: see `vigil_kernels::baseline`. Its default policy: open at 2.5 after 1,
/// close below 1.9 after 1.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBaseline {
    /// Readings of each (sensor, channel) that set its baseline. Default 400.
    pub train_rows: Option<u32>,
    /// The smallest scale of a deviation, as a fraction of the baseline's magnitude. Default 0.01.
    pub rel_floor: Option<f32>,
    /// The smallest scale of a deviation, in the channel's unit. Default 0.001.
    pub min_std: Option<f32>,
    /// Half-life of the smoothing of the deviation, in readings. Default 20.
    pub smooth_half_life: Option<f64>,
}

/// `kind = "zscore"`. Its default policy is `[alerts]`'s.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZscore {
    /// Half-life of the rolling mean and variance, in readings. Default 300.
    pub half_life: Option<f64>,
    /// Readings a (sensor, channel) absorbs before it may alert. Default 60.
    pub warmup: Option<u32>,
    /// Floor of the standard deviation, in the channel's unit (a flat line does not divide by
    /// zero). Default 0.001.
    pub min_std: Option<f32>,
    /// Deviations beyond this many standard deviations move the statistics as if they were this
    /// large and leave the variance alone (robust to spikes and level shifts). `inf` turns
    /// clipping off. Default 3.
    pub clip: Option<f32>,
}

/// `[output]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    /// Alerts as JSON lines. Default: standard output.
    pub alerts: Option<PathBuf>,
    /// Alerts of shadow detectors as JSON lines. Default `shadow-alerts.jsonl`, created only when
    /// there is one.
    pub shadow_alerts: Option<PathBuf>,
    /// Dead letters (records that failed to decode) as JSON lines. Default `dead-letters.jsonl`,
    /// created only when there is one.
    pub dead_letter: Option<PathBuf>,
    /// The run's summary and latency percentiles as JSON. Default: none.
    pub metrics: Option<PathBuf>,
}

impl RawConfig {
    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        RawConfig::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text; the error is one line.
    pub fn from_toml(text: &str) -> Result<RawConfig, String> {
        toml::from_str(text).map_err(|e| {
            let msg = one_line(e.message());
            match e.span().map(|s| line_of(text, s.start)) {
                Some(line) => format!("line {line}: {msg}"),
                None => msg,
            }
        })
    }
}

/// A parser message on one line.
fn one_line(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn line_of(text: &str, byte: usize) -> usize {
    text.as_bytes()[..byte.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
