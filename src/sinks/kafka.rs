//! Alerts and dead letters to Kafka topics.
//!
//! Alerts go to the alert topic keyed by sensor id; dead letters to the dead-letter topic with
//! their original bytes and the reason and source topic, partition and offset as headers. A batch's
//! [`Completion`] is handed to the [`AckTracker`] only when the broker has acknowledged every
//! message derived from it. The producer's queue is bounded: when it is full the sink waits, which
//! slows the whole pipeline down to what the broker takes.

use super::alert_json;
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

/// Delivery reports go to the tracker.
#[derive(Debug)]
pub struct DeliveryContext {
    tracker: Arc<AckTracker>,
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
        self.tracker.acknowledge(group as u64);
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
    /// mode it is transactional, and its first transaction is open.
    pub fn new(
        kafka: &KafkaConfig,
        names: Names,
        tracker: Arc<AckTracker>,
        health: Arc<Health>,
    ) -> Result<(KafkaSink, Arc<AtomicU64>), KafkaError> {
        let failed = Arc::new(AtomicU64::new(0));
        let context = DeliveryContext {
            tracker: tracker.clone(),
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
        Ok((
            KafkaSink {
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

    /// Sends one record, waiting while the producer queue is full.
    fn send(&self, mut record: BaseRecord<'_, [u8], [u8], usize>) -> io::Result<()> {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(io::Error::other(e)),
            }
        }
    }
}

impl Sink for KafkaSink {
    fn alerts(&mut self, alerts: &[Alert], done: Completion) -> io::Result<()> {
        if alerts.is_empty() {
            self.tracker.complete(&done);
            return Ok(());
        }
        let group = self.tracker.group(done, alerts.len() as u32) as usize;
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
            let payload = std::mem::take(&mut self.buf);
            // Shadow alerts never reach the serving topic.
            let topic = if a.shadow {
                &self.shadow_alert_topic
            } else {
                &self.alert_topic
            };
            let r = BaseRecord::with_opaque_to(topic, group)
                .key(key.as_bytes())
                .payload(payload.as_slice());
            self.send(r)?;
            self.buf = payload;
        }
        Ok(())
    }

    fn dead_letters(&mut self, dead: &[DeadLetter], done: Completion) -> io::Result<()> {
        if dead.is_empty() {
            self.tracker.complete(&done);
            return Ok(());
        }
        let group = self.tracker.group(done, dead.len() as u32) as usize;
        for d in dead {
            let source = self.names.sources.get(d.origin.source);
            // A Kafka source is `topic/partition`; an MQTT one `mqtt:topic` (no partition).
            let (topic, partition) = match source.starts_with("mqtt:") {
                true => (&*source, "-1"),
                false => source.rsplit_once('/').unwrap_or((&source, "-1")),
            };
            let offset = d.origin.position.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "vigil.reason",
                    value: Some(d.reason.as_str()),
                })
                .insert(Header {
                    key: "vigil.source.topic",
                    value: Some(topic),
                })
                .insert(Header {
                    key: "vigil.source.partition",
                    value: Some(partition),
                })
                .insert(Header {
                    key: "vigil.source.offset",
                    value: Some(offset.as_str()),
                });
            // Keep the dead-letter message under the broker's usual 1 MB limit.
            let keep = d.raw.len().min(MAX_DEAD_LETTER_BYTES);
            let size = d.raw.len().to_string();
            let headers = headers.insert(Header {
                key: "vigil.original.bytes",
                value: Some(size.as_str()),
            });
            let r = BaseRecord::with_opaque_to(&self.dead_topic, group)
                .payload(&d.raw[..keep])
                .headers(headers);
            self.send(r)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.producer.flush(self.shutdown_timeout).map_err(|e| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the broker did not acknowledge everything in time: {e}"),
            )
        })
    }
}
