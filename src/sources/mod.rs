//! Where records come from. Replay reads files ([`file`]); `vigil score` reads
//! Kafka topics ([`kafka`]) or an MQTT broker ([`mqtt`]); every source feeds the same pipeline.

pub mod file;
pub mod kafka;
pub mod mqtt;
