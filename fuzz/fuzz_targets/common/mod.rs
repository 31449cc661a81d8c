//! What the targets share.

use std::sync::Arc;
use std::time::Instant;
use vigil::config::{Config, RawConfig, Speed};
use vigil::decode::Decoder;
use vigil::iforest::model::IForestModel;
use vigil::record::{DeadLetter, NameTable, Origin, RecordBatch, TopicFields};

/// Checks that a batch's columns agree; returns its rows.
pub fn batch_rows(b: &RecordBatch) -> usize {
    let rows = b.sensors.len();
    assert_eq!(b.ts.len(), rows);
    assert_eq!(b.origins.len(), rows);
    assert_eq!(b.values.len(), rows * b.schema.width());
    rows
}

/// Decodes one JSON record (with what its topic names, if anything) by a decoder with the default
/// configuration: the rows it gave (their columns checked) and its dead letters. Each dead letter
/// carries a reason and the record's bytes. (The JSON and MQTT targets use it; the CSV one does not.)
#[allow(dead_code)]
pub fn decode_json(payload: &[u8], topic: Option<&TopicFields>) -> (usize, Vec<DeadLetter>) {
    let config = Config::validate(RawConfig::default()).expect("the defaults are valid");
    let mut decoder = Decoder::new(config.input, Arc::new(NameTable::default()), 1, Speed::Max);
    let mut dead = Vec::new();
    let mut rows = 0;
    let mut check = |b: RecordBatch| {
        rows += batch_rows(&b);
        true
    };
    let origin = Origin {
        source: 0,
        position: 7,
    };
    let now = Instant::now();
    assert!(decoder.json(payload, topic, origin, now, &mut dead, &mut check));
    assert!(decoder.flush(&mut check));
    assert!(dead
        .iter()
        .all(|d| !d.reason.is_empty() && d.raw == payload));
    (rows, dead)
}

/// Checks that a model that loaded (or was imported) writes itself back in a form that loads to
/// the same model. (The model and ONNX targets use it.)
#[allow(dead_code)]
pub fn assert_writes_back_the_same(model: &IForestModel) {
    let json = model.to_json();
    match IForestModel::from_json(&json) {
        Ok(again) => assert_eq!(again.to_json(), json, "a model changes when written back"),
        Err(e) => panic!("a model does not load back: {e}"),
    }
}
