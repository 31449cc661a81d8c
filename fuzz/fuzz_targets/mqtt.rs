//! The MQTT payload decoder: the first line of the input is the message's topic, the rest its
//! payload. Whatever the bytes, the topic layouts either name a sensor (and channel) or not, and
//! the payload gives one record or one dead letter with a reason, never both, never a crash.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use std::time::Instant;
use vigil::config::{Config, RawConfig, Speed, TopicLayout};
use vigil::decode::Decoder;
use vigil::record::{NameTable, Origin};

fuzz_target!(|data: &[u8]| {
    let Ok(config) = Config::validate(RawConfig::default()) else {
        return;
    };
    let layouts: Vec<TopicLayout> = ["plant/+/{sensor}/{channel}", "plant/+/{sensor}", "{sensor}"]
        .iter()
        .filter_map(|l| TopicLayout::parse(l).ok())
        .collect();
    let cut = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let topic = String::from_utf8_lossy(&data[..cut]);
    let payload = data.get(cut + 1..).unwrap_or_default();
    let fields = layouts.iter().find_map(|l| l.fields(&topic));
    if let Some(f) = &fields {
        assert!(f
            .sensor
            .as_ref()
            .is_some_and(|s| !s.is_empty() && !s.contains('/')));
        assert!(f
            .channel
            .as_ref()
            .is_none_or(|c| !c.is_empty() && !c.contains('/')));
    }
    let mut decoder = Decoder::new(config.input, Arc::new(NameTable::default()), 1, Speed::Max);
    let mut dead = Vec::new();
    let mut rows = 0;
    let mut check = |b: vigil::record::RecordBatch| {
        rows += common::batch_rows(&b);
        true
    };
    let origin = Origin {
        source: 0,
        position: 7,
    };
    let now = Instant::now();
    assert!(decoder.json(payload, fields.as_ref(), origin, now, &mut dead, &mut check));
    assert!(decoder.flush(&mut check));
    assert!(
        rows + dead.len() <= 1,
        "{rows} rows and {} dead letters from one message",
        dead.len()
    );
    assert!(dead
        .iter()
        .all(|d| !d.reason.is_empty() && d.raw == payload));
});
