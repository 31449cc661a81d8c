//! A shard's detectors: each slot holds a detector's state, its alert policy, its role and its
//! identity, and a reconfiguration swaps slots in and out between two batches.

use crate::alert::AlertPolicy;
use crate::contract::Alert;
use crate::detectors::{Detector, LoadedDetector};
use crate::record::RecordBatch;
use crossbeam_channel::Receiver;

/// A detector in a shard: its state, its alert policy, and its role.
#[derive(Debug)]
pub struct DetectorSlot {
    pub detector: Box<dyn Detector>,
    pub policy: AlertPolicy,
    /// Its alerts go to the shadow destination.
    pub shadow: bool,
    /// [`LoadedDetector::identity`]: a reconfiguration keeps this slot's state when the new
    /// configuration has a detector of the same identity.
    pub identity: String,
}

impl DetectorSlot {
    /// A fresh slot for `detector`, built from `loaded`.
    pub fn new(detector: Box<dyn Detector>, loaded: &LoadedDetector) -> DetectorSlot {
        DetectorSlot {
            detector,
            policy: AlertPolicy::new(loaded.policy),
            shadow: loaded.shadow,
            identity: loaded.identity.clone(),
        }
    }
}

/// A new set of detectors for a shard, applied between two batches so that every record is scored
/// by exactly the detectors in place when its batch is scored.
#[derive(Debug)]
pub struct Control {
    pub detectors: Vec<LoadedDetector>,
    /// For each entry of `detectors`: a detector built off the hot path when the shard has none of
    /// that identity; `None` to keep the shard's own (with its state).
    pub fresh: Vec<Option<Box<dyn Detector>>>,
}

/// The detector slots of one shard and the channel its reconfigurations arrive on.
#[derive(Debug)]
pub struct Slots {
    pub slots: Vec<DetectorSlot>,
    control: Option<Receiver<Control>>,
}

impl Slots {
    pub fn new(slots: Vec<DetectorSlot>) -> Slots {
        Slots {
            slots,
            control: None,
        }
    }

    /// Takes reconfigurations from `control` (checked before each batch).
    pub fn with_control(mut self, control: Receiver<Control>) -> Slots {
        self.control = Some(control);
        self
    }

    /// Alerts open now, over all detectors.
    pub fn open_alerts(&self) -> u64 {
        self.slots.iter().map(|d| d.policy.open_now()).sum()
    }

    /// Applies the newest waiting reconfiguration, if any, before `batch` is scored: detectors
    /// whose identity stays keep their state and open alerts (their policy thresholds follow the
    /// new configuration); new ones start fresh; the rest are dropped. A detector that is dropped,
    /// or moves between serving and shadow, first closes its open alerts on the destination they
    /// were opened on (reason "detector removed" or "role changed"); those closes are returned,
    /// stamped with `batch`'s first record.
    pub fn reconfigure(&mut self, batch: &RecordBatch) -> Vec<Alert> {
        let mut closes = Vec::new();
        let Some(control) = &self.control else {
            return closes;
        };
        let (Some(&ts), Some(&origin)) = (batch.ts.first(), batch.origins.first()) else {
            return closes; // an empty batch: the next one applies it
        };
        let Some(c) = control.try_iter().last() else {
            return closes;
        };
        let mut close = |slot: &mut DetectorSlot, reason: &'static str| {
            let before = closes.len();
            let name = slot.detector.name().clone();
            slot.policy
                .close_all(&name, ts, origin, reason, &mut closes);
            for a in &mut closes[before..] {
                a.shadow = slot.shadow;
            }
        };
        let mut old: Vec<Option<DetectorSlot>> = std::mem::take(&mut self.slots)
            .into_iter()
            .map(Some)
            .collect();
        for (cfg, fresh) in c.detectors.iter().zip(c.fresh) {
            let kept = old
                .iter_mut()
                .find(|o| o.as_ref().is_some_and(|o| o.identity == cfg.identity))
                .and_then(Option::take);
            let slot = match (kept, fresh) {
                (Some(mut slot), _) => {
                    if slot.shadow != cfg.shadow {
                        close(&mut slot, "role changed");
                    }
                    slot.shadow = cfg.shadow;
                    slot.policy.set_config(cfg.policy);
                    slot
                }
                (None, Some(detector)) => DetectorSlot::new(detector, cfg),
                (None, None) => {
                    tracing::error!(
                        "reconfiguration names detector {} without building it; skipped",
                        cfg.name
                    );
                    continue;
                }
            };
            self.slots.push(slot);
        }
        for slot in old.iter_mut().flatten() {
            close(slot, "detector removed");
        }
        tracing::debug!(
            "shard now runs {}",
            self.slots
                .iter()
                .map(|d| format!(
                    "{}{}",
                    d.detector.name(),
                    if d.shadow { " (shadow)" } else { "" }
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        closes
    }
}
