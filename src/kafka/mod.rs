//! What Vigil's Kafka clients share: the librdkafka settings of the consumer (`sources::kafka`),
//! the producers (`sinks::kafka`, `vigil produce`), and the consumer's status that the operations
//! endpoint and the periodic log show.

use crate::config::KafkaConfig;
use rdkafka::config::ClientConfig;
use std::time::Instant;

/// What the operations endpoint and the periodic log show of the consumer.
#[derive(Debug, Default, Clone)]
pub struct ConsumerStatus {
    /// Assigned partitions with their lag (high watermark minus position; -1 when unknown).
    pub partitions: Vec<(String, i32, i64)>,
    /// When the consumer last polled.
    pub last_poll: Option<Instant>,
    /// Records re-read to rebuild state since start.
    pub rewound: u64,
}

/// The librdkafka settings shared by Vigil's consumer and producer, then the user's properties.
pub fn client_config(kafka: &KafkaConfig, own: &[(&str, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.bootstrap_servers);
    for (k, v) in own {
        c.set(*k, v);
    }
    for (k, v) in &kafka.properties {
        c.set(k, v);
    }
    c
}
