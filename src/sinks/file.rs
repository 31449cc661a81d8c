//! JSON-lines files (or standard output) for alerts and dead letters.

use super::{alert_json, dead_letter_json};
use crate::ack::{AckTracker, Completion};
use crate::contract::Alert;
use crate::contract::{Names, Sink};
use crate::record::DeadLetter;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Whether the directory `path` would be created in exists (so that a file there can be made).
pub fn in_existing_dir(path: &Path) -> bool {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .is_dir()
}

/// Alerts to a file or stdout; dead letters to a file opened on the first one.
pub struct FileSink {
    alerts: BufWriter<Box<dyn Write + Send>>,
    /// The alert file's path, or "standard output", for messages.
    alerts_name: PathBuf,
    shadow_path: PathBuf,
    shadow: Option<BufWriter<File>>,
    dead_path: PathBuf,
    dead: Option<BufWriter<File>>,
    names: Names,
    buf: Vec<u8>,
    tracker: Arc<AckTracker>,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("dead_path", &self.dead_path)
            .finish_non_exhaustive()
    }
}

impl FileSink {
    /// Creates (truncates) the alert file, or uses stdout when `alerts` is `None`. Checks that the
    /// dead-letter file's directory exists, so a wrong path fails now rather than mid-run.
    pub fn create(
        alerts: Option<&Path>,
        shadow_alerts: &Path,
        dead_letter: &Path,
        names: Names,
        tracker: Arc<AckTracker>,
    ) -> Result<FileSink, (PathBuf, io::Error)> {
        let writer: Box<dyn Write + Send> = match alerts {
            Some(path) => Box::new(File::create(path).map_err(|e| (path.to_path_buf(), e))?),
            // A descriptor of its own, so that a write error (a closed pipe, a full disk) is
            // an error: Rust's `Stdout` reports writes to a closed descriptor as done.
            None => {
                use std::os::fd::AsFd;
                let fd = io::stdout()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| (PathBuf::from("standard output"), e))?;
                Box::new(File::from(fd))
            }
        };
        if !in_existing_dir(dead_letter) {
            return Err((
                dead_letter.to_path_buf(),
                io::Error::new(io::ErrorKind::NotFound, "no such directory"),
            ));
        }
        Ok(FileSink {
            alerts: BufWriter::with_capacity(64 * 1024, writer),
            alerts_name: alerts.map_or_else(|| PathBuf::from("standard output"), Path::to_path_buf),
            shadow_path: shadow_alerts.to_path_buf(),
            shadow: None,
            dead_path: dead_letter.to_path_buf(),
            dead: None,
            names,
            buf: Vec::with_capacity(512),
            tracker,
        })
    }
}

/// `e` with the file it happened on.
fn on(path: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl Sink for FileSink {
    fn alerts(&mut self, alerts: &[Alert], done: Completion) -> io::Result<()> {
        for a in alerts {
            self.buf.clear();
            alert_json(a, &self.names, &mut self.buf);
            self.buf.push(b'\n');
            if a.shadow {
                // Shadow alerts never reach the serving file: their own, made on the first one.
                if self.shadow.is_none() {
                    let file = File::create(&self.shadow_path).map_err(on(&self.shadow_path))?;
                    self.shadow = Some(BufWriter::new(file));
                }
                if let Some(w) = &mut self.shadow {
                    w.write_all(&self.buf).map_err(on(&self.shadow_path))?;
                }
            } else {
                self.alerts
                    .write_all(&self.buf)
                    .map_err(on(&self.alerts_name))?;
            }
        }
        if !alerts.is_empty() {
            self.alerts.flush().map_err(on(&self.alerts_name))?;
            if let Some(w) = &mut self.shadow {
                w.flush().map_err(on(&self.shadow_path))?;
            }
        }
        self.tracker.complete(&done);
        Ok(())
    }

    fn dead_letters(&mut self, dead: &[DeadLetter], done: Completion) -> io::Result<()> {
        if dead.is_empty() {
            return Ok(());
        }
        if self.dead.is_none() {
            let file = File::create(&self.dead_path).map_err(on(&self.dead_path))?;
            self.dead = Some(BufWriter::new(file));
        }
        if let Some(w) = &mut self.dead {
            for d in dead {
                self.buf.clear();
                dead_letter_json(d, &self.names, &mut self.buf);
                self.buf.push(b'\n');
                w.write_all(&self.buf).map_err(on(&self.dead_path))?;
            }
            w.flush().map_err(on(&self.dead_path))?;
        }
        self.tracker.complete(&done);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.alerts.flush().map_err(on(&self.alerts_name))?;
        if let Some(w) = &mut self.dead {
            w.flush().map_err(on(&self.dead_path))?;
        }
        Ok(())
    }
}
