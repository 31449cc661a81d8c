//! Exactly-once delivery (`kafka.delivery = "exactly-once"`): the alert producer is transactional,
//! and the consumer's offsets are committed inside its transactions.
//!
//! One transaction is always open. The sink produces every alert and dead letter into it. Every
//! `kafka.transaction_interval_ms`, on a revocation and at shutdown, the source stops feeding the
//! pipeline and waits until nothing is in flight (every record it read is scored and every message
//! derived from it acknowledged by the broker): the open transaction then holds exactly the alerts
//! of the records up to the offsets it commits with it ([`Transactions::commit`]), and the next
//! transaction begins. A crash leaves the open transaction to be aborted when the next producer
//! with the same `transactional.id` starts (or when it times out); its records are read again from
//! the committed offsets, and a `read_committed` reader sees each alert once.
//!
//! Any transaction error ends the process (exit 1) instead of trying to continue: what the
//! aborted transaction held would have to be produced again, and a restart does exactly that.

use crate::sinks::kafka::DeliveryContext;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::{Producer, ThreadedProducer};
use rdkafka::TopicPartitionList;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one transactional call may take (librdkafka retries within it).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The transactional state shared by the sink (which produces) and the source (which commits).
pub struct Transactions {
    producer: Arc<ThreadedProducer<DeliveryContext>>,
    id: String,
    /// How often the source commits.
    pub interval: Duration,
    committed: AtomicU64,
    /// Alerts on the alert topic at start ([`published_tail`]), until commits pass them;
    /// `recovering` says whether any are left, so that the sink takes no lock after that.
    published: std::sync::Mutex<Published>,
    recovering: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Transactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transactions")
            .field("id", &self.id)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Transactions {
    /// Registers `id` with the broker (which aborts a transaction a predecessor with the same id
    /// left open, and fences that predecessor), reads back what the alert topic already holds
    /// ([`published_tail`]) and opens the first transaction.
    pub fn start(
        producer: Arc<ThreadedProducer<DeliveryContext>>,
        kafka: &crate::config::KafkaConfig,
        id: String,
        interval: Duration,
    ) -> Result<Transactions, KafkaError> {
        producer.init_transactions(CALL_TIMEOUT)?;
        let published = published_tail(kafka, &kafka.alert_topic)?;
        producer.begin_transaction()?;
        tracing::info!(
            "exactly-once delivery: transactional id {id:?}, a commit every {interval:?}"
        );
        Ok(Transactions {
            producer,
            id,
            interval,
            committed: AtomicU64::new(0),
            recovering: std::sync::atomic::AtomicBool::new(!published.0.is_empty()),
            published: std::sync::Mutex::new(published),
        })
    }

    /// Whether alerts read back at start may still come again (cheap: no lock).
    pub fn recovering(&self) -> bool {
        self.recovering.load(Ordering::Relaxed)
    }

    /// Whether the alert raised by the record at `position` of `source` is already on the alert
    /// topic ([`Published`]); `key` builds its [`alert_key`] when that must be looked up.
    pub fn already_published(
        &self,
        source: &str,
        position: u64,
        key: impl FnOnce() -> Option<String>,
    ) -> bool {
        if !self.recovering.load(Ordering::Relaxed) {
            return false;
        }
        self.published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(source, position, key)
    }

    /// Commits the open transaction with `offsets` (the next offset to read per partition) as the
    /// consumer group `group`'s, and opens the next one. Call only when everything produced in
    /// it derives from records below `offsets`, and nothing derived from them is still to come.
    pub fn commit(
        &self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), KafkaError> {
        if offsets.count() > 0 {
            self.producer
                .send_offsets_to_transaction(offsets, group, CALL_TIMEOUT)?;
        }
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            match self.producer.commit_transaction(CALL_TIMEOUT) {
                Ok(()) => break,
                Err(KafkaError::Transaction(e))
                    if e.is_retriable() && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
        self.committed.fetch_add(1, Ordering::Relaxed);
        if self.recovering.load(Ordering::Relaxed) {
            let mut published = self
                .published
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            published.passed(offsets);
            self.recovering
                .store(!published.0.is_empty(), Ordering::Relaxed);
        }
        self.producer.begin_transaction()
    }

    /// Aborts the open transaction: what it held is never shown to `read_committed` readers.
    pub fn abort(&self) {
        if let Err(e) = self.producer.abort_transaction(CALL_TIMEOUT) {
            tracing::warn!("aborting the open transaction: {e}");
        }
    }

    /// Transactions committed so far.
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// The producer's transactional id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Messages read back from the end of each alert partition by [`published_tail`].
pub const RECOVERY_DEPTH: i64 = 10_000;

/// The identity of an alert for recovery: the record that raised it (topic, partition, offset),
/// and the detector, sensor, channel and event. `None` for an alert without a Kafka origin.
pub fn alert_key(alert: &serde_json::Value) -> Option<String> {
    let offset = alert.get("offset")?.as_u64()?;
    Some(format!(
        "{}/{}/{offset} {} {} {} {}",
        alert.get("topic")?.as_str()?,
        alert.get("partition")?.as_i64()?,
        alert.get("detector")?,
        alert.get("sensor")?,
        alert.get("channel")?,
        alert.get("event")?,
    ))
}

/// Alerts already on the alert topic, by the input partition (`topic/partition`) of the record
/// that raised them: the highest such record offset, and their keys ([`alert_key`]).
#[derive(Debug, Default)]
pub struct Published(std::collections::HashMap<String, (u64, std::collections::HashSet<String>)>);

impl Published {
    fn insert(&mut self, alert: &serde_json::Value) {
        let (Some(key), Some(topic), Some(partition), Some(offset)) = (
            alert_key(alert),
            alert.get("topic").and_then(|t| t.as_str()),
            alert.get("partition").and_then(|p| p.as_i64()),
            alert.get("offset").and_then(|o| o.as_u64()),
        ) else {
            return;
        };
        let entry = self.0.entry(format!("{topic}/{partition}")).or_default();
        entry.0 = entry.0.max(offset);
        entry.1.insert(key);
    }

    /// Whether the alert raised by the record at `position` of `source` is already published
    /// (then it is forgotten). `key` is only built for records at or below the highest published
    /// offset of their partition.
    fn take(&mut self, source: &str, position: u64, key: impl FnOnce() -> Option<String>) -> bool {
        match self.0.get_mut(source) {
            Some((max, keys)) if position <= *max => key().is_some_and(|k| keys.remove(&k)),
            _ => false,
        }
    }

    /// Forgets the partitions whose records up to their highest published offset are committed
    /// in `offsets` (next offset to read): nothing derived from them comes again.
    fn passed(&mut self, offsets: &TopicPartitionList) {
        for el in offsets.elements() {
            let source = format!("{}/{}", el.topic(), el.partition());
            let next = el.offset().to_raw().unwrap_or(-1);
            if self
                .0
                .get(&source)
                .is_some_and(|(max, _)| next > *max as i64)
            {
                self.0.remove(&source);
            }
        }
    }
}

/// The alerts ([`Published`]) a `read_committed` reader sees among the last
/// [`RECOVERY_DEPTH`] messages of each partition of `topic`.
///
/// Read once at start, after the producer's transactions are initialised. On a broker that
/// implements transactions fully the alerts of an aborted transaction are hidden, and none of
/// those seen derive from records past the committed offsets, so this set changes nothing. A
/// broker that shows an aborted transaction's records (tansu 0.6 does, for the transaction a
/// killed predecessor left open and that initialising aborts) would otherwise get those alerts
/// twice: the sink skips an alert whose key is in the set.
pub fn published_tail(
    kafka: &crate::config::KafkaConfig,
    topic: &str,
) -> Result<Published, KafkaError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = crate::kafka::client_config(
        kafka,
        &[
            ("group.id", format!("{}-recovery", kafka.group_id)),
            ("enable.auto.commit", "false".into()),
            ("isolation.level", "read_committed".into()),
        ],
    )
    .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), CALL_TIMEOUT)?;
    let mut tpl = TopicPartitionList::new();
    let mut ends = std::collections::HashMap::new();
    for p in metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions())
    {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), CALL_TIMEOUT)?;
        if high > low {
            let start = low.max(high - RECOVERY_DEPTH);
            tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Offset(start))?;
            ends.insert(p.id(), high);
        }
    }
    let mut published = Published::default();
    if ends.is_empty() {
        return Ok(published);
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + CALL_TIMEOUT;
    while !ends.is_empty() && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            if let Some(alert) = message?
                .payload()
                .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
            {
                published.insert(&alert);
            }
        }
        // The position, not the last message's offset: transaction markers take offsets too.
        if let Ok(positions) = consumer.position() {
            for el in positions.elements() {
                if let (Some(pos), Some(&end)) = (el.offset().to_raw(), ends.get(&el.partition())) {
                    if pos >= end {
                        ends.remove(&el.partition());
                    }
                }
            }
        }
    }
    if !ends.is_empty() {
        tracing::warn!(
            "exactly-once recovery: {topic} partitions {:?} not read to their end in {} s",
            ends.keys().collect::<Vec<_>>(),
            CALL_TIMEOUT.as_secs()
        );
    }
    Ok(published)
}
