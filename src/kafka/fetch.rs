//! The consumer's fetched messages read many at a time.
//!
//! rdkafka's `BaseConsumer::poll` returns one message a call, and each call costs clock reads,
//! an event and a lock in librdkafka: on a 2-core AMD EPYC this was most of the poll thread's
//! time. librdkafka's batch read (`rd_kafka_consume_batch_queue`) takes a whole batch under one
//! timeout, but on the consumer's own queue it would also serve the rebalance events, without
//! the application's rebalance handling (librdkafka then unassigns everything). So every
//! assigned partition's fetch queue is forwarded to a queue of its own, [`FetchQueue`], before
//! the assignment takes effect; the source reads that queue in batches, and keeps serving the
//! consumer's queue (rebalances, errors, statistics, logs, and any message fetched before a
//! partition was forwarded) with `BaseConsumer::poll`.
//!
//! This module holds all of the source's FFI, each call against librdkafka 2.12's contract:
//! queue handles are thread-safe; a forwarded partition queue keeps its forwarding after its
//! handle is destroyed; messages stay valid until destroyed; outdated messages (from before a
//! seek or a reassignment) are dropped by librdkafka inside the batch read.

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use std::ffi::{c_char, CStr, CString};
use std::ptr::NonNull;
use std::time::Duration;

/// A queue of the consumer's own that assigned partitions' messages are forwarded to.
#[derive(Debug)]
pub struct FetchQueue {
    queue: NonNull<rdsys::rd_kafka_queue_t>,
}

// SAFETY: librdkafka's queues are locked internally; a handle may be used from any thread.
unsafe impl Send for FetchQueue {}
// SAFETY: as above; every method takes `&self` and only calls librdkafka's thread-safe API.
unsafe impl Sync for FetchQueue {}

impl FetchQueue {
    /// A new, empty queue of `consumer`'s client. It must be dropped before the consumer.
    pub fn new<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Option<FetchQueue> {
        // SAFETY: the client pointer is valid for the consumer's life, which outlasts the queue
        // (the caller's contract above).
        let queue = unsafe { rdsys::rd_kafka_queue_new(consumer.client().native_ptr()) };
        NonNull::new(queue).map(|queue| FetchQueue { queue })
    }

    /// On an assignment, forwards each assigned partition's fetched messages here. Called from
    /// the rebalance callback before the assignment takes effect, so that none of a partition's
    /// messages is left on the consumer's queue ahead of them. (A partition librdkafka cannot
    /// forward is read through the consumer's queue.)
    pub fn forward_assigned<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        rebalance: &Rebalance<'_>,
    ) {
        let Rebalance::Assign(tpl) = rebalance else {
            return;
        };
        for el in tpl.elements() {
            if !self.forward(consumer, el.topic(), el.partition()) {
                tracing::debug!(
                    "{}/{}: read through the consumer's queue",
                    el.topic(),
                    el.partition()
                );
            }
        }
    }

    /// Forwards `topic`/`partition`'s fetched messages here; false if librdkafka has no such
    /// partition.
    fn forward<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        topic: &str,
        partition: i32,
    ) -> bool {
        let Ok(topic) = CString::new(topic) else {
            return false;
        };
        // SAFETY: a valid client and a NUL-terminated topic; the returned handle (or null) is
        // ours to destroy, and destroying it keeps the forwarding of the partition's queue.
        unsafe {
            let rk = consumer.client().native_ptr();
            let partition_queue =
                rdsys::rd_kafka_queue_get_partition(rk, topic.as_ptr(), partition);
            if partition_queue.is_null() {
                return false;
            }
            rdsys::rd_kafka_queue_forward(partition_queue, self.queue.as_ptr());
            rdsys::rd_kafka_queue_destroy(partition_queue);
        }
        true
    }

    /// Waits up to `wait` for a first message, then takes what is already queued, until `out`
    /// holds `max` messages. Returns how many it added.
    pub fn read(&self, wait: Duration, max: usize, out: &mut Fetched) -> usize {
        let room = max.saturating_sub(out.messages.len());
        if room == 0 {
            return 0;
        }
        let start = out.messages.len();
        out.messages.reserve(room);
        let wait_ms = wait.as_millis().min(i32::MAX as u128) as i32;
        // The batch read waits for all `room` messages until its timeout, so the wait is spent
        // on the first one alone and the rest is taken without waiting.
        let first = self.consume(wait_ms, 1, out);
        if first == 0 {
            return 0;
        }
        if room > 1 {
            self.consume(0, room - 1, out);
        }
        out.messages.len() - start
    }

    /// One batch read of up to `n` messages into `out`'s spare capacity.
    fn consume(&self, timeout_ms: i32, n: usize, out: &mut Fetched) -> usize {
        debug_assert!(out.messages.capacity() - out.messages.len() >= n);
        let len = out.messages.len();
        // SAFETY: the array has room for `n` pointers past `len`; librdkafka writes at most `n`
        // and returns how many (or -1 on error, with none written).
        let got = unsafe {
            let array = out.messages.as_mut_ptr().add(len);
            rdsys::rd_kafka_consume_batch_queue(self.queue.as_ptr(), timeout_ms, array, n)
        };
        let got = usize::try_from(got).unwrap_or(0).min(n);
        // SAFETY: librdkafka initialised the first `got` slots with owned message pointers.
        unsafe { out.messages.set_len(len + got) };
        got
    }
}

impl Drop for FetchQueue {
    fn drop(&mut self) {
        // SAFETY: the handle is ours and still valid (its consumer outlives it). Messages still
        // forwarded here afterwards are dropped by librdkafka.
        unsafe { rdsys::rd_kafka_queue_destroy(self.queue.as_ptr()) }
    }
}

/// The smallest consumer context whose partitions are read through a [`FetchQueue`]: it forwards
/// each assigned partition before the assignment takes effect. (Vigil's source does the same in
/// its own context, beside its rebalance handling; benches and tests use this one.) Drop the
/// queue (`fetch.lock()…take()`) before the consumer.
#[derive(Debug, Default)]
pub struct Forwarding {
    pub fetch: std::sync::Mutex<Option<FetchQueue>>,
}

impl rdkafka::ClientContext for Forwarding {}

impl ConsumerContext for Forwarding {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let fetch = self.fetch.lock();
        let fetch = fetch.unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(fetch) = fetch.as_ref() {
            fetch.forward_assigned(consumer, rebalance);
        }
    }
}

/// Messages taken from a [`FetchQueue`], owned until [`Fetched::clear`] or drop.
#[derive(Debug, Default)]
pub struct Fetched {
    messages: Vec<*mut rdsys::rd_kafka_message_t>,
}

// SAFETY: owned message pointers; librdkafka lets a message be read and destroyed on any thread.
unsafe impl Send for Fetched {}

impl Fetched {
    /// The messages in the order they were read.
    pub fn iter(&self) -> impl Iterator<Item = Fetch<'_>> {
        self.messages.iter().map(|&m| Fetch {
            // SAFETY: non-null, owned and valid until cleared, which needs `&mut self`.
            message: unsafe { &*m },
        })
    }

    /// Destroys every message.
    pub fn clear(&mut self) {
        for m in self.messages.drain(..) {
            // SAFETY: each pointer came from the batch read and is destroyed once.
            unsafe { rdsys::rd_kafka_message_destroy(m) }
        }
    }
}

impl Drop for Fetched {
    fn drop(&mut self) {
        self.clear();
    }
}

/// One message read by a [`FetchQueue`].
#[derive(Clone, Copy)]
pub struct Fetch<'a> {
    message: &'a rdsys::rd_kafka_message_t,
}

impl std::fmt::Debug for Fetch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetch")
            .field("partition", &self.partition())
            .field("offset", &self.offset())
            .field("len", &self.message.len)
            .finish()
    }
}

impl<'a> Fetch<'a> {
    /// The error librdkafka put in place of a message, if it is one.
    pub fn error(&self) -> Option<rdkafka::error::RDKafkaErrorCode> {
        let err = self.message.err;
        (err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR).then(|| err.into())
    }

    pub fn partition(&self) -> i32 {
        self.message.partition
    }

    pub fn offset(&self) -> i64 {
        self.message.offset
    }

    /// The payload (empty for none).
    pub fn payload(&self) -> &'a [u8] {
        if self.message.payload.is_null() || self.message.len == 0 {
            return &[];
        }
        // SAFETY: librdkafka's payload pointer and length describe one buffer that lives as
        // long as the message.
        unsafe { std::slice::from_raw_parts(self.message.payload.cast::<u8>(), self.message.len) }
    }

    /// The topic's name ("" if librdkafka gave none).
    pub fn topic(&self) -> &'a str {
        if self.message.rkt.is_null() {
            return "";
        }
        // SAFETY: a message's topic handle and its name live as long as the message.
        let name: *const c_char = unsafe { rdsys::rd_kafka_topic_name(self.message.rkt) };
        if name.is_null() {
            return "";
        }
        // SAFETY: a NUL-terminated name, as above.
        unsafe { CStr::from_ptr(name) }.to_str().unwrap_or("")
    }

    /// The record's timestamp in milliseconds since the epoch (0 if it has none), as
    /// `Message::timestamp` reads it.
    pub fn timestamp_ms(&self) -> i64 {
        let mut kind = rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: a valid message; librdkafka writes the timestamp's kind.
        let ms = unsafe { rdsys::rd_kafka_message_timestamp(self.message, &mut kind) };
        match kind {
            rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE => 0,
            _ if ms == -1 => 0,
            _ => ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::config::ClientConfig;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use std::time::Instant;

    /// Through librdkafka's mock broker (its own Kafka-protocol server): a group member's two
    /// partitions read only through the fetch queue, every message once, in order per partition,
    /// with its payload, timestamp and topic.
    #[test]
    fn every_message_comes_through_the_fetch_queue_once_and_in_order() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("readings", 2, 1).expect("topic");
        let servers = cluster.bootstrap_servers();
        let n = 3000usize;
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &servers)
            .create()
            .expect("producer");
        for i in 0..n {
            let payload = format!("m{i}");
            let record = BaseRecord::<(), _>::to("readings")
                .partition((i % 2) as i32)
                .payload(&payload)
                .timestamp(1_000 + i as i64);
            producer.send(record).map_err(|(e, _)| e).expect("send");
        }
        producer.flush(Duration::from_secs(10)).expect("flush");

        let consumer: BaseConsumer<Forwarding> = ClientConfig::new()
            .set("bootstrap.servers", &servers)
            .set("group.id", "fetch-test")
            .set("auto.offset.reset", "earliest")
            .create_with_context(Forwarding::default())
            .expect("consumer");
        *consumer.context().fetch.lock().expect("lock") = FetchQueue::new(&consumer);
        consumer.subscribe(&["readings"]).expect("subscribe");
        let (mut next, mut via_consumer_queue) = ([0i64; 2], 0);
        let mut fetched = Fetched::default();
        let deadline = Instant::now() + Duration::from_secs(60);
        while next.iter().sum::<i64>() < n as i64 && Instant::now() < deadline {
            if let Some(Ok(_)) = consumer.poll(Duration::ZERO) {
                via_consumer_queue += 1;
            }
            let fetch = consumer.context().fetch.lock().expect("lock");
            let queue = fetch.as_ref().expect("queue");
            queue.read(Duration::from_millis(50), 256, &mut fetched);
            drop(fetch);
            for m in fetched.iter() {
                assert_eq!(m.error(), None);
                assert_eq!(m.topic(), "readings");
                let p = m.partition() as usize;
                assert_eq!(m.offset(), next[p], "partition {p} in order, once");
                let i = 2 * m.offset() as usize + p;
                assert_eq!(m.payload(), format!("m{i}").as_bytes());
                assert_eq!(m.timestamp_ms(), 1_000 + i as i64);
                next[p] += 1;
            }
            fetched.clear();
        }
        assert_eq!(next, [n as i64 / 2; 2]);
        assert_eq!(via_consumer_queue, 0);
        drop(consumer.context().fetch.lock().expect("lock").take());
    }
}
