//! Configuration in two steps: the raw TOML shape (every field documented, unknown fields refused),
//! then one validated [`Config`] in which nothing is a raw string any more.
//!
//! Precedence, highest first: command-line flags, `VIGIL_ISA`, the config file, built-in defaults.

use crate::iforest::model::IForestModel;
use crate::time::EpochUnit;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vigil_kernels::isa::Isa;
use vigil_kernels::likelihood::{LikelihoodParams, LikelihoodSpec};
use vigil_kernels::zscore::ZParams;

/// What went wrong reading or checking configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

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
    /// The operations endpoint of `vigil score`.
    #[serde(default)]
    pub http: RawHttp,
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
    /// Raw librdkafka properties for both the consumer and the producer (TLS, SASL, tuning), e.g.
    /// `"security.protocol" = "SASL_SSL"`. They override Vigil's own settings.
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
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
    /// Longest a shard waits to fill a batch, in milliseconds. Default 5.
    pub linger_ms: Option<u64>,
    /// Batches each channel between stages holds before the sender waits. Default 16.
    pub channel_capacity: Option<usize>,
    /// Kernel instruction set: `auto`, `avx2` or `scalar`. `VIGIL_ISA` overrides. Default `auto`.
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
}

/// One `[[detectors]]` entry.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RawDetector {
    /// Rolling z-score per (sensor, channel).
    Zscore(RawZscore),
    /// Anomaly likelihood over multi-scale z-scores per (sensor, channel).
    Likelihood(RawLikelihood),
    /// An isolation forest over a sensor's channels together.
    Iforest(RawIforest),
    /// An ONNX model run by ONNX Runtime, described by its manifest.
    Onnx(RawOnnxDetector),
    /// Any model of the registry by its manifest (`kind` in the manifest: onnx, iforest, zscore).
    Model(RawOnnxDetector),
}

/// A registry manifest of kind `iforest` or `zscore` (kind `onnx`: see `onnx::manifest`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelManifest {
    name: String,
    version: String,
    kind: String,
    /// iforest: the model file, relative to the manifest.
    file: Option<PathBuf>,
    #[serde(default)]
    description: String,
    /// iforest: the channels the model must read, in order (checked against the model file).
    input: Option<ManifestChannels>,
    /// zscore: the detector's parameters.
    params: Option<ZscoreParams>,
    #[serde(default)]
    provenance: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestChannels {
    channels: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZscoreParams {
    half_life: Option<f64>,
    warmup: Option<u32>,
    min_std: Option<f32>,
    clip: Option<f32>,
}

/// `kind = "model"`: reads the manifest and turns the entry into the detector it describes.
fn resolve_model(m: RawOnnxDetector) -> Result<RawDetector, ConfigError> {
    let label = m.name.clone().unwrap_or_else(|| "model".into());
    let path = m
        .manifest
        .clone()
        .ok_or_else(|| invalid(format!("detector {label}: manifest = \"FILE\" is required")))?;
    let what = |e: String| {
        invalid(format!(
            "detector {label}: manifest {}: {e}",
            path.display()
        ))
    };
    let text = std::fs::read_to_string(&path).map_err(|e| what(e.to_string()))?;
    let head: toml::Table =
        toml::from_str(&text).map_err(|e| what(e.message().replace('\n', " ")))?;
    let kind = head.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    if kind == "onnx" {
        return Ok(RawDetector::Onnx(m));
    }
    let manifest: ModelManifest =
        toml::from_str(&text).map_err(|e| what(e.message().replace('\n', " ")))?;
    // Description and provenance are for people; name and version name the detector.
    let _ = (&manifest.description, &manifest.provenance);
    let name = Some(
        m.name
            .clone()
            .unwrap_or_else(|| format!("{}@{}", manifest.name, manifest.version)),
    );
    match manifest.kind.as_str() {
        "iforest" => {
            let file = manifest
                .file
                .as_ref()
                .ok_or_else(|| what("an iforest manifest needs file = \"MODEL.vigil\"".into()))?;
            let model_path = path
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join(file);
            if let Some(input) = &manifest.input {
                let model = IForestModel::load(&model_path).map_err(what)?;
                let channels: Vec<&str> =
                    model.features.iter().map(|f| f.channel.as_str()).collect();
                let mut distinct = channels.clone();
                distinct.dedup();
                if input
                    .channels
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    != distinct
                {
                    let same_set = input.channels.len() == distinct.len()
                        && input
                            .channels
                            .iter()
                            .all(|c| distinct.contains(&c.as_str()));
                    return Err(what(format!(
                        "input.channels {:?} are {} the model's {:?}",
                        input.channels,
                        if same_set { "a reordering of" } else { "not" },
                        distinct
                    )));
                }
            }
            Ok(RawDetector::Iforest(RawIforest {
                name,
                role: m.role,
                model: Some(model_path),
                sensors: m.sensors,
                alerts: m.alerts,
                manifest: Some(path),
            }))
        }
        "zscore" => {
            let p = manifest.params.unwrap_or_default();
            Ok(RawDetector::Zscore(RawZscore {
                name,
                role: m.role,
                half_life: p.half_life,
                warmup: p.warmup,
                min_std: p.min_std,
                clip: p.clip,
                alerts: m.alerts,
                manifest: Some(path),
            }))
        }
        other => Err(what(format!(
            "kind {other:?}: expected \"onnx\", \"iforest\" or \"zscore\""
        ))),
    }
}

/// `[[detectors]] kind = "onnx"`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOnnxDetector {
    /// `serving` (default): alerts go to the alert file or topic. `shadow`: the detector runs on
    /// the same stream but its alerts go to the shadow file or topic, tagged `"role": "shadow"`.
    pub role: Option<String>,
    /// Name in alerts. Default: the manifest's `name@version`.
    pub name: Option<String>,
    /// The model's manifest (`models/NAME/manifest.toml`), relative to the working directory.
    pub manifest: Option<PathBuf>,
    /// Longest a single ONNX Runtime call may take, in milliseconds: a batch's rows are run in
    /// chunks whose size adapts to stay under it. Default 5.
    pub max_run_ms: Option<f64>,
    /// Sensors it applies to. Default: every sensor whose records carry the model's channels.
    #[serde(default)]
    pub sensors: Vec<String>,
    /// This detector's policy; default: open at the manifest's threshold after 3 records, close
    /// below 0.95 of it after 10 (`[alerts]`'s counts apply, its thresholds do not).
    #[serde(default)]
    pub alerts: RawPolicy,
}

/// `[[detectors]] kind = "iforest"`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIforest {
    /// `serving` (default): alerts go to the alert file or topic. `shadow`: the detector runs on
    /// the same stream but its alerts go to the shadow file or topic, tagged `"role": "shadow"`.
    pub role: Option<String>,
    /// Name in alerts. Default `iforest`.
    pub name: Option<String>,
    /// The model file (`vigil train iforest`, `vigil import iforest`), relative to the working
    /// directory.
    pub model: Option<PathBuf>,
    /// Sensors it applies to. Default: every sensor whose records carry the model's channels.
    #[serde(default)]
    pub sensors: Vec<String>,
    /// This detector's alert policy; unset fields come from this kind's defaults (open at the
    /// model's threshold after 3, close below 0.97 of it after 10), except that `[alerts]`'s
    /// `open_after` and `close_after` apply (its thresholds are in z-score units).
    #[serde(default)]
    pub alerts: RawPolicy,
    /// The registry manifest this entry came from (`kind = "model"`), watched for reloads.
    #[serde(skip)]
    pub manifest: Option<PathBuf>,
}

/// `[[detectors]] kind = "likelihood"`: see `vigil_kernels::likelihood`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLikelihood {
    /// `serving` (default): alerts go to the alert file or topic. `shadow`: the detector runs on
    /// the same stream but its alerts go to the shadow file or topic, tagged `"role": "shadow"`.
    pub role: Option<String>,
    /// Name in alerts. Default `likelihood`.
    pub name: Option<String>,
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
    /// This detector's alert policy; unset fields come from `[alerts]`, then from this kind's
    /// defaults (open 3 after 1, close below 1.5 after 30).
    #[serde(default)]
    pub alerts: RawPolicy,
}

/// `[[detectors]] kind = "zscore"`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZscore {
    /// `serving` (default): alerts go to the alert file or topic. `shadow`: the detector runs on
    /// the same stream but its alerts go to the shadow file or topic, tagged `"role": "shadow"`.
    pub role: Option<String>,
    /// Name in alerts. Default `zscore`.
    pub name: Option<String>,
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
    /// This detector's alert policy; unset fields come from `[alerts]`.
    #[serde(default)]
    pub alerts: RawPolicy,
    /// The registry manifest this entry came from (`kind = "model"`), watched for reloads.
    #[serde(skip)]
    pub manifest: Option<PathBuf>,
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
            let msg = e.message().trim().to_string();
            match e.span().map(|s| line_of(text, s.start)) {
                Some(line) => format!("line {line}: {msg}"),
                None => msg,
            }
        })
    }
}

fn line_of(text: &str, byte: usize) -> usize {
    text.as_bytes()[..byte.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

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
                _ => Err(invalid(format!(
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
    /// Name the sensor of a file without a sensor column by its path without the extension, not
    /// by its file name (not a config key: the evaluator sets it, as corpora repeat file names
    /// across folders, e.g. SKAB's `valve1/0.csv` and `valve2/0.csv`).
    pub sensor_from_path: bool,
}

/// Validated `[pipeline]`.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Also hand every record's score to the sink (the evaluator needs them; not a config key).
    pub emit_scores: bool,
    pub shards: usize,
    pub batch_size: usize,
    pub linger: Duration,
    pub channel_capacity: usize,
    pub isa: Isa,
    pub speed: Speed,
}

/// Validated alert policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyConfig {
    pub open: f32,
    pub open_after: u32,
    pub close: f32,
    pub close_after: u32,
}

/// What a detector computes.
#[derive(Debug, Clone)]
pub enum DetectorKind {
    ZScore(ZParams),
    Likelihood(LikelihoodParams),
    IForest {
        model: Arc<IForestModel>,
        sensors: Arc<[String]>,
    },
    Onnx {
        model: Arc<crate::onnx::OnnxModel>,
        sensors: Arc<[String]>,
        max_run: Duration,
    },
}

/// `name (kind), ...` for logs.
pub fn detector_names(detectors: &[DetectorConfig]) -> String {
    detectors
        .iter()
        .map(|d| {
            let kind = match d.kind {
                DetectorKind::ZScore(_) => "zscore",
                DetectorKind::Likelihood(_) => "likelihood",
                DetectorKind::IForest { .. } => "iforest",
                DetectorKind::Onnx { .. } => "onnx",
            };
            format!("{} ({kind})", d.name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One validated detector.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    pub name: Arc<str>,
    pub kind: DetectorKind,
    pub policy: PolicyConfig,
    /// A shadow detector's alerts go to the shadow destination, never the serving one.
    pub shadow: bool,
    /// What makes two configurations the same detector (name, kind, parameters or the model
    /// files' contents): a reload keeps the state of a detector whose identity is unchanged.
    pub identity: String,
    /// The files it was loaded from (model files, manifests): `vigil score` watches them.
    pub files: Vec<PathBuf>,
}

/// FNV-1a of some bytes: model files' fingerprints in detector identities.
fn fingerprint(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        h = (h ^ 0xff).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn file_bytes(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

fn max_run_ms(v: Option<f64>) -> Result<Duration, ConfigError> {
    let ms = v.unwrap_or(5.0);
    if !(ms.is_finite() && ms > 0.0 && ms <= 60_000.0) {
        return Err(invalid(format!(
            "max_run_ms must be between 0 and 60000, got {ms}"
        )));
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

fn shadow_role(name: &str, role: Option<&str>) -> Result<bool, ConfigError> {
    match role {
        None | Some("serving") => Ok(false),
        Some("shadow") => Ok(true),
        Some(r) => Err(invalid(format!(
            "detector {name}: role must be \"serving\" or \"shadow\", got {r:?}"
        ))),
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
    pub properties: Vec<(String, String)>,
    pub http_listen: Option<std::net::SocketAddr>,
    pub log_interval: Duration,
}

/// Everything a run needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub input: InputConfig,
    pub pipeline: PipelineConfig,
    pub detectors: Vec<DetectorConfig>,
    pub output: OutputConfig,
    pub kafka: KafkaConfig,
}

fn positive<T: PartialOrd + Default + std::fmt::Display>(
    name: &str,
    v: T,
) -> Result<T, ConfigError> {
    if v > T::default() {
        Ok(v)
    } else {
        Err(invalid(format!("{name} must be positive, got {v}")))
    }
}

impl PolicyConfig {
    fn from_raw(
        raw: &RawPolicy,
        inherit: &PolicyConfig,
        what: &str,
    ) -> Result<PolicyConfig, ConfigError> {
        let p = PolicyConfig {
            open: raw.open.unwrap_or(inherit.open),
            open_after: raw.open_after.unwrap_or(inherit.open_after),
            close: raw.close.unwrap_or(inherit.close),
            close_after: raw.close_after.unwrap_or(inherit.close_after),
        };
        if !(p.open.is_finite() && p.close.is_finite() && p.close >= 0.0 && p.close < p.open) {
            return Err(invalid(format!(
                "{what}: need 0 <= close < open, got open {} close {}",
                p.open, p.close
            )));
        }
        if p.open_after == 0
            || p.close_after == 0
            || p.open_after > 1_000_000
            || p.close_after > 1_000_000
        {
            return Err(invalid(format!(
                "{what}: open_after and close_after must be between 1 and 1e6"
            )));
        }
        Ok(p)
    }
}

/// The built-in alert policy.
pub const DEFAULT_POLICY: PolicyConfig = PolicyConfig {
    open: 6.0,
    open_after: 3,
    close: 3.0,
    close_after: 10,
};

/// The built-in policy of likelihood detectors: the likelihood is already smoothed and fades by
/// itself, so one record above 3 opens an alert, which closes after 30 below 1.5.
pub const LIKELIHOOD_POLICY: PolicyConfig = PolicyConfig {
    open: 3.0,
    open_after: 1,
    close: 1.5,
    close_after: 30,
};

/// Built-in z-score parameters: (half_life, warmup, min_std, clip).
pub const DEFAULT_ZSCORE: (f64, u32, f32, f32) = (300.0, 60, 1e-3, 3.0);

impl Config {
    /// Checks `raw`, with `isa_override` (from `VIGIL_ISA`) taking precedence over `pipeline.isa`.
    pub fn validate(raw: RawConfig, isa_override: Option<&str>) -> Result<Config, ConfigError> {
        let input = InputConfig {
            ignore_columns: raw.input.ignore_columns,
            timestamp_column: raw.input.timestamp_column,
            sensor_column: raw.input.sensor_column,
            epoch_unit: match raw.input.epoch_unit.as_deref() {
                None => EpochUnit::Auto,
                Some(name) => EpochUnit::from_name(name).ok_or_else(|| {
                    invalid(format!(
                        "input.epoch_unit must be auto, s, ms, us or ns, got {name:?}"
                    ))
                })?,
            },
            delimiter: match raw.input.delimiter.as_deref() {
                None | Some("auto") => None,
                Some(",") => Some(b','),
                Some(";") => Some(b';'),
                Some("\t") | Some("tab") | Some("\\t") => Some(b'\t'),
                Some(other) => {
                    return Err(invalid(format!(
                        "input.delimiter must be ',', ';', tab or auto, got {other:?}"
                    )))
                }
            },
            sensor_from_path: false,
        };

        let isa_name = isa_override
            .or(raw.pipeline.isa.as_deref())
            .unwrap_or("auto");
        let isa = match isa_name {
            "auto" => Isa::best(),
            name => match Isa::from_name(name) {
                Some(isa) if isa.is_available() => isa,
                Some(isa) => {
                    return Err(invalid(format!(
                        "instruction set {isa} is not available on this CPU"
                    )))
                }
                None => {
                    return Err(invalid(format!(
                        "unknown instruction set {name:?} (auto, avx2, scalar)"
                    )))
                }
            },
        };
        let p = &raw.pipeline;
        let pipeline = PipelineConfig {
            emit_scores: false,
            shards: positive("pipeline.shards", p.shards.unwrap_or(2))?,
            batch_size: positive("pipeline.batch_size", p.batch_size.unwrap_or(1024))?,
            linger: Duration::from_millis(p.linger_ms.unwrap_or(5)),
            channel_capacity: positive(
                "pipeline.channel_capacity",
                p.channel_capacity.unwrap_or(16),
            )?,
            isa,
            speed: Speed::parse(p.speed.as_deref().unwrap_or("max"))?,
        };
        if pipeline.shards > 256 {
            return Err(invalid(format!(
                "pipeline.shards must be at most 256, got {}",
                pipeline.shards
            )));
        }

        let default_policy = PolicyConfig::from_raw(&raw.alerts, &DEFAULT_POLICY, "[alerts]")?;
        let raw_alerts = raw.alerts;
        let raw_onnx_runtime = raw.onnx.runtime;
        let raw_detectors = if raw.detectors.is_empty() {
            vec![RawDetector::Zscore(RawZscore::default())]
        } else {
            raw.detectors
        };
        let raw_detectors = raw_detectors
            .into_iter()
            .map(|d| match d {
                RawDetector::Model(m) => resolve_model(m),
                other => Ok(other),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut detectors = Vec::with_capacity(raw_detectors.len());
        for raw in raw_detectors {
            detectors.push(match raw {
                RawDetector::Zscore(z) => {
                    let name = z.name.unwrap_or_else(|| "zscore".to_string());
                    let (hl, warm, min_std, clip) = DEFAULT_ZSCORE;
                    let params = ZParams::new(
                        z.half_life.unwrap_or(hl),
                        z.warmup.unwrap_or(warm),
                        z.min_std.unwrap_or(min_std),
                        z.clip.unwrap_or(clip),
                    )
                    .map_err(|e| invalid(format!("detector {name}: {e}")))?;
                    let policy = PolicyConfig::from_raw(
                        &z.alerts,
                        &default_policy,
                        &format!("detector {name}"),
                    )?;
                    DetectorConfig {
                        name: Arc::from(name.as_str()),
                        kind: DetectorKind::ZScore(params),
                        policy,
                        shadow: shadow_role(&name, z.role.as_deref())?,
                        identity: format!("{name} zscore {params:?}"),
                        files: z.manifest.iter().cloned().collect(),
                    }
                }
                RawDetector::Likelihood(l) => {
                    let name = l.name.unwrap_or_else(|| "likelihood".to_string());
                    let d = LikelihoodSpec::default();
                    let spec = LikelihoodSpec {
                        fast_half_life: l.fast_half_life.unwrap_or(d.fast_half_life),
                        half_life: l.half_life.unwrap_or(d.half_life),
                        warmup: l.warmup.unwrap_or(d.warmup),
                        min_std: l.min_std.unwrap_or(d.min_std),
                        clip: l.clip.unwrap_or(d.clip),
                        cap: l.cap.unwrap_or(d.cap),
                        smooth_half_life: l.smooth_half_life.unwrap_or(d.smooth_half_life),
                        history_half_life: l.history_half_life.unwrap_or(d.history_half_life),
                        history_warmup: l.history_warmup.unwrap_or(d.history_warmup),
                    };
                    let params = LikelihoodParams::new(&spec)
                        .map_err(|e| invalid(format!("detector {name}: {e}")))?;
                    let inherit = PolicyConfig::from_raw(
                        &raw_alerts,
                        &LIKELIHOOD_POLICY,
                        &format!("[alerts] for detector {name}"),
                    )?;
                    let policy =
                        PolicyConfig::from_raw(&l.alerts, &inherit, &format!("detector {name}"))?;
                    DetectorConfig {
                        name: Arc::from(name.as_str()),
                        kind: DetectorKind::Likelihood(params),
                        policy,
                        shadow: shadow_role(&name, l.role.as_deref())?,
                        identity: format!("{name} likelihood {params:?}"),
                        files: Vec::new(),
                    }
                }
                RawDetector::Model(_) => unreachable!("resolved above"),
                RawDetector::Onnx(o) => {
                    let path = o.manifest.ok_or_else(|| {
                        invalid(format!(
                            "detector {}: manifest = \"FILE\" is required",
                            o.name.as_deref().unwrap_or("onnx")
                        ))
                    })?;
                    let model = crate::onnx::OnnxModel::load(&path, raw_onnx_runtime.as_deref())
                        .map_err(|e| {
                            invalid(format!(
                                "detector {}: {e}",
                                o.name.as_deref().unwrap_or("onnx")
                            ))
                        })?;
                    let name = o.name.unwrap_or_else(|| model.manifest.id());
                    let onnx_files = vec![path.clone(), model.manifest.file.clone()];
                    let onnx_identity = format!(
                        "{name} onnx {:x}",
                        fingerprint(&[&file_bytes(&path), &file_bytes(&model.manifest.file)])
                    );
                    let t = model.manifest.output.threshold;
                    let own = PolicyConfig {
                        open: t,
                        open_after: 3,
                        close: t - 0.05 * t.abs().max(f32::MIN_POSITIVE),
                        close_after: 10,
                    };
                    let counts = RawPolicy {
                        open: None,
                        close: None,
                        ..raw_alerts.clone()
                    };
                    let inherit = PolicyConfig::from_raw(
                        &counts,
                        &own,
                        &format!("[alerts] for detector {name}"),
                    )?;
                    let policy =
                        PolicyConfig::from_raw(&o.alerts, &inherit, &format!("detector {name}"))?;
                    DetectorConfig {
                        name: Arc::from(name.as_str()),
                        kind: DetectorKind::Onnx {
                            model,
                            sensors: o.sensors.into(),
                            max_run: max_run_ms(o.max_run_ms)?,
                        },
                        policy,
                        shadow: shadow_role(&name, o.role.as_deref())?,
                        identity: onnx_identity.clone(),
                        files: onnx_files.clone(),
                    }
                }
                RawDetector::Iforest(f) => {
                    let name = f.name.unwrap_or_else(|| "iforest".to_string());
                    let path = f.model.ok_or_else(|| {
                        invalid(format!("detector {name}: model = \"FILE\" is required"))
                    })?;
                    let model = IForestModel::load(&path)
                        .map_err(|e| invalid(format!("detector {name}: {e}")))?;
                    let own = PolicyConfig {
                        open: model.threshold,
                        open_after: 3,
                        close: model.threshold * 0.97,
                        close_after: 10,
                    };
                    // `[alerts]` thresholds are in z-score units: only its counts carry over.
                    let counts = RawPolicy {
                        open: None,
                        close: None,
                        ..raw_alerts.clone()
                    };
                    let inherit = PolicyConfig::from_raw(
                        &counts,
                        &own,
                        &format!("[alerts] for detector {name}"),
                    )?;
                    let policy =
                        PolicyConfig::from_raw(&f.alerts, &inherit, &format!("detector {name}"))?;
                    DetectorConfig {
                        name: Arc::from(name.as_str()),
                        kind: DetectorKind::IForest {
                            model: Arc::new(model),
                            sensors: f.sensors.into(),
                        },
                        policy,
                        shadow: shadow_role(&name, f.role.as_deref())?,
                        identity: format!(
                            "{name} iforest {:x}",
                            fingerprint(&[&file_bytes(&path)])
                        ),
                        files: std::iter::once(path.clone())
                            .chain(f.manifest.clone())
                            .collect(),
                    }
                }
            });
        }
        for (i, d) in detectors.iter().enumerate() {
            if detectors[..i].iter().any(|e| e.name == d.name) {
                return Err(invalid(format!("two detectors are named {:?}", d.name)));
            }
        }

        let output = OutputConfig {
            alerts: raw.output.alerts,
            shadow_alerts: raw
                .output
                .shadow_alerts
                .unwrap_or_else(|| PathBuf::from("shadow-alerts.jsonl")),
            dead_letter: raw
                .output
                .dead_letter
                .unwrap_or_else(|| PathBuf::from("dead-letters.jsonl")),
            metrics: raw.output.metrics,
        };
        let k = raw.kafka;
        let topic = |name: &str, v: Option<String>, default: &str| -> Result<String, ConfigError> {
            let t = v.unwrap_or_else(|| default.to_string());
            if t.is_empty()
                || t.len() > 249
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(invalid(format!(
                    "kafka.{name} {t:?} is not a valid topic name"
                )));
            }
            Ok(t)
        };
        let mut input_topics = Vec::new();
        for t in k.input_topics.unwrap_or_default() {
            input_topics.push(topic("input_topics", Some(t), "")?);
        }
        let http_listen = match raw.http.listen.as_deref() {
            Some("off") => None,
            other => {
                let text = other.unwrap_or("127.0.0.1:9898");
                Some(text.parse().map_err(|_| {
                    invalid(format!(
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
            properties: k.properties.into_iter().collect(),
            http_listen,
            log_interval: Duration::from_secs(positive(
                "http.log_interval_s",
                raw.http.log_interval_s.unwrap_or(10),
            )?),
        };
        if kafka.group_id.is_empty() {
            return Err(invalid("kafka.group_id must not be empty"));
        }
        Ok(Config {
            input,
            pipeline,
            detectors,
            output,
            kafka,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let c = Config::validate(RawConfig::default(), Some("scalar")).expect("valid");
        assert_eq!(c.pipeline.isa, Isa::Scalar);
        assert_eq!(c.detectors.len(), 1);
        assert_eq!(&*c.detectors[0].name, "zscore");
        assert_eq!(c.detectors[0].policy, DEFAULT_POLICY);
    }

    #[test]
    fn a_full_file_parses() {
        let raw = RawConfig::from_toml(
            r#"
            [input]
            ignore_columns = ["anomaly", "changepoint"]
            delimiter = ";"
            [pipeline]
            shards = 4
            speed = "realtime"
            [alerts]
            open = 5.0
            [[detectors]]
            kind = "zscore"
            name = "fast"
            half_life = 30
            [detectors.alerts]
            open_after = 1
            "#,
        )
        .expect("parses");
        let c = Config::validate(raw, None).expect("valid");
        assert_eq!(c.input.delimiter, Some(b';'));
        assert_eq!(c.pipeline.shards, 4);
        assert_eq!(c.pipeline.speed, Speed::Factor(1.0));
        assert_eq!(c.detectors[0].policy.open, 5.0);
        assert_eq!(c.detectors[0].policy.open_after, 1);
    }

    #[test]
    fn likelihood_detectors_take_their_own_policy_then_alerts_then_their_own_fields() {
        let raw = RawConfig::from_toml(
            r#"
            [alerts]
            close_after = 5
            [[detectors]]
            kind = "zscore"
            [[detectors]]
            kind = "likelihood"
            history_half_life = 500
            [detectors.alerts]
            open = 4
            "#,
        )
        .expect("parses");
        let c = Config::validate(raw, None).expect("valid");
        let l = &c.detectors[1];
        assert_eq!(&*l.name, "likelihood");
        assert!(matches!(l.kind, DetectorKind::Likelihood(_)));
        assert_eq!(
            l.policy,
            PolicyConfig {
                open: 4.0,
                close_after: 5,
                ..LIKELIHOOD_POLICY
            }
        );
        assert_eq!(c.detectors[0].policy.close_after, 5);
        assert_eq!(c.detectors[0].policy.open, DEFAULT_POLICY.open);
        assert_eq!(
            detector_names(&c.detectors),
            "zscore (zscore), likelihood (likelihood)"
        );
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused_in_one_line() {
        for (text, want) in [
            ("[pipeline]\nshardz = 3\n", "line 2: unknown field `shardz`"),
            (
                "[[detectors]]\nkind = \"zscore\"\nhalf_lfe = 3\n",
                "unknown field `half_lfe`",
            ),
            (
                "[[detectors]]\nkind = \"magic\"\n",
                "unknown variant `magic`",
            ),
            ("bogus = 1\n", "unknown field `bogus`"),
        ] {
            let err = RawConfig::from_toml(text).expect_err(text);
            assert!(err.contains(want), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
        for (text, want) in [
            ("[pipeline]\nshards = 0\n", "shards must be positive"),
            ("[pipeline]\nspeed = \"fast\"\n", "speed must be"),
            ("[pipeline]\nisa = \"sse9\"\n", "unknown instruction set"),
            ("[alerts]\nopen = 2.0\nclose = 3.0\n", "close < open"),
            ("[[detectors]]\nkind = \"zscore\"\nwarmup = 0\n", "warmup"),
            (
                "[[detectors]]\nkind = \"likelihood\"\ncap = 0\n",
                "detector likelihood: cap must be",
            ),
            (
                "[[detectors]]\nkind = \"likelihood\"\nhistory_half_life = -1\n",
                "history_half_life",
            ),
            ("[input]\nepoch_unit = \"days\"\n", "epoch_unit"),
        ] {
            let raw = RawConfig::from_toml(text).expect(text);
            let err = Config::validate(raw, None).expect_err(text).to_string();
            assert!(err.contains(want), "{err}");
        }
    }
}
