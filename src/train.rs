//! `vigil train iforest`: reads recorded files, computes the model's features per sensor exactly as
//! the stream will, grows the forest, and sets the threshold from the training scores.

use crate::config::Config;
use crate::iforest::features::{Feature, Layout};
use crate::iforest::model::{threshold_for, FeatureSummary, IForestModel, Training};
use crate::record::NameTable;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use vigil_kernels::iforest::train::{train, TrainParams};
use vigil_kernels::iforest::Scorer;
use vigil_kernels::isa::Isa;

/// Why a model could not be trained (each is the user's to fix: exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A `--features` spec that does not parse.
    #[error("{0}")]
    Feature(String),
    /// An input file that cannot be opened or has no usable header.
    #[error(transparent)]
    Input(#[from] crate::sources::file::InputError),
    /// The records cannot make a forest (too few, channels missing, bad parameters).
    #[error("{0}")]
    Data(String),
}

/// What to train on and how.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub inputs: Vec<PathBuf>,
    pub params: TrainParams,
    /// Feature specs; default every channel of the first record's schema.
    pub features: Option<Vec<String>>,
    pub contamination: f64,
    /// Only records of these sensors (default: all).
    pub sensors: Vec<String>,
    /// Only records with event time before this (epoch ms), e.g. the known-normal start of a run.
    pub until_ms: Option<i64>,
    /// Only the first this many records of each file (e.g. SKAB's 400 training rows).
    pub head: Option<u64>,
}

/// A trained model and what went into it.
#[derive(Debug)]
pub struct Trained {
    pub model: IForestModel,
    /// Records read, and records whose features were incomplete (skipped).
    pub records: u64,
    pub skipped: u64,
    pub dead_letters: u64,
}

/// Trains a model on `opts.inputs`. Errors are one line.
pub fn train_iforest(config: &Config, opts: &TrainOptions) -> Result<Trained, TrainError> {
    let names = Arc::new(NameTable::default());
    let mut features: Option<Vec<Feature>> = match &opts.features {
        Some(specs) => Some(
            specs
                .iter()
                .map(|s| Feature::parse(s))
                .collect::<Result<_, _>>()
                .map_err(TrainError::Feature)?,
        ),
        None => None,
    };
    if let Some(feats) = &features {
        if let Some((i, f)) = feats
            .iter()
            .enumerate()
            .find(|(i, f)| feats[..*i].contains(f))
        {
            return Err(TrainError::Feature(format!(
                "feature {f} appears twice in --features (position {})",
                i + 1
            )));
        }
    }
    let explicit = features.is_some();
    let mut layouts: HashMap<u32, Layout> = HashMap::new();
    let mut history: HashMap<(u32, u32), Vec<f32>> = HashMap::new();
    let mut wanted: HashMap<u32, bool> = HashMap::new();
    let mut per_source: HashMap<u32, u64> = HashMap::new();
    let mut rows: Vec<f32> = Vec::new();
    let (mut records, mut skipped, mut dead) = (0u64, 0u64, 0u64);
    let mut error = None;
    let mut out = Vec::new();
    crate::sources::file::decode_files(
        &config.input,
        &opts.inputs,
        names.clone(),
        &mut |batch| {
            if error.is_some() {
                return;
            }
            let feats = features.get_or_insert_with(|| {
                batch
                    .schema
                    .channels
                    .iter()
                    .map(|c| {
                        Feature::parse(c).unwrap_or(Feature {
                            channel: c.to_string(),
                            transform: crate::iforest::features::Transform::Value,
                        })
                    })
                    .collect()
            });
            let layout = match layouts.get(&batch.schema.id) {
                Some(l) => l.clone(),
                None => match Layout::new(feats, &batch.schema.channels) {
                    Ok(l) => {
                        layouts.insert(batch.schema.id, l.clone());
                        l
                    }
                    Err(missing) => {
                        error = Some(format!(
                            "records with channels {:?} have no channel {missing:?}",
                            batch.schema.channels
                        ));
                        return;
                    }
                },
            };
            out.resize(feats.len(), 0.0);
            for i in 0..batch.len() {
                let sensor = batch.sensors[i];
                let keep = *wanted.entry(sensor).or_insert_with(|| {
                    opts.sensors.is_empty() || opts.sensors.iter().any(|s| *s == *names.get(sensor))
                });
                if !keep || opts.until_ms.is_some_and(|u| batch.ts[i] >= u) {
                    continue;
                }
                let seen = per_source.entry(batch.origins[i].source).or_insert(0);
                *seen += 1;
                if opts.head.is_some_and(|h| *seen > h) {
                    continue;
                }
                records += 1;
                let h = history
                    .entry((sensor, batch.schema.id))
                    .or_insert_with(|| layout.fresh_history());
                if layout.compute(batch.row(i), h, &mut out) {
                    rows.extend_from_slice(&out);
                } else {
                    skipped += 1;
                }
            }
        },
        &mut |_| dead += 1,
    )?;
    if let Some(e) = error {
        return Err(TrainError::Data(e));
    }
    let features = features.ok_or_else(|| TrainError::Data("no records to train on".into()))?;
    let f = features.len();
    if rows.len() / f < 2 {
        return Err(TrainError::Data(format!(
            "{} complete rows to train on (of {records} records read); need at least 2",
            rows.len() / f
        )));
    }
    // A feature that never varies in the training data separates nothing; any reading off its
    // one value would look anomalous. Named in --features: refused; by default: left out.
    let constant: Vec<usize> = (0..f)
        .filter(|&j| {
            let s = FeatureSummary::of(&rows, f, j);
            s.min == s.max
        })
        .collect();
    let (features, rows, f) = if constant.is_empty() {
        (features, rows, f)
    } else {
        let names: Vec<String> = constant.iter().map(|&j| features[j].to_string()).collect();
        if explicit || constant.len() == f {
            return Err(TrainError::Data(format!(
                "feature(s) {} never vary in the training data (a model on them alerts on any change); leave them out of --features",
                names.join(", ")
            )));
        }
        tracing::warn!(
            "left out feature(s) {}: they never vary in the training data",
            names.join(", ")
        );
        let keep: Vec<usize> = (0..f).filter(|j| !constant.contains(j)).collect();
        let rows: Vec<f32> = rows
            .chunks_exact(f)
            .flat_map(|r| keep.iter().map(move |&j| r[j]))
            .collect();
        let features: Vec<Feature> = keep.iter().map(|&j| features[j].clone()).collect();
        let k = keep.len();
        (features, rows, k)
    };
    let forest = train(&rows, f, &opts.params).map_err(|e| TrainError::Data(e.0))?;
    let mut scores = vec![0.0; rows.len() / f];
    // The run's instruction set (VIGIL_ISA, pipeline.isa or the CPU's best), as every command.
    crate::run::note_scalar_fallback(config);
    let scorer = Scorer::new(config.pipeline.isa(), &forest).unwrap_or_else(|| {
        Scorer::new(Isa::Scalar, &forest).expect("the scalar path is always available")
    });
    crate::iforest::score_parallel(scorer, &forest, &rows, &mut scores);
    let threshold = threshold_for(&scores, opts.contamination).map_err(TrainError::Data)?;
    let summary = (0..f).map(|j| FeatureSummary::of(&rows, f, j)).collect();
    Ok(Trained {
        model: IForestModel {
            features,
            forest,
            threshold,
            training: Training {
                method: format!(
                    "vigil train iforest ({} trees, sample {})",
                    opts.params.trees, opts.params.sample_size
                ),
                sources: opts
                    .inputs
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
                rows: (rows.len() / f) as u64,
                seed: Some(opts.params.seed),
                contamination: Some(opts.contamination),
                summary,
            },
        },
        records,
        skipped,
        dead_letters: dead,
    })
}
