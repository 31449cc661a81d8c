//! What the integration tests and the bench commands share: the external tools they need (a tansu
//! broker, ONNX Runtime), finding them or saying what is skipped, starting a broker on a free
//! loopback port, and reading `/metrics`.
//!
//! A missing tool skips the tests that need it with one line on stderr naming the command that
//! installs it (`cargo xtask test` installs everything and runs the whole suite). When
//! `VIGIL_REQUIRE_TOOLS=1` (as `cargo xtask test` and CI set it), a missing tool fails instead:
//! there a skip would be a run that looks complete but is not.
//!
//! Included by `tests/tests.rs` and by the benches (`#[path]`), so not every item is used by each.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// The project root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A tool some tests need and plain `cargo test` may not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// The tansu Kafka-protocol broker (`.ci/install-tansu`).
    Tansu,
    /// The ONNX Runtime 1.31.1 shared library (`.ci/install-onnxruntime`).
    OnnxRuntime,
    /// Debian's `stunnel4` (TLS in front of tansu) and `openssl` (test certificates).
    Stunnel,
}

impl Tool {
    fn what(self) -> &'static str {
        match self {
            Tool::Tansu => "tansu broker not found: the Kafka tests are skipped",
            Tool::OnnxRuntime => "ONNX Runtime 1.31.1 not found: the ONNX tests are skipped",
            Tool::Stunnel => "stunnel4 or openssl not found: the TLS tests are skipped",
        }
    }

    fn installer(self) -> &'static str {
        match self {
            Tool::Tansu => ".ci/install-tansu",
            Tool::OnnxRuntime => ".ci/install-onnxruntime",
            Tool::Stunnel => "apt-get install stunnel4 openssl",
        }
    }

    fn once(self) -> &'static Once {
        static TANSU: Once = Once::new();
        static ORT: Once = Once::new();
        static STUNNEL: Once = Once::new();
        match self {
            Tool::Tansu => &TANSU,
            Tool::OnnxRuntime => &ORT,
            Tool::Stunnel => &STUNNEL,
        }
    }

    /// Where the tool is, if it is here.
    pub fn locate(self) -> Option<PathBuf> {
        match self {
            Tool::Tansu => {
                if let Some(p) = std::env::var_os("VIGIL_TANSU") {
                    return Some(PathBuf::from(p)).filter(|p| p.exists());
                }
                let local = root().join(".ci/cache/bin/tansu");
                if local.exists() {
                    return Some(local);
                }
                Command::new("tansu")
                    .arg("--version")
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|_| PathBuf::from("tansu"))
            }
            // Where Vigil itself looks (`ORT_DYLIB_PATH`, then its default locations).
            Tool::OnnxRuntime => vigil::onnx::runtime::locate(None).ok(),
            Tool::Stunnel => {
                let runs = |bin: &str, arg: &str| {
                    Command::new(bin)
                        .arg(arg)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok()
                };
                (runs("openssl", "version") && runs("stunnel4", "-version"))
                    .then(|| PathBuf::from("stunnel4"))
            }
        }
    }

    /// The tool, or `None` after saying once (one line) that its tests are skipped and how to
    /// enable them. With `VIGIL_REQUIRE_TOOLS=1`, a missing tool panics instead.
    pub fn require(self) -> Option<PathBuf> {
        if let Some(p) = self.locate() {
            return Some(p);
        }
        let line = format!(
            "{}: `cargo xtask test` installs it and runs them (or run {} once)",
            self.what(),
            self.installer()
        );
        if std::env::var("VIGIL_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
            panic!("{line} [VIGIL_REQUIRE_TOOLS=1: a skip is a failure]");
        }
        self.once().call_once(|| {
            // Straight to the process's stderr: the test harness captures `eprintln!`, and this
            // line must be seen in a passing run.
            let _ = writeln!(std::io::stderr(), "skipped: {line}");
        });
        None
    }
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A tansu broker with in-memory storage on a free loopback port, killed on drop.
#[derive(Debug)]
pub struct Tansu {
    child: Child,
    bin: PathBuf,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

impl Tansu {
    /// Starts a broker from `bin` (see [`Tool::require`]) and waits until it accepts connections.
    pub fn start(bin: &Path) -> Tansu {
        Tansu::start_advertising(bin, None)
    }

    /// As [`Tansu::start`], telling clients to connect to `advertised` (`HOST:PORT`, e.g. a TLS
    /// proxy in front of it) instead of its own address.
    pub fn start_advertising(bin: &Path, advertised: Option<&str>) -> Tansu {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let advertised = advertised.map_or(url.clone(), |a| format!("tcp://{a}"));
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Tansu {
            child,
            bin: bin.to_path_buf(),
            addr,
        }
    }

    /// Creates `name` with `partitions` partitions.
    pub fn topic(&self, name: &str, partitions: u32) {
        let out = Command::new(&self.bin)
            .args([
                "topic",
                "create",
                name,
                "--broker",
                &format!("tcp://{}", self.addr),
                "--partitions",
                &partitions.to_string(),
            ])
            .output()
            .expect("tansu topic create");
        assert!(
            out.status.success(),
            "topic create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Sends the broker process a signal (`-STOP` freezes it, `-CONT` lets it go on); whether
    /// it was delivered.
    pub fn signal(&self, sig: &str) -> bool {
        Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 GET: status code and body, or `None` when nothing answered.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        code,
        text.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    ))
}

/// Prometheus text as `name{labels} -> value`.
pub fn parse_metrics(body: &str) -> HashMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            l.rsplit_once(' ')
                .and_then(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        })
        .collect()
}

/// `/metrics` of a running `vigil score` at `addr` (empty when it does not answer 200).
pub fn metrics(addr: &str) -> HashMap<String, f64> {
    match (0..3).find_map(|_| http_get(addr, "/metrics")) {
        Some((200, body)) => parse_metrics(&body),
        _ => HashMap::new(),
    }
}
