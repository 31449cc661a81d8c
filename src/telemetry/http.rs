//! The operations endpoint: `/metrics` (Prometheus text), `/healthz` (alive: not wedged) and
//! `/readyz` (partitions assigned and the consumer polling). A small HTTP/1.1 server: one thread
//! accepts, each connection is served on a thread of its own within a whole-request deadline, with
//! a bound on connections and on the request head; scrapes and probes are small, so it needs no
//! framework.

use super::{Counters, Telemetry};
use crate::kafka::health::Health;
use crate::kafka::ConsumerStatus;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A consumer that has not polled for this long is not ready: whatever holds it (a rebalance
/// callback waiting for records in flight, a commit to a coordinator that is away, a full
/// pipeline), it is not reading, and its statistics, which arrive through its polls, are stale.
pub const POLL_SILENCE: Duration = Duration::from_secs(3);

/// What the endpoint reads.
#[derive(Debug)]
pub struct HttpState {
    pub counters: Arc<Counters>,
    pub telemetry: Arc<Telemetry>,
    pub status: Arc<Mutex<ConsumerStatus>>,
    /// Whether the cluster is reachable and alerts are delivered.
    pub health: Arc<Health>,
    liveness: Mutex<Liveness>,
}

impl HttpState {
    /// `stall`: how long records may wait with none finished before `/healthz` fails.
    pub fn new(
        counters: Arc<Counters>,
        telemetry: Arc<Telemetry>,
        status: Arc<Mutex<ConsumerStatus>>,
        health: Arc<Health>,
        stall: Duration,
    ) -> HttpState {
        HttpState {
            counters,
            telemetry,
            status,
            health,
            liveness: Mutex::new(Liveness::new(stall, Instant::now())),
        }
    }
}

/// Whether the pipeline still makes progress, judged at each liveness probe: records wait
/// (decoded and not finished, or behind on an assigned partition) and no record has been finished
/// for `stall` means a wedged stage. An idle consumer with nothing to read is alive.
#[derive(Debug)]
pub struct Liveness {
    stall: Duration,
    done: u64,
    since: Instant,
}

impl Liveness {
    pub fn new(stall: Duration, now: Instant) -> Liveness {
        Liveness {
            stall,
            done: 0,
            since: now,
        }
    }

    /// `Err` with the reason when wedged. `decoded` and `done` are the record counters; `lag`
    /// whether any assigned partition has records behind its position.
    pub fn check(
        &mut self,
        decoded: u64,
        done: u64,
        lag: bool,
        now: Instant,
    ) -> Result<(), String> {
        let in_flight = decoded.saturating_sub(done);
        let waiting = in_flight > 0 || lag;
        if done != self.done || !waiting {
            self.done = done;
            self.since = now;
            return Ok(());
        }
        let idle = now.saturating_duration_since(self.since);
        if idle >= self.stall {
            Err(format!(
                "wedged: {in_flight} records in flight{}, none finished for {} s\n",
                if lag { " and input waiting" } else { "" },
                idle.as_secs()
            ))
        } else {
            Ok(())
        }
    }
}

/// Connections served at once; more are answered 503 at once and closed.
const MAX_CONNECTIONS: usize = 32;

/// Longest a connection may take to send its request (all of it, not per byte).
const REQUEST_DEADLINE: Duration = Duration::from_secs(2);

/// Largest request head read; a longer one is answered 431.
const MAX_HEAD: usize = 8192;

/// Serves until `stop` is set: each connection on a thread of its own (at most
/// [`MAX_CONNECTIONS`]), so that a slow or idle client never holds up a probe or a scrape.
pub fn serve(listener: TcpListener, state: Arc<HttpState>, stop: Arc<AtomicBool>) {
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    let open = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    // Read what has arrived (closing on unread bytes would reset the
                    // connection before the answer is read), answer, close.
                    let _ = stream.set_nonblocking(true);
                    let _ = stream.read(&mut [0u8; 4096]);
                    let _ = stream.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbusy\n",
                    );
                    let _ = stream.shutdown(std::net::Shutdown::Write);
                    continue;
                }
                open.fetch_add(1, Ordering::Relaxed);
                let spawned = std::thread::Builder::new()
                    .name("vigil-http-conn".into())
                    .stack_size(128 * 1024)
                    .spawn({
                        let (state, open) = (state.clone(), open.clone());
                        move || {
                            let _ = handle(stream, &state);
                            open.fetch_sub(1, Ordering::Relaxed);
                        }
                    });
                if spawned.is_err() {
                    open.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn handle(mut stream: TcpStream, state: &HttpState) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(REQUEST_DEADLINE))?;
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut buf = vec![0u8; MAX_HEAD];
    let mut n = 0;
    let mut complete = false;
    while n < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(()); // too slow: dropped
        }
        stream.set_read_timeout(Some(left))?;
        let k = stream.read(&mut buf[n..])?;
        if k == 0 {
            break;
        }
        n += k;
        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            complete = true;
            break;
        }
    }
    if !complete && n == buf.len() {
        let body = "request head too large\n";
        return write!(
            stream,
            "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    let request = String::from_utf8_lossy(&buf[..n]);
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (code, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", metrics(state)),
        ("GET", "/healthz") => {
            let lag = {
                let s = state.status.lock().unwrap_or_else(PoisonError::into_inner);
                s.partitions.iter().any(|&(_, _, lag)| lag > 0)
            };
            let c = &state.counters;
            let (decoded, done) = (Counters::get(&c.records), Counters::get(&c.records_done));
            let mut live = state
                .liveness
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match live.check(decoded, done, lag, Instant::now()) {
                Ok(()) => ("200 OK", "ok\n".to_string()),
                Err(why) => ("503 Service Unavailable", why),
            }
        }
        ("GET", "/readyz") => {
            let trouble = state.health.not_ready();
            let s = state.status.lock().unwrap_or_else(PoisonError::into_inner);
            let silent = s.last_poll.map(|t| t.elapsed());
            if let Some(why) = trouble {
                ("503 Service Unavailable", why)
            } else if s.partitions.is_empty() {
                (
                    "503 Service Unavailable",
                    "not ready: no partitions assigned\n".to_string(),
                )
            } else if let Some(d) = silent.filter(|d| *d >= POLL_SILENCE) {
                // Stuck in a rebalance callback or a commit, or held by a full pipeline: while the
                // consumer does not poll, its view of the cluster is stale too.
                (
                    "503 Service Unavailable",
                    format!(
                        "not ready: the consumer has not polled for {} s\n",
                        d.as_secs()
                    ),
                )
            } else if silent.is_some() {
                (
                    "200 OK",
                    format!("ready: {} partitions\n", s.partitions.len()),
                )
            } else {
                (
                    "503 Service Unavailable",
                    "not ready: not polling yet\n".to_string(),
                )
            }
        }
        _ => ("404 Not Found", "not found\n".to_string()),
    };
    let content_type = if path == "/metrics" {
        "text/plain; version=0.0.4"
    } else {
        "text/plain"
    };
    write!(
        stream,
        "HTTP/1.1 {code}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The Prometheus text exposition of counters, lag and per-stage latency.
pub fn metrics(state: &HttpState) -> String {
    let mut out = String::new();
    let c = &state.counters;
    for (name, help, v) in [
        (
            "vigil_records_total",
            "Records decoded.",
            Counters::get(&c.records),
        ),
        (
            "vigil_records_done_total",
            "Records scored and written.",
            Counters::get(&c.records_done),
        ),
        (
            "vigil_dead_letters_total",
            "Records that failed to decode.",
            Counters::get(&c.dead_letters),
        ),
        (
            "vigil_readings_skipped_total",
            "Readings that were missing, NaN or infinite.",
            Counters::get(&c.readings_skipped),
        ),
        (
            "vigil_alerts_opened_total",
            "Alerts opened.",
            Counters::get(&c.alerts_opened),
        ),
        (
            "vigil_alerts_closed_total",
            "Alerts closed.",
            Counters::get(&c.alerts_closed),
        ),
        (
            "vigil_model_reloads_total",
            "Detector reconfigurations swapped in while running.",
            Counters::get(&c.reloads),
        ),
        (
            "vigil_model_reload_failures_total",
            "Reconfigurations refused (the running detectors stayed).",
            Counters::get(&c.reload_failures),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP vigil_last_record_done_timestamp_seconds When records were last scored and written (Unix time; 0: none yet).\n# TYPE vigil_last_record_done_timestamp_seconds gauge\nvigil_last_record_done_timestamp_seconds {:.6}",
        Counters::get(&c.last_done_us) as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "# HELP vigil_detector_records_total Records each detector scored, by role.\n# TYPE vigil_detector_records_total counter"
    );
    for d in crate::telemetry::report::DetectorLine::from_counters(c) {
        let _ = writeln!(
            out,
            "vigil_detector_records_total{{detector=\"{}\",role=\"serving\"}} {}\nvigil_detector_records_total{{detector=\"{}\",role=\"shadow\"}} {}",
            d.name,
            d.serving_records,
            d.name,
            d.records - d.serving_records
        );
    }
    {
        let s = state.status.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = writeln!(out, "# HELP vigil_records_rewound_total Records re-read to rebuild state.\n# TYPE vigil_records_rewound_total counter\nvigil_records_rewound_total {}", s.rewound);
        let _ = writeln!(out, "# HELP vigil_transactions_committed_total Transactions of alerts and offsets committed (exactly-once mode).\n# TYPE vigil_transactions_committed_total counter\nvigil_transactions_committed_total {}", s.transactions);
        let _ = writeln!(out, "# HELP vigil_assigned_partitions Partitions this instance consumes.\n# TYPE vigil_assigned_partitions gauge\nvigil_assigned_partitions {}", s.partitions.len());
        let _ = writeln!(out, "# HELP vigil_consumer_lag Records behind the high watermark.\n# TYPE vigil_consumer_lag gauge");
        for (topic, partition, lag) in &s.partitions {
            let _ = writeln!(
                out,
                "vigil_consumer_lag{{topic=\"{topic}\",partition=\"{partition}\"}} {lag}"
            );
        }
    }
    {
        let h = &state.health;
        let down = h.broker_down_for();
        let _ = writeln!(out, "# HELP vigil_broker_reachable Whether the consumer has a broker connection up.\n# TYPE vigil_broker_reachable gauge\nvigil_broker_reachable {}", u8::from(down.is_none()));
        let _ = writeln!(out, "# HELP vigil_broker_unreachable_seconds How long the consumer has had no broker (0 while it has one).\n# TYPE vigil_broker_unreachable_seconds gauge\nvigil_broker_unreachable_seconds {}", down.map_or(0.0, |d| d.as_secs_f64()));
        let _ = writeln!(out, "# HELP vigil_undelivered_messages Alerts and dead letters sent and not yet acknowledged by the broker.\n# TYPE vigil_undelivered_messages gauge\nvigil_undelivered_messages {}", h.undelivered());
        let _ = writeln!(out, "# HELP vigil_delivery_stalled_seconds How long messages have waited with no delivery report, once that is 10 s or more (0 otherwise).\n# TYPE vigil_delivery_stalled_seconds gauge\nvigil_delivery_stalled_seconds {}", h.stuck_for().map_or(0.0, |d| d.as_secs_f64()));
    }
    if let Some(g) = state.counters.spool.get() {
        for (name, kind, help, v) in [
            (
                "vigil_spool_bytes",
                "gauge",
                "Bytes of the spool's segments on disk.",
                &g.bytes,
            ),
            (
                "vigil_spool_messages",
                "gauge",
                "Alerts and dead letters in the spool not yet acknowledged by the uplink.",
                &g.messages,
            ),
            (
                "vigil_spool_full",
                "gauge",
                "1 while the spool is full and input waits.",
                &g.full,
            ),
            (
                "vigil_spool_forwarded_total",
                "counter",
                "Messages forwarded from the spool and acknowledged.",
                &g.forwarded,
            ),
            (
                "vigil_spool_torn_records_total",
                "counter",
                "Torn records (a crash while writing) skipped.",
                &g.torn,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                Counters::get(v)
            );
        }
    }
    let stages = state.telemetry.snapshot();
    let _ = writeln!(out, "# HELP vigil_stage_latency_seconds Latency of each pipeline stage.\n# TYPE vigil_stage_latency_seconds summary");
    for st in &stages {
        for (q, v) in [
            ("0.5", st.p50_us),
            ("0.9", st.p90_us),
            ("0.99", st.p99_us),
            ("0.999", st.p999_us),
        ] {
            let _ = writeln!(
                out,
                "vigil_stage_latency_seconds{{stage=\"{}\",quantile=\"{q}\"}} {}",
                st.stage,
                v / 1e6
            );
        }
        let _ = writeln!(
            out,
            "vigil_stage_latency_seconds_sum{{stage=\"{}\"}} {}",
            st.stage,
            st.mean_us * st.count as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "vigil_stage_latency_seconds_count{{stage=\"{}\"}} {}",
            st.stage, st.count
        );
    }
    out
}

#[cfg(test)]
mod liveness_tests {
    use super::Liveness;
    use std::time::{Duration, Instant};

    #[test]
    fn waiting_records_with_none_finished_for_the_stall_time_are_a_wedge() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut l = Liveness::new(Duration::from_secs(60), t0);
        // Progress: alive, whatever waits.
        assert!(l.check(100, 50, true, at(10)).is_ok());
        assert!(l.check(200, 150, true, at(50)).is_ok());
        // 150 finished since 50 s; at 109 s not yet 60 s without progress.
        assert!(l.check(300, 150, false, at(109)).is_ok());
        let why = l.check(300, 150, false, at(111)).expect_err("wedged");
        assert!(why.contains("150 records in flight"), "{why}");
        // Progress again: alive.
        assert!(l.check(300, 151, false, at(112)).is_ok());
        // Nothing in flight but lag on a partition, and the consumer takes nothing: a wedge too.
        assert!(l.check(151, 151, true, at(150)).is_ok());
        assert!(l
            .check(151, 151, true, at(173))
            .expect_err("wedged")
            .contains("input waiting"));
    }

    #[test]
    fn an_idle_consumer_with_nothing_to_read_is_alive() {
        let t0 = Instant::now();
        let mut l = Liveness::new(Duration::from_secs(60), t0);
        for s in [0, 100, 1000, 100_000] {
            assert!(l
                .check(500, 500, false, t0 + Duration::from_secs(s))
                .is_ok());
        }
    }
}

#[cfg(test)]
mod serve_tests {
    use super::*;
    use std::io::{Read, Write};

    fn get(addr: std::net::SocketAddr, path: &str) -> (String, Duration) {
        let t0 = Instant::now();
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out); // an overloaded server may reset after its answer
        (String::from_utf8_lossy(&out).into_owned(), t0.elapsed())
    }

    #[test]
    fn slow_and_idle_clients_hold_up_no_probe() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(HttpState::new(
            Arc::new(Counters::default()),
            Arc::new(Telemetry::default()),
            Arc::new(Mutex::new(ConsumerStatus::default())),
            Arc::default(),
            Duration::from_secs(120),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let stop = stop.clone();
            std::thread::spawn(move || serve(listener, state, stop))
        };
        // Twenty idle connections and one trickling a byte every 100 ms.
        let idle: Vec<TcpStream> = (0..20)
            .map(|_| TcpStream::connect(addr).expect("connect"))
            .collect();
        let trickler = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).expect("connect");
            for b in b"GET /metrics HTTP/1.1\r\nX-Slow: yes"
                .iter()
                .cycle()
                .take(40)
            {
                if s.write_all(&[*b]).is_err() {
                    break; // dropped at the deadline
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        for path in ["/readyz", "/healthz", "/metrics"] {
            let (reply, took) = get(addr, path);
            assert!(reply.starts_with("HTTP/1.1 "), "{path}: {reply}");
            assert!(took < Duration::from_millis(1500), "{path} took {took:?}");
        }
        assert!(get(addr, "/metrics").0.contains("vigil_records_total"));
        // More connections than the bound: the excess is told so at once.
        let crowd: Vec<TcpStream> = (0..MAX_CONNECTIONS)
            .map(|_| TcpStream::connect(addr).expect("connect"))
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let (reply, took) = get(addr, "/readyz");
        assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
        assert!(reply.ends_with("busy\n"), "{reply}");
        assert!(took < Duration::from_millis(1500), "{took:?}");
        drop(crowd);
        drop(idle);
        // Past the deadline the idle ones are gone and probes are served again.
        std::thread::sleep(REQUEST_DEADLINE + Duration::from_millis(300));
        assert!(get(addr, "/healthz").0.starts_with("HTTP/1.1 200"));
        // A request head over the limit.
        let mut s = TcpStream::connect(addr).expect("connect");
        let _ = s.write_all(&vec![b'a'; MAX_HEAD]);
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
        trickler.join().expect("trickler");
        stop.store(true, Ordering::Relaxed);
        server.join().expect("server");
    }
}
