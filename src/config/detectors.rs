//! Validated `[[detectors]]` entries: parameters checked, paths kept as paths. Nothing is read
//! here: the models and manifests an entry names are read when its detector is loaded
//! (`crate::detectors::load`), which also finishes policies that start at a model's threshold.

use super::policy::{PolicyBase, PolicyConfig};
use super::raw::{
    RawBaseline, RawDetector, RawKind, RawLikelihood, RawPolicy, RawSequence, RawZscore,
};
use super::ConfigError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use vigil_kernels::baseline::{BaselineParams, BaselineSpec};
use vigil_kernels::likelihood::{LikelihoodParams, LikelihoodSpec};
use vigil_kernels::pca::{PcaParams, MAX_CHANNELS};
use vigil_kernels::sequence::{SequenceParams, SequenceSpec};
use vigil_kernels::zscore::ZParams;

/// Built-in z-score parameters: (half_life, warmup, min_std, clip).
pub const DEFAULT_ZSCORE: (f64, u32, f32, f32) = (300.0, 60, 1e-3, 3.0);

/// One validated `[[detectors]]` entry.
#[derive(Debug, Clone)]
pub struct DetectorSpec {
    /// The configured name; `None`: the kind's name, or the manifest's `name@version`.
    pub name: Option<String>,
    /// A shadow detector's alerts go to the shadow destination, never the serving one.
    pub shadow: bool,
    /// Its own `[detectors.alerts]`.
    pub alerts: RawPolicy,
    /// The records it scores, by their number of channels.
    pub channels: ChannelRange,
    pub kind: SpecKind,
}

/// The records a detector scores, by their number of channels (`min_channels`,
/// `max_channels`); the others it scores as no observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelRange {
    pub min: u32,
    pub max: u32,
}

impl ChannelRange {
    /// Every record.
    pub const ANY: ChannelRange = ChannelRange {
        min: 1,
        max: u32::MAX,
    };

    /// Whether records of `width` channels are the detector's.
    pub fn contains(&self, width: usize) -> bool {
        (self.min as usize..=self.max as usize).contains(&width)
    }
}

/// A validated `kind = "pca"` detector.
#[derive(Clone, Debug, PartialEq)]
pub struct PcaSpec {
    pub params: PcaParams,
    /// Records each sensor learns from before it scores.
    pub train_rows: u32,
    /// The channels read together, in order; empty: every channel of the sensor's records.
    pub channels: Arc<[String]>,
    /// Sensors it applies to; empty: all.
    pub sensors: Arc<[String]>,
}

/// The policy of a PCA detector before `[alerts]`' counts and its own fields: open at a control
/// limit, close a little below it.
const PCA_OPEN: f32 = 1.0;
const PCA_CLOSE: f32 = 0.9;

/// What a validated entry computes, or where its model is.
#[derive(Debug, Clone)]
pub enum SpecKind {
    ZScore(ZParams),
    Likelihood(LikelihoodParams),
    Sequence(SequenceParams),
    Baseline(BaselineParams),
    Pca(PcaSpec),
    IForest {
        model: PathBuf,
        sensors: Vec<String>,
    },
    /// An ONNX manifest (`kind = "onnx"`).
    Onnx {
        manifest: PathBuf,
        sensors: Vec<String>,
        max_run: Duration,
    },
    /// Any registry manifest (`kind = "model"`): its `kind` decides at load.
    Model {
        manifest: PathBuf,
        sensors: Vec<String>,
        max_run: Duration,
    },
}

impl SpecKind {
    /// Where the policy of this kind starts, when it does not depend on a model (models' start at
    /// their threshold, known once loaded).
    pub fn policy_base(&self) -> Option<PolicyBase> {
        match self {
            SpecKind::ZScore(_) => Some(PolicyBase::ZScore),
            SpecKind::Likelihood(_) => Some(PolicyBase::Likelihood),
            SpecKind::Sequence(_) => Some(PolicyBase::Sequence),
            SpecKind::Baseline(_) => Some(PolicyBase::Baseline),
            SpecKind::Pca(_) => Some(PolicyBase::Threshold {
                open: PCA_OPEN,
                close: PCA_CLOSE,
            }),
            SpecKind::IForest { .. } | SpecKind::Onnx { .. } | SpecKind::Model { .. } => None,
        }
    }
}

impl DetectorSpec {
    /// The name in messages before the detector is loaded.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(match self.kind {
            SpecKind::ZScore(_) => "zscore",
            SpecKind::Likelihood(_) => "likelihood",
            SpecKind::Sequence(_) => "sequence",
            SpecKind::Baseline(_) => "baseline",
            SpecKind::Pca(_) => "pca",
            SpecKind::IForest { .. } => "iforest",
            SpecKind::Onnx { .. } => "onnx",
            SpecKind::Model { .. } => "model",
        })
    }
}

/// The z-score's parameters, unset ones from [`DEFAULT_ZSCORE`] (config entries and z-score
/// manifests alike).
pub fn zscore_params(z: &RawZscore, name: &str) -> Result<ZParams, ConfigError> {
    let (hl, warm, min_std, clip) = DEFAULT_ZSCORE;
    ZParams::new(
        z.half_life.unwrap_or(hl),
        z.warmup.unwrap_or(warm),
        z.min_std.unwrap_or(min_std),
        z.clip.unwrap_or(clip),
    )
    .map_err(|e| ConfigError::invalid(format!("detector {name}: {e}")))
}

fn max_run_ms(v: Option<f64>) -> Result<Duration, ConfigError> {
    let ms = v.unwrap_or(5.0);
    if !(ms.is_finite() && ms > 0.0 && ms <= 60_000.0) {
        return Err(ConfigError::invalid(format!(
            "max_run_ms must be between 0 and 60000, got {ms}"
        )));
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

fn shadow_role(name: &str, role: Option<&str>) -> Result<bool, ConfigError> {
    match role {
        None | Some("serving") => Ok(false),
        Some("shadow") => Ok(true),
        Some(r) => Err(ConfigError::invalid(format!(
            "detector {name}: role must be \"serving\" or \"shadow\", got {r:?}"
        ))),
    }
}

/// Checks one entry; `alerts` is `[alerts]`, against which the policies that do not depend on a
/// model are checked here already.
pub(super) fn spec(raw: RawDetector, alerts: &RawPolicy) -> Result<DetectorSpec, ConfigError> {
    let RawDetector { common, kind } = raw;
    let label = common
        .name
        .clone()
        .unwrap_or_else(|| kind.name().to_string());
    if label.trim().is_empty() {
        return Err(ConfigError::invalid(format!(
            "a {} detector's name cannot be empty",
            kind.name()
        )));
    }
    let required = |what: &str, v: Option<PathBuf>| {
        v.ok_or_else(|| {
            ConfigError::invalid(format!("detector {label}: {what} = \"FILE\" is required"))
        })
    };
    let kind = match kind {
        RawKind::Zscore(z) => SpecKind::ZScore(zscore_params(&z, &label)?),
        RawKind::Likelihood(l) => {
            let params = LikelihoodParams::new(&likelihood_spec(&l, LikelihoodSpec::default()))
                .map_err(|e| ConfigError::invalid(format!("detector {label}: {e}")))?;
            SpecKind::Likelihood(params)
        }
        RawKind::Sequence(RawSequence {
            novelty: n,
            likelihood: l,
        }) => {
            let d = SequenceSpec::default();
            let spec = SequenceSpec {
                likelihood: likelihood_spec(&l, d.likelihood),
                levels: n.levels.unwrap_or(d.levels),
                order: n.order.unwrap_or(d.order),
                range_warmup: n.range_warmup.unwrap_or(d.range_warmup),
                learn: n.learn.unwrap_or(d.learn),
                memory_bits: n.memory_bits.unwrap_or(d.memory_bits),
                weight: n.weight.unwrap_or(d.weight),
                extent_tolerance: n.extent_tolerance.unwrap_or(d.extent_tolerance),
                extent_score: n.extent_score.unwrap_or(d.extent_score),
                time_of_day: n.time_of_day.unwrap_or(d.time_of_day),
            };
            let params = SequenceParams::new(&spec)
                .map_err(|e| ConfigError::invalid(format!("detector {label}: {e}")))?;
            SpecKind::Sequence(params)
        }
        RawKind::Baseline(RawBaseline {
            train_rows,
            rel_floor,
            min_std,
            smooth_half_life,
        }) => {
            let d = BaselineSpec::default();
            let spec = BaselineSpec {
                train: train_rows.unwrap_or(d.train),
                rel_floor: rel_floor.unwrap_or(d.rel_floor),
                min_std: min_std.unwrap_or(d.min_std),
                smooth_half_life: smooth_half_life.unwrap_or(d.smooth_half_life),
            };
            let params = BaselineParams::new(&spec)
                .map_err(|e| ConfigError::invalid(format!("detector {label}: {e}")))?;
            SpecKind::Baseline(params)
        }
        RawKind::Pca(p) => {
            let d = PcaParams::default();
            let params = PcaParams {
                explained: p.explained.unwrap_or(d.explained),
                p: p.p.unwrap_or(d.p),
                min_std: p.min_std.unwrap_or(d.min_std),
            };
            params
                .check()
                .map_err(|e| ConfigError::invalid(format!("detector {label}: {e}")))?;
            let train_rows = p.train_rows.unwrap_or(400);
            let channels = p.channels.len().max(1);
            if !(train_rows as usize >= channels + 2 && train_rows <= 10_000_000) {
                return Err(ConfigError::invalid(format!(
                    "detector {label}: train_rows must be at least the channels + 2 and at most 1e7, got {train_rows}"
                )));
            }
            if p.channels.len() > MAX_CHANNELS {
                return Err(ConfigError::invalid(format!(
                    "detector {label}: at most {MAX_CHANNELS} channels"
                )));
            }
            SpecKind::Pca(PcaSpec {
                params,
                train_rows,
                channels: p.channels.into(),
                sensors: p.sensors.into(),
            })
        }
        RawKind::Iforest(f) => SpecKind::IForest {
            model: required("model", f.model)?,
            sensors: f.sensors,
        },
        RawKind::Onnx(m) => SpecKind::Onnx {
            manifest: required("manifest", m.manifest)?,
            sensors: m.sensors,
            max_run: max_run_ms(m.max_run_ms)?,
        },
        RawKind::Model(m) => SpecKind::Model {
            manifest: required("manifest", m.manifest)?,
            sensors: m.sensors,
            max_run: max_run_ms(m.max_run_ms)?,
        },
    };
    // Policies that do not wait for a model are checked now.
    if let Some(base) = kind.policy_base() {
        PolicyConfig::resolve(base, alerts, &common.alerts, &label)?;
    }
    let channels = ChannelRange {
        min: common.min_channels.unwrap_or(ChannelRange::ANY.min),
        max: common.max_channels.unwrap_or(ChannelRange::ANY.max),
    };
    if channels.min == 0 || channels.min > channels.max {
        return Err(ConfigError::invalid(format!(
            "detector {label}: min_channels must be at least 1 and at most max_channels, got {} and {}",
            channels.min, channels.max
        )));
    }
    Ok(DetectorSpec {
        shadow: shadow_role(&label, common.role.as_deref())?,
        name: common.name,
        alerts: common.alerts,
        channels,
        kind,
    })
}

/// A likelihood spec from its keys, `d` where unset.
fn likelihood_spec(l: &RawLikelihood, d: LikelihoodSpec) -> LikelihoodSpec {
    LikelihoodSpec {
        fast_half_life: l.fast_half_life.unwrap_or(d.fast_half_life),
        half_life: l.half_life.unwrap_or(d.half_life),
        warmup: l.warmup.unwrap_or(d.warmup),
        min_std: l.min_std.unwrap_or(d.min_std),
        clip: l.clip.unwrap_or(d.clip),
        cap: l.cap.unwrap_or(d.cap),
        smooth_half_life: l.smooth_half_life.unwrap_or(d.smooth_half_life),
        history_half_life: l.history_half_life.unwrap_or(d.history_half_life),
        history_warmup: l.history_warmup.unwrap_or(d.history_warmup),
    }
}
