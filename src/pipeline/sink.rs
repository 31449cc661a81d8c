//! The sink stage: writes alerts from every shard and dead letters from the decoder.

use super::shard::Scored;
use crate::alert::AlertEvent;
use crate::record::DeadLetter;
use crate::sinks::Sink;
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
                    if !s.alerts.is_empty() {
                        sink.alerts(&s.alerts)?;
                        sink.flush()?;
                        let opened = s.alerts.iter().filter(|a| a.event == AlertEvent::Open).count() as u64;
                        Counters::add(&counters.alerts_opened, opened);
                        Counters::add(&counters.alerts_closed, s.alerts.len() as u64 - opened);
                    }
                    rec.record(Stage::SinkWrite, t0.elapsed());
                    rec.record_n(Stage::EndToEnd, s.read_at.elapsed(), s.rows as u64);
                    Counters::add(&counters.records_done, s.rows as u64);
                }
                Err(_) => {
                    scored_open = false;
                    scored = never();
                }
            },
            recv(dead) -> msg => match msg {
                Ok(d) => sink.dead_letters(&d)?,
                Err(_) => {
                    dead_open = false;
                    dead = never();
                }
            },
        }
    }
    sink.flush()
}
