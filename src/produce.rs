//! `vigil produce`: load recorded sensor files into a topic as JSON records keyed by sensor id,
//! the shape `vigil score` reads, for demos, tests and benchmarks.

use crate::config::Config;
use crate::decode::{Decoder, Input};
use crate::record::{DeadLetter, Interner, NameTable, RecordBatch};
use crate::sources::file;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why producing failed.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// An input file that cannot be opened or has no usable header.
    #[error(transparent)]
    Input(#[from] crate::sources::file::InputError),
    /// librdkafka refused the settings.
    #[error("cannot create the Kafka producer: {0}")]
    Client(rdkafka::error::KafkaError),
    /// TLS or SASL refused.
    #[error("{0}")]
    Security(String),
    #[error("producing to {topic} failed: {message}")]
    Send { topic: String, message: String },
    #[error("the broker did not acknowledge everything: {0}")]
    Flush(rdkafka::error::KafkaError),
}

impl ProduceError {
    /// Whether it is the user's to fix before anything ran (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ProduceError::Input(_) | ProduceError::Client(_) | ProduceError::Security(_)
        )
    }
}

/// What was produced.
#[derive(Debug, Clone, Copy)]
pub struct Produced {
    pub records: u64,
    pub skipped: u64,
    pub seconds: f64,
}

/// A record as one JSON object: `{"sensor":…,"ts":epoch_ms,"values":{…}}` (null for missing).
pub fn record_json(
    sensor: &str,
    ts: i64,
    channels: &[Arc<str>],
    values: &[f32],
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(b"{\"sensor\":");
    let _ = serde_json::to_writer(&mut *out, sensor);
    out.extend_from_slice(format!(",\"ts\":{ts},\"values\":{{").as_bytes());
    for (i, (c, v)) in channels.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut *out, &**c);
        out.push(b':');
        if v.is_finite() {
            out.extend_from_slice(v.to_string().as_bytes());
        } else {
            out.extend_from_slice(b"null");
        }
    }
    out.extend_from_slice(b"}}");
}

/// Produces every record of `files` to `topic`, at most `rate` records per second.
pub fn produce(
    config: &Config,
    files: &[PathBuf],
    topic: &str,
    rate: Option<f64>,
) -> Result<Produced, ProduceError> {
    let sensors = Arc::new(NameTable::default());
    let mut decoder = Decoder::new(
        config.input.clone(),
        sensors.clone(),
        4096,
        crate::config::Speed::Max,
    );
    let mut sources = Interner::new(Arc::new(NameTable::default()));
    let inputs = files
        .iter()
        .map(|f| file::open(f, &mut decoder, &mut sources, &AtomicBool::new(false)))
        .collect::<Result<Vec<_>, _>>()?;
    crate::kafka::check_security(&config.kafka).map_err(ProduceError::Security)?;
    let producer: ThreadedProducer<crate::kafka::LoggingContext> = crate::kafka::client_config(
        &config.kafka,
        &[
            ("linger.ms", "5".into()),
            ("queue.buffering.max.messages", "200000".into()),
            ("message.timeout.ms", "60000".into()),
        ],
    )
    .create_with_context(crate::kafka::LoggingContext::default())
    .map_err(ProduceError::Client)?;

    let (tx, rx) = crossbeam_channel::bounded::<Input>(4);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut buf = Vec::with_capacity(256);
    let mut dead: Vec<DeadLetter> = Vec::new();
    let mut failure: Option<String> = None;
    std::thread::scope(|s| {
        let stop = &stop;
        let reader = s.spawn(move || {
            let tx = tx;
            file::read(inputs, &tx, stop, &Default::default())
        });
        for input in rx.iter() {
            let mut emit = |batch: RecordBatch| {
                for i in 0..batch.len() {
                    let name = sensors.get(batch.sensors[i]);
                    record_json(
                        &name,
                        batch.ts[i],
                        &batch.schema.channels,
                        batch.row(i),
                        &mut buf,
                    );
                    let mut record = BaseRecord::to(topic)
                        .key(name.as_bytes())
                        .payload(buf.as_slice());
                    loop {
                        match producer.send(record) {
                            Ok(()) => break,
                            Err((
                                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                                back,
                            )) => {
                                record = back;
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            Err((e, _)) => {
                                failure = Some(e.to_string());
                                return false;
                            }
                        }
                    }
                    sent += 1;
                    if let Some(rate) = rate {
                        let due = Duration::from_secs_f64(sent as f64 / rate);
                        if let Some(wait) = due.checked_sub(started.elapsed()) {
                            std::thread::sleep(wait);
                        }
                    }
                }
                true
            };
            if !decoder.input(&input, &mut dead, &mut emit) {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                break;
            }
        }
        drop(rx);
        let _ = reader.join();
    });
    if let Some(e) = failure {
        return Err(ProduceError::Send {
            topic: topic.to_string(),
            message: e,
        });
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(ProduceError::Flush)?;
    for d in dead.iter().take(3) {
        tracing::warn!("skipped line {}: {}", d.origin.position, d.reason);
    }
    Ok(Produced {
        records: sent,
        skipped: dead.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
    })
}
