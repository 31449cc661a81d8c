//! The decode stage's loop: inputs from the source become record batches for the router and dead
//! letters for the sink; each consumer poll's count of rows and dead letters goes to the ack
//! tracker, and the run's counters follow the decoder's.

use crate::ack::AckTracker;
use crate::decode::{DecodeCounts, Decoder, Input};
use crate::record::{DeadLetter, RecordBatch};
use crate::telemetry::{Counters, Recorders, Stage};
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Where the decode stage sends what it made.
#[derive(Debug)]
pub struct Outputs {
    pub batches: Sender<RecordBatch>,
    pub dead: Sender<Vec<DeadLetter>>,
}

/// Decodes every input until the source closes its channel or a receiver has gone; returns what
/// it counted.
pub fn run(
    input: Receiver<Input>,
    mut decoder: Decoder,
    out: Outputs,
    tracker: &AckTracker,
    counters: &Counters,
    mut rec: Recorders,
) -> DecodeCounts {
    let mut dead = Vec::new();
    let produced = |c: &DecodeCounts| c.records + c.rewound + c.dead_letters;
    for input in input {
        rec.record(Stage::QueueWait, input.sent_at().elapsed());
        let t0 = Instant::now();
        let before = produced(&decoder.counts);
        let mut emit = |mut b: RecordBatch| {
            b.sent_at = Instant::now();
            out.batches.send(b).is_ok()
        };
        let mut ok = decoder.input(&input, &mut dead, &mut emit);
        rec.record(Stage::Decode, t0.elapsed());
        if !dead.is_empty() {
            ok &= out.dead.send(std::mem::take(&mut dead)).is_ok();
        }
        if let Input::Messages(m) = &input {
            tracker.expect(m.ticket, produced(&decoder.counts) - before);
        }
        let c = decoder.counts;
        counters.records.store(c.records, Ordering::Relaxed);
        counters
            .dead_letters
            .store(c.dead_letters, Ordering::Relaxed);
        counters
            .readings_skipped
            .store(c.readings_skipped, Ordering::Relaxed);
        if !ok {
            break;
        }
    }
    decoder.counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Completion;
    use crate::config::{Config, RawConfig};
    use crate::decode::MessageBatch;
    use crate::record::{NameTable, Origin};
    use crate::telemetry::Telemetry;
    use crossbeam_channel::{bounded, unbounded};
    use std::sync::Arc;

    fn poll(ticket: u64, payloads: &[&str]) -> Input {
        let mut poll = MessageBatch::new(Instant::now());
        poll.ticket = ticket;
        for (i, p) in payloads.iter().enumerate() {
            let origin = Origin {
                source: 0,
                position: i as u64,
            };
            poll.push(origin, p.as_bytes(), 0, false, None);
        }
        Input::Messages(poll)
    }

    /// A decoder with the default configuration, batches of at most `rows`.
    fn decoder(rows: usize) -> Decoder {
        let config = Config::validate(RawConfig::default()).expect("valid");
        let names = Arc::new(NameTable::default());
        Decoder::new(config.input.clone(), names, rows, config.pipeline.speed)
    }

    /// Runs the stage over `polls` (then a closed input) into `out`.
    fn stage(
        polls: Vec<Input>,
        rows: usize,
        out: Outputs,
        tracker: &AckTracker,
        counters: &Counters,
    ) -> DecodeCounts {
        let (in_tx, in_rx) = unbounded();
        for p in polls {
            in_tx.send(p).expect("send");
        }
        drop(in_tx);
        let rec = Telemetry::default().recorders();
        run(in_rx, decoder(rows), out, tracker, counters, rec)
    }

    #[test]
    fn polls_become_batches_and_dead_letters_and_their_count_reaches_the_tracker() {
        let tracker = AckTracker::new(Telemetry::default().recorders());
        tracker.register(7, vec![(0, 2)]);
        let counters = Counters::default();
        let (b_tx, b_rx) = unbounded();
        let (d_tx, d_rx) = unbounded();
        let polls = vec![poll(
            7,
            &[
                r#"{"sensor":"p1","ts":1000,"values":{"q":1}}"#,
                "not json",
                r#"{"sensor":"p1","ts":2000,"values":{"q":2}}"#,
            ],
        )];
        let out = Outputs {
            batches: b_tx,
            dead: d_tx,
        };
        let counts = stage(polls, 1024, out, &tracker, &counters);
        assert_eq!((counts.records, counts.dead_letters), (2, 1));
        assert_eq!(Counters::get(&counters.records), 2);
        assert_eq!(Counters::get(&counters.dead_letters), 1);
        let batches: Vec<RecordBatch> = b_rx.try_iter().collect();
        assert_eq!(batches.iter().map(RecordBatch::len).sum::<usize>(), 2);
        let dead: Vec<DeadLetter> = d_rx.try_iter().flatten().collect();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].origin.position, 1);
        // The tracker was told three outputs: once all three are durable, offset 3 commits.
        assert!(tracker.take_committable().is_empty());
        let mut acks = Vec::new();
        for b in &batches {
            acks.extend(b.acks.iter().copied());
        }
        acks.push((7, 1));
        tracker.complete(&Completion {
            acks,
            rows: 2,
            read_at: None,
            source_ms: 0,
        });
        assert_eq!(tracker.take_committable(), vec![(0, 3)]);
    }

    #[test]
    fn a_closed_output_stops_the_stage() {
        let tracker = AckTracker::new(Telemetry::default().recorders());
        let (b_tx, b_rx) = bounded(1);
        let (d_tx, _d_rx) = unbounded();
        drop(b_rx);
        let polls = (0..3)
            .map(|_| poll(0, &[r#"{"sensor":"p1","ts":1000,"values":{"q":1}}"#]))
            .collect();
        let out = Outputs {
            batches: b_tx,
            dead: d_tx,
        };
        let counts = stage(polls, 1, out, &tracker, &Counters::default());
        // It stopped at the first input it could not hand on, not after all three.
        assert_eq!(counts.records, 1);
    }
}
