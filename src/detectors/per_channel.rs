//! The one shell of detectors that keep independent state per (sensor, channel): a streaming
//! kernel over a shard's slot columns. Runs of rows whose sensors sit in adjacent slot blocks are
//! scored by one kernel call straight from the batch's values ([`super::for_each_run`]). The
//! z-score and the likelihood detectors are this shell over their kernels.

use super::{for_each_run, top_contributions, Detector, SlotMap};
use crate::contract::{Explanation, Scores};
use crate::record::RecordBatch;
use std::fmt;
use std::sync::Arc;

/// A streaming kernel over slot columns, one slot per (sensor, channel).
pub trait ChannelKernel: Send + fmt::Debug {
    /// The kernel's state columns.
    type Slots: Default + Send + fmt::Debug;
    /// Slots allocated in `slots`.
    fn slots_len(slots: &Self::Slots) -> usize;
    /// Adds `n` fresh slots to `slots`.
    fn grow(&self, slots: &mut Self::Slots, n: usize);
    /// What each slot expects its next reading to be.
    fn expected(slots: &Self::Slots) -> &[f32];
    /// Scores `values` (slots `start..start + values.len()`) into `scores`, updating the state.
    /// `hours[i]` is the hour of the day of `values[i]`'s record when [`ChannelKernel::timed`];
    /// otherwise `hours` is empty.
    fn update(
        &mut self,
        slots: &mut Self::Slots,
        start: usize,
        values: &[f32],
        hours: &[i32],
        scores: &mut [f32],
    );
    /// Whether [`ChannelKernel::update`] reads the hours of the day (false: the default).
    fn timed(&self) -> bool {
        false
    }
    /// How far reading `x` of slot `slot` deviates, in units comparable across a sensor's
    /// channels, for kernels whose alerts name the channels that deviate with their share.
    /// `None` (the default): the alert names its own channel only.
    fn deviation(_slots: &Self::Slots, _slot: usize, _x: f32) -> Option<f32> {
        None
    }
}

/// A detector made of a [`ChannelKernel`] and its state.
#[derive(Debug)]
pub struct PerChannel<K: ChannelKernel> {
    name: Arc<str>,
    kernel: K,
    slots: K::Slots,
    map: SlotMap,
    /// The hour of the day of each reading of a run, for a timed kernel (reused).
    hours: Vec<i32>,
}

impl<K: ChannelKernel> PerChannel<K> {
    pub fn new(name: Arc<str>, kernel: K) -> PerChannel<K> {
        PerChannel {
            name,
            kernel,
            slots: K::Slots::default(),
            map: SlotMap::default(),
            hours: Vec::new(),
        }
    }

    /// The kernel (e.g. to ask which instruction set it runs).
    pub fn kernel(&self) -> &K {
        &self.kernel
    }
}

impl<K: ChannelKernel> Detector for PerChannel<K> {
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The sensor's channels whose readings at `row` deviate most, with their share of the
    /// record's total deviation.
    fn explain(&mut self, batch: &RecordBatch, row: usize, key: u32) -> Explanation {
        let Some(base) = self.map.find(key) else {
            return Explanation::default();
        };
        let w = batch.width();
        if base + w > K::slots_len(&self.slots) {
            return Explanation::default();
        }
        let values = &batch.values[row * w..(row + 1) * w];
        let mut dev = Vec::with_capacity(w);
        for (j, &x) in values.iter().enumerate() {
            match K::deviation(&self.slots, base + j, x) {
                None => return Explanation::default(),
                // A missing reading deviates by nothing.
                Some(d) => dev.push(if d.is_finite() && d > 0.0 { d } else { 0.0 }),
            }
        }
        Explanation {
            contributions: top_contributions(
                dev.iter()
                    .zip(batch.schema.channels.iter())
                    .map(|(&d, c)| (c.clone(), d as f64)),
            ),
            expected: None,
        }
    }

    fn score(&mut self, batch: &RecordBatch, keys: &[u32], out: &mut Scores) {
        let w = batch.width();
        out.reset(batch.len() * w);
        let (kernel, slots, hours) = (&mut self.kernel, &mut self.slots, &mut self.hours);
        let timed = kernel.timed();
        for_each_run(
            &mut self.map,
            &keys[..batch.len()],
            w,
            |map, start, rows| {
                let have = K::slots_len(slots);
                if have < map.len() {
                    kernel.grow(slots, map.len() - have);
                }
                let (a, b) = (rows.start * w, rows.end * w);
                let end = start + (b - a);
                out.expected[a..b].copy_from_slice(&K::expected(slots)[start..end]);
                hours.clear();
                if timed {
                    for &ts in &batch.ts[rows.clone()] {
                        let h = vigil_kernels::sequence::hour_of_day(ts);
                        hours.extend(std::iter::repeat_n(h, w));
                    }
                }
                let values = &batch.values[a..b];
                kernel.update(slots, start, values, hours, &mut out.score[a..b]);
            },
        );
    }
}
