//! Loading a run's detectors: the manifests and model files the configuration names are read and
//! checked here (an ONNX model once through ONNX Runtime), names and policies that depend on a
//! model are settled, and each detector gets the identity reloads compare. The result is what
//! every shard builds its own instances from ([`super::build`]).

use crate::config::{zscore_params, Config, DetectorSpec, PolicyBase, PolicyConfig, SpecKind};
use crate::iforest::model::IForestModel;
use crate::manifest::{Manifest, ManifestError, Model};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vigil_kernels::likelihood::LikelihoodParams;
use vigil_kernels::sequence::SequenceParams;
use vigil_kernels::zscore::ZParams;

/// Why a detector cannot be loaded. One line, naming the detector, the file and the cause (in the
/// message, not chained as a `source`).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("detector {detector}: {error}")]
    Manifest {
        detector: String,
        error: ManifestError,
    },
    /// A model file that cannot be read or is not a model (Vigil's forest format, or ONNX).
    #[error("detector {detector}: {message}")]
    Model { detector: String, message: String },
    /// The policy that starts at the model's threshold does not check.
    #[error(transparent)]
    Policy(#[from] crate::config::ConfigError),
    #[error("two detectors are named {0:?}")]
    DuplicateName(String),
}

/// What a detector computes, with its models in memory.
#[derive(Debug, Clone)]
pub enum DetectorKind {
    ZScore(ZParams),
    Likelihood(LikelihoodParams),
    Sequence(SequenceParams),
    Baseline(vigil_kernels::baseline::BaselineParams),
    Pca(crate::config::PcaSpec),
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

impl DetectorKind {
    /// The kind's name in logs.
    pub fn name(&self) -> &'static str {
        match self {
            DetectorKind::ZScore(_) => "zscore",
            DetectorKind::Likelihood(_) => "likelihood",
            DetectorKind::Sequence(_) => "sequence",
            DetectorKind::Baseline(_) => "baseline",
            DetectorKind::Pca(_) => "pca",
            DetectorKind::IForest { .. } => "iforest",
            DetectorKind::Onnx { .. } => "onnx",
        }
    }
}

/// One loaded detector.
#[derive(Debug, Clone)]
pub struct LoadedDetector {
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
    /// The records it scores, by their number of channels.
    pub channels: crate::config::ChannelRange,
}

/// `name (kind), ...` for logs.
pub fn names(detectors: &[LoadedDetector]) -> String {
    detectors
        .iter()
        .map(|d| format!("{} ({})", d.name, d.kind.name()))
        .collect::<Vec<_>>()
        .join(", ")
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

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

/// Loads every detector of `config`, in order.
pub fn load(config: &Config) -> Result<Vec<LoadedDetector>, LoadError> {
    let mut out: Vec<LoadedDetector> = Vec::with_capacity(config.detectors.len());
    for spec in &config.detectors {
        let d = load_one(config, spec)?;
        if out.iter().any(|e| e.name == d.name) {
            return Err(LoadError::DuplicateName(d.name.to_string()));
        }
        out.push(d);
    }
    Ok(out)
}

fn load_one(config: &Config, spec: &DetectorSpec) -> Result<LoadedDetector, LoadError> {
    let label = spec.label().to_string();
    let model_error = |message: String| LoadError::Model {
        detector: label.clone(),
        message,
    };
    let finish = |name: String,
                  kind: DetectorKind,
                  base: PolicyBase,
                  identity: String,
                  files: Vec<PathBuf>|
     -> Result<LoadedDetector, LoadError> {
        Ok(LoadedDetector {
            policy: PolicyConfig::resolve(base, &config.alerts, &spec.alerts, &name)?,
            name: Arc::from(name.as_str()),
            kind,
            shadow: spec.shadow,
            identity: if spec.channels == crate::config::ChannelRange::ANY {
                identity
            } else {
                format!(
                    "{identity} channels {}..={}",
                    spec.channels.min, spec.channels.max
                )
            },
            files,
            channels: spec.channels,
        })
    };
    let iforest = |name: String, path: &Path, sensors: &[String], manifest: Option<&Path>| {
        let model = IForestModel::load(path).map_err(&model_error)?;
        let base = PolicyBase::Threshold {
            open: model.threshold,
            close: model.threshold * 0.97,
        };
        let identity = format!("{name} iforest {:x}", fingerprint(&[&file_bytes(path)]));
        let files = std::iter::once(path.to_path_buf())
            .chain(manifest.map(Path::to_path_buf))
            .collect();
        let kind = DetectorKind::IForest {
            model: Arc::new(model),
            sensors: sensors.into(),
        };
        finish(name, kind, base, identity, files)
    };
    let onnx = |manifest: &Path, sensors: &[String], max_run: Duration| {
        let model = crate::onnx::OnnxModel::load(manifest, config.onnx_runtime.as_deref())
            .map_err(&model_error)?;
        let name = spec.name.clone().unwrap_or_else(|| model.manifest.id());
        let files = vec![manifest.to_path_buf(), model.manifest.file.clone()];
        let identity = format!(
            "{name} onnx {:x}",
            fingerprint(&[&file_bytes(manifest), &file_bytes(&model.manifest.file)])
        );
        let t = model.manifest.output.threshold;
        let base = PolicyBase::Threshold {
            open: t,
            close: t - 0.05 * t.abs().max(f32::MIN_POSITIVE),
        };
        let kind = DetectorKind::Onnx {
            model,
            sensors: sensors.into(),
            max_run,
        };
        finish(name, kind, base, identity, files)
    };
    // Kinds without a model: their parameters are their identity, their policy base their kind's.
    let plain = |kind: DetectorKind, what: String| {
        let base = spec.kind.policy_base().unwrap_or(PolicyBase::ZScore);
        finish(
            label.clone(),
            kind,
            base,
            format!("{label} {what}"),
            Vec::new(),
        )
    };
    match &spec.kind {
        SpecKind::ZScore(p) => plain(DetectorKind::ZScore(*p), format!("zscore {p:?}")),
        SpecKind::Likelihood(p) => plain(DetectorKind::Likelihood(*p), format!("likelihood {p:?}")),
        SpecKind::Sequence(p) => plain(DetectorKind::Sequence(*p), format!("sequence {p:?}")),
        SpecKind::Baseline(p) => plain(DetectorKind::Baseline(*p), format!("baseline {p:?}")),
        SpecKind::Pca(p) => plain(DetectorKind::Pca(p.clone()), format!("pca {p:?}")),
        SpecKind::IForest { model, sensors } => iforest(label.clone(), model, sensors, None),
        SpecKind::Onnx {
            manifest,
            sensors,
            max_run,
        } => onnx(manifest, sensors, *max_run),
        SpecKind::Model {
            manifest: path,
            sensors,
            max_run,
        } => {
            let manifest = Manifest::load(path).map_err(|error| LoadError::Manifest {
                detector: label.clone(),
                error,
            })?;
            let name = spec.name.clone().unwrap_or_else(|| manifest.id());
            match &manifest.model {
                Model::Onnx(_) => onnx(path, sensors, *max_run),
                Model::Iforest { file, channels } => {
                    if let Some(channels) = channels {
                        check_channels(file, channels).map_err(|message| LoadError::Manifest {
                            detector: label.clone(),
                            error: ManifestError::Invalid {
                                path: path.clone(),
                                message,
                            },
                        })?;
                    }
                    iforest(name, file, sensors, Some(path))
                }
                Model::Zscore(p) => {
                    let raw = crate::config::raw::RawZscore {
                        half_life: p.half_life,
                        warmup: p.warmup,
                        min_std: p.min_std,
                        clip: p.clip,
                    };
                    let params = zscore_params(&raw, &name)?;
                    let identity = format!("{name} zscore {params:?}");
                    let kind = DetectorKind::ZScore(params);
                    finish(name, kind, PolicyBase::ZScore, identity, vec![path.clone()])
                }
            }
        }
    }
}

/// An iforest manifest's channels must be the forest file's, in its order.
fn check_channels(file: &Path, channels: &[String]) -> Result<(), String> {
    let model = IForestModel::load(file)?;
    let mut distinct: Vec<&str> = model.features.iter().map(|f| f.channel.as_str()).collect();
    distinct.dedup();
    if channels
        .iter()
        .map(String::as_str)
        .eq(distinct.iter().copied())
    {
        return Ok(());
    }
    let same_set =
        channels.len() == distinct.len() && channels.iter().all(|c| distinct.contains(&c.as_str()));
    Err(format!(
        "input.channels {channels:?} are {} the model's {distinct:?}",
        if same_set { "a reordering of" } else { "not" },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RawConfig, DEFAULT_POLICY, LIKELIHOOD_POLICY};

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
        let c = load(&Config::validate(raw).expect("valid")).expect("loads");
        let l = &c[1];
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
        assert_eq!(c[0].policy.close_after, 5);
        assert_eq!(c[0].policy.open, DEFAULT_POLICY.open);
        assert_eq!(names(&c), "zscore (zscore), likelihood (likelihood)");
    }

    #[test]
    fn a_missing_model_is_a_one_line_error_at_load() {
        let raw = RawConfig::from_toml(
            "[[detectors]]\nkind = \"iforest\"\nname = \"f\"\nmodel = \"/no/such/model.vigil\"\n",
        )
        .expect("parses");
        let e = load(&Config::validate(raw).expect("valid"))
            .expect_err("missing")
            .to_string();
        assert!(e.starts_with("detector f: ") && !e.contains('\n'), "{e}");
    }
}
