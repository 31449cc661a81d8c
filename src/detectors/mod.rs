//! Detectors: stateful scorers run by a shard on each batch.
//!
//! A detector keeps per-sensor state in slot blocks addressed by the shard's sensor keys
//! ([`SlotMap`]) and writes, for every reading of a batch, an anomaly score and the value it
//! expected. A NaN score means "no observation" (a missing or non-finite reading).

pub mod baseline;
pub mod iforest;
pub mod likelihood;
mod load;
pub mod onnx;
pub mod pca;
pub mod per_channel;
pub mod sequence;
pub mod zscore;

use crate::contract::{Explanation, Scores};
use crate::record::RecordBatch;
pub use load::{load, names, DetectorKind, LoadError, LoadedDetector};
use std::fmt;
use std::sync::Arc;
use vigil_kernels::isa::Isa;

/// A stateful scorer. One instance per shard: it only ever sees that shard's sensors.
pub trait Detector: Send + fmt::Debug {
    /// The name alerts carry.
    fn name(&self) -> &Arc<str>;
    /// Scores every reading of `batch`; `keys[i]` is the shard's key for row `i`'s sensor.
    fn score(&mut self, batch: &RecordBatch, keys: &[u32], out: &mut Scores);
    /// Why row `row` of `batch` (just scored, sensor key `key`) scored as it did, for the alert it
    /// opened. Called only for opening records; the default says nothing.
    fn explain(&mut self, _batch: &RecordBatch, _row: usize, _key: u32) -> Explanation {
        Explanation::default()
    }
}

/// Most channels an alert names.
pub const NAMED: usize = 3;

/// An alert's contributions from per-channel weights (a channel may appear more than once, e.g.
/// once per feature of it): weights summed per channel, those not positive dropped, each a share of
/// the positive total, largest first (ties by name), at most [`NAMED`]. Empty when no weight is
/// positive and finite.
pub fn top_contributions(
    weights: impl IntoIterator<Item = (Arc<str>, f64)>,
) -> Vec<(Arc<str>, f32)> {
    let mut by_channel: Vec<(Arc<str>, f64)> = Vec::new();
    for (channel, w) in weights {
        let w = if w.is_finite() && w > 0.0 { w } else { 0.0 };
        match by_channel.iter_mut().find(|(c, _)| *c == channel) {
            Some((_, sum)) => *sum += w,
            None => by_channel.push((channel, w)),
        }
    }
    let total: f64 = by_channel.iter().map(|(_, w)| w).sum();
    if !(total > 0.0 && total.is_finite()) {
        return Vec::new();
    }
    by_channel.retain(|(_, w)| *w > 0.0);
    by_channel.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    by_channel
        .into_iter()
        .take(NAMED)
        .map(|(c, w)| (c, (w / total) as f32))
        .collect()
}

/// Why a shard's instance of a loaded detector could not be made.
#[derive(Debug, thiserror::Error)]
#[error("detector {detector}: {message}")]
pub struct BuildError {
    pub detector: String,
    pub message: String,
}

/// Builds one shard's detectors (`sensor_names` resolves sensor ids for detectors that apply to
/// named sensors).
///
/// Fails only when an ONNX model's session cannot be made (loading checked it once).
pub fn build(
    configs: &[LoadedDetector],
    isa: Isa,
    sensor_names: &Arc<crate::record::NameTable>,
) -> Result<Vec<Box<dyn Detector>>, BuildError> {
    configs
        .iter()
        .map(|c| -> Result<Box<dyn Detector>, BuildError> {
            let detector = build_one(c, isa, sensor_names)?;
            Ok(if c.channels == crate::config::ChannelRange::ANY {
                detector
            } else {
                Box::new(Gated {
                    inner: detector,
                    channels: c.channels,
                })
            })
        })
        .collect()
}

/// A detector that scores only the records whose number of channels is in its range
/// (`min_channels`, `max_channels`); the others score as no observation, so they raise none of
/// its alerts and it keeps no state for them.
#[derive(Debug)]
struct Gated {
    inner: Box<dyn Detector>,
    channels: crate::config::ChannelRange,
}

impl Detector for Gated {
    fn name(&self) -> &Arc<str> {
        self.inner.name()
    }

    fn score(&mut self, batch: &RecordBatch, keys: &[u32], out: &mut Scores) {
        if self.channels.contains(batch.width()) {
            self.inner.score(batch, keys, out);
        } else {
            out.reset(batch.len() * batch.width());
            out.score.fill(f32::NAN);
            out.expected.fill(f32::NAN);
        }
    }

    fn explain(&mut self, batch: &RecordBatch, row: usize, key: u32) -> Explanation {
        self.inner.explain(batch, row, key)
    }
}

/// One shard's instance of one loaded detector.
fn build_one(
    c: &LoadedDetector,
    isa: Isa,
    sensor_names: &Arc<crate::record::NameTable>,
) -> Result<Box<dyn Detector>, BuildError> {
    Ok(match &c.kind {
        DetectorKind::ZScore(params) => {
            Box::new(zscore::detector(c.name.clone(), isa, *params)) as Box<dyn Detector>
        }
        DetectorKind::Likelihood(params) => {
            Box::new(likelihood::detector(c.name.clone(), isa, *params))
        }
        DetectorKind::Sequence(params) => {
            Box::new(sequence::detector(c.name.clone(), isa, *params))
        }
        DetectorKind::Baseline(params) => {
            Box::new(baseline::detector(c.name.clone(), isa, *params))
        }
        DetectorKind::Pca(spec) => Box::new(pca::PcaDetector::new(
            c.name.clone(),
            isa,
            spec.clone(),
            sensor_names.clone(),
        )),
        DetectorKind::IForest { model, sensors } => Box::new(iforest::IForestDetector::new(
            c.name.clone(),
            isa,
            model.clone(),
            sensors.clone(),
            sensor_names.clone(),
        )),
        DetectorKind::Onnx {
            model,
            sensors,
            max_run,
        } => Box::new(
            onnx::OnnxDetector::new(
                c.name.clone(),
                model.clone(),
                sensors.clone(),
                sensor_names.clone(),
                *max_run,
            )
            .map_err(|message| BuildError {
                detector: c.name.to_string(),
                message,
            })?,
        ),
    })
}

/// Splits a batch's rows into runs whose sensors sit in adjacent blocks of `width` slots (as when
/// every sensor reports once per tick, in a steady order), so that a detector scores each run by one
/// kernel call straight from the batch's row-major values: no gather, no copy.
///
/// Calls `run(first_slot, rows)` per run; slots up to [`SlotMap::len`] must exist by then (a
/// detector grows its state to that length first).
pub fn for_each_run(
    map: &mut SlotMap,
    keys: &[u32],
    width: usize,
    mut run: impl FnMut(&SlotMap, usize, std::ops::Range<usize>),
) {
    let rows = keys.len();
    let mut r = 0;
    while r < rows {
        let start = map.base(keys[r], width).0;
        let mut end = r + 1;
        let mut next = start + width;
        while end < rows && map.base(keys[end], width).0 == next {
            next += width;
            end += 1;
        }
        run(map, start, r..end);
        r = end;
    }
}

/// Per sensor key, the state of a detector that applies only to some sensors (those named in its
/// `sensors` list, or all when the list is empty): decided once per key from the sensor's name.
#[derive(Debug)]
pub struct KeyStates<T> {
    keys: Vec<KeyState<T>>,
    sensors: Arc<[String]>,
    names: Arc<crate::record::NameTable>,
}

#[derive(Debug)]
enum KeyState<T> {
    Unknown,
    Skip,
    Active(T),
}

impl<T> KeyStates<T> {
    pub fn new(sensors: Arc<[String]>, names: Arc<crate::record::NameTable>) -> KeyStates<T> {
        KeyStates {
            keys: Vec::new(),
            sensors,
            names,
        }
    }

    /// The state of `key` (whose sensor is `sensor`), made by `fresh` on first sight; `None` when
    /// the detector does not apply to that sensor.
    pub fn get(
        &mut self,
        key: u32,
        sensor: crate::record::SensorId,
        fresh: impl FnOnce() -> T,
    ) -> Option<&mut T> {
        let k = key as usize;
        if k >= self.keys.len() {
            self.keys.resize_with(k + 1, || KeyState::Unknown);
        }
        if let KeyState::Unknown = self.keys[k] {
            let name = self.names.get(sensor);
            let applies = self.sensors.is_empty() || self.sensors.iter().any(|s| **s == *name);
            self.keys[k] = if applies {
                KeyState::Active(fresh())
            } else {
                KeyState::Skip
            };
        }
        match &mut self.keys[k] {
            KeyState::Active(t) => Some(t),
            _ => None,
        }
    }
}

/// Per schema, what a detector over several channels needs of it (where its channels are), worked
/// out on first sight of the schema. A schema that lacks one of the detector's channels maps to
/// `None` (its records are not scored by the detector), said in one warning per schema.
#[derive(Debug)]
pub struct SchemaCache<T> {
    by_schema: std::collections::HashMap<u32, Option<T>>,
}

impl<T> Default for SchemaCache<T> {
    fn default() -> Self {
        SchemaCache {
            by_schema: Default::default(),
        }
    }
}

impl<T: Clone> SchemaCache<T> {
    /// What `make` made of `schema`'s channels, or `None` when it said (as `Err`) which channels
    /// are missing.
    pub fn get(
        &mut self,
        detector: &str,
        schema: &crate::record::Schema,
        make: impl FnOnce(&[Arc<str>]) -> Result<T, String>,
    ) -> Option<T> {
        self.by_schema
            .entry(schema.id)
            .or_insert_with(|| match make(&schema.channels) {
                Ok(t) => Some(t),
                Err(missing) => {
                    tracing::warn!(
                        "detector {detector}: records with channels {:?} lack {missing}; they are not scored by it",
                        schema.channels
                    );
                    None
                }
            })
            .clone()
    }
}

/// Maps a shard's sensor keys to blocks of slots, allocated in first-seen order so that sensors
/// seen one after another get adjacent blocks.
#[derive(Debug, Default)]
pub struct SlotMap {
    base: Vec<u32>,
    len: usize,
}

impl SlotMap {
    const NONE: u32 = u32::MAX;

    /// The first slot of `key`'s block of `width` slots, and whether it was just allocated.
    #[inline]
    pub fn base(&mut self, key: u32, width: usize) -> (usize, bool) {
        let k = key as usize;
        if k >= self.base.len() {
            self.base.resize(k + 1, Self::NONE);
        }
        match self.base[k] {
            Self::NONE => {
                let b = self.len;
                self.base[k] = b as u32;
                self.len += width;
                (b, true)
            }
            b => (b as usize, false),
        }
    }

    /// The first slot of `key`'s block, if it has one.
    #[inline]
    pub fn find(&self, key: u32) -> Option<usize> {
        match self.base.get(key as usize) {
            None | Some(&Self::NONE) => None,
            Some(&b) => Some(b as usize),
        }
    }

    /// Slots allocated so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no slot is allocated.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::{top_contributions, SlotMap};
    use std::sync::Arc;

    #[test]
    fn contributions_sum_per_channel_drop_non_positive_and_keep_the_largest_three() {
        let w = |c: &str, v: f64| (Arc::<str>::from(c), v);
        let got = top_contributions([
            w("a", 1.0),
            w("b", 3.0),
            w("a", 1.0),
            w("c", -5.0),
            w("d", f64::NAN),
            w("e", 2.0),
            w("f", 2.0),
        ]);
        let names: Vec<&str> = got.iter().map(|(c, _)| &**c).collect();
        // a sums to 2 and ties e and f: ties go by name.
        assert_eq!(names, ["b", "a", "e"]);
        assert_eq!(got[0].1, 3.0 / 9.0);
        assert_eq!(got[1].1, 2.0 / 9.0);
        assert!(top_contributions([w("a", 0.0), w("b", -1.0)]).is_empty());
        assert!(top_contributions([w("a", f64::INFINITY)]).is_empty());
    }

    #[test]
    fn slot_blocks_are_adjacent_in_first_seen_order() {
        let mut m = SlotMap::default();
        assert_eq!(m.base(3, 4), (0, true));
        assert_eq!(m.base(0, 4), (4, true));
        assert_eq!(m.base(3, 4), (0, false));
        assert_eq!(m.len(), 8);
    }
}
