//! A shard worker: owns the state of its sensors, batches their records by load (what has queued
//! when its input runs empty, or within `linger_ms`, up to `batch_size`),
//! runs every detector on each batch, then the alert policy. Its detectors and their
//! reconfiguration are in [`super::slots`].

use super::slots::Slots;
use crate::contract::{Alert, ScoreTap, Scored, Scores};
use crate::record::RecordBatch;
use crate::telemetry::{Recorders, Stage};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sensor keys of one shard: a small dense integer per (sensor, schema), in first-seen order.
/// A sensor that changes schema gets a new key (its state starts over).
#[derive(Debug, Default)]
struct SensorKeys {
    by_sensor: Vec<(u32, u32)>,
    next: u32,
}

impl SensorKeys {
    const NONE: (u32, u32) = (u32::MAX, u32::MAX);

    #[inline]
    fn key(&mut self, sensor: u32, schema: u32) -> u32 {
        let s = sensor as usize;
        if s >= self.by_sensor.len() {
            self.by_sensor.resize(s + 1, Self::NONE);
        }
        let entry = &mut self.by_sensor[s];
        if entry.0 != schema {
            *entry = (schema, self.next);
            self.next += 1;
        }
        entry.1
    }
}

/// One shard's detectors and policies.
#[derive(Debug)]
pub struct Shard {
    keys: SensorKeys,
    detectors: Slots,
    counters: Arc<crate::telemetry::Counters>,
    scores: Scores,
    row_keys: Vec<u32>,
    batch_size: usize,
    linger: Duration,
    tap: Option<Arc<dyn ScoreTap>>,
}

impl Shard {
    pub fn new(
        detectors: Slots,
        counters: Arc<crate::telemetry::Counters>,
        batch_size: usize,
        linger: Duration,
    ) -> Shard {
        Shard {
            keys: SensorKeys::default(),
            detectors,
            counters,
            scores: Scores::default(),
            row_keys: Vec::new(),
            batch_size,
            linger,
            tap: None,
        }
    }

    /// Shows every scored batch to `tap` (see [`ScoreTap`]).
    pub fn with_tap(mut self, tap: Option<Arc<dyn ScoreTap>>) -> Shard {
        self.tap = tap;
        self
    }

    /// Scores one batch and returns its alert events.
    pub fn process(&mut self, batch: &RecordBatch, rec: &mut Recorders) -> Vec<Alert> {
        self.row_keys.clear();
        let schema = batch.schema.id;
        for &sensor in &batch.sensors {
            let k = self.keys.key(sensor, schema);
            self.row_keys.push(k);
        }
        let mut alerts = Vec::new();
        for (k, slot) in self.detectors.slots.iter_mut().enumerate() {
            let (detector, policy) = (&mut slot.detector, &mut slot.policy);
            let t0 = Instant::now();
            detector.score(batch, &self.row_keys, &mut self.scores);
            let t1 = Instant::now();
            self.counters.detector_cost(
                detector.name(),
                slot.shadow,
                batch.len() as u64,
                (t1 - t0).as_nanos() as u64,
            );
            let before = alerts.len();
            policy.apply(
                detector.name(),
                batch,
                &self.row_keys,
                &self.scores,
                &mut alerts,
            );
            // Opening records get the detector's account of their score (rare: per alert; not
            // for records re-read only to rebuild state, whose alerts are dropped below).
            for a in &mut alerts[before..] {
                if batch.replay_only || a.event != crate::contract::AlertEvent::Open {
                    continue;
                }
                if let Some(r) = batch.origins.iter().position(|o| *o == a.origin) {
                    let e = detector.explain(batch, r, self.row_keys[r]);
                    a.contributions = e.contributions;
                    if let Some(expected) = e.expected {
                        a.expected = expected;
                    }
                }
            }
            if let Some(tap) = &self.tap {
                tap.scored(k, detector.name(), batch, &self.scores, &alerts[before..]);
            }
            if batch.replay_only {
                // Rebuilding state from records done before a restart: their alerts went out then.
                alerts.truncate(before);
            }
            if slot.shadow {
                for a in &mut alerts[before..] {
                    a.shadow = true;
                }
            }
            rec.record(Stage::Scoring, t1 - t0);
            rec.record(Stage::AlertPolicy, t1.elapsed());
        }
        alerts
    }

    /// Alerts open now, over all detectors.
    pub fn open_alerts(&self) -> u64 {
        self.detectors.open_alerts()
    }

    /// The worker loop. Returns the number of alerts still open when the input ends.
    pub fn run(
        mut self,
        input: Receiver<RecordBatch>,
        output: Sender<Scored>,
        mut rec: Recorders,
    ) -> u64 {
        let mut pending: Option<(RecordBatch, Instant)> = None;
        loop {
            let received = match &pending {
                Some((_, since)) => input.recv_deadline(*since + self.linger),
                None => input.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let (flush, done) = match received {
                Ok(batch) => {
                    rec.record(Stage::QueueWait, batch.sent_at.elapsed());
                    match &mut pending {
                        Some((p, _))
                            if Arc::ptr_eq(&p.schema, &batch.schema)
                                && p.replay_only == batch.replay_only =>
                        {
                            p.append(&batch);
                            (p.len() >= self.batch_size, false)
                        }
                        Some(_) => {
                            if !self.flush(pending.take(), &output, &mut rec) {
                                return self.open_alerts();
                            }
                            let full = batch.len() >= self.batch_size;
                            pending = Some((batch, Instant::now()));
                            (full, false)
                        }
                        None => {
                            let full = batch.len() >= self.batch_size;
                            pending = Some((batch, Instant::now()));
                            (full, false)
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => (true, false),
                Err(RecvTimeoutError::Disconnected) => (true, true),
            };
            if flush && !self.flush(pending.take(), &output, &mut rec) {
                break;
            }
            if done {
                break;
            }
        }
        self.open_alerts()
    }

    /// Scores the pending batch and sends the result; false when the sink has gone.
    fn flush(
        &mut self,
        pending: Option<(RecordBatch, Instant)>,
        output: &Sender<Scored>,
        rec: &mut Recorders,
    ) -> bool {
        let Some((batch, since)) = pending else {
            return true;
        };
        let closes = self.detectors.reconfigure(&batch);
        rec.record(Stage::BatchLinger, since.elapsed());
        let mut alerts = self.process(&batch, rec);
        if !closes.is_empty() {
            alerts.splice(0..0, closes);
        }
        let scored = Scored {
            alerts,
            rows: batch.len(),
            read_at: batch.read_at,
            sent_at: Instant::now(),
            acks: batch.acks,
            source_ms: batch.source_ms,
            replay_only: batch.replay_only,
        };
        output.send(scored).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, RawConfig};
    use crate::contract::AlertEvent;
    use crate::detectors::LoadedDetector;
    use crate::pipeline::slots::{Control, DetectorSlot};
    use crate::record::{NameTable, Origin, Schema};
    use vigil_kernels::isa::Isa;

    /// `versions` as a validated detector list: each `(name, role)` a z-score that opens on the
    /// first reading at 4σ and closes on the first below 1σ.
    fn detectors(versions: &[(&str, &str)]) -> Vec<LoadedDetector> {
        let text: String = versions
            .iter()
            .map(|(name, role)| {
                format!(
                    "[[detectors]]\nkind = \"zscore\"\nname = \"{name}\"\nrole = \"{role}\"\nwarmup = 20\n[detectors.alerts]\nopen = 4\nopen_after = 1\nclose = 1\nclose_after = 1\n"
                )
            })
            .collect();
        let raw = RawConfig::from_toml(&text).expect("toml");
        crate::detectors::load(&Config::validate(raw).expect("valid")).expect("loads")
    }

    /// `n` readings of sensor 0 from line `from` on: a steady wobble, or far off it.
    fn batch(from: u64, n: u64, high: bool) -> RecordBatch {
        let schema = Arc::new(Schema {
            id: 0,
            channels: vec![Arc::from("pressure")],
        });
        let mut b = RecordBatch::with_capacity(schema, n as usize);
        for i in from..from + n {
            b.sensors.push(0);
            b.ts.push(i as i64 * 1000);
            b.values.push(if high { 100.0 } else { (i % 2) as f32 });
            b.origins.push(Origin {
                source: 0,
                position: i,
            });
        }
        b
    }

    /// A shard running `versions`, and the sender that reconfigures it.
    fn shard(versions: &[(&str, &str)]) -> (Shard, crossbeam_channel::Sender<Control>) {
        let cfg = detectors(versions);
        let built = crate::detectors::build(&cfg, Isa::Scalar, &Arc::new(NameTable::default()))
            .expect("built");
        let slots = cfg
            .iter()
            .zip(built)
            .map(|(c, detector)| DetectorSlot::new(detector, c))
            .collect();
        let (tx, rx) = crossbeam_channel::unbounded();
        let shard = Shard::new(
            Slots::new(slots).with_control(rx),
            Arc::new(crate::telemetry::Counters::default()),
            1024,
            Duration::from_millis(1),
        );
        (shard, tx)
    }

    /// Reconfigures to `versions` (nothing new to build: every identity already runs or is gone)
    /// and scores `b` through `flush`, returning the alerts it sends on.
    fn reconfigure_and_score(
        shard: &mut Shard,
        tx: &crossbeam_channel::Sender<Control>,
        versions: &[(&str, &str)],
        b: RecordBatch,
    ) -> Vec<Alert> {
        let detectors = detectors(versions);
        let fresh = detectors.iter().map(|_| None).collect();
        tx.send(Control { detectors, fresh }).expect("send");
        let mut rec = crate::telemetry::Telemetry::default().recorders();
        let (out, scored) = crossbeam_channel::unbounded();
        assert!(shard.flush(Some((b, Instant::now())), &out, &mut rec));
        scored.try_recv().expect("a scored batch").alerts
    }

    fn events(alerts: &[Alert]) -> Vec<(String, AlertEvent, bool, Option<&'static str>, i64)> {
        alerts
            .iter()
            .map(|a| {
                (
                    a.detector.to_string(),
                    a.event,
                    a.shadow,
                    a.reason,
                    a.ts / 1000,
                )
            })
            .collect()
    }

    #[test]
    fn leaving_a_destination_closes_the_open_alerts_there() {
        use AlertEvent::*;
        let (mut shard, tx) = shard(&[("v1", "serving"), ("v2", "shadow")]);
        let mut rec = crate::telemetry::Telemetry::default().recorders();
        assert!(shard.process(&batch(0, 100, false), &mut rec).is_empty());
        let opened = shard.process(&batch(100, 2, true), &mut rec);
        assert_eq!(
            events(&opened),
            [
                ("v1".into(), Open, false, None, 100),
                ("v2".into(), Open, true, None, 100)
            ]
        );
        // v2 is promoted, v1 removed, while the anomaly lasts: v1's alert closes on the serving
        // destination and v2's on the shadow one, both before the next record; v2, serving now,
        // opens again on the serving destination at that record.
        let got = reconfigure_and_score(&mut shard, &tx, &[("v2", "serving")], batch(102, 1, true));
        assert_eq!(
            events(&got),
            [
                ("v2".into(), Close, true, Some("role changed"), 102),
                ("v1".into(), Close, false, Some("detector removed"), 102),
                ("v2".into(), Open, false, None, 102),
            ]
        );
        assert!(got[0].score.is_nan() && got[0].since == 100_000 && got[0].peak > 4.0);
        assert_eq!(got[1].origin.position, 102);
        assert_eq!(shard.open_alerts(), 1);
        // Nothing left open, nothing more to close.
        let got = reconfigure_and_score(&mut shard, &tx, &[("v2", "serving")], batch(103, 1, true));
        assert!(got.is_empty(), "{:?}", events(&got));
    }
}
