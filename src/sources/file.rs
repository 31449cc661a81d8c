//! The file source: recorded sensor files, read in large chunks of whole lines.

use crate::decode::{Chunk, Decoder, FileSpec, Format, Input, MAX_RECORD_BYTES};
use crate::record::Interner;
use crossbeam_channel::Sender;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
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
    pub len: u64,
    file: File,
}

/// Opens `path`, tells CSV from JSON lines and reads a CSV header, so that a missing file or a
/// header without a timestamp column is an error before anything runs.
pub fn open(
    path: &Path,
    decoder: &mut Decoder,
    sources: &mut Interner,
) -> Result<FileInput, InputError> {
    let open_err = |source| InputError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(open_err)?;
    let meta = file.metadata().map_err(open_err)?;
    if meta.is_dir() {
        return Err(open_err(io::Error::other("is a directory")));
    }
    let header_err = |reason: String| InputError::Header {
        path: path.to_path_buf(),
        reason,
    };
    let mut first = Vec::new();
    // The clone shares the file position: rewind after peeking at the first line.
    BufReader::new(file.try_clone().map_err(open_err)?)
        .take(MAX_RECORD_BYTES as u64)
        .read_until(b'\n', &mut first)
        .map_err(open_err)?;
    file.seek(SeekFrom::Start(0)).map_err(open_err)?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let first_text = String::from_utf8_lossy(&first);
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
        len: meta.len(),
        file,
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
        let mut carry: Vec<u8> = Vec::new();
        let mut first = true;
        let mut skipping = false;
        let mut total = 0u64;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let mut data = std::mem::take(&mut carry);
            let old = data.len();
            data.resize(old + CHUNK_BYTES, 0);
            let n = read_full(&mut input.file, &mut data[old..]).map_err(err)?;
            data.truncate(old + n);
            bytes_read.fetch_add(n as u64, Ordering::Relaxed);
            total += n as u64;
            let eof = n == 0;
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
        .map(|p| open(p, &mut decoder, &mut sources))
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
