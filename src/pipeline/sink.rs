//! The sink stage: writes alerts from every shard and dead letters from the decoder. Each batch's
//! rows are handed to the ack tracker once the sink has made its alerts durable.

use crate::ack::Completion;
use crate::contract::Sink;
use crate::contract::{AlertEvent, Scored};
use crate::record::{push_ack, DeadLetter};
use crate::telemetry::{Counters, Recorders, Stage};
use crossbeam_channel::{never, select, Receiver};
use std::io;
use std::sync::Arc;
use std::time::Instant;

/// Runs until both inputs are closed and drained; flushes the sink at the end.
pub fn run(
    mut scored: Receiver<Scored>,
    mut dead: Receiver<Vec<DeadLetter>>,
    mut sink: Box<dyn Sink>,
    counters: Arc<Counters>,
    mut rec: Recorders,
) -> io::Result<()> {
    let (mut scored_open, mut dead_open) = (true, true);
    while scored_open || dead_open {
        select! {
            recv(scored) -> msg => match msg {
                Ok(s) => {
                    rec.record(Stage::QueueWait, s.sent_at.elapsed());
                    let t0 = Instant::now();
                    let opened = s.alerts.iter().filter(|a| a.event == AlertEvent::Open).count() as u64;
                    Counters::add(&counters.alerts_opened, opened);
                    Counters::add(&counters.alerts_closed, s.alerts.len() as u64 - opened);
                    let done = Completion {
                        acks: s.acks,
                        rows: s.rows as u64,
                        read_at: Some(s.read_at),
                        source_ms: s.source_ms,
                    };
                    sink.alerts(&s.alerts, done)?;
                    rec.record(Stage::SinkWrite, t0.elapsed());
                    if !s.replay_only {
                        Counters::add(&counters.records_done, s.rows as u64);
                        let now = crate::time::now_micros();
                        counters.last_done_us.store(now, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                Err(_) => {
                    scored_open = false;
                    scored = never();
                }
            },
            recv(dead) -> msg => match msg {
                Ok(d) => {
                    let mut acks = Vec::new();
                    for letter in &d {
                        push_ack(&mut acks, letter.ticket, 1);
                    }
                    sink.dead_letters(&d, Completion { acks, rows: 0, read_at: None, source_ms: 0 })?;
                }
                Err(_) => {
                    dead_open = false;
                    dead = never();
                }
            },
        }
    }
    sink.flush()
}
