//! The store-and-forward spool (`[edge] spool_dir`): alerts and dead letters wait on disk for an
//! uplink that comes and goes.
//!
//! The sink appends every message of a batch to the current segment ([`segment`]'s format) and
//! syncs it; only then does the batch's input count as done (its MQTT acknowledgement or Kafka
//! offset may go). A forwarder thread reads the segments in order and hands each message to the
//! uplink; the uplink's acknowledgements arrive in any order and advance an acknowledged prefix.
//! A sealed segment is deleted once all of it is acknowledged; the prefix is also saved in a
//! cursor file (at most every 200 ms), so a restart re-sends at most what was acknowledged since.
//!
//! The spool is bounded (`spool_max_bytes`): an append that does not fit waits, with the `full`
//! gauge at 1 and a log line, which holds the sink, and through the bounded channels the source.

pub mod segment;

use crate::telemetry::SpoolGauges;
use segment::{Outgoing, Stored, MAGIC};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How often the acknowledged prefix is saved, at most.
const CURSOR_EVERY: Duration = Duration::from_millis(200);

/// What the uplink did with a message [`Spool::forward`] handed it.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// Taken: its acknowledgement comes through [`Spool::acknowledge`].
    Handed,
    /// Refused for good (logged, and counted as acknowledged so the spool goes on).
    Refused(String),
    /// Not taken because the spool is finishing.
    Stopping,
}

/// One segment file.
#[derive(Debug)]
struct Segment {
    id: u64,
    /// Bytes of whole records, synced (the writer's segment grows; a torn one ends before its
    /// file does).
    len: u64,
    /// Bytes of the file on disk.
    size: u64,
    /// No more records will be appended.
    sealed: bool,
    /// Every record before this offset is acknowledged.
    acked_to: u64,
}

/// A message handed to the uplink and not yet acknowledged.
#[derive(Debug)]
struct InFlight {
    segment: u64,
    end: u64,
    acked: bool,
}

#[derive(Debug, Default)]
struct State {
    segments: VecDeque<Segment>,
    /// Bytes on disk.
    used: u64,
    /// Messages stored and not acknowledged.
    pending: u64,
    in_flight: VecDeque<InFlight>,
    /// The id of `in_flight[0]`.
    base: u64,
    /// The acknowledged prefix (segment, offset), and whether it changed since it was saved.
    cursor: (u64, u64),
    cursor_dirty: bool,
    /// Set by [`Spool::finish`]: the forwarder returns.
    stop: bool,
}

impl State {
    /// Counts in segment `id`, just created with its magic, as the one being written.
    fn push_fresh(&mut self, id: u64) {
        let start = MAGIC.len() as u64;
        self.used += start;
        self.segments.push_back(Segment {
            id,
            len: start,
            size: start,
            sealed: false,
            acked_to: start,
        });
    }
}

/// The spool shared by the sink (writing), the forwarder (reading) and the uplink's
/// acknowledgements.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    state: Mutex<State>,
    changed: Condvar,
    gauges: Arc<SpoolGauges>,
}

/// The sink's end: appends and syncs.
#[derive(Debug)]
pub struct SpoolWriter {
    spool: Arc<Spool>,
    file: File,
    id: u64,
    len: u64,
    /// The batch: its records, and where each ends in `buf`.
    buf: Vec<u8>,
    ends: Vec<usize>,
    /// When the spool filled up (for the log line when it has room again).
    full_since: Option<Instant>,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.spool"))
}

fn segment_id(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".spool")?;
    (stem.len() == 20).then(|| stem.parse().ok())?
}

/// Creates segment `id` with its magic, synced with its directory.
fn create_segment(dir: &Path, id: u64) -> io::Result<File> {
    let mut f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(segment_path(dir, id))?;
    f.write_all(MAGIC)?;
    f.sync_all()?;
    File::open(dir)?.sync_all()?;
    Ok(f)
}

impl Spool {
    /// Opens (or creates) the spool in `dir`: what an earlier run left is checked record by
    /// record (a torn last record is logged and skipped) and forwarded first; new messages go to
    /// a new segment. `gauges` is where its state is published.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        gauges: Arc<SpoolGauges>,
    ) -> io::Result<(Arc<Spool>, SpoolWriter)> {
        fs::create_dir_all(dir)?;
        let mut ids: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| segment_id(&e.ok()?.path()))
            .collect();
        ids.sort_unstable();
        let cursor = fs::read_to_string(dir.join("cursor")).ok().and_then(|t| {
            let (a, b) = t.trim().split_once(' ')?;
            Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
        });
        let mut state = State::default();
        for &id in &ids {
            let path = segment_path(dir, id);
            if cursor.is_some_and(|(c, _)| id < c) {
                // Acknowledged to its end in an earlier run, which stopped before deleting it.
                fs::remove_file(&path)?;
                continue;
            }
            let mut bytes = Vec::new();
            File::open(&path)?.read_to_end(&mut bytes)?;
            let size = bytes.len() as u64;
            if !bytes.starts_with(MAGIC) {
                tracing::warn!(
                    "spool: {} has no header (a crash while it was created): removed",
                    path.display()
                );
                fs::remove_file(&path)?;
                continue;
            }
            let (records, torn) = segment::scan(&bytes[MAGIC.len()..], MAGIC.len() as u64);
            let len = records.last().map_or(MAGIC.len() as u64, |r| r.0);
            if let Some(t) = torn {
                gauges.torn.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "spool: {} ends in a torn record at byte {} ({}; a crash while it was \
                     written): skipped, with the {} bytes after it",
                    path.display(),
                    t.at,
                    t.why,
                    size - t.at
                );
            }
            // The saved prefix counts only at a record boundary of this segment.
            let acked_to = match cursor {
                Some((c, off)) if c == id && records.iter().any(|r| r.0 == off) => off,
                _ => MAGIC.len() as u64,
            };
            state.pending += records.iter().filter(|r| r.0 > acked_to).count() as u64;
            state.used += size;
            state.segments.push_back(Segment {
                id,
                len,
                size,
                sealed: true,
                acked_to,
            });
        }
        let id = state.segments.back().map_or(0, |s| s.id + 1);
        let file = create_segment(dir, id)?;
        state.push_fresh(id);
        let start = MAGIC.len() as u64;
        state.cursor = (id, start);
        if state.pending > 0 {
            tracing::info!(
                "spool {}: {} messages ({} bytes) from an earlier run are forwarded first",
                dir.display(),
                state.pending,
                state.used
            );
        }
        let spool = Arc::new(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(64 << 10, 64 << 20),
            state: Mutex::new(state),
            changed: Condvar::new(),
            gauges,
        });
        spool.collect(&mut spool.lock());
        let writer = SpoolWriter {
            spool: spool.clone(),
            file,
            id,
            len: start,
            buf: Vec::with_capacity(64 << 10),
            ends: Vec::new(),
            full_since: None,
        };
        Ok((spool, writer))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Deletes the leading segments acknowledged to their end and publishes the gauges.
    fn collect(&self, s: &mut State) {
        while let Some(front) = s.segments.front() {
            if !(front.sealed && front.acked_to >= front.len) {
                break;
            }
            let path = segment_path(&self.dir, front.id);
            if let Err(e) = fs::remove_file(&path) {
                // Left behind: the next start sees it before the cursor and removes it.
                tracing::warn!("spool: cannot remove {}: {e}", path.display());
            }
            s.used -= front.size;
            s.segments.pop_front();
        }
        self.gauges.bytes.store(s.used, Ordering::Relaxed);
        self.gauges.messages.store(s.pending, Ordering::Relaxed);
    }

    /// The uplink acknowledged message `id` (as numbered by [`Spool::forward`]'s `send`).
    pub fn acknowledge(&self, id: u64) {
        let mut s = self.lock();
        let Some(i) = id.checked_sub(s.base) else {
            return;
        };
        match s.in_flight.get_mut(i as usize) {
            Some(m) => m.acked = true,
            None => return,
        }
        let mut advanced = false;
        while s.in_flight.front().is_some_and(|m| m.acked) {
            let Some(m) = s.in_flight.pop_front() else {
                break;
            };
            s.base += 1;
            s.pending = s.pending.saturating_sub(1);
            if let Some(seg) = s.segments.iter_mut().find(|g| g.id == m.segment) {
                seg.acked_to = m.end;
            }
            s.cursor = (m.segment, m.end);
            advanced = true;
            self.gauges.forwarded.fetch_add(1, Ordering::Relaxed);
        }
        if advanced {
            s.cursor_dirty = true;
            self.collect(&mut s);
            self.changed.notify_all();
        }
    }

    /// Reads the spool in order and hands every message to `send` with its number, which the
    /// uplink's acknowledgement passes to [`Spool::acknowledge`]. `send` may block (a full
    /// producer queue) while [`Spool::stopping`] is false. Returns after [`Spool::finish`].
    pub fn forward(&self, mut send: impl FnMut(Stored, u64) -> Sent) {
        let mut next: Option<(u64, u64)> = None;
        let mut file: Option<(u64, File)> = None;
        let mut saved = Instant::now();
        loop {
            let (id, from, to) = {
                let mut s = self.lock();
                loop {
                    if s.cursor_dirty && saved.elapsed() >= CURSOR_EVERY {
                        s.cursor_dirty = false;
                        let c = s.cursor;
                        drop(s);
                        self.save_cursor(c);
                        saved = Instant::now();
                        s = self.lock();
                    }
                    if s.stop {
                        return;
                    }
                    let (id, pos) = *next.get_or_insert_with(|| {
                        s.segments
                            .front()
                            .map_or((0, MAGIC.len() as u64), |g| (g.id, g.acked_to))
                    });
                    // The segment being read, or the first after it.
                    let Some(seg) = s.segments.iter().find(|g| g.id >= id) else {
                        s = self.wait(s);
                        continue;
                    };
                    let pos = if seg.id == id {
                        pos
                    } else {
                        MAGIC.len() as u64
                    };
                    if pos < seg.len {
                        break (seg.id, pos, seg.len);
                    }
                    if seg.sealed {
                        next = Some((seg.id + 1, MAGIC.len() as u64));
                        continue;
                    }
                    next = Some((seg.id, pos));
                    s = self.wait(s);
                }
            };
            let bytes = match self.read(&mut file, id, from, to) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!("spool: cannot read segment {id}: {e}; retrying in 1 s");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            // The bytes up to `to` were synced whole by the writer (or checked at open).
            let (records, _) = segment::scan(&bytes, from);
            next = Some((id, records.last().map_or(to, |r| r.0)));
            for (end, body) in records {
                let n = {
                    let mut s = self.lock();
                    s.in_flight.push_back(InFlight {
                        segment: id,
                        end,
                        acked: false,
                    });
                    s.base + s.in_flight.len() as u64 - 1
                };
                let sent = match segment::decode(&bytes[body]) {
                    Some(m) => send(m, n),
                    None => Sent::Refused(
                        "its checksum matches but its layout is not this version's".into(),
                    ),
                };
                match sent {
                    Sent::Handed => {}
                    Sent::Refused(e) => {
                        tracing::error!(
                            "spool: message at byte {end} of segment {id} not forwarded: {e}"
                        );
                        self.acknowledge(n);
                    }
                    // Not acknowledged: it stays in the spool for the next start.
                    Sent::Stopping => return,
                }
            }
        }
    }

    fn wait<'a>(&self, s: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait_timeout(s, CURSOR_EVERY)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    fn read(
        &self,
        file: &mut Option<(u64, File)>,
        id: u64,
        from: u64,
        to: u64,
    ) -> io::Result<Vec<u8>> {
        let f = match file {
            Some((i, f)) if *i == id => f,
            _ => {
                &mut file
                    .insert((id, File::open(segment_path(&self.dir, id))?))
                    .1
            }
        };
        f.seek(SeekFrom::Start(from))?;
        let mut bytes = vec![0; (to - from) as usize];
        f.read_exact(&mut bytes)?;
        Ok(bytes)
    }

    fn save_cursor(&self, (id, off): (u64, u64)) {
        let tmp = self.dir.join("cursor.tmp");
        let r = fs::write(&tmp, format!("{id} {off}\n"))
            .and_then(|()| fs::rename(&tmp, self.dir.join("cursor")));
        if let Err(e) = r {
            // Only costs duplicates after a crash: the segments are the truth.
            tracing::warn!(
                "spool: cannot save the cursor in {}: {e}",
                self.dir.display()
            );
        }
    }

    /// Whether [`Spool::finish`] has stopped the forwarder.
    pub fn stopping(&self) -> bool {
        self.lock().stop
    }

    /// Messages stored and not yet acknowledged.
    pub fn pending(&self) -> u64 {
        self.lock().pending
    }

    /// Waits (at most `timeout`) for the uplink to acknowledge everything, then stops the
    /// forwarder. Returns how many messages (and bytes) stay in the spool for the next start.
    pub fn finish(&self, timeout: Duration) -> (u64, u64) {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        while s.pending > 0 && Instant::now() < deadline {
            s = self.wait(s);
        }
        s.stop = true;
        self.changed.notify_all();
        if s.pending == 0 {
            for g in &mut s.segments {
                g.sealed = true;
            }
            self.collect(&mut s);
            let _ = fs::remove_file(self.dir.join("cursor"));
        } else {
            let c = s.cursor;
            self.save_cursor(c);
        }
        (s.pending, s.used)
    }
}

impl SpoolWriter {
    /// The spool's directory.
    pub fn dir(&self) -> &Path {
        &self.spool.dir
    }

    /// Adds `m` to the batch being written.
    pub fn add(&mut self, m: &Outgoing<'_>) {
        segment::encode(m, &mut self.buf);
        self.ends.push(self.buf.len());
    }

    /// Writes and syncs the batch, waiting while the spool has no room for it: as many whole
    /// records at a time as fit (a batch may be larger than the spool; one record always fits
    /// an empty spool). When `stop` is set while it waits, returns an error: the batch's input
    /// is not acknowledged, so it comes again after a restart.
    pub fn commit(&mut self, stop: &AtomicBool) -> io::Result<()> {
        let sp = self.spool.clone();
        let (mut from, mut rec) = (0usize, 0usize);
        while rec < self.ends.len() {
            let count = {
                let s = sp.lock();
                let room = sp.max_bytes.saturating_sub(s.used) as usize;
                let fit = self.ends[rec..]
                    .iter()
                    .take_while(|&&end| end - from <= room)
                    .count();
                if fit == 0 && s.pending == 0 {
                    1
                } else {
                    fit
                }
            };
            if count == 0 {
                if self.full_since.is_none() {
                    self.full_since = Some(Instant::now());
                    sp.gauges.full.store(1, Ordering::Relaxed);
                    let s = sp.lock();
                    tracing::warn!(
                        "spool full ({} of {} bytes, {} messages not acknowledged by the \
                         uplink): input paused until the uplink takes some",
                        s.used,
                        sp.max_bytes,
                        s.pending
                    );
                }
                // The current segment can only go once it is sealed.
                if self.len > MAGIC.len() as u64 {
                    self.roll()?;
                    continue;
                }
                if stop.load(Ordering::Relaxed) {
                    let left = self.ends.len() - rec;
                    self.clear();
                    return Err(io::Error::other(format!(
                        "stopping with the spool full: {left} messages not stored; their input \
                         is not acknowledged and is read again after a restart"
                    )));
                }
                let s = sp.lock();
                drop(sp.wait(s));
                continue;
            }
            if let Some(since) = self.full_since.take() {
                sp.gauges.full.store(0, Ordering::Relaxed);
                tracing::info!(
                    "spool has room again after {:.1} s: input resumes",
                    since.elapsed().as_secs_f64()
                );
            }
            let to = self.ends[rec + count - 1];
            self.file.write_all(&self.buf[from..to])?;
            self.file.sync_data()?;
            let need = (to - from) as u64;
            self.len += need;
            {
                let mut s = sp.lock();
                s.used += need;
                s.pending += count as u64;
                if let Some(g) = s.segments.iter_mut().find(|g| g.id == self.id) {
                    g.len = self.len;
                    g.size = self.len;
                }
                sp.collect(&mut s);
            }
            sp.changed.notify_all();
            (from, rec) = (to, rec + count);
            if self.len >= sp.segment_bytes {
                self.roll()?;
            }
        }
        self.clear();
        Ok(())
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }

    /// Seals the current segment and starts the next.
    fn roll(&mut self) -> io::Result<()> {
        let sp = self.spool.clone();
        let id = self.id + 1;
        let file = create_segment(&sp.dir, id)?;
        let start = MAGIC.len() as u64;
        let mut s = sp.lock();
        if let Some(g) = s.segments.iter_mut().find(|g| g.id == self.id) {
            g.sealed = true;
        }
        s.push_fresh(id);
        sp.collect(&mut s);
        drop(s);
        sp.changed.notify_all();
        (self.file, self.id, self.len) = (file, id, start);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
