//! Sensor records as they travel through the pipeline: in batches, as columns.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

/// A sensor, as a small integer interned by the decoder. Ids are local to one process: anything
/// that must be stable across processes (such as the shard a sensor goes to) uses the name.
pub type SensorId = u32;

/// Where records come from (a file, or a topic partition), interned like sensors.
pub type SourceId = u32;

/// One unit of input (a chunk of a file, a poll of a consumer) whose records are tracked together
/// until everything derived from them is durable. 0 means "not tracked" (replay).
pub type Ticket = u64;

/// How many rows (or dead letters) of each ticket something carries, in order.
pub type Acks = Vec<(Ticket, u32)>;

/// Adds `n` rows of `ticket` to `acks`, merging with the last entry when it is the same ticket.
pub fn push_ack(acks: &mut Acks, ticket: Ticket, n: u32) {
    match acks.last_mut() {
        Some((t, m)) if *t == ticket => *m += n,
        _ if n == 0 => {}
        _ => acks.push((ticket, n)),
    }
}

/// An append-only table of names, written by the one thread that interns them and read by the
/// threads that print them (rarely: only for alerts and dead letters, never per record).
#[derive(Debug, Default)]
pub struct NameTable {
    names: RwLock<Vec<Arc<str>>>,
}

impl NameTable {
    /// The name of `id`, or `?` for an id this table never gave out.
    pub fn get(&self, id: u32) -> Arc<str> {
        let names = self.names.read().unwrap_or_else(PoisonError::into_inner);
        names
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from("?"))
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.names
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&self, name: Arc<str>) -> u32 {
        let mut names = self.names.write().unwrap_or_else(PoisonError::into_inner);
        names.push(name);
        (names.len() - 1) as u32
    }
}

/// Gives each distinct name one id, recording it in a shared [`NameTable`].
///
/// Names can also be interned within a *scope* (a topic partition's assignment: see
/// `sources::kafka`): the same name in two scopes gets two ids, so state kept by id starts over.
#[derive(Debug)]
pub struct Interner {
    ids: HashMap<Arc<str>, u32>,
    /// Per scope, its names' ids; the scope used last first.
    scoped: Vec<(u32, HashMap<Arc<str>, u32>)>,
    table: Arc<NameTable>,
}

impl Interner {
    /// An interner writing to `table` (which must be empty or written only by this interner).
    pub fn new(table: Arc<NameTable>) -> Interner {
        Interner {
            ids: HashMap::new(),
            scoped: Vec::new(),
            table,
        }
    }

    /// The id of `name` within `scope` (`None`: the one unscoped id of [`Interner::intern`]).
    pub fn intern_in(&mut self, scope: Option<u32>, name: &str) -> u32 {
        let Some(scope) = scope else {
            return self.intern(name);
        };
        if self.scoped.first().is_none_or(|(s, _)| *s != scope) {
            match self.scoped.iter().position(|(s, _)| *s == scope) {
                Some(i) => self.scoped.swap(0, i),
                None => {
                    self.scoped.push((scope, HashMap::new()));
                    let last = self.scoped.len() - 1;
                    self.scoped.swap(0, last);
                }
            }
        }
        let ids = &mut self.scoped[0].1;
        if let Some(&id) = ids.get(name) {
            return id;
        }
        let name: Arc<str> = Arc::from(name);
        let id = self.table.push(name.clone());
        ids.insert(name, id);
        id
    }

    /// A new id for `name`, even if it has one: later calls of [`Interner::intern`] give this one.
    pub fn intern_anew(&mut self, name: &str) -> u32 {
        let name: Arc<str> = Arc::from(name);
        let id = self.table.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    /// The id of `name`, made on first sight.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let name: Arc<str> = Arc::from(name);
        let id = self.table.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    /// The table this interner writes.
    pub fn table(&self) -> &Arc<NameTable> {
        &self.table
    }
}

/// The channels a batch's rows carry, in order. Interned, so equal channel lists share one id.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Schema {
    /// Unique per distinct channel list within a process.
    pub id: u32,
    /// Channel names, e.g. `["pressure", "flow"]`.
    pub channels: Vec<Arc<str>>,
}

impl Schema {
    /// Number of channels.
    pub fn width(&self) -> usize {
        self.channels.len()
    }
}

/// Gives each distinct channel list one [`Schema`].
#[derive(Debug, Default)]
pub struct Schemas {
    by_channels: HashMap<Vec<Arc<str>>, Arc<Schema>>,
}

impl Schemas {
    /// The schema for `channels`, made on first sight.
    pub fn get<S: AsRef<str>>(&mut self, channels: &[S]) -> Arc<Schema> {
        let key: Vec<Arc<str>> = channels.iter().map(|c| Arc::from(c.as_ref())).collect();
        let next = self.by_channels.len() as u32;
        self.by_channels
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Schema {
                    id: next,
                    channels: key,
                })
            })
            .clone()
    }
}

/// What a message's topic says of its record (an MQTT topic layout such as
/// `plant/+/{sensor}/{channel}`): the sensor, the channel of a one-value payload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicFields {
    pub sensor: Option<String>,
    pub channel: Option<String>,
}

/// Where one record came from: a source and a position in it (the line number in a file, the
/// offset in a partition).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    pub source: SourceId,
    pub position: u64,
}

/// Records of one schema, as columns. Row `i` is `sensors[i]`, `ts[i]`, `origins[i]` and
/// `values[i * width .. (i + 1) * width]`.
#[derive(Debug, Clone)]
pub struct RecordBatch {
    pub schema: Arc<Schema>,
    pub sensors: Vec<SensorId>,
    /// Event time, epoch milliseconds.
    pub ts: Vec<i64>,
    /// Row-major readings; NaN marks a missing reading.
    pub values: Vec<f32>,
    pub origins: Vec<Origin>,
    /// When the source read the oldest record of the batch: the start of end-to-end latency.
    pub read_at: Instant,
    /// When the batch was last put on a channel: the start of its current queue wait.
    pub sent_at: Instant,
    /// Rows per input ticket, in row order (for at-least-once offset tracking).
    pub acks: Acks,
    /// Kafka timestamp (epoch ms) of the oldest record, 0 when unknown.
    pub source_ms: i64,
    /// Rows re-read only to rebuild detector state: scored, but they raise no alerts.
    pub replay_only: bool,
}

impl RecordBatch {
    /// An empty batch of `schema`, with room for `rows`.
    pub fn with_capacity(schema: Arc<Schema>, rows: usize) -> RecordBatch {
        let width = schema.width();
        let now = Instant::now();
        RecordBatch {
            schema,
            sensors: Vec::with_capacity(rows),
            ts: Vec::with_capacity(rows),
            values: Vec::with_capacity(rows * width),
            origins: Vec::with_capacity(rows),
            read_at: now,
            sent_at: now,
            acks: Vec::new(),
            source_ms: 0,
            replay_only: false,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.sensors.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.sensors.is_empty()
    }

    /// Channels per row.
    pub fn width(&self) -> usize {
        self.schema.width()
    }

    /// The readings of row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        let w = self.width();
        &self.values[i * w..(i + 1) * w]
    }

    /// Appends row `i` of `other` (which must have the same schema).
    pub fn push_row_from(&mut self, other: &RecordBatch, i: usize) {
        debug_assert!(Arc::ptr_eq(&self.schema, &other.schema));
        self.sensors.push(other.sensors[i]);
        self.ts.push(other.ts[i]);
        self.values.extend_from_slice(other.row(i));
        self.origins.push(other.origins[i]);
    }

    /// Appends every row of `other` (same schema), keeping the older `read_at`.
    pub fn append(&mut self, other: &RecordBatch) {
        debug_assert!(Arc::ptr_eq(&self.schema, &other.schema));
        if self.is_empty() || other.read_at < self.read_at {
            self.read_at = other.read_at;
        }
        if other.source_ms != 0 && (self.source_ms == 0 || other.source_ms < self.source_ms) {
            self.source_ms = other.source_ms;
        }
        for &(t, n) in &other.acks {
            push_ack(&mut self.acks, t, n);
        }
        self.sensors.extend_from_slice(&other.sensors);
        self.ts.extend_from_slice(&other.ts);
        self.values.extend_from_slice(&other.values);
        self.origins.extend_from_slice(&other.origins);
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.sensors.clear();
        self.ts.clear();
        self.values.clear();
        self.origins.clear();
        self.acks.clear();
    }
}

/// A record that could not be decoded: where it came from, why, and its bytes.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub ticket: Ticket,
    pub origin: Origin,
    pub reason: String,
    pub raw: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interner_gives_one_id_per_name_and_shares_names() {
        let table = Arc::new(NameTable::default());
        let mut interner = Interner::new(table.clone());
        let a = interner.intern("pump-1");
        let b = interner.intern("pump-2");
        assert_eq!(interner.intern("pump-1"), a);
        assert_ne!(a, b);
        assert_eq!(&*table.get(b), "pump-2");
        assert_eq!(&*table.get(99), "?");
    }

    #[test]
    fn a_scope_gives_its_names_ids_of_their_own() {
        let table = Arc::new(NameTable::default());
        let mut interner = Interner::new(table.clone());
        let plain = interner.intern("pump-1");
        assert_eq!(interner.intern_in(None, "pump-1"), plain);
        let in7 = interner.intern_in(Some(7), "pump-1");
        let in8 = interner.intern_in(Some(8), "pump-1");
        assert!(in7 != plain && in8 != plain && in7 != in8);
        assert_eq!(interner.intern_in(Some(7), "pump-1"), in7);
        assert_eq!(interner.intern_in(Some(8), "pump-1"), in8);
        assert_eq!(&*table.get(in8), "pump-1");
        // A name given anew: the old id keeps its name, later lookups get the new one.
        let again = interner.intern_anew("pump-1");
        assert!(again != plain && interner.intern("pump-1") == again);
        assert_eq!(&*table.get(plain), "pump-1");
    }

    #[test]
    fn schemas_are_interned_by_channel_list() {
        let mut schemas = Schemas::default();
        let a = schemas.get(&["pressure", "flow"]);
        let b = schemas.get(&["flow", "pressure"]);
        assert!(Arc::ptr_eq(&a, &schemas.get(&["pressure", "flow"])));
        assert_ne!(a.id, b.id);
    }
}
