//! The Kafka source: a consumer-group member that feeds the pipeline and commits what is done.
//!
//! Offsets are stored (`enable.auto.offset.store=false`) only when the [`AckTracker`] says every
//! record up to them has been scored and its alerts acknowledged; librdkafka commits stored
//! offsets every second, on revocation (before another member takes the partition) and at
//! shutdown. Delivery is at least once; in exactly-once mode the offsets are committed inside the
//! producer's transactions instead, at barriers where nothing is in flight
//! ([`crate::kafka::transactions`]).
//!
//! Messages are read in batches from a queue that every partition's fetched messages are
//! forwarded to ([`FetchQueue`]); the consumer's own queue (rebalances, errors, statistics) is
//! served by `BaseConsumer::poll` between batches.
//!
//! When a partition is assigned, the source re-reads up to `rewind` records before the committed
//! offset, marked replay-only: the detectors rebuild their statistics from them, and alerts from
//! them (already published by whoever read them first) are suppressed.

use crate::ack::AckTracker;
use crate::config::KafkaConfig;
use crate::decode::{Input, MessageBatch};
use crate::kafka::fetch::{FetchQueue, Fetched};
use crate::kafka::health::{Health, STATS_INTERVAL_MS};
use crate::kafka::transactions::Transactions;
use crate::kafka::{client_config, ConsumerStatus};
use crate::record::{Interner, Origin, SourceId, Ticket};
use crossbeam_channel::{Receiver, Sender};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message as _;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most messages one poll batch holds.
const MAX_BATCH: usize = 4096;

/// Longest a poll waits for a first message.
const POLL_WAIT: Duration = Duration::from_millis(20);

/// Longest a revocation waits for the records in flight on its partitions to finish (the group's
/// rebalance waits meanwhile).
const REVOKE_DRAIN: Duration = Duration::from_secs(10);

/// Shared between the poll thread, its rebalance callbacks and the status readers.
#[derive(Debug)]
struct Shared {
    tracker: Arc<AckTracker>,
    sources: Mutex<SourceMap>,
    status: Arc<Mutex<ConsumerStatus>>,
    rewind: u64,
    /// Exactly-once mode: the producer's transactions, committed here.
    txn: Option<Arc<Transactions>>,
    /// Why the consumer must stop (a transaction failed), set where it happened.
    failure: Mutex<Option<String>>,
}

#[derive(Debug)]
struct SourceMap {
    interner: Interner,
    /// Every source id given out: the partition it reads.
    by_id: Vec<(String, i32)>,
    /// Per partition ever assigned: its current source id, and the next offset after the last
    /// record this member read of it (the state its sensors have reached).
    current: Vec<Tracked>,
    /// Per partition assigned now: the committed offset found at assignment (records below it are
    /// replay-only), and whether messages still come from before the rewind seek took effect.
    partitions: HashMap<SourceId, PartitionState>,
    /// Highest offset stored per partition: stores only ever move forward.
    stored: HashMap<SourceId, i64>,
}

#[derive(Debug)]
struct Tracked {
    topic: String,
    partition: i32,
    id: SourceId,
    next_seen: i64,
}

#[derive(Debug, Clone, Copy)]
struct PartitionState {
    committed: i64,
    awaiting_seek: bool,
}

impl SourceMap {
    fn tracked(&mut self, topic: &str, partition: i32) -> Option<&mut Tracked> {
        self.current
            .iter_mut()
            .find(|t| t.partition == partition && t.topic == topic)
    }

    /// What is tracked of a partition, made (with its first source id) on first sight.
    fn entry(&mut self, topic: &str, partition: i32) -> &mut Tracked {
        let i = match self
            .current
            .iter()
            .position(|t| t.partition == partition && t.topic == topic)
        {
            Some(i) => i,
            None => {
                let id = self.interner.intern(&format!("{topic}/{partition}"));
                self.record(id, topic, partition);
                self.current.push(Tracked {
                    topic: topic.to_string(),
                    partition,
                    id,
                    next_seen: -1,
                });
                self.current.len() - 1
            }
        };
        &mut self.current[i]
    }

    /// The current source id of a partition.
    fn id(&mut self, topic: &str, partition: i32) -> SourceId {
        self.entry(topic, partition).id
    }

    /// A new source id for a partition (same name): its sensors' state starts over.
    fn renew(&mut self, topic: &str, partition: i32) -> SourceId {
        let id = self.interner.intern_anew(&format!("{topic}/{partition}"));
        self.record(id, topic, partition);
        if let Some(t) = self.tracked(topic, partition) {
            t.id = id;
            t.next_seen = -1;
        }
        id
    }

    /// Whether a message at `offset` of `partition` (of `topic`, read only when several topics
    /// are subscribed) is to be scored: its source id and whether it is replay-only, or none if
    /// the partition is not (or no longer) this member's, or the message was fetched before a
    /// rewind took effect (it comes again).
    fn admit<'t>(
        &mut self,
        single_topic: bool,
        topic: impl FnOnce() -> &'t str,
        partition: i32,
        offset: i64,
    ) -> Option<(SourceId, bool)> {
        let SourceMap {
            current,
            partitions,
            ..
        } = self;
        // With one topic subscribed, the partition number alone names the partition.
        let topic = if single_topic { "" } else { topic() };
        let tracked = current
            .iter_mut()
            .find(|t| t.partition == partition && (single_topic || t.topic == topic))?;
        let id = tracked.id;
        let state = partitions.get_mut(&id)?;
        if state.awaiting_seek {
            if offset >= state.committed {
                return None;
            }
            state.awaiting_seek = false;
        }
        tracked.next_seen = offset + 1;
        Some((id, offset < state.committed))
    }

    fn record(&mut self, id: SourceId, topic: &str, partition: i32) {
        if id as usize >= self.by_id.len() {
            self.by_id.resize(id as usize + 1, (String::new(), -1));
        }
        self.by_id[id as usize] = (topic.to_string(), partition);
    }
}

impl Shared {
    fn lock_sources(&self) -> std::sync::MutexGuard<'_, SourceMap> {
        self.sources.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fail(&self, why: String) {
        tracing::error!("{why}");
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(why);
    }

    fn failed(&self) -> bool {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}

/// The consumer's context: rebalance callbacks commit before revocation and plan the rewind.
#[derive(Debug)]
pub struct VigilContext {
    shared: Arc<Shared>,
    assigned: Mutex<Vec<(String, i32)>>,
    /// Where assigned partitions' messages go, set once the consumer exists; taken out and
    /// destroyed before the consumer is.
    fetch: Mutex<Option<FetchQueue>>,
    log: crate::kafka::ClientLog,
    health: Arc<Health>,
}

impl ClientContext for VigilContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.log.error(&error, reason);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        self.health.consumer_stats(&statistics);
    }
}

impl ConsumerContext for VigilContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Before an assignment takes effect: every message of its partitions then comes through
        // the fetch queue, in order.
        if let Some(fetch) = self
            .fetch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            fetch.forward_assigned(consumer, rebalance);
        }
        if let Rebalance::Revoke(tpl) = rebalance {
            let ids: Vec<SourceId> = {
                let mut map = self.shared.lock_sources();
                tpl.elements()
                    .iter()
                    .map(|el| map.id(el.topic(), el.partition()))
                    .collect()
            };
            if let Some(txn) = &self.shared.txn {
                // The whole pipeline drains (a transaction commits all partitions at once).
                if let Err(why) = commit_barrier(consumer, &self.shared, txn, REVOKE_DRAIN) {
                    self.shared.fail(format!("before revocation: {why}"));
                }
            } else {
                // Let what is in flight finish, so that the commit covers every record read: if
                // the partitions come back, the state their sensors reached is still exact.
                let deadline = Instant::now() + REVOKE_DRAIN;
                while self.shared.tracker.in_flight_on(&ids) > 0 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                // Commit what is done before another member takes these partitions.
                store_done(consumer, &self.shared);
                if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                    tracing::debug!("commit before revocation: {e}");
                }
            }
            let mut map = self.shared.lock_sources();
            for id in ids {
                map.partitions.remove(&id);
                map.stored.remove(&id);
                self.shared.tracker.forget(id);
            }
            self.shared
                .status
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .partitions
                .clear();
            tracing::info!("partitions revoked: {}", tpl.count());
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let mut assigned = self.assigned.lock().unwrap_or_else(PoisonError::into_inner);
            assigned.extend(
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition())),
            );
            tracing::info!("partitions assigned: {}", tpl.count());
        }
    }
}

/// Stores every offset the tracker says is done (forward only), for the periodic commit. In
/// exactly-once mode offsets go with the transactions instead ([`commit_barrier`]).
fn store_done(consumer: &BaseConsumer<VigilContext>, shared: &Shared) {
    if shared.txn.is_some() {
        return;
    }
    let tpl = done_offsets(shared);
    if tpl.count() > 0 {
        if let Err(e) = consumer.store_offsets(&tpl) {
            tracing::debug!("store offsets: {e}");
        }
    }
}

/// Exactly-once: waits (at most `wait`) until nothing is in flight, so that the open transaction
/// holds exactly what derives from the records read so far, then commits it with their offsets.
fn commit_barrier(
    consumer: &BaseConsumer<VigilContext>,
    shared: &Shared,
    txn: &Transactions,
    wait: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + wait;
    while shared.tracker.in_flight() > 0 {
        if Instant::now() >= deadline {
            return Err(format!(
                "records still in flight after {} s: cannot commit the transaction",
                wait.as_secs_f64()
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let tpl = done_offsets(shared);
    if tpl.count() == 0 {
        return Ok(()); // nothing new: the transaction stays open
    }
    let group = consumer
        .group_metadata()
        .ok_or("the consumer has no group metadata to commit with")?;
    txn.commit(&tpl, &group).map_err(|e| {
        format!(
            "transaction of {:?} failed: {e}; exiting, a restart resumes from the last committed \
             transaction",
            txn.id()
        )
    })?;
    shared
        .status
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .transactions = txn.committed();
    Ok(())
}

/// The offsets the tracker says are done since the last call, forward only, on partitions
/// assigned here.
fn done_offsets(shared: &Shared) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    let done = shared.tracker.take_committable();
    if done.is_empty() {
        return tpl;
    }
    let mut map = shared.lock_sources();
    for (id, next) in done {
        let Some((topic, partition)) = map.by_id.get(id as usize).cloned() else {
            continue;
        };
        let floor = map.partitions.get(&id).map_or(i64::MIN, |p| p.committed);
        let last = map.stored.get(&id).copied().unwrap_or(i64::MIN);
        if next > last && next > floor && map.partitions.contains_key(&id) {
            map.stored.insert(id, next);
            let _ = tpl.add_partition_offset(&topic, partition, Offset::Offset(next));
        }
    }
    tpl
}

/// A consumer-group member feeding the pipeline.
pub struct KafkaSource {
    consumer: BaseConsumer<VigilContext>,
    shared: Arc<Shared>,
    next_ticket: Ticket,
    /// Subscribed to one topic (not a `^` pattern): a message's partition number names its
    /// partition, with no need to read its topic name.
    single_topic: bool,
    /// Messages read from the fetch queue, held until copied into a batch.
    fetched: Fetched,
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        // librdkafka's handles go before the consumer that owns them.
        self.fetched.clear();
        let fetch = self
            .consumer
            .context()
            .fetch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(fetch);
    }
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("next_ticket", &self.next_ticket)
            .finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// Creates the consumer and subscribes. Fails on a bad property or topic list. With `txn`
    /// (exactly-once mode), offsets are committed in its transactions, not by the consumer.
    pub fn new(
        kafka: &KafkaConfig,
        sources: Interner,
        tracker: Arc<AckTracker>,
        status: Arc<Mutex<ConsumerStatus>>,
        txn: Option<Arc<Transactions>>,
        health: Arc<Health>,
    ) -> KafkaResult<KafkaSource> {
        let shared = Arc::new(Shared {
            tracker,
            sources: Mutex::new(SourceMap {
                interner: sources,
                by_id: Vec::new(),
                current: Vec::new(),
                partitions: HashMap::new(),
                stored: HashMap::new(),
            }),
            status,
            rewind: kafka.rewind,
            txn,
            failure: Mutex::new(None),
        });
        let context = VigilContext {
            shared: shared.clone(),
            assigned: Mutex::new(Vec::new()),
            fetch: Mutex::new(None),
            log: crate::kafka::ClientLog::default(),
            health,
        };
        let consumer: BaseConsumer<VigilContext> = client_config(
            kafka,
            &[
                ("group.id", kafka.group_id.clone()),
                ("enable.auto.commit", shared.txn.is_none().to_string()),
                // Records of producers' open or aborted transactions are never scored.
                ("isolation.level", "read_committed".into()),
                ("auto.commit.interval.ms", "1000".into()),
                ("enable.auto.offset.store", "false".into()),
                ("auto.offset.reset", "earliest".into()),
                ("enable.partition.eof", "false".into()),
                ("session.timeout.ms", "6000".into()),
                // Low latency: do not let the broker hold a fetch for long when data is scarce.
                ("fetch.wait.max.ms", "5".into()),
                // When the local fetch queue is over its threshold, fetch again 10 ms later, not
                // librdkafka's default 1 s: the pipeline drains the queue in milliseconds, then
                // sat idle for the rest of the second (measured: throughput went from 1.3 M to
                // 0.37 M records/s whenever it happened).
                ("fetch.queue.backoff.ms", "10".into()),
                // Whether any broker connection is up (`Health`, `/readyz`).
                ("statistics.interval.ms", STATS_INTERVAL_MS.into()),
            ],
        )
        .create_with_context(context)?;
        let fetch = FetchQueue::new(&consumer).ok_or_else(|| {
            KafkaError::ClientCreation("librdkafka could not make a fetch queue".into())
        })?;
        *consumer
            .context()
            .fetch
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(fetch);
        let topics: Vec<&str> = kafka.input_topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        Ok(KafkaSource {
            consumer,
            shared,
            next_ticket: 1,
            single_topic: topics.len() == 1 && !topics[0].starts_with('^'),
            fetched: Fetched::default(),
        })
    }

    /// Polls until `stop`, sending batches to `out`. Then waits for `drained` (the pipeline has
    /// finished and the sink has flushed) and commits what is done. An error when a transaction
    /// failed (the stop flag is set then too).
    pub fn run(
        mut self,
        out: Sender<Input>,
        stop: &AtomicBool,
        drained: Receiver<()>,
    ) -> Result<(), String> {
        let mut last_store = Instant::now();
        let mut last_commit = Instant::now();
        let mut last_lag = Instant::now() - Duration::from_secs(60);
        while !stop.load(Ordering::Relaxed) {
            if let Some(txn) = self.shared.txn.clone() {
                if last_commit.elapsed() >= txn.interval {
                    let wait = Duration::from_secs(60);
                    if let Err(why) = commit_barrier(&self.consumer, &self.shared, &txn, wait) {
                        self.shared.fail(why);
                    }
                    last_commit = Instant::now();
                }
            }
            if self.shared.failed() {
                stop.store(true, Ordering::Relaxed);
                break;
            }
            if let Some(batch) = self.poll_batch() {
                super::send(&out, Input::Messages(batch), stop, || {});
            }
            if last_store.elapsed() >= Duration::from_millis(100) {
                store_done(&self.consumer, &self.shared);
                last_store = Instant::now();
            }
            if last_lag.elapsed() >= Duration::from_secs(5) {
                self.update_lag();
                last_lag = Instant::now();
            }
        }
        drop(out);
        // Everything in flight finishes first; then the final offsets are committed.
        let _ = drained.recv_timeout(Duration::from_secs(600));
        if let Some(why) = self
            .shared
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Err(why);
        }
        if let Some(txn) = self.shared.txn.clone() {
            // What did not finish is aborted: it is read again from the committed offsets.
            let result = commit_barrier(&self.consumer, &self.shared, &txn, Duration::ZERO);
            if result.is_err() {
                txn.abort();
            } else {
                tracing::info!("offsets committed ({} transactions)", txn.committed());
            }
            return result;
        }
        store_done(&self.consumer, &self.shared);
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => tracing::info!("offsets committed"),
            Err(e) => tracing::debug!("final commit: {e}"),
        }
        Ok(())
    }

    /// For newly assigned partitions: find the committed offset and seek back `rewind` records.
    fn plan_rewinds(&mut self) {
        let assigned: Vec<(String, i32)> = {
            let ctx = self.consumer.context();
            std::mem::take(&mut *ctx.assigned.lock().unwrap_or_else(PoisonError::into_inner))
        };
        if assigned.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (t, p) in &assigned {
            tpl.add_partition(t, *p);
        }
        let committed = self
            .consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .ok();
        for (topic, partition) in assigned {
            let committed = committed
                .as_ref()
                .and_then(|c| c.find_partition(&topic, partition))
                .and_then(|e| e.offset().to_raw())
                .filter(|&o| o >= 0);
            // The sensors of a partition this member read up to the committed offset are where
            // they were: no rewind. Otherwise (new to this member, or read meanwhile by another,
            // or left with records in flight) they start over, from a rewind.
            let (id, continuous) = {
                let mut map = self.shared.lock_sources();
                match map.tracked(&topic, partition).map(|t| (t.id, t.next_seen)) {
                    Some((id, seen)) if committed.is_some_and(|c| c == seen) => (id, true),
                    Some((_, seen)) if seen >= 0 => (map.renew(&topic, partition), false),
                    _ => (map.id(&topic, partition), false),
                }
            };
            let low = self
                .consumer
                .fetch_watermarks(&topic, partition, Duration::from_secs(5))
                .map(|(low, _)| low)
                .unwrap_or(0);
            let committed_at = committed.unwrap_or(low);
            let start = committed_at
                .saturating_sub(self.shared.rewind as i64)
                .max(low);
            let seek = !continuous && committed.is_some() && start < committed_at;
            if seek {
                if let Err(e) = self.consumer.seek(
                    &topic,
                    partition,
                    Offset::Offset(start),
                    Duration::from_secs(5),
                ) {
                    tracing::warn!("cannot rewind {topic}/{partition} to {start}: {e}");
                }
                tracing::info!("{topic}/{partition}: rebuilding state from offset {start} (committed {committed_at})");
            } else if continuous {
                tracing::info!("{topic}/{partition}: state kept (read up to the committed offset {committed_at})");
            }
            self.shared.lock_sources().partitions.insert(
                id,
                PartitionState {
                    committed: committed_at,
                    awaiting_seek: seek,
                },
            );
        }
        self.update_lag();
    }

    /// One poll's worth of messages (up to [`MAX_BATCH`], or what arrives within [`POLL_WAIT`]).
    fn poll_batch(&mut self) -> Option<MessageBatch> {
        let mut batch = MessageBatch::new(Instant::now());
        // The highest offset read per partition (few: a short list).
        let mut highest: Vec<(SourceId, i64)> = Vec::new();
        let mut read_at = None;
        // The consumer's queue first: it serves rebalances, errors, statistics and logs, and holds
        // any message fetched before its partition was forwarded to the fetch queue (older than
        // what the fetch queue holds of that partition).
        while batch.messages.len() < MAX_BATCH {
            let Some(result) = self.consumer.poll(Duration::ZERO) else {
                break;
            };
            let msg = match result {
                Ok(m) => m,
                Err(e) => {
                    self.poll_error(&e);
                    break;
                }
            };
            read_at.get_or_insert_with(Instant::now);
            let admitted = self.shared.lock_sources().admit(
                self.single_topic,
                || msg.topic(),
                msg.partition(),
                msg.offset(),
            );
            if let Some((id, replay_only)) = admitted {
                let (payload, ts) = (
                    msg.payload().unwrap_or_default(),
                    msg.timestamp().to_millis(),
                );
                Self::take(
                    &mut batch,
                    &mut highest,
                    id,
                    msg.offset(),
                    replay_only,
                    payload,
                    ts.unwrap_or(0),
                );
            }
        }
        // A rebalance served just now assigned partitions whose messages may be in the fetch queue
        // already: their state (committed offset, rewind) is set up before any is read.
        self.plan_rewinds();
        // Then the fetch queue: a batch read, waiting for a first message only if there is none.
        let wait = if batch.messages.is_empty() {
            POLL_WAIT
        } else {
            Duration::ZERO
        };
        let room = MAX_BATCH - batch.messages.len();
        let read = {
            let fetch = self.consumer.context().fetch.lock();
            let fetch = fetch.unwrap_or_else(PoisonError::into_inner);
            fetch
                .as_ref()
                .map_or(0, |f| f.read(wait, room, &mut self.fetched))
        };
        if read > 0 {
            read_at.get_or_insert_with(Instant::now);
            let mut map = self.shared.lock_sources();
            for m in self.fetched.iter() {
                if let Some(code) = m.error() {
                    let e = KafkaError::MessageConsumption(code);
                    drop(map);
                    self.poll_error(&e);
                    map = self.shared.lock_sources();
                    continue;
                }
                if let Some((id, replay_only)) =
                    map.admit(self.single_topic, || m.topic(), m.partition(), m.offset())
                {
                    Self::take(
                        &mut batch,
                        &mut highest,
                        id,
                        m.offset(),
                        replay_only,
                        m.payload(),
                        m.timestamp_ms(),
                    );
                }
            }
            drop(map);
            self.fetched.clear();
        }
        {
            let mut status = self
                .shared
                .status
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            status.last_poll = Some(Instant::now());
            status.rewound += batch.messages.iter().filter(|m| m.replay_only).count() as u64;
        }
        if batch.messages.is_empty() {
            return None;
        }
        batch.ticket = self.next_ticket;
        self.next_ticket += 1;
        self.shared.tracker.register(batch.ticket, highest);
        let now = Instant::now();
        batch.read_at = read_at.unwrap_or(now);
        batch.sent_at = now;
        Some(batch)
    }

    /// Adds one admitted message to the batch.
    fn take(
        batch: &mut MessageBatch,
        highest: &mut Vec<(SourceId, i64)>,
        id: SourceId,
        offset: i64,
        replay_only: bool,
        payload: &[u8],
        timestamp_ms: i64,
    ) {
        match highest.iter_mut().find(|(p, _)| *p == id) {
            Some(h) => h.1 = offset,
            None => highest.push((id, offset)),
        }
        batch.push(
            Origin {
                source: id,
                position: offset as u64,
            },
            payload,
            timestamp_ms,
            replay_only,
            None,
        );
    }

    /// Logs what a poll or a batch read reported in place of a message.
    fn poll_error(&self, e: &KafkaError) {
        let kind = e.rdkafka_error_code().map(|c| format!("poll {c:?}"));
        let kind = kind.as_deref().unwrap_or("poll");
        self.consumer
            .context()
            .log
            .warn(kind, &format!("consumer: {e}"));
    }

    /// Refreshes assigned partitions and their lag for the status readers.
    fn update_lag(&self) {
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        let mut partitions = Vec::new();
        for el in positions.elements() {
            // Until the first fetch after an assignment without a seek, the position is unknown:
            // reading starts at the committed offset then.
            let pos = el.offset().to_raw().filter(|&p| p >= 0).or_else(|| {
                let mut map = self.shared.lock_sources();
                let id = map.id(el.topic(), el.partition());
                map.partitions.get(&id).map(|s| s.committed)
            });
            let marks =
                self.consumer
                    .fetch_watermarks(el.topic(), el.partition(), Duration::from_secs(2));
            let lag = match (marks, pos) {
                (Ok((_, high)), Some(pos)) => (high - pos).max(0),
                (Ok((low, high)), None) => (high - low).max(0),
                (Err(_), _) => -1,
            };
            partitions.push((el.topic().to_string(), el.partition(), lag));
        }
        self.shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .partitions = partitions;
    }
}
