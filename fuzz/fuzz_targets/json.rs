//! The JSON record decoder (a line of a file or a message from a topic): whatever the bytes, it
//! gives a record or a dead letter with a reason, never both, never a crash.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (rows, dead) = common::decode_json(data, None);
    assert!(
        rows + dead.len() <= 1,
        "{rows} rows and {} dead letters from one record",
        dead.len()
    );
});
