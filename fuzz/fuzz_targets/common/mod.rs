//! What the decoder targets share.

use vigil::record::RecordBatch;

/// Checks that a batch's columns agree; returns its rows.
pub fn batch_rows(b: &RecordBatch) -> usize {
    let rows = b.sensors.len();
    assert_eq!(b.ts.len(), rows);
    assert_eq!(b.origins.len(), rows);
    assert_eq!(b.values.len(), rows * b.schema.width());
    rows
}
