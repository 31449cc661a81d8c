//! The route stage: each record goes to the shard that owns its sensor.

use crate::record::{push_ack, NameTable, RecordBatch};
use crate::telemetry::{Recorders, Stage};
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

/// The shard of a sensor: FNV-1a of its name modulo the shard count. It depends only on the name,
/// so it is the same in every process and every run.
pub fn shard_of(name: &str, shards: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name.as_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % shards as u64) as usize
}

/// Splits each batch by shard, keeping record order within each sensor. With one shard, batches
/// pass through untouched.
pub fn run(
    input: Receiver<RecordBatch>,
    shards: Vec<Sender<RecordBatch>>,
    names: Arc<NameTable>,
    mut rec: Recorders,
) {
    let n = shards.len();
    let mut shard_by_sensor: Vec<u16> = Vec::new();
    const UNKNOWN: u16 = u16::MAX;
    for batch in input {
        rec.record(Stage::QueueWait, batch.sent_at.elapsed());
        if n == 1 {
            let mut batch = batch;
            batch.sent_at = Instant::now();
            if shards[0].send(batch).is_err() {
                return;
            }
            continue;
        }
        let mut parts: Vec<Option<RecordBatch>> = (0..n).map(|_| None).collect();
        // Row i belongs to the ticket whose run covers it.
        let mut runs = batch
            .acks
            .iter()
            .flat_map(|&(t, k)| std::iter::repeat_n(t, k as usize));
        for (i, &sensor) in batch.sensors.iter().enumerate() {
            let s = sensor as usize;
            if s >= shard_by_sensor.len() {
                shard_by_sensor.resize(s + 1, UNKNOWN);
            }
            if shard_by_sensor[s] == UNKNOWN {
                shard_by_sensor[s] = shard_of(&names.get(sensor), n) as u16;
            }
            let part = parts[shard_by_sensor[s] as usize].get_or_insert_with(|| {
                let mut p = RecordBatch::with_capacity(batch.schema.clone(), batch.len() / n + 16);
                p.read_at = batch.read_at;
                p.source_ms = batch.source_ms;
                p.replay_only = batch.replay_only;
                p
            });
            part.push_row_from(&batch, i);
            push_ack(&mut part.acks, runs.next().unwrap_or(0), 1);
        }
        for (shard, part) in shards.iter().zip(parts) {
            if let Some(mut part) = part {
                part.sent_at = Instant::now();
                if shard.send(part).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shard_of_is_stable_and_spreads() {
        assert_eq!(super::shard_of("pump-1", 4), super::shard_of("pump-1", 4));
        let used: std::collections::HashSet<usize> = (0..64)
            .map(|i| super::shard_of(&format!("pump-{i}"), 4))
            .collect();
        assert_eq!(used.len(), 4);
    }
}
