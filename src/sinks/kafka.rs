//! Alerts and dead letters to Kafka topics.
//!
//! Alerts go to the alert topic keyed by sensor id; dead letters to the dead-letter topic with
//! their original bytes and the reason and source topic, partition and offset as headers. A batch's
//! [`Completion`] is handed to the [`AckTracker`] only when the broker has acknowledged every
//! message derived from it. The producer's queue is bounded: when it is full the sink waits, which
//! slows the whole pipeline down to what the broker takes.
//!
//! With a spool (`[edge] spool_dir`), the sink writes every message to the spool instead and
//! completes the batch once it is synced there; a forwarder thread produces from the spool in
//! order, and the delivery reports go to the spool ([`super::spool`]).

use super::alert_json;
use super::spool::segment::Outgoing;
use super::spool::{Sent, Spool, SpoolWriter};
use crate::ack::{AckTracker, Completion};
use crate::config::{Delivery, KafkaConfig};
use crate::contract::Alert;
use crate::contract::{Names, Sink};
use crate::kafka::health::{Health, STATS_INTERVAL_MS};
use crate::kafka::transactions::{self, Transactions};
use crate::record::DeadLetter;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Dead-letter payloads longer than this are cut (the header `vigil.original.bytes` keeps the size).
pub const MAX_DEAD_LETTER_BYTES: usize = 900_000;

/// Where delivery reports go.
#[derive(Debug)]
enum Acks {
    /// A message's opaque is its batch's group in the tracker.
    Tracker(Arc<AckTracker>),
    /// A message's opaque is its number in the spool.
    Spool(Arc<Spool>),
}

/// Delivery reports go to the tracker, or to the spool.
#[derive(Debug)]
pub struct DeliveryContext {
    acks: Acks,
    /// Messages the broker refused for good (logged; their records still count as done so the
    /// stream is not blocked forever).
    pub failed: Arc<AtomicU64>,
    log: crate::kafka::ClientLog,
    health: Arc<Health>,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.log.error(&error, reason);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        self.health.producer_stats(&statistics);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, group: usize) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!("delivery failed for good: {e}");
        }
        self.health.delivered();
        match &self.acks {
            Acks::Tracker(t) => t.acknowledge(group as u64),
            Acks::Spool(s) => s.acknowledge(group as u64),
        }
    }
}

/// The Kafka sink.
pub struct KafkaSink {
    producer: Arc<ThreadedProducer<DeliveryContext>>,
    /// In exactly-once mode: the transactions the source commits.
    transactions: Option<Arc<Transactions>>,
    alert_topic: String,
    shadow_alert_topic: String,
    dead_topic: String,
    names: Names,
    tracker: Arc<AckTracker>,
    buf: Vec<u8>,
    shutdown_timeout: Duration,
    spool: Option<Spooling>,
}

/// The sink's spool: its writer and the forwarder producing from it.
struct Spooling {
    writer: SpoolWriter,
    spool: Arc<Spool>,
    forwarder: Option<std::thread::JoinHandle<()>>,
    /// The run's stop flag: a full spool stops waiting when it is set.
    stop: Arc<std::sync::atomic::AtomicBool>,
}

/// What [`KafkaSink::new`] needs for a spool.
#[derive(Debug)]
pub struct SpoolSetup<'a> {
    pub config: &'a crate::config::SpoolConfig,
    pub gauges: Arc<crate::telemetry::SpoolGauges>,
    pub stop: Arc<std::sync::atomic::AtomicBool>,
}

/// Why [`KafkaSink::new`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("cannot open the spool in {0}: {1}")]
    Spool(std::path::PathBuf, io::Error),
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("alert_topic", &self.alert_topic)
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// Creates the producer (idempotent, acks=all, retrying until delivered); in exactly-once
    /// mode it is transactional, and its first transaction is open. With `spool`, opens it (and
    /// forwards what an earlier run left there first).
    pub fn new(
        kafka: &KafkaConfig,
        names: Names,
        tracker: Arc<AckTracker>,
        health: Arc<Health>,
        spool: Option<SpoolSetup<'_>>,
    ) -> Result<(KafkaSink, Arc<AtomicU64>), SinkError> {
        let failed = Arc::new(AtomicU64::new(0));
        let opened = match &spool {
            Some(s) => Some(
                Spool::open(&s.config.dir, s.config.max_bytes, s.gauges.clone())
                    .map_err(|e| SinkError::Spool(s.config.dir.clone(), e))?,
            ),
            None => None,
        };
        let context = DeliveryContext {
            acks: match &opened {
                Some((s, _)) => Acks::Spool(s.clone()),
                None => Acks::Tracker(tracker.clone()),
            },
            failed: failed.clone(),
            log: crate::kafka::ClientLog::default(),
            health,
        };
        let mut own = vec![
            ("acks", "all".into()),
            ("enable.idempotence", "true".into()),
            (
                "queue.buffering.max.messages",
                kafka.producer_queue.to_string(),
            ),
            ("linger.ms", "1".into()),
            // How many messages wait for the broker (`Health`: stuck deliveries, `/readyz`).
            ("statistics.interval.ms", STATS_INTERVAL_MS.into()),
        ];
        match &kafka.delivery {
            // Retry while the broker is away: a record's offset is not committed until its
            // alerts are delivered, so waiting is the at-least-once behaviour.
            Delivery::AtLeastOnce => own.push(("message.timeout.ms", "0".into())),
            // A transaction cannot wait forever: its messages time out with it, the commit
            // fails and the process ends, to start over from the last committed transaction.
            Delivery::ExactlyOnce {
                transactional_id, ..
            } => own.extend([
                ("transactional.id", transactional_id.clone()),
                ("transaction.timeout.ms", "60000".into()),
                ("message.timeout.ms", "60000".into()),
            ]),
        }
        let producer: ThreadedProducer<DeliveryContext> =
            crate::kafka::client_config(kafka, &own).create_with_context(context)?;
        let producer = Arc::new(producer);
        let transactions = match &kafka.delivery {
            Delivery::AtLeastOnce => None,
            Delivery::ExactlyOnce {
                transactional_id,
                interval,
            } => Some(Arc::new(Transactions::start(
                producer.clone(),
                kafka,
                transactional_id.clone(),
                *interval,
            )?)),
        };
        let spool = match (opened, spool) {
            (Some((spool, writer)), Some(setup)) => {
                let forwarder = {
                    let (spool, producer) = (spool.clone(), producer.clone());
                    std::thread::Builder::new()
                        .name("vigil-spool".into())
                        .spawn(move || spool.forward(|m, n| forward(&producer, &spool, &m, n)))
                        .map_err(|e| SinkError::Spool(setup.config.dir.clone(), e))?
                };
                Some(Spooling {
                    writer,
                    spool,
                    forwarder: Some(forwarder),
                    stop: setup.stop,
                })
            }
            _ => None,
        };
        Ok((
            KafkaSink {
                spool,
                producer,
                transactions,
                alert_topic: kafka.alert_topic.clone(),
                shadow_alert_topic: kafka.shadow_alert_topic.clone(),
                dead_topic: kafka.dead_letter_topic.clone(),
                names,
                tracker,
                buf: Vec::with_capacity(512),
                shutdown_timeout: kafka.shutdown_timeout,
            },
            failed,
        ))
    }

    /// The transactions the source commits (exactly-once mode only).
    pub fn transactions(&self) -> Option<Arc<Transactions>> {
        self.transactions.clone()
    }

    /// With a spool: syncs the batch there and completes it. Without: the delivery reports
    /// complete it.
    fn done(&mut self, done: &Completion) -> io::Result<()> {
        if let Some(s) = &mut self.spool {
            s.writer.commit(&s.stop)?;
            self.tracker.complete(done);
        }
        Ok(())
    }
}

impl KafkaSink {
    /// A batch of `n` messages: its group in the tracker (the delivery reports complete it), or,
    /// with a spool, the completion itself (given once the spool has the batch).
    fn batch(&self, done: Completion, n: usize) -> (usize, Option<Completion>) {
        match self.spool {
            Some(_) => (0, Some(done)),
            None => (self.tracker.group(done, n as u32) as usize, None),
        }
    }
}

/// `m` to the spool's batch when there is one, else to the producer as part of `group`.
fn emit(
    spool: &mut Option<Spooling>,
    producer: &ThreadedProducer<DeliveryContext>,
    group: usize,
    m: &Outgoing<'_>,
) -> io::Result<()> {
    match spool {
        Some(s) => {
            s.writer.add(m);
            Ok(())
        }
        None => produce(producer, record(m, group), || false)
            .map(|_| ())
            .map_err(io::Error::other),
    }
}

/// `m` as a record with `opaque`.
fn record<'a>(m: &Outgoing<'a>, opaque: usize) -> BaseRecord<'a, [u8], [u8], usize> {
    let mut r = BaseRecord::with_opaque_to(m.topic, opaque).payload(m.payload);
    if let Some(k) = m.key {
        r = r.key(k);
    }
    if !m.headers.is_empty() {
        let headers = m.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(*v),
            })
        });
        r = r.headers(headers);
    }
    r
}

/// Sends `record`, waiting while the producer queue is full; `Ok(false)` when `stopping` says
/// to give up waiting.
fn produce(
    producer: &ThreadedProducer<DeliveryContext>,
    mut record: BaseRecord<'_, [u8], [u8], usize>,
    stopping: impl Fn() -> bool,
) -> Result<bool, KafkaError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(true),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                if stopping() {
                    return Ok(false);
                }
                record = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Produces message `n` of the spool.
fn forward(
    producer: &ThreadedProducer<DeliveryContext>,
    spool: &Spool,
    m: &super::spool::segment::Stored,
    n: u64,
) -> Sent {
    let headers: Vec<(&str, &str)> = m
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let out = Outgoing {
        topic: &m.topic,
        key: m.key.as_deref(),
        headers: &headers,
        payload: &m.payload,
    };
    match produce(producer, record(&out, n as usize), || spool.stopping()) {
        Ok(true) => Sent::Handed,
        Ok(false) => Sent::Stopping,
        Err(e) => Sent::Refused(e.to_string()),
    }
}

impl Sink for KafkaSink {
    fn alerts(&mut self, alerts: &[Alert], done: Completion) -> io::Result<()> {
        if alerts.is_empty() {
            self.tracker.complete(&done);
            return Ok(());
        }
        let (group, spooled) = self.batch(done, alerts.len());
        for a in alerts {
            self.buf.clear();
            alert_json(a, &self.names, &mut self.buf);
            let key = self.names.sensors.get(a.sensor);
            // Exactly-once recovery: an alert the alert topic already holds is not sent again.
            if let Some(txn) = self
                .transactions
                .as_ref()
                .filter(|t| !a.shadow && t.recovering())
            {
                let buf = &self.buf;
                let key = || {
                    serde_json::from_slice(buf)
                        .ok()
                        .as_ref()
                        .and_then(transactions::alert_key)
                };
                let source = self.names.sources.get(a.origin.source);
                if txn.already_published(&source, a.origin.position, key) {
                    tracing::info!(
                        "not publishing again an alert already on {}: {}",
                        self.alert_topic,
                        String::from_utf8_lossy(&self.buf)
                    );
                    self.tracker.acknowledge(group as u64);
                    continue;
                }
            }
            // Shadow alerts never reach the serving topic.
            let topic = if a.shadow {
                &self.shadow_alert_topic
            } else {
                &self.alert_topic
            };
            let m = Outgoing {
                topic,
                key: Some(key.as_bytes()),
                headers: &[],
                payload: &self.buf,
            };
            emit(&mut self.spool, &self.producer, group, &m)?;
        }
        match spooled {
            Some(done) => self.done(&done),
            None => Ok(()),
        }
    }

    fn dead_letters(&mut self, dead: &[DeadLetter], done: Completion) -> io::Result<()> {
        if dead.is_empty() {
            self.tracker.complete(&done);
            return Ok(());
        }
        let (group, spooled) = self.batch(done, dead.len());
        for d in dead {
            let source = self.names.sources.get(d.origin.source);
            // A Kafka source is `topic/partition`; an MQTT one `mqtt:topic` (no partition).
            let (topic, partition) = match source.starts_with("mqtt:") {
                true => (&*source, "-1"),
                false => source.rsplit_once('/').unwrap_or((&source, "-1")),
            };
            let offset = d.origin.position.to_string();
            // Keep the dead-letter message under the broker's usual 1 MB limit.
            let keep = d.raw.len().min(MAX_DEAD_LETTER_BYTES);
            let size = d.raw.len().to_string();
            let headers = [
                ("vigil.reason", d.reason.as_str()),
                ("vigil.source.topic", topic),
                ("vigil.source.partition", partition),
                ("vigil.source.offset", offset.as_str()),
                ("vigil.original.bytes", size.as_str()),
            ];
            emit(
                &mut self.spool,
                &self.producer,
                group,
                &Outgoing {
                    topic: &self.dead_topic,
                    key: None,
                    headers: &headers,
                    payload: &d.raw[..keep],
                },
            )?;
        }
        match spooled {
            Some(done) => self.done(&done),
            None => Ok(()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        let start = std::time::Instant::now();
        if let Some(s) = &mut self.spool {
            let (left, bytes) = s.spool.finish(self.shutdown_timeout);
            if let Some(f) = s.forwarder.take() {
                let _ = f.join();
            }
            if left > 0 {
                tracing::warn!(
                    "spool: {left} messages ({bytes} bytes) wait in {} for the uplink; they are \
                     forwarded at the next start",
                    s.writer.dir().display()
                );
                // They are safe on disk: what librdkafka still holds of them is sent again then.
                let _ = self.producer.flush(Duration::from_millis(100));
                return Ok(());
            }
        }
        let left = self.shutdown_timeout.saturating_sub(start.elapsed());
        self.producer.flush(left).map_err(|e| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the broker did not acknowledge everything in time: {e}"),
            )
        })
    }
}
