//! The JSON record decoder (a line of a file or a message from a topic): whatever the bytes, it
//! gives a record or a dead letter with a reason, never both, never a crash.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use std::time::Instant;
use vigil::config::{Config, RawConfig, Speed};
use vigil::decode::Decoder;
use vigil::record::{NameTable, Origin};

fuzz_target!(|data: &[u8]| {
    let Ok(config) = Config::validate(RawConfig::default()) else {
        return;
    };
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
    assert!(decoder.json(data, None, origin, Instant::now(), &mut dead, &mut check));
    assert!(decoder.flush(&mut check));
    assert!(
        rows + dead.len() <= 1,
        "{rows} rows and {} dead letters from one record",
        dead.len()
    );
    assert!(dead.iter().all(|d| !d.reason.is_empty() && d.raw == data));
});
