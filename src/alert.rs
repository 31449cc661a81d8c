//! Alerts and the policy that raises them.
//!
//! A (detector, sensor, channel) opens an alert when its score is at or above `open` for
//! `open_after` consecutive readings, and closes it when the score is below `close` for
//! `close_after` consecutive readings (hysteresis). One `open` and one `close` per episode.
//! Missing readings (NaN scores) neither advance nor break a streak. When a detector leaves the
//! destination its alerts went to (removed, or moved between serving and shadow, by a
//! reconfiguration), [`AlertPolicy::close_all`] closes its open alerts there, with a reason, so that
//! every destination sees each episode end.

use crate::config::PolicyConfig;
use crate::contract::{Alert, AlertEvent, Scores};
use crate::detectors::SlotMap;
use crate::record::{Origin, RecordBatch, SensorId};
use std::sync::Arc;

/// The policy state of one detector in one shard, one slot per (sensor, channel).
#[derive(Debug)]
pub struct AlertPolicy {
    cfg: PolicyConfig,
    map: SlotMap,
    open: Vec<bool>,
    streak: Vec<u32>,
    /// Readings left during which a slot that just closed may not open again.
    quiet: Vec<u32>,
    since: Vec<i64>,
    peak: Vec<f32>,
    open_now: u64,
    /// Sensor and channel of each open slot, to close it without a reading ([`Self::close_all`]).
    opened: std::collections::BTreeMap<usize, (SensorId, Arc<str>)>,
}

impl AlertPolicy {
    /// New thresholds and counts from now on; open alerts and streaks stay.
    pub fn set_config(&mut self, cfg: PolicyConfig) {
        self.cfg = cfg;
    }

    pub fn new(cfg: PolicyConfig) -> AlertPolicy {
        AlertPolicy {
            cfg,
            map: SlotMap::default(),
            open: Vec::new(),
            streak: Vec::new(),
            quiet: Vec::new(),
            since: Vec::new(),
            peak: Vec::new(),
            open_now: 0,
            opened: Default::default(),
        }
    }

    /// Alerts open right now.
    pub fn open_now(&self) -> u64 {
        self.open_now
    }

    /// Runs the policy over a scored batch, appending alert events to `out` in row order.
    pub fn apply(
        &mut self,
        detector: &Arc<str>,
        batch: &RecordBatch,
        keys: &[u32],
        scores: &Scores,
        out: &mut Vec<Alert>,
    ) {
        let w = batch.width();
        let cfg = self.cfg;
        for (r, &key) in keys.iter().enumerate() {
            let (base, new) = match self.map.find(key) {
                Some(base) => (base, false),
                // A sensor with no state here and no score (a detector gated to other channel
                // counts scores all NaN) gets none: nothing could open for it.
                None if scores.score[r * w..(r + 1) * w].iter().all(|s| s.is_nan()) => continue,
                None => self.map.base(key, w),
            };
            if new {
                let n = self.map.len();
                self.open.resize(n, false);
                self.streak.resize(n, 0);
                self.quiet.resize(n, 0);
                self.since.resize(n, 0);
                self.peak.resize(n, 0.0);
            }
            for c in 0..w {
                let score = scores.score[r * w + c];
                if score.is_nan() {
                    continue;
                }
                let s = base + c;
                let event = if !self.open[s] && self.quiet[s] > 0 {
                    self.quiet[s] -= 1;
                    None
                } else if !self.open[s] {
                    if score >= cfg.open {
                        if self.streak[s] == 0 {
                            self.since[s] = batch.ts[r];
                            self.peak[s] = score;
                        }
                        self.streak[s] += 1;
                        self.peak[s] = self.peak[s].max(score);
                        (self.streak[s] >= cfg.open_after).then_some(AlertEvent::Open)
                    } else {
                        self.streak[s] = 0;
                        None
                    }
                } else {
                    self.peak[s] = self.peak[s].max(score);
                    if score < cfg.close {
                        self.streak[s] += 1;
                        (self.streak[s] >= cfg.close_after).then_some(AlertEvent::Close)
                    } else {
                        self.streak[s] = 0;
                        None
                    }
                };
                let Some(event) = event else { continue };
                out.push(Alert {
                    event,
                    sensor: batch.sensors[r],
                    channel: batch.schema.channels[c].clone(),
                    detector: detector.clone(),
                    ts: batch.ts[r],
                    since: self.since[s],
                    score,
                    value: batch.values[r * w + c],
                    expected: scores.expected[r * w + c],
                    peak: self.peak[s],
                    origin: batch.origins[r],
                    shadow: false,
                    reason: None,
                    contributions: Vec::new(),
                });
                self.streak[s] = 0;
                match event {
                    AlertEvent::Open => {
                        self.open[s] = true;
                        self.since[s] = batch.ts[r];
                        self.open_now += 1;
                        self.opened
                            .insert(s, (batch.sensors[r], batch.schema.channels[c].clone()));
                    }
                    AlertEvent::Close => {
                        self.open[s] = false;
                        self.quiet[s] = cfg.holdoff;
                        self.open_now -= 1;
                        self.opened.remove(&s);
                    }
                }
            }
        }
    }

    /// Closes every open alert now, in slot order, without a reading: `ts` and `origin` are those of
    /// the record before which it happens (its offset is committed only once the closes are
    /// acknowledged); score, value and expected are NaN. Streaks start again from nothing, so a
    /// detector that keeps running opens again after `open_after` readings if the anomaly lasts.
    pub fn close_all(
        &mut self,
        detector: &Arc<str>,
        ts: i64,
        origin: Origin,
        reason: &'static str,
        out: &mut Vec<Alert>,
    ) {
        for (s, (sensor, channel)) in std::mem::take(&mut self.opened) {
            out.push(Alert {
                event: AlertEvent::Close,
                sensor,
                channel,
                detector: detector.clone(),
                ts,
                since: self.since[s],
                score: f32::NAN,
                value: f32::NAN,
                expected: f32::NAN,
                peak: self.peak[s],
                origin,
                shadow: false,
                reason: Some(reason),
                contributions: Vec::new(),
            });
            self.open[s] = false;
        }
        self.streak.fill(0);
        self.open_now = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Schema, SourceId};

    fn batch(scores: &[f32]) -> (RecordBatch, Scores) {
        let schema = Arc::new(Schema {
            id: 0,
            channels: vec![Arc::from("p")],
        });
        let mut b = RecordBatch::with_capacity(schema, scores.len());
        for (i, _) in scores.iter().enumerate() {
            b.sensors.push(7);
            b.ts.push(i as i64 * 1000);
            b.values.push(i as f32);
            b.origins.push(Origin {
                source: 0 as SourceId,
                position: i as u64 + 2,
            });
        }
        (
            b,
            Scores {
                score: scores.to_vec(),
                expected: vec![0.5; scores.len()],
            },
        )
    }

    fn run(cfg: PolicyConfig, scores: &[f32]) -> Vec<(AlertEvent, i64, i64)> {
        let (b, s) = batch(scores);
        let mut p = AlertPolicy::new(cfg);
        let mut out = Vec::new();
        p.apply(&Arc::from("z"), &b, &vec![0; scores.len()], &s, &mut out);
        out.iter()
            .map(|a| (a.event, a.ts / 1000, a.since / 1000))
            .collect()
    }

    const CFG: PolicyConfig = PolicyConfig {
        open: 5.0,
        open_after: 3,
        close: 2.0,
        close_after: 2,
        holdoff: 0,
    };

    #[test]
    fn opens_after_k_and_closes_after_m_with_hysteresis() {
        use AlertEvent::*;
        // 2 above is not enough; 3 above opens (since = first of the streak); scores between close
        // and open keep it open; 2 below close it.
        let got = run(
            CFG,
            &[6.0, 6.0, 1.0, 6.0, 7.0, 9.0, 3.0, 4.0, 1.0, 3.0, 1.0, 1.0],
        );
        assert_eq!(got, vec![(Open, 5, 3), (Close, 11, 5)]);
    }

    #[test]
    fn missing_readings_neither_advance_nor_break_a_streak() {
        use AlertEvent::*;
        let got = run(CFG, &[6.0, f32::NAN, 6.0, f32::NAN, 6.0, 1.0, 1.0]);
        assert_eq!(got, vec![(Open, 4, 0), (Close, 6, 4)]);
    }

    #[test]
    fn a_holdoff_keeps_a_closed_channel_from_opening_again_for_a_while() {
        use AlertEvent::*;
        let scores = [6.0, 6.0, 6.0, 1.0, 1.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0];
        // Without: closes at 4, opens again at 7. With a holdoff of 3 readings (5, 6, 7 are
        // ignored), the streak starts at 8 and opens at 10.
        assert_eq!(
            run(CFG, &scores),
            vec![(Open, 2, 0), (Close, 4, 2), (Open, 7, 5)]
        );
        let held = PolicyConfig { holdoff: 3, ..CFG };
        assert_eq!(
            run(held, &scores),
            vec![(Open, 2, 0), (Close, 4, 2), (Open, 10, 8)]
        );
    }

    #[test]
    fn one_event_per_edge() {
        let got = run(CFG, &[9.0; 50]);
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn carries_value_expected_peak_and_origin() {
        let (b, s) = batch(&[6.0, 8.0, 6.0]);
        let mut p = AlertPolicy::new(CFG);
        let mut out = Vec::new();
        p.apply(&Arc::from("z"), &b, &[0, 0, 0], &s, &mut out);
        // Raised at the third row, carrying that row's origin: a score tap tells from the
        // origins which rows have an alert open after them.
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].origin, b.origins[2]);
        let a = &out[0];
        assert_eq!((a.value, a.expected, a.peak, a.score), (2.0, 0.5, 8.0, 6.0));
        assert_eq!(a.origin.position, 4);
        assert_eq!(p.open_now(), 1);
    }

    #[test]
    fn keeps_no_state_for_sensors_without_a_score() {
        use AlertEvent::*;
        // Keys 0..4 score NaN only (a detector gated to other records): no slots for them; key 9
        // scores and gets one; a key that had state keeps it through NaN.
        let (b, mut s) = batch(&[f32::NAN, f32::NAN, f32::NAN, f32::NAN, 6.0, 6.0, 6.0]);
        let mut p = AlertPolicy::new(CFG);
        let mut out = Vec::new();
        p.apply(&Arc::from("z"), &b, &[0, 1, 2, 3, 9, 9, 9], &s, &mut out);
        assert_eq!(p.map.len(), 1);
        assert_eq!(out.iter().map(|a| a.event).collect::<Vec<_>>(), [Open]);
        s.score = vec![f32::NAN; 7];
        p.apply(&Arc::from("z"), &b, &[9, 9, 9, 4, 5, 6, 7], &s, &mut out);
        assert_eq!((p.map.len(), p.open_now()), (1, 1));
    }
}
