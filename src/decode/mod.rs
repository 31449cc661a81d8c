//! The decode stage: bytes in, [`RecordBatch`]es and [`DeadLetter`]s out.
//!
//! One decoder thread owns the sensor and schema interners, so ids are made without locks. Lines
//! that do not decode become dead letters with their source, line number and reason; decoding goes
//! on.

pub mod csv;
pub mod json;
pub mod json_shape;

use crate::config::{InputConfig, Speed};
use crate::record::{
    DeadLetter, Interner, NameTable, Origin, RecordBatch, Schema, Schemas, SourceId, Ticket,
    TopicFields,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest record accepted, in bytes. Longer lines are dead letters (with their first bytes).
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// How a file's lines are read.
#[derive(Debug)]
pub enum Format {
    Csv(csv::CsvLayout),
    JsonLines,
}

/// A file being replayed.
#[derive(Debug)]
pub struct FileSpec {
    pub source: SourceId,
    pub path: PathBuf,
    pub format: Format,
}

/// What a source hands the decoder.
#[derive(Debug)]
pub enum Input {
    /// Lines of a file.
    Lines(Chunk),
    /// Records from a topic, one per message.
    Messages(MessageBatch),
}

impl Input {
    /// When the input was put on the channel.
    pub fn sent_at(&self) -> Instant {
        match self {
            Input::Lines(c) => c.sent_at,
            Input::Messages(m) => m.sent_at,
        }
    }
}

/// One message: where it came from, and where its payload is in its batch's
/// [`MessageBatch::payloads`].
#[derive(Debug)]
pub struct Message {
    pub origin: Origin,
    pub payload: std::ops::Range<usize>,
    /// Kafka timestamp, epoch ms (0 when absent).
    pub timestamp_ms: i64,
    /// Score the record but raise no alert from it (it is being re-read to rebuild state).
    pub replay_only: bool,
    /// What the message's topic says of its record (an MQTT topic layout), if anything.
    pub topic: Option<Arc<TopicFields>>,
}

/// A consumer poll's worth of messages, their payloads one after another in one buffer (one
/// allocation per poll, not one per message).
#[derive(Debug)]
pub struct MessageBatch {
    pub ticket: Ticket,
    pub messages: Vec<Message>,
    pub payloads: Vec<u8>,
    pub read_at: Instant,
    pub sent_at: Instant,
}

impl MessageBatch {
    /// An empty batch (its ticket is set when the poll is done).
    pub fn new(read_at: Instant) -> MessageBatch {
        MessageBatch {
            ticket: 0,
            messages: Vec::new(),
            payloads: Vec::new(),
            read_at,
            sent_at: read_at,
        }
    }

    /// Appends a message, copying its payload into the batch.
    pub fn push(
        &mut self,
        origin: Origin,
        payload: &[u8],
        timestamp_ms: i64,
        replay_only: bool,
        topic: Option<Arc<TopicFields>>,
    ) {
        let start = self.payloads.len();
        self.payloads.extend_from_slice(payload);
        self.messages.push(Message {
            origin,
            payload: start..self.payloads.len(),
            timestamp_ms,
            replay_only,
            topic,
        });
    }

    /// The payload of `m`, one of this batch's messages.
    pub fn payload(&self, m: &Message) -> &[u8] {
        self.payloads.get(m.payload.clone()).unwrap_or_default()
    }
}

/// A run of whole lines of one file, as the source read them.
#[derive(Debug)]
pub struct Chunk {
    pub file: Arc<FileSpec>,
    /// The first chunk of its file (line numbering restarts).
    pub first: bool,
    pub data: Vec<u8>,
    /// The last line of `data` is the start of a line longer than [`MAX_RECORD_BYTES`].
    pub oversized_last: bool,
    pub read_at: Instant,
    pub sent_at: Instant,
}

/// Sleeps so that event time advances at `factor` times wall time, from the first record seen.
#[derive(Debug)]
struct Pacer {
    factor: f64,
    anchor: Option<(i64, Instant)>,
}

impl Pacer {
    /// How long to wait before a record at `ts` is due (`Duration::MAX`: beyond any clock, as
    /// after a jump of centuries at a slow factor).
    fn wait_for(&mut self, ts: i64) -> Option<Duration> {
        let (t0, w0) = *self.anchor.get_or_insert((ts, Instant::now()));
        let secs = (ts.saturating_sub(t0).max(0) as f64 / 1000.0) / self.factor;
        match Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|d| w0.checked_add(d))
        {
            Some(due) => due
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero()),
            None => Some(Duration::MAX),
        }
    }
}

/// Sleeps for `wait`, in slices, until it has passed or `stop` is set; false when stopped.
fn sleep_unless(wait: Duration, stop: Option<&AtomicBool>) -> bool {
    const SLICE: Duration = Duration::from_millis(50);
    let Some(stop) = stop else {
        std::thread::sleep(wait);
        return true;
    };
    let until = Instant::now().checked_add(wait);
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let left = until.map_or(SLICE, |u| u.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(SLICE));
    }
}

/// How a CSV file without a sensor column names its one sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SensorNaming {
    /// By its file name without the extension (`data/pump-3.csv`: `pump-3`).
    #[default]
    FileStem,
    /// By its whole path without the extension, so that same-named files in two folders of a
    /// corpus (SKAB's `valve1/0.csv`, `valve2/0.csv`) are two sensors.
    Path,
}

/// What the decode stage counted.
#[derive(Debug, Default, Clone, Copy)]
pub struct DecodeCounts {
    pub records: u64,
    /// Records re-read only to rebuild detector state (see `sources::kafka`).
    pub rewound: u64,
    pub dead_letters: u64,
    /// Readings that were missing, NaN or infinite: decoded, then skipped by the detectors.
    pub readings_skipped: u64,
}

/// Turns lines into batches. See the module docs.
#[derive(Debug)]
pub struct Decoder {
    sensors: Interner,
    schemas: Schemas,
    input: InputConfig,
    naming: SensorNaming,
    batch_rows: usize,
    pacer: Option<Pacer>,
    /// Set on SIGINT/SIGTERM: a paced wait ends, and the rest of the chunk is not decoded.
    stop: Option<Arc<AtomicBool>>,
    /// A paced wait was cut short by `stop`.
    halted: bool,
    line: u64,
    current: Option<RecordBatch>,
    ticket: Ticket,
    source_ms: i64,
    replay_only: bool,
    /// The scope sensor names are interned in: the partition assignment of the message being
    /// decoded (see `sources::kafka`), none for files.
    scope: Option<u32>,
    fields: Vec<std::ops::Range<usize>>,
    values: Vec<f32>,
    /// The last JSON record read by [`json_shape`] (reused: no allocation per record).
    shape: json_shape::Shape,
    pub counts: DecodeCounts,
}

impl Decoder {
    /// A decoder interning sensors into `sensor_names`, emitting batches of at most `batch_rows`.
    pub fn new(
        input: InputConfig,
        sensor_names: Arc<NameTable>,
        batch_rows: usize,
        speed: Speed,
    ) -> Decoder {
        Decoder {
            sensors: Interner::new(sensor_names),
            schemas: Schemas::default(),
            input,
            naming: SensorNaming::default(),
            batch_rows: batch_rows.max(1),
            pacer: match speed {
                Speed::Max => None,
                Speed::Factor(factor) => Some(Pacer {
                    factor,
                    anchor: None,
                }),
            },
            stop: None,
            halted: false,
            line: 0,
            current: None,
            ticket: 0,
            source_ms: 0,
            replay_only: false,
            scope: None,
            fields: Vec::new(),
            shape: json_shape::Shape::default(),
            values: Vec::new(),
            counts: DecodeCounts::default(),
        }
    }

    /// Ends paced waits (and decoding) when `stop` is set.
    pub fn with_stop(mut self, stop: Arc<AtomicBool>) -> Decoder {
        self.stop = Some(stop);
        self
    }

    /// Names the sensors of files without a sensor column as `naming` says.
    pub fn with_sensor_naming(mut self, naming: SensorNaming) -> Decoder {
        self.naming = naming;
        self
    }

    /// Works out the layout of CSV file `file` from its header line. A file without a sensor
    /// column is one sensor, named as [`SensorNaming`] says.
    pub fn csv_layout(&mut self, header: &str, file: &Path) -> Result<csv::CsvLayout, String> {
        let sensor = if self.naming == SensorNaming::Path {
            file.with_extension("").display().to_string()
        } else {
            file.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("sensor")
                .to_string()
        };
        csv::CsvLayout::from_header(
            header,
            &self.input,
            &sensor,
            &mut self.sensors,
            &mut self.schemas,
        )
    }

    /// Decodes one input (tagged with its ticket for offset tracking); returns false when nobody
    /// listens any more.
    pub fn input(
        &mut self,
        input: &Input,
        dead: &mut Vec<DeadLetter>,
        emit: &mut dyn FnMut(RecordBatch) -> bool,
    ) -> bool {
        match input {
            Input::Lines(chunk) => {
                self.ticket = 0;
                self.chunk(chunk, dead, emit) && self.flush(emit)
            }
            Input::Messages(batch) => {
                self.ticket = batch.ticket;
                for m in &batch.messages {
                    let switch = self
                        .current
                        .as_ref()
                        .is_some_and(|b| b.replay_only != m.replay_only);
                    if switch && !self.flush(emit) {
                        return false;
                    }
                    self.source_ms = m.timestamp_ms;
                    self.replay_only = m.replay_only;
                    // A sensor's state lives as long as its partition's assignment.
                    self.scope = Some(m.origin.source);
                    if !self.json(
                        batch.payload(m),
                        m.topic.as_deref(),
                        m.origin,
                        batch.read_at,
                        dead,
                        emit,
                    ) {
                        return false;
                    }
                }
                self.scope = None;
                self.replay_only = false;
                self.source_ms = 0;
                self.flush(emit)
            }
        }
    }

    /// Decodes every line of `chunk`. Full batches go to `emit`, which returns false when nobody
    /// listens any more (decoding then stops early). Returns false in that case.
    pub fn chunk(
        &mut self,
        chunk: &Chunk,
        dead: &mut Vec<DeadLetter>,
        emit: &mut dyn FnMut(RecordBatch) -> bool,
    ) -> bool {
        if chunk.first {
            self.line = 0;
            if let Some(pacer) = &mut self.pacer {
                pacer.anchor = None;
            }
        }
        let file = &chunk.file;
        // Chunks hold whole lines, each ending in a newline.
        let data = chunk.data.strip_suffix(b"\n").unwrap_or(&chunk.data);
        if chunk.data.is_empty() {
            return true;
        }
        let mut lines = data.split(|&b| b == b'\n').peekable();
        while let Some(line) = lines.next() {
            if self.halted {
                return true; // stopped during a paced wait: read no further
            }
            let is_last = lines.peek().is_none();
            self.line += 1;
            let origin = Origin {
                source: file.source,
                position: self.line,
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if self.line == 1 && matches!(file.format, Format::Csv(_)) {
                continue; // the header, read when the file was opened
            }
            if is_last && chunk.oversized_last || line.len() > MAX_RECORD_BYTES {
                self.dead(
                    dead,
                    origin,
                    format!("record longer than {MAX_RECORD_BYTES} bytes"),
                    line,
                );
                continue;
            }
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue; // blank lines carry nothing
            }
            let text = match std::str::from_utf8(line) {
                Ok(text) => text,
                Err(e) => {
                    self.dead(
                        dead,
                        origin,
                        format!("invalid UTF-8 at byte {}", e.valid_up_to()),
                        line,
                    );
                    continue;
                }
            };
            let ok = match &file.format {
                Format::Csv(layout) => {
                    match layout.decode(text, &mut self.fields, &mut self.sensors, &mut self.values)
                    {
                        Ok((sensor, ts)) => {
                            self.push(&layout.schema, sensor, ts, origin, chunk.read_at, emit)
                        }
                        Err(reason) => {
                            self.dead(dead, origin, reason, line);
                            true
                        }
                    }
                }
                Format::JsonLines => self.json(line, None, origin, chunk.read_at, dead, emit),
            };
            if !ok {
                return false;
            }
        }
        true
    }

    /// Decodes one JSON record (a line of a file, or a message from a topic, with what its topic
    /// names of the record).
    pub fn json(
        &mut self,
        bytes: &[u8],
        topic: Option<&TopicFields>,
        origin: Origin,
        read_at: Instant,
        dead: &mut Vec<DeadLetter>,
        emit: &mut dyn FnMut(RecordBatch) -> bool,
    ) -> bool {
        if bytes.len() > MAX_RECORD_BYTES {
            self.dead(
                dead,
                origin,
                format!("record longer than {MAX_RECORD_BYTES} bytes"),
                bytes,
            );
            return true;
        }
        if topic.is_none() && self.input.ignore_columns.is_empty() {
            if let Some(ts) = self.read_shape(bytes) {
                // Out of `self` while its ranges are read (moved back after: no allocation).
                let shape = std::mem::take(&mut self.shape);
                let readings = shape.values.iter().map(|(k, v)| (&bytes[k.clone()], *v));
                let ok = self.json_row(
                    ascii(bytes, &shape.sensor),
                    ts,
                    readings,
                    origin,
                    read_at,
                    emit,
                );
                self.shape = shape;
                return ok;
            }
        }
        let (unit, ignore) = (self.input.epoch_unit, &self.input.ignore_columns);
        let decoded = match topic {
            Some(t) => json::decode_from_topic(bytes, t, unit, ignore),
            None => json::decode(bytes, unit, ignore),
        };
        match decoded {
            Ok((rec, ts)) => {
                let readings = rec.values.iter().map(|(k, v)| (k.as_bytes(), *v));
                self.json_row(&rec.sensor, ts, readings, origin, read_at, emit)
            }
            Err(reason) => {
                self.dead(dead, origin, reason, bytes);
                true
            }
        }
    }

    /// Appends one decoded JSON record (its readings sorted by channel, names UTF-8), however it
    /// was parsed: the batch's schema if its channels are the same, else the interned one.
    fn json_row<'k>(
        &mut self,
        sensor: &str,
        ts: i64,
        readings: impl ExactSizeIterator<Item = (&'k [u8], Option<f64>)> + Clone,
        origin: Origin,
        read_at: Instant,
        emit: &mut dyn FnMut(RecordBatch) -> bool,
    ) -> bool {
        let same = self.current.as_ref().is_some_and(|b| {
            b.schema.width() == readings.len()
                && b.schema
                    .channels
                    .iter()
                    .zip(readings.clone())
                    .all(|(c, (k, _))| json_shape::name_eq(c.as_bytes(), k))
        });
        let schema = match &self.current {
            Some(b) if same => b.schema.clone(),
            // (Both parsers give UTF-8 names: `from_utf8` never fails here.)
            _ => self.schemas.get(
                &readings
                    .clone()
                    .map(|(k, _)| std::str::from_utf8(k).unwrap_or_default())
                    .collect::<Vec<_>>(),
            ),
        };
        self.values.clear();
        self.values
            .extend(readings.map(|(_, v)| v.map_or(f32::NAN, |v| v as f32)));
        let sensor = self.sensors.intern_in(self.scope, sensor);
        self.push(&schema, sensor, ts, origin, read_at, emit)
    }

    /// Reads `bytes` as the common record shape ([`json_shape`]) into `self.shape`, with its
    /// timestamp in epoch ms; `None` when it is not that shape or its timestamp does not convert
    /// (the general parser then accepts or refuses the record, with its reason).
    fn read_shape(&mut self, bytes: &[u8]) -> Option<i64> {
        if !json_shape::read(bytes, &mut self.shape) {
            return None;
        }
        let unit = self.input.epoch_unit;
        match self.shape.ts.as_ref()? {
            json_shape::Ts::Number(n) => unit.to_millis(*n),
            json_shape::Ts::Text(r) => crate::time::parse_timestamp(ascii(bytes, r), unit),
        }
    }

    fn dead(&mut self, dead: &mut Vec<DeadLetter>, origin: Origin, reason: String, raw: &[u8]) {
        self.counts.dead_letters += 1;
        dead.push(DeadLetter {
            ticket: self.ticket,
            origin,
            reason,
            raw: raw.to_vec(),
        });
    }

    /// Appends the row in `self.values`, flushing first on a schema change, when the pacer says
    /// wait, or when the batch is full.
    fn push(
        &mut self,
        schema: &Arc<Schema>,
        sensor: u32,
        ts: i64,
        origin: Origin,
        read_at: Instant,
        emit: &mut dyn FnMut(RecordBatch) -> bool,
    ) -> bool {
        if self
            .current
            .as_ref()
            .is_some_and(|b| !Arc::ptr_eq(&b.schema, schema))
            && !self.flush(emit)
        {
            return false;
        }
        if let Some(wait) = self.pacer.as_mut().and_then(|p| p.wait_for(ts)) {
            if !self.flush(emit) {
                return false;
            }
            if !sleep_unless(wait, self.stop.as_deref()) {
                self.halted = true;
                return true;
            }
        }
        let batch = self.current.get_or_insert_with(|| {
            let mut b = RecordBatch::with_capacity(schema.clone(), 256);
            b.read_at = read_at;
            b
        });
        if self.source_ms != 0 && (batch.source_ms == 0 || self.source_ms < batch.source_ms) {
            batch.source_ms = self.source_ms;
        }
        batch.replay_only = self.replay_only;
        batch.sensors.push(sensor);
        batch.ts.push(ts);
        batch.origins.push(origin);
        batch.values.extend_from_slice(&self.values);
        if self.replay_only {
            self.counts.rewound += 1;
        } else {
            self.counts.records += 1;
        }
        self.counts.readings_skipped +=
            self.values.iter().filter(|v| !v.is_finite()).count() as u64;
        if batch.len() >= self.batch_rows {
            return self.flush(emit);
        }
        true
    }

    /// Emits the batch being built, if any.
    pub fn flush(&mut self, emit: &mut dyn FnMut(RecordBatch) -> bool) -> bool {
        match self.current.take() {
            Some(mut batch) if !batch.is_empty() => {
                batch.acks = vec![(self.ticket, batch.len() as u32)];
                emit(batch)
            }
            _ => true,
        }
    }
}

/// The text of a range [`json_shape`] read (printable ASCII, so always UTF-8).
fn ascii<'a>(bytes: &'a [u8], r: &std::ops::Range<usize>) -> &'a str {
    std::str::from_utf8(&bytes[r.clone()]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, RawConfig};

    fn decoder(rows: usize, naming: SensorNaming) -> (Decoder, Arc<NameTable>) {
        let config = Config::validate(RawConfig::default()).expect("valid");
        let names = Arc::new(NameTable::default());
        let d =
            Decoder::new(config.input, names.clone(), rows, Speed::Max).with_sensor_naming(naming);
        (d, names)
    }

    /// A CSV file spec for `header`, as the file source makes it, and a chunk of `body`.
    fn csv_chunk(d: &mut Decoder, path: &str, header: &str, body: &[u8], oversized: bool) -> Chunk {
        let layout = d.csv_layout(header, Path::new(path)).expect("header");
        let mut data = format!("{header}\n").into_bytes();
        data.extend_from_slice(body);
        Chunk {
            file: Arc::new(FileSpec {
                source: 0,
                path: PathBuf::from(path),
                format: Format::Csv(layout),
            }),
            first: true,
            data,
            oversized_last: oversized,
            read_at: Instant::now(),
            sent_at: Instant::now(),
        }
    }

    fn decode(d: &mut Decoder, chunk: &Chunk) -> (Vec<RecordBatch>, Vec<DeadLetter>) {
        let (mut batches, mut dead) = (Vec::new(), Vec::new());
        assert!(d.chunk(chunk, &mut dead, &mut |b| {
            batches.push(b);
            true
        }));
        assert!(d.flush(&mut |b| {
            batches.push(b);
            true
        }));
        (batches, dead)
    }

    #[test]
    fn lines_become_batches_of_at_most_batch_rows_with_their_line_numbers() {
        let (mut d, names) = decoder(2, SensorNaming::FileStem);
        let body =
            b"2026-01-05T00:00:00Z,1.0\r\n\n2026-01-05T00:00:01Z,2.0\n2026-01-05T00:00:02Z,\n";
        let chunk = csv_chunk(&mut d, "data/pump-3.csv", "timestamp,pressure", body, false);
        let (batches, dead) = decode(&mut d, &chunk);
        assert!(dead.is_empty());
        assert_eq!(
            batches.iter().map(RecordBatch::len).collect::<Vec<_>>(),
            [2, 1]
        );
        let lines: Vec<u64> = batches
            .iter()
            .flat_map(|b| b.origins.iter().map(|o| o.position))
            .collect();
        // Line 1 is the header, line 3 blank (skipped, still counted).
        assert_eq!(lines, [2, 4, 5]);
        assert_eq!(&*names.get(batches[0].sensors[0]), "pump-3");
        assert_eq!(d.counts.records, 3);
        assert_eq!(
            d.counts.readings_skipped, 1,
            "the empty reading is decoded, then skipped"
        );
        assert!(batches[1].values[0].is_nan());
    }

    #[test]
    fn bad_lines_are_dead_letters_with_reason_and_line_and_decoding_goes_on() {
        let (mut d, _) = decoder(1024, SensorNaming::FileStem);
        let mut body =
            b"2026-01-05T00:00:00Z,1.0\nnot a time,2.0\n2026-01-05T00:00:02Z,\xff\n".to_vec();
        body.extend_from_slice(b"2026-01-05T00:00:03Z,4.0\n2026-01-05T00:00:04Z,5");
        let chunk = csv_chunk(&mut d, "p.csv", "timestamp,pressure", &body, true);
        let (batches, dead) = decode(&mut d, &chunk);
        assert_eq!(batches.iter().map(RecordBatch::len).sum::<usize>(), 2);
        let got: Vec<(u64, bool)> = dead
            .iter()
            .map(|l| (l.origin.position, !l.reason.is_empty()))
            .collect();
        assert_eq!(got, [(3, true), (4, true), (6, true)]);
        assert!(
            dead[1].reason.starts_with("invalid UTF-8"),
            "{}",
            dead[1].reason
        );
        assert!(dead[2].reason.contains("longer than"), "{}", dead[2].reason);
        assert_eq!(dead[1].raw, b"2026-01-05T00:00:02Z,\xff");
        assert_eq!(d.counts.dead_letters, 3);
    }

    #[test]
    fn files_without_a_sensor_column_are_named_by_stem_or_by_path() {
        for (naming, want) in [
            (SensorNaming::FileStem, "0"),
            (SensorNaming::Path, "skab/valve1/0"),
        ] {
            let (mut d, names) = decoder(16, naming);
            let chunk = csv_chunk(
                &mut d,
                "skab/valve1/0.csv",
                "datetime;a",
                b"2020-01-01 00:00:00;1\n",
                false,
            );
            let (batches, _) = decode(&mut d, &chunk);
            assert_eq!(&*names.get(batches[0].sensors[0]), want);
        }
    }

    #[test]
    fn a_schema_change_starts_a_new_batch_and_messages_carry_their_ticket() {
        let (mut d, _) = decoder(1024, SensorNaming::FileStem);
        let messages = [
            r#"{"sensor":"a","ts":1000,"values":{"p":1}}"#,
            r#"{"sensor":"a","ts":2000,"values":{"p":2}}"#,
            r#"{"sensor":"b","ts":3000,"values":{"p":3,"q":4}}"#,
        ];
        let mut poll = MessageBatch::new(Instant::now());
        poll.ticket = 9;
        for (i, m) in messages.iter().enumerate() {
            let origin = Origin {
                source: 1,
                position: 10 + i as u64,
            };
            poll.push(origin, m.as_bytes(), 5, i == 0, None);
        }
        let input = Input::Messages(poll);
        let mut batches = Vec::new();
        assert!(d.input(&input, &mut Vec::new(), &mut |b| {
            batches.push(b);
            true
        }));
        // Replay-only, then new work of one schema, then another schema: three batches.
        assert_eq!(
            batches.iter().map(RecordBatch::len).collect::<Vec<_>>(),
            [1, 1, 1]
        );
        assert!(batches[0].replay_only && !batches[1].replay_only);
        assert_eq!(batches[2].width(), 2);
        assert!(batches
            .iter()
            .all(|b| b.acks == [(9, 1)] && b.source_ms == 5));
        assert_eq!((d.counts.rewound, d.counts.records), (1, 2));
    }
}
