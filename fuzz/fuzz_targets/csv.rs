//! The CSV decoder: the first line is the header, the rest the file's body. Whatever the bytes,
//! decoding ends, every batch's columns agree, and every dead letter says why.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use vigil::config::{Config, RawConfig, Speed};
use vigil::decode::{Chunk, Decoder, FileSpec, Format};
use vigil::record::NameTable;

fuzz_target!(|data: &[u8]| {
    let Some(end) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(header) = std::str::from_utf8(&data[..end]) else {
        return;
    };
    let Ok(config) = Config::validate(RawConfig::default()) else {
        return;
    };
    let mut decoder = Decoder::new(config.input, Arc::new(NameTable::default()), 7, Speed::Max);
    let Ok(layout) = decoder.csv_layout(header, Path::new("fuzz/pump-1.csv")) else {
        return;
    };
    let mut body = data.to_vec();
    if !body.ends_with(b"\n") {
        body.push(b'\n');
    }
    let chunk = Chunk {
        file: Arc::new(FileSpec {
            source: 0,
            path: PathBuf::from("fuzz/pump-1.csv"),
            format: Format::Csv(layout),
        }),
        first: true,
        data: body,
        oversized_last: false,
        read_at: Instant::now(),
        sent_at: Instant::now(),
    };
    let mut dead = Vec::new();
    let mut rows = 0;
    let mut check = |b: vigil::record::RecordBatch| {
        rows += common::batch_rows(&b);
        true
    };
    assert!(decoder.chunk(&chunk, &mut dead, &mut check));
    assert!(decoder.flush(&mut check));
    assert!(dead.iter().all(|d| !d.reason.is_empty()));
    let lines = chunk.data.iter().filter(|&&b| b == b'\n').count();
    assert!(
        rows + dead.len() < lines.max(1),
        "{rows} rows and {} dead letters from {lines} lines",
        dead.len()
    );
});
