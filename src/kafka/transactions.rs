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
    /// left open, and fences that predecessor) and opens the first transaction.
    pub fn start(
        producer: Arc<ThreadedProducer<DeliveryContext>>,
        id: String,
        interval: Duration,
    ) -> Result<Transactions, KafkaError> {
        producer.init_transactions(CALL_TIMEOUT)?;
        producer.begin_transaction()?;
        tracing::info!(
            "exactly-once delivery: transactional id {id:?}, a commit every {interval:?}"
        );
        Ok(Transactions {
            producer,
            id,
            interval,
            committed: AtomicU64::new(0),
        })
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

/// The keys ([`alert_key`]) of the alerts a `read_committed` reader sees among the last
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
) -> Result<std::collections::HashSet<String>, KafkaError> {
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
    let mut keys = std::collections::HashSet::new();
    if ends.is_empty() {
        return Ok(keys);
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + CALL_TIMEOUT;
    while !ends.is_empty() && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            if let Some(key) = message?
                .payload()
                .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
                .as_ref()
                .and_then(alert_key)
            {
                keys.insert(key);
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
    Ok(keys)
}
