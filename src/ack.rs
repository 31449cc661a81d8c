//! At-least-once bookkeeping: which input offsets may be committed.
//!
//! A source registers each unit of input (a *ticket*: one consumer poll) with the highest offset it
//! holds per partition. The decoder says how many rows and dead letters the ticket produced; the sink
//! reports rows and dead letters done once everything derived from them is durable (written and
//! flushed, or acknowledged by the broker). A ticket is done when all of them are; a partition's
//! offset advances over its tickets in consumption order, never past one still in flight.
//!
//! Called once per batch or delivery, never per record; the lock is not on the hot path.

use crate::record::{SourceId, Ticket};
use crate::telemetry::{Recorders, Stage};
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Work to mark done once it is durable: rows (and dead letters) per ticket.
#[derive(Debug, Default, Clone)]
pub struct Completion {
    pub acks: crate::record::Acks,
    pub rows: u64,
    /// When the oldest record was read (for end-to-end latency), if it counts.
    pub read_at: Option<Instant>,
    /// Kafka timestamp (epoch ms) of the oldest record, 0 when unknown.
    pub source_ms: i64,
}

#[derive(Debug, Default)]
struct TicketState {
    expected: Option<u64>,
    done: u64,
    partitions: Vec<(SourceId, i64)>,
}

#[derive(Debug, Default)]
struct State {
    tickets: HashMap<Ticket, TicketState>,
    /// Per partition: its tickets in consumption order, with the highest offset each holds there.
    order: HashMap<SourceId, VecDeque<(Ticket, i64)>>,
    /// Per partition: the next offset to commit, when it changed since the last take.
    committable: HashMap<SourceId, i64>,
    groups: HashMap<u64, (u32, Completion)>,
    next_group: u64,
}

/// Shared by the source, the decoder and the sink. See the module docs.
#[derive(Debug)]
pub struct AckTracker {
    state: Mutex<State>,
    recorders: Mutex<Recorders>,
}

impl AckTracker {
    /// A tracker recording end-to-end latency into `recorders`.
    pub fn new(recorders: Recorders) -> AckTracker {
        AckTracker {
            state: Mutex::new(State::default()),
            recorders: Mutex::new(recorders),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A source took `ticket`, holding offsets up to `partitions[i].1` of each partition.
    pub fn register(&self, ticket: Ticket, partitions: Vec<(SourceId, i64)>) {
        let mut st = self.state();
        for &(p, off) in &partitions {
            st.order.entry(p).or_default().push_back((ticket, off));
        }
        st.tickets.insert(
            ticket,
            TicketState {
                expected: None,
                done: 0,
                partitions,
            },
        );
    }

    /// The decoder made `n` rows and dead letters of `ticket`.
    pub fn expect(&self, ticket: Ticket, n: u64) {
        if ticket == 0 {
            return;
        }
        let mut st = self.state();
        if let Some(t) = st.tickets.get_mut(&ticket) {
            t.expected = Some(n);
        }
        Self::settle(&mut st, ticket);
    }

    /// Everything in `c` is durable.
    pub fn complete(&self, c: &Completion) {
        if let Some(read_at) = c.read_at {
            let mut rec = self
                .recorders
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            rec.record_n(Stage::EndToEnd, read_at.elapsed(), c.rows.max(1));
            if c.source_ms > 0 {
                let ms = (crate::time::now_millis() - c.source_ms).max(0) as u64;
                rec.record_n(
                    Stage::KafkaToAck,
                    std::time::Duration::from_millis(ms),
                    c.rows.max(1),
                );
            }
        }
        let mut st = self.state();
        for &(ticket, n) in &c.acks {
            if ticket == 0 {
                continue;
            }
            if let Some(t) = st.tickets.get_mut(&ticket) {
                t.done += n as u64;
            }
            Self::settle(&mut st, ticket);
        }
    }

    /// `c` becomes durable after `pending` acknowledgements; returns the group to acknowledge.
    pub fn group(&self, c: Completion, pending: u32) -> u64 {
        let mut st = self.state();
        st.next_group += 1;
        let id = st.next_group;
        st.groups.insert(id, (pending, c));
        id
    }

    /// One acknowledgement of `group` arrived.
    pub fn acknowledge(&self, group: u64) {
        let finished = {
            let mut st = self.state();
            match st.groups.get_mut(&group) {
                Some((n, _)) if *n > 1 => {
                    *n -= 1;
                    None
                }
                Some(_) => st.groups.remove(&group).map(|(_, c)| c),
                None => None,
            }
        };
        if let Some(c) = finished {
            self.complete(&c);
        }
    }

    fn settle(st: &mut State, ticket: Ticket) {
        let done = st
            .tickets
            .get(&ticket)
            .is_some_and(|t| t.expected.is_some_and(|e| t.done >= e));
        if !done {
            return;
        }
        let Some(t) = st.tickets.get(&ticket) else {
            return;
        };
        let parts: Vec<SourceId> = t.partitions.iter().map(|p| p.0).collect();
        for p in parts {
            // Advance over the finished prefix of this partition's tickets.
            while let Some(&(front, off)) = st.order.get(&p).and_then(|q| q.front()) {
                let front_done = st
                    .tickets
                    .get(&front)
                    .is_some_and(|t| t.expected.is_some_and(|e| t.done >= e));
                if !front_done {
                    break;
                }
                if let Some(q) = st.order.get_mut(&p) {
                    q.pop_front();
                }
                st.committable.insert(p, off + 1);
                if let Some(t) = st.tickets.get_mut(&front) {
                    t.partitions.retain(|x| x.0 != p);
                    if t.partitions.is_empty() {
                        st.tickets.remove(&front);
                    }
                }
            }
        }
    }

    /// Offsets that became committable since the last call: (partition, next offset to read).
    pub fn take_committable(&self) -> Vec<(SourceId, i64)> {
        self.state().committable.drain().collect()
    }

    /// Drops what is known of `partition` (it was revoked: another consumer owns it now).
    pub fn forget(&self, partition: SourceId) {
        let mut st = self.state();
        st.order.remove(&partition);
        st.committable.remove(&partition);
        // Tickets that only waited on this partition are gone with it.
        st.tickets.retain(|_, t| {
            t.partitions.retain(|p| p.0 != partition);
            !t.partitions.is_empty()
        });
    }

    /// Tickets registered and not yet finished that hold records of any of `partitions`.
    pub fn in_flight_on(&self, partitions: &[SourceId]) -> usize {
        let st = self.state();
        partitions
            .iter()
            .filter_map(|p| st.order.get(p))
            .map(VecDeque::len)
            .sum()
    }

    /// Tickets registered and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.state().order.values().map(|q| q.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Telemetry;

    fn done(acks: &[(Ticket, u32)]) -> Completion {
        Completion {
            acks: acks.to_vec(),
            rows: 0,
            read_at: None,
            source_ms: 0,
        }
    }

    #[test]
    fn offsets_advance_in_order_only_over_finished_tickets() {
        let tel = Telemetry::default();
        let t = AckTracker::new(tel.recorders());
        t.register(1, vec![(0, 9), (1, 4)]);
        t.register(2, vec![(0, 19)]);
        t.expect(1, 3);
        t.expect(2, 2);
        t.complete(&done(&[(2, 2)]));
        assert!(
            t.take_committable().is_empty(),
            "ticket 2 waits for ticket 1 on partition 0"
        );
        t.complete(&done(&[(1, 2)]));
        assert!(t.take_committable().is_empty());
        t.complete(&done(&[(1, 1)]));
        let mut c = t.take_committable();
        c.sort();
        assert_eq!(c, vec![(0, 20), (1, 5)]);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn a_ticket_that_produced_nothing_is_done_at_once_and_groups_wait_for_every_ack() {
        let tel = Telemetry::default();
        let t = AckTracker::new(tel.recorders());
        t.register(1, vec![(0, 3)]);
        t.register(2, vec![(0, 7)]);
        t.expect(1, 0);
        assert_eq!(t.take_committable(), vec![(0, 4)]);
        t.expect(2, 5);
        let g = t.group(done(&[(2, 5)]), 2);
        t.acknowledge(g);
        assert!(t.take_committable().is_empty());
        t.acknowledge(g);
        assert_eq!(t.take_committable(), vec![(0, 8)]);
    }

    #[test]
    fn a_revoked_partition_is_forgotten_with_its_tickets() {
        let tel = Telemetry::default();
        let t = AckTracker::new(tel.recorders());
        t.register(1, vec![(0, 3)]);
        t.register(2, vec![(0, 5), (1, 9)]);
        t.forget(0);
        assert_eq!(t.in_flight(), 1);
        t.expect(1, 1);
        t.complete(&done(&[(1, 1)]));
        assert!(
            t.take_committable().is_empty(),
            "nothing of partition 0 is committed after revocation"
        );
        t.expect(2, 0);
        assert_eq!(t.take_committable(), vec![(1, 10)]);
        assert_eq!(t.state().tickets.len(), 0);
    }
}
