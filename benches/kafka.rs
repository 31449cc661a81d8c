//! The Kafka bench command: `cargo bench --bench kafka` (needs tansu: `.ci/install-tansu`).
//!
//! 1. Loads N records (the fixture, repeated) into a topic of a local tansu broker.
//! 2. Throughput, on that same topic: a bare rdkafka consume loop (a group member that polls and
//!    touches every payload), then `vigil score` (decode, detect, publish alerts, commit); both
//!    timed from their first record to their last (group joins excluded). Prints records/s of both and the ratio (target: Vigil >= 0.7).
//! 3. Latency: `vigil score` on a fresh topic fed at a fixed 100 k records/s; prints the
//!    per-record end-to-end percentiles (read -> alerts acknowledged, and Kafka timestamp ->
//!    acknowledged) from its `/metrics` (target: p99 <= 2 ms).
//!
//! `VIGIL_BENCH_COPIES` sets how many copies of the 64,800-record fixture to load (default 8);
//! `VIGIL_BENCH_DETECTOR` a detector kind to run instead of the default (e.g. `zscore`);
//! `VIGIL_BENCH_DELIVERY=exactly-once` runs the scorer with transactions (its alerts become visible
//! at each commit, every `kafka.transaction_interval_ms`, which end-to-end latency does not count).

#[path = "../tests/support/mod.rs"]
mod support;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{free_port, metrics, root, Tansu, Tool};

fn vigil_bin() -> PathBuf {
    let release = root().join("target/release/vigil");
    if !release.exists() {
        let ok = Command::new("cargo")
            .args(["build", "--release", "--quiet"])
            .current_dir(root())
            .status();
        assert!(
            ok.is_ok_and(|s| s.success()),
            "cargo build --release failed"
        );
    }
    release
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_scorer(
    vigil: &Path,
    addr: &str,
    topic: &str,
    group: &str,
    config: &Path,
) -> (Kill, String) {
    let http = format!("127.0.0.1:{}", free_port());
    let child = Command::new(vigil)
        .args([
            "score",
            "--config",
            config.to_str().expect("utf8"),
            "--bootstrap-servers",
            addr,
            "--topic",
            topic,
        ])
        .args([
            "--group-id",
            group,
            "--alert-topic",
            "alerts",
            "--dead-letter-topic",
            "dead",
            "--http-listen",
            &http,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("vigil score");
    (Kill(child), http)
}

fn main() {
    let copies: usize = std::env::var("VIGIL_BENCH_COPIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let vigil = vigil_bin();
    let Some(tansu) = Tool::Tansu.require() else {
        return;
    };
    let broker = Tansu::start(&tansu);
    let addr = broker.addr.clone();
    for (t, p) in [("bench", 4), ("live", 4), ("alerts", 2), ("dead", 1)] {
        broker.topic(t, p);
    }
    let dir = std::env::temp_dir().join(format!("vigil-kafka-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("bench.toml");
    // Live settings: no batching delay in the shards, no state rewind; the default detector unless
    // VIGIL_BENCH_DETECTOR names a kind.
    let detector = match std::env::var("VIGIL_BENCH_DETECTOR") {
        Ok(kind) if !kind.is_empty() => format!("[[detectors]]\nkind = \"{kind}\"\n"),
        _ => String::new(),
    };
    let delivery = std::env::var("VIGIL_BENCH_DELIVERY").unwrap_or_else(|_| "at-least-once".into());
    println!("delivery {delivery}");
    std::fs::write(
        &config,
        format!(
            "[pipeline]\nlinger_ms = 0\n[kafka]\nrewind = 0\ndelivery = \"{delivery}\"\n[http]\nlog_interval_s = 3600\n{detector}"
        ),
    )
    .expect("config");

    // 1. Load.
    let fixture = root().join("fixtures/pumps.csv");
    let files: Vec<&str> = (0..copies)
        .map(|_| fixture.to_str().expect("utf8"))
        .collect();
    let out = Command::new(&vigil)
        .arg("produce")
        .args(&files)
        .args(["--topic", "bench", "--bootstrap-servers", &addr])
        .output()
        .expect("produce");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = (64_800 * copies) as u64;
    println!("loaded {n} records into topic bench (4 partitions) on tansu at {addr}");

    // 2a. Bare consume loop.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("group.id", "bench-bare")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "5")
        .create()
        .expect("consumer");
    // Subscribed as a group member like the scorer, and timed the same way: from its first record
    // to its last, so both start fetching at assignment and neither counts the group join.
    consumer.subscribe(&["bench"]).expect("subscribe");
    let (mut seen, mut bytes, mut first) = (0u64, 0usize, None);
    while seen < n {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            bytes += m.payload().map_or(0, |p| p.len());
            seen += 1;
        }
    }
    let bare = first.map_or(f64::NAN, |f| f.elapsed().as_secs_f64());
    let bare_rate = n as f64 / bare;
    drop(consumer);
    println!(
        "bare rdkafka consume loop: {n} records ({bytes} bytes) in {bare:.3} s = {:.0} records/s",
        bare_rate
    );

    // 2b. vigil score on the same topic.
    let (scorer, http) = start_scorer(&vigil, &addr, "bench", "bench-vigil", &config);
    let (mut t_first, mut done_first) = (None, 0.0);
    let t_last;
    loop {
        let m = metrics(&http);
        let done = m.get("vigil_records_done_total").copied().unwrap_or(0.0);
        if done > 0.0 && t_first.is_none() {
            t_first = Some(Instant::now());
            done_first = done;
        }
        if done >= n as f64 {
            t_last = Instant::now();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let vigil_secs = t_first.map_or(f64::NAN, |t| (t_last - t).as_secs_f64());
    let vigil_rate = (n as f64 - done_first) / vigil_secs;
    drop(scorer);
    println!(
        "vigil score (decode, detect, publish, commit): {:.0} records/s",
        vigil_rate
    );
    println!(
        "  ratio vigil / bare = {:.2} (target >= 0.7)",
        vigil_rate / bare_rate
    );

    // 3. Latency at a fixed 100 k records/s.
    let (scorer, http) = start_scorer(&vigil, &addr, "live", "bench-live", &config);
    while metrics(&http)
        .get("vigil_assigned_partitions")
        .copied()
        .unwrap_or(0.0)
        < 4.0
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("linger.ms", "2")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let rows: Vec<(String, String)> = std::fs::read_to_string(&fixture)
        .expect("fixture")
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let v = |s: &str| {
                if s.is_empty() {
                    "null".to_string()
                } else {
                    s.to_string()
                }
            };
            (
                f[1].to_string(),
                format!(
                    "\"pressure\":{},\"flow\":{},\"temperature\":{},\"vibration\":{}",
                    v(f[2]),
                    v(f[3]),
                    v(f[4]),
                    v(f[5])
                ),
            )
        })
        .collect();
    let rate = 100_000.0;
    let seconds = 4.0;
    let total = (rate * seconds) as usize;
    let start = Instant::now();
    let t0 = vigil::time::now_millis();
    for i in 0..total {
        let (sensor, values) = &rows[i % rows.len()];
        let payload = format!(
            "{{\"sensor\":\"{sensor}\",\"ts\":{},\"values\":{{{values}}}}}",
            t0 + i as i64 * 10
        );
        loop {
            match producer.send(
                BaseRecord::<str, str>::to("live")
                    .key(sensor.as_str())
                    .payload(payload.as_str()),
            ) {
                Ok(()) => break,
                Err(_) => std::thread::sleep(Duration::from_micros(100)),
            }
        }
        if i % 100 == 0 {
            if let Some(wait) =
                Duration::from_secs_f64(i as f64 / rate).checked_sub(start.elapsed())
            {
                std::thread::sleep(wait);
            }
        }
    }
    let offered = total as f64 / start.elapsed().as_secs_f64();
    let _ = producer.flush(Duration::from_secs(30));
    while metrics(&http)
        .get("vigil_records_done_total")
        .copied()
        .unwrap_or(0.0)
        < total as f64
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let m = metrics(&http);
    let q = |stage: &str, q: &str| {
        m.get(&format!(
            "vigil_stage_latency_seconds{{stage=\"{stage}\",quantile=\"{q}\"}}"
        ))
        .copied()
        .unwrap_or(f64::NAN)
            * 1e3
    };
    println!("\nlatency at {offered:.0} records/s offered ({total} records, 4 partitions):");
    println!(
        "  read -> alerts acknowledged (end_to_end): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
        q("end_to_end", "0.5"),
        q("end_to_end", "0.99"),
        q("end_to_end", "0.999")
    );
    println!("  Kafka timestamp -> acknowledged (kafka_to_ack, 1 ms resolution): p50 {:.1} ms, p99 {:.1} ms (target p99 <= 2 ms)", q("kafka_to_ack", "0.5"), q("kafka_to_ack", "0.99"));
    for stage in [
        "decode",
        "queue_wait",
        "batch_linger",
        "scoring",
        "alert_policy",
        "sink_write",
    ] {
        println!(
            "  stage {stage:<13} p50 {:.3} ms, p99 {:.3} ms",
            q(stage, "0.5"),
            q(stage, "0.99")
        );
    }
    drop(scorer);
    let _ = std::fs::remove_dir_all(&dir);
}
