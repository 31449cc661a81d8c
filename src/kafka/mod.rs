//! What Vigil's Kafka clients share: the librdkafka settings of the consumer (`sources::kafka`),
//! the producers (`sinks::kafka`, `vigil produce`), and the consumer's status that the operations
//! endpoint and the periodic log show.

pub mod fetch;
pub mod health;
pub mod transactions;

use crate::config::KafkaConfig;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What the operations endpoint and the periodic log show of the consumer.
#[derive(Debug, Default, Clone)]
pub struct ConsumerStatus {
    /// Assigned partitions with their lag (high watermark minus position; -1 when unknown).
    pub partitions: Vec<(String, i32, i64)>,
    /// When the consumer last polled.
    pub last_poll: Option<Instant>,
    /// Records re-read to rebuild state since start.
    pub rewound: u64,
    /// Transactions committed (exactly-once mode).
    pub transactions: u64,
}

/// The librdkafka settings shared by Vigil's consumer and producer, then the user's properties.
pub fn client_config(kafka: &KafkaConfig, own: &[(&str, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.bootstrap_servers);
    for (k, v) in own {
        c.set(*k, v);
    }
    for (k, v) in &kafka.properties.0 {
        c.set(k, v);
    }
    c
}

/// How often one kind of librdkafka complaint is logged.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// librdkafka's log lines and errors through `tracing`, at most one line per kind (facility or
/// error code) every [`LOG_EVERY`], each repeat line saying how many were held back and for how
/// long the trouble has lasted: an unreachable broker is a few clear lines, not dozens a second.
#[derive(Debug, Default)]
pub struct ClientLog {
    kinds: Mutex<HashMap<String, Kind>>,
    /// The first refusal of the connection's security (TLS or SASL) reported, if any.
    security: Mutex<Option<String>>,
}

#[derive(Debug)]
struct Kind {
    /// When this trouble began.
    first: Instant,
    /// When a line of it last went out.
    last: Instant,
    /// When it last happened.
    seen: Instant,
    /// Lines held back since the last one out.
    held: u64,
}

impl ClientLog {
    /// Whether a line of `kind` goes out now, with the count held back since the last one and how
    /// long this kind has been seen.
    fn admit(&self, kind: &str) -> Option<(u64, Duration)> {
        let now = Instant::now();
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        match kinds.get_mut(kind) {
            Some(k) if now - k.last < LOG_EVERY => {
                k.held += 1;
                k.seen = now;
                None
            }
            // Seen again within a period of the last one: the same trouble goes on.
            Some(k) if now - k.seen < LOG_EVERY => {
                let held = std::mem::take(&mut k.held);
                k.last = now;
                k.seen = now;
                Some((held, now - k.first))
            }
            _ => {
                kinds.insert(
                    kind.to_string(),
                    Kind {
                        first: now,
                        last: now,
                        seen: now,
                        held: 0,
                    },
                );
                Some((0, Duration::ZERO))
            }
        }
    }

    fn suffix(held: u64, lasting: Duration) -> String {
        if held == 0 {
            String::new()
        } else {
            format!(
                " ({held} more like it held back; seen for {} s)",
                lasting.as_secs()
            )
        }
    }

    /// A librdkafka log line.
    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if matches!(level, RDKafkaLogLevel::Debug) {
            tracing::debug!("librdkafka: {fac} {message}");
            return;
        }
        let Some((held, lasting)) = self.admit(fac) else {
            return;
        };
        let s = Self::suffix(held, lasting);
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!("librdkafka: {fac} {message}{s}"),
            RDKafkaLogLevel::Warning => tracing::warn!("librdkafka: {fac} {message}{s}"),
            _ => tracing::info!("librdkafka: {fac} {message}{s}"),
        }
    }

    /// A warning of the client's user (e.g. a failed poll), limited like librdkafka's own lines.
    pub fn warn(&self, kind: &str, message: &str) {
        if let Some((held, lasting)) = self.admit(kind) {
            tracing::warn!("{message}{}", Self::suffix(held, lasting));
        }
    }

    /// A librdkafka global error.
    pub fn error(&self, error: &KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::SSL
                    | RDKafkaErrorCode::Authentication
                    | RDKafkaErrorCode::SaslAuthenticationFailed
            )
        ) {
            self.security
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert_with(|| reason.to_string());
        }
        let kind = match error.rdkafka_error_code() {
            Some(code) => format!("{code:?}"),
            None => error.to_string(),
        };
        let Some((held, lasting)) = self.admit(&kind) else {
            return;
        };
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            tracing::error!(
                "no broker reachable for {} s: {reason}{}",
                lasting.as_secs(),
                Self::suffix(held, lasting)
            );
        } else {
            tracing::error!("{error}: {reason}{}", Self::suffix(held, lasting));
        }
    }
}

/// How long [`check_security`] waits for the cluster's first answer.
pub const SECURITY_CHECK: Duration = Duration::from_secs(10);

/// Connects to the cluster once before anything runs (at most [`SECURITY_CHECK`]): an error when
/// the connection's security is refused (a CA that does not sign the broker's certificate, an
/// expired one, a host name it does not name, SASL credentials the broker rejects). These are
/// configuration errors, never retried, and never a reason to fall back to plaintext. A broker
/// that does not answer at all is not an error here: the scorer waits for it.
pub fn check_security(kafka: &KafkaConfig) -> Result<(), String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer<LoggingContext> = client_config(kafka, &[])
        .create_with_context(LoggingContext::default())
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + SECURITY_CHECK;
    while Instant::now() < deadline {
        if consumer
            .fetch_metadata(None, Duration::from_millis(500))
            .is_ok()
        {
            return Ok(());
        }
        // Errors reach the context only when the client's queue is served.
        let _ = consumer.poll(Duration::from_millis(100));
        let refused = consumer
            .context()
            .log
            .security
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(reason) = refused {
            return Err(format!(
                "the Kafka cluster at {} refused the connection's security: {reason}",
                kafka.bootstrap_servers
            ));
        }
    }
    Ok(())
}

/// A client context that only logs (through [`ClientLog`]): for `vigil produce`.
#[derive(Debug, Default)]
pub struct LoggingContext {
    pub log: ClientLog,
}

impl rdkafka::ClientContext for LoggingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(&error, reason);
    }
}

impl rdkafka::producer::ProducerContext for LoggingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

impl rdkafka::consumer::ConsumerContext for LoggingContext {}
