//! The file source: recorded sensor files, read in large chunks of whole lines.

use crate::decode::{Chunk, Decoder, FileSpec, Format, Input, MAX_RECORD_BYTES};
use crate::record::Interner;
use crossbeam_channel::Sender;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Bytes read per chunk.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Why a file cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot open {path}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{path}: {reason}")]
    Header { path: PathBuf, reason: String },
    #[error("{path} shrank while it was read: {read} of its {len} bytes read; the rest is lost")]
    Shrank { path: PathBuf, read: u64, len: u64 },
    #[error("stopped while waiting for a writer to send {path} its first line")]
    Stopped { path: PathBuf },
}

/// Whether `a` and `b` are the same file (the same inode, through any links). False when either
/// does not exist.
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A file checked and ready to read.
#[derive(Debug)]
pub struct FileInput {
    pub spec: Arc<FileSpec>,
    /// The size when opened (0 for a FIFO or pipe, whose length is unknown).
    pub len: u64,
    file: Stream,
    /// Bytes already read (to see the header), to be sent before the rest.
    pending: Vec<u8>,
}

/// Where a file's bytes come from: a regular file, read in whole chunks, or a FIFO (or pipe),
/// opened without blocking and waited on in short polls so that a stop request is seen even
/// while no writer has opened it or the writer is quiet.
#[derive(Debug)]
enum Stream {
    File(File),
    Fifo(File),
}

impl Stream {
    fn open(path: &Path) -> io::Result<Stream> {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        // stat does not block on a FIFO; open(O_RDONLY) would, until a writer came.
        if std::fs::metadata(path)?.file_type().is_fifo() {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)?;
            Ok(Stream::Fifo(file))
        } else {
            Ok(Stream::File(File::open(path)?))
        }
    }

    fn file(&self) -> &File {
        match self {
            Stream::File(f) | Stream::Fifo(f) => f,
        }
    }

    /// Reads into `buf`: a regular file fills it (short only at its end); a FIFO returns what
    /// has arrived once anything has. `Ok(None)` when `stop` was set while waiting; `Ok(Some(0))`
    /// at the end (for a FIFO: its writers have opened it and all closed it).
    fn read(&mut self, buf: &mut [u8], stop: &AtomicBool) -> io::Result<Option<usize>> {
        use std::os::fd::AsRawFd;
        let file = match self {
            Stream::File(file) => return read_full(file, buf).map(Some),
            Stream::Fifo(file) => file,
        };
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            // Before any writer has opened the FIFO, read() would say end-of-file and poll()
            // reports nothing: wait for data or for a writer's close (POLLHUP) first.
            let mut fd = libc::pollfd {
                fd: file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, for the duration of the call.
            let ready = unsafe { libc::poll(&mut fd, 1, 100) };
            if ready < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if ready == 0 {
                continue;
            }
            match file.read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Opens `path`, tells CSV from JSON lines and reads a CSV header, so that a missing file or a
/// header without a timestamp column is an error before anything runs. A FIFO is waited on until
/// a writer sends its first line, or until `stop` is set ([`InputError::Stopped`]).
pub fn open(
    path: &Path,
    decoder: &mut Decoder,
    sources: &mut Interner,
    stop: &AtomicBool,
) -> Result<FileInput, InputError> {
    let open_err = |source| InputError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut file = Stream::open(path).map_err(open_err)?;
    let meta = file.file().metadata().map_err(open_err)?;
    if meta.is_dir() {
        return Err(open_err(io::Error::other("is a directory")));
    }
    let header_err = |reason: String| InputError::Header {
        path: path.to_path_buf(),
        reason,
    };
    // Read up to the end of the first line and keep every byte read: a FIFO cannot rewind.
    let mut pending = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    let first_end = loop {
        if let Some(p) = pending.iter().position(|&b| b == b'\n') {
            break p;
        }
        if pending.len() >= MAX_RECORD_BYTES {
            break MAX_RECORD_BYTES;
        }
        match file.read(&mut buf, stop).map_err(open_err)? {
            None => {
                return Err(InputError::Stopped {
                    path: path.to_path_buf(),
                })
            }
            Some(0) => break pending.len(),
            Some(n) => pending.extend_from_slice(&buf[..n]),
        }
    };
    let first = &pending[..first_end];
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let first_text = String::from_utf8_lossy(first);
    let first_text = first_text.trim_end_matches(['\n', '\r']);
    let format = if matches!(ext.as_str(), "jsonl" | "ndjson" | "json")
        || first_text.trim_start().starts_with('{')
    {
        Format::JsonLines
    } else {
        if first_text.trim().is_empty() {
            return Err(header_err(
                "empty file: expected a CSV header or JSON lines".into(),
            ));
        }
        Format::Csv(decoder.csv_layout(first_text, path).map_err(header_err)?)
    };
    let source = sources.intern(&path.display().to_string());
    Ok(FileInput {
        spec: Arc::new(FileSpec {
            source,
            path: path.to_path_buf(),
            format,
        }),
        len: if meta.is_file() { meta.len() } else { 0 },
        file,
        pending,
    })
}

/// Reads every file in turn and sends its lines in chunks. Stops early when `stop` is set or the
/// decoder has gone. `bytes_read` feeds the progress bar.
pub fn read(
    files: Vec<FileInput>,
    out: &Sender<Input>,
    stop: &AtomicBool,
    bytes_read: &AtomicU64,
) -> Result<(), InputError> {
    for mut input in files {
        let path = input.spec.path.clone();
        let err = |source| InputError::Open {
            path: path.clone(),
            source,
        };
        let mut carry: Vec<u8> = std::mem::take(&mut input.pending);
        let mut first = true;
        let mut skipping = false;
        let mut total = carry.len() as u64;
        bytes_read.fetch_add(total, Ordering::Relaxed);
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let mut data = std::mem::take(&mut carry);
            let old = data.len();
            data.resize(old + CHUNK_BYTES, 0);
            // Stopped while a FIFO's writer was quiet: the whole lines in hand are still sent.
            let read = input.file.read(&mut data[old..], stop).map_err(err)?;
            let (n, stopped) = (read.unwrap_or(0), read.is_none());
            data.truncate(old + n);
            bytes_read.fetch_add(n as u64, Ordering::Relaxed);
            total += n as u64;
            let eof = n == 0 && !stopped;
            if eof && total < input.len {
                // Truncated under us (a log rotation, a copy over it): what was sent is scored,
                // the caller says what is lost.
                return Err(InputError::Shrank {
                    path: path.clone(),
                    read: total,
                    len: input.len,
                });
            }
            let mut oversized_last = false;
            if skipping {
                // Inside an over-long line already reported: drop bytes up to its end.
                match data.iter().position(|&b| b == b'\n') {
                    Some(p) => {
                        data.drain(..=p);
                        skipping = false;
                    }
                    None if eof => break,
                    None => continue,
                }
            }
            if !eof {
                let cut = data.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                carry.extend_from_slice(&data[cut..]);
                data.truncate(cut);
                if carry.len() > MAX_RECORD_BYTES {
                    // Pass the line's start on as a (dead) line and skip the rest of it.
                    data.extend_from_slice(&carry[..4096]);
                    data.push(b'\n');
                    carry.clear();
                    oversized_last = true;
                    skipping = true;
                }
            } else if !data.is_empty() && data.last() != Some(&b'\n') {
                data.push(b'\n');
            }
            if !data.is_empty() || first {
                let now = Instant::now();
                let chunk = Chunk {
                    file: input.spec.clone(),
                    first,
                    data,
                    oversized_last,
                    read_at: now,
                    sent_at: now,
                };
                first = false;
                if out.send(Input::Lines(chunk)).is_err() {
                    return Ok(());
                }
            }
            if stopped {
                return Ok(());
            }
            if eof {
                break;
            }
        }
    }
    Ok(())
}

fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads and decodes `paths` in order on this thread (a helper thread reads ahead), handing every
/// batch to `emit` and every line that failed to decode to `dead`: for offline work such as
/// training, where the pipeline's shards are not wanted. The sensor names are interned into
/// `sensor_names`.
pub fn decode_files(
    input: &crate::config::InputConfig,
    paths: &[std::path::PathBuf],
    sensor_names: Arc<crate::record::NameTable>,
    emit: &mut dyn FnMut(&crate::record::RecordBatch),
    dead: &mut dyn FnMut(&crate::record::DeadLetter),
) -> Result<(), InputError> {
    let mut decoder = Decoder::new(input.clone(), sensor_names, 4096, crate::config::Speed::Max);
    let mut sources = Interner::new(Arc::new(crate::record::NameTable::default()));
    let files = paths
        .iter()
        .map(|p| open(p, &mut decoder, &mut sources, &AtomicBool::new(false)))
        .collect::<Result<Vec<_>, _>>()?;
    let (tx, rx) = crossbeam_channel::bounded::<Input>(4);
    std::thread::scope(|s| {
        // The reader owns the sender: when it is done, the channel closes and decoding ends.
        let reader = s.spawn(move || read(files, &tx, &AtomicBool::new(false), &AtomicU64::new(0)));
        let mut dead_letters = Vec::new();
        for chunk in rx.iter() {
            decoder.input(&chunk, &mut dead_letters, &mut |b| {
                emit(&b);
                true
            });
            for d in dead_letters.drain(..) {
                dead(&d);
            }
        }
        reader.join().unwrap_or_else(|_| {
            Err(InputError::Header {
                path: PathBuf::new(),
                reason: "the reader thread panicked".into(),
            })
        })
    })
}
