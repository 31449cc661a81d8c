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
    /// moto's S3 server (PyPI, `.ci/install-moto`): the storage of a tansu that restarts.
    Moto,
    /// Debian's `mosquitto`, the MQTT broker of the edge tests.
    Mosquitto,
}

impl Tool {
    fn what(self) -> &'static str {
        match self {
            Tool::Tansu => "tansu broker not found: the Kafka tests are skipped",
            Tool::OnnxRuntime => "ONNX Runtime 1.31.1 not found: the ONNX tests are skipped",
            Tool::Stunnel => "stunnel4 or openssl not found: the TLS tests are skipped",
            Tool::Moto => "moto's S3 server not found: the broker restart tests are skipped",
            Tool::Mosquitto => "mosquitto not found: the MQTT tests are skipped",
        }
    }

    fn installer(self) -> &'static str {
        match self {
            Tool::Tansu => ".ci/install-tansu",
            Tool::OnnxRuntime => ".ci/install-onnxruntime",
            Tool::Stunnel => "apt-get install stunnel4 openssl",
            Tool::Moto => ".ci/install-moto",
            Tool::Mosquitto => "apt-get install mosquitto",
        }
    }

    fn once(self) -> &'static Once {
        static TANSU: Once = Once::new();
        static ORT: Once = Once::new();
        static STUNNEL: Once = Once::new();
        static MOTO: Once = Once::new();
        static MOSQUITTO: Once = Once::new();
        match self {
            Tool::Tansu => &TANSU,
            Tool::OnnxRuntime => &ORT,
            Tool::Stunnel => &STUNNEL,
            Tool::Moto => &MOTO,
            Tool::Mosquitto => &MOSQUITTO,
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
            Tool::Moto => {
                Some(root().join(".ci/cache/moto")).filter(|p| p.join("moto/server.py").exists())
            }
            Tool::Mosquitto => ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.exists()),
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

/// A tansu broker on a free loopback port, killed on drop: with in-memory storage, or with its
/// topics, messages and committed offsets in an [`S3`] server, so it can be killed and restarted
/// (on the same port) without losing them.
#[derive(Debug)]
pub struct Tansu {
    child: Child,
    bin: PathBuf,
    /// `127.0.0.1:PORT`
    pub addr: String,
    advertised: String,
    /// The S3 server's endpoint, for `s3://` storage; `None` for `memory://`.
    s3: Option<String>,
}

impl Tansu {
    /// Starts a broker from `bin` (see [`Tool::require`]) and waits until it accepts connections.
    pub fn start(bin: &Path) -> Tansu {
        Tansu::start_advertising(bin, None)
    }

    /// As [`Tansu::start`], telling clients to connect to `advertised` (`HOST:PORT`, e.g. a TLS
    /// proxy in front of it) instead of its own address.
    pub fn start_advertising(bin: &Path, advertised: Option<&str>) -> Tansu {
        Tansu::launch(bin, advertised, None)
    }

    /// A broker keeping everything in `s3` (bucket `tansu`): it survives [`Tansu::restart`].
    pub fn start_persistent(bin: &Path, s3: &S3) -> Tansu {
        Tansu::launch(bin, None, Some(s3.endpoint.clone()))
    }

    fn launch(bin: &Path, advertised: Option<&str>, s3: Option<String>) -> Tansu {
        let addr = format!("127.0.0.1:{}", free_port());
        let advertised = format!("tcp://{}", advertised.unwrap_or(&addr));
        let child = Tansu::spawn(bin, &addr, &advertised, s3.as_deref());
        Tansu {
            child,
            bin: bin.to_path_buf(),
            addr,
            advertised,
            s3,
        }
    }

    fn spawn(bin: &Path, addr: &str, advertised: &str, s3: Option<&str>) -> Child {
        let mut cmd = Command::new(bin);
        cmd.args([
            "broker",
            "--listener-url",
            &format!("tcp://{addr}"),
            "--advertised-listener-url",
            advertised,
            "--storage-engine",
            if s3.is_some() {
                "s3://tansu/"
            } else {
                "memory://tansu/"
            },
        ]);
        if let Some(endpoint) = s3 {
            cmd.env("AWS_ENDPOINT", endpoint)
                .env("AWS_ALLOW_HTTP", "true")
                .env("AWS_DEFAULT_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "vigil")
                .env("AWS_SECRET_ACCESS_KEY", "vigil");
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// Kills the broker with SIGKILL (nothing flushed, no goodbye to clients).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the broker again on the same port with the same storage (after [`Tansu::kill9`]).
    pub fn restart(&mut self) {
        self.kill9();
        self.child = Tansu::spawn(&self.bin, &self.addr, &self.advertised, self.s3.as_deref());
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

/// moto's S3 server on a free loopback port with a bucket `tansu`, killed on drop. Objects live in
/// its memory: they outlive the brokers that use it, not the server.
#[derive(Debug)]
pub struct S3 {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

impl S3 {
    /// Starts moto from `dir` (see [`Tool::Moto`]) and creates the bucket.
    pub fn start(dir: &Path) -> S3 {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .env("PYTHONPATH", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let s3 = S3 {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // moto does not check signatures: a bare PUT creates the bucket.
            let created = TcpStream::connect(&addr).ok().and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                write!(
                    s,
                    "PUT /tansu HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .ok()?;
                let mut text = String::new();
                s.read_to_string(&mut text).ok()?;
                text.starts_with("HTTP/1.1 200").then_some(())
            });
            if created.is_some() {
                return s3;
            }
            assert!(Instant::now() < deadline, "moto's S3 server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for S3 {
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
