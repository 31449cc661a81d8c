//! The JSON record decoder (a line of a file or a message from a topic): whatever the bytes, it
//! gives a record or a dead letter with a reason, never both, never a crash. And the reader of the
//! common shape (`decode::json_shape`) reads exactly what the general parser reads, bit for bit,
//! or declines.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use vigil::decode::json::{decode, JsonTs};
use vigil::decode::json_shape::{read, Shape, Ts};
use vigil::time::{parse_timestamp, EpochUnit};

fuzz_target!(|data: &[u8]| {
    let (rows, dead) = common::decode_json(data, None);
    assert!(
        rows + dead.len() <= 1,
        "{rows} rows and {} dead letters from one record",
        dead.len()
    );
    let mut shape = Shape::default();
    if !read(data, &mut shape) {
        return;
    }
    let text = |r: &std::ops::Range<usize>| {
        std::str::from_utf8(&data[r.clone()]).expect("the shape reader reads ASCII")
    };
    let unit = EpochUnit::Auto;
    // A timestamp the decoder cannot convert sends the record to the general parser.
    let converts = match shape.ts.as_ref().expect("a shape has a timestamp") {
        Ts::Number(n) => unit.to_millis(*n).is_some(),
        Ts::Text(r) => parse_timestamp(text(r), unit).is_some(),
    };
    if !converts {
        return;
    }
    let (general, _) = match decode(data, unit, &[]) {
        Ok(g) => g,
        Err(e) => panic!("the shape reader read a record the general parser refuses: {e}"),
    };
    assert_eq!(general.sensor, text(&shape.sensor));
    match (&general.ts, shape.ts.as_ref()) {
        (JsonTs::Number(a), Some(Ts::Number(b))) => assert_eq!(a.to_bits(), b.to_bits()),
        (JsonTs::Text(a), Some(Ts::Text(b))) => assert_eq!(a, text(b)),
        (a, b) => panic!("timestamps differ: {a:?} and {b:?}"),
    }
    let got: Vec<(&str, Option<u64>)> = shape
        .values
        .iter()
        .map(|(k, v)| (text(k), v.map(f64::to_bits)))
        .collect();
    let want: Vec<(&str, Option<u64>)> = general
        .values
        .iter()
        .map(|(k, v)| (k.as_ref(), v.map(f64::to_bits)))
        .collect();
    assert_eq!(got, want);
});
