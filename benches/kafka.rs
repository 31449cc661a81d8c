//! The Kafka bench command: `cargo bench --bench kafka` (needs tansu: `.ci/install-tansu`).
//!
//! 1. Loads N records (the fixture, repeated) into a topic of a local tansu broker.
//! 2. Throughput, on that same topic, in rounds (`VIGIL_BENCH_ROUNDS`, default 3): a bare rdkafka
//!    consume loop (a group member that polls each message and reads its payload's length), the
//!    same with librdkafka's batch read as Vigil reads, then `vigil score` (decode, detect,
//!    publish alerts, commit), each a fresh group; all timed from their first record to their last
//!    (group joins excluded). Prints records/s of each per round and the median ratios (target:
//!    Vigil >= 0.9 of the consume loop; the batch read is the ceiling of Vigil's read).
//! 3. Latency at 10 k, 100 k records/s and as fast as the load generator goes: first a bare
//!    pass-through (a group member producing one message per record read to another topic with
//!    the alert sink's acks and idempotence, timed read -> delivery report), then `vigil score`
//!    on a fresh topic at the same rate (read -> alerts acknowledged, and Kafka timestamp ->
//!    acknowledged, from its `/metrics`); prints `latency ratio vigil / bare` for p50 and p99
//!    (target <= 1.5).
//!
//! `VIGIL_BENCH_COPIES` sets how many copies of the 64,800-record fixture to load (default 24,
//! 1.55 M records: with 8, the scorer's timed span was 0.3-0.4 s, of which its fetch ramp-up took a
//! large and varying part);
//! `VIGIL_BENCH_DETECTOR` a detector kind to run instead of the default (e.g. `zscore`);
//! `VIGIL_BENCH_THROUGHPUT_ONLY=1` stops after step 2;
//! `VIGIL_BENCH_DELIVERY=exactly-once` runs the scorer with transactions (its alerts become visible
//! at each commit, every `kafka.transaction_interval_ms`, which end-to-end latency does not count).

#[path = "../tests/support/mod.rs"]
mod support;

mod common;
use common::fixture_rows;

use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DefaultProducerContext, DeliveryResult, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::ClientContext;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{free_port, metrics, root, Tansu, Tool};
use vigil::kafka::fetch::{FetchQueue, Fetched, Forwarding};
use vigil::telemetry::Stage;

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

/// A bare rdkafka consume loop: a group member that polls and reads each payload's length, timed
/// from its first record to its last (the group join excluded, as for the scorer); records/s.
fn bare_consume(addr: &str, group: &str, n: u64) -> f64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "5")
        .create()
        .expect("consumer");
    consumer.subscribe(&["bench"]).expect("subscribe");
    let (mut seen, mut bytes, mut first) = (0u64, 0usize, None);
    while seen < n {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            bytes += m.payload().map_or(0, |p| p.len());
            seen += 1;
        }
    }
    std::hint::black_box(bytes);
    n as f64 / first.map_or(f64::NAN, |f| f.elapsed().as_secs_f64())
}

/// The bare loop with librdkafka's batch read, as Vigil's source reads (`vigil::kafka::fetch`):
/// a group member whose partitions' messages go to a queue of its own, read up to 4096 at a time,
/// the consumer's queue polled between reads; timed like [`bare_consume`]; records/s.
fn bare_batch_consume(addr: &str, group: &str, n: u64) -> f64 {
    let consumer: BaseConsumer<Forwarding> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "5")
        .create_with_context(Forwarding::default())
        .expect("consumer");
    *consumer.context().fetch.lock().expect("lock") = FetchQueue::new(&consumer);
    consumer.subscribe(&["bench"]).expect("subscribe");
    let (mut seen, mut bytes, mut first) = (0u64, 0usize, None);
    let mut fetched = Fetched::default();
    while seen < n {
        if let Some(Ok(m)) = consumer.poll(Duration::ZERO) {
            first.get_or_insert_with(Instant::now);
            bytes += m.payload().map_or(0, |p| p.len());
            seen += 1;
        }
        let fetch = consumer.context().fetch.lock().expect("lock");
        let got = fetch.as_ref().expect("fetch queue").read(
            Duration::from_millis(100),
            4096,
            &mut fetched,
        );
        drop(fetch);
        if got > 0 {
            first.get_or_insert_with(Instant::now);
            bytes += fetched.iter().map(|m| m.payload().len()).sum::<usize>();
            seen += got as u64;
            fetched.clear();
        }
    }
    let rate = n as f64 / first.map_or(f64::NAN, |f| f.elapsed().as_secs_f64());
    std::hint::black_box(bytes);
    // The queue goes before its consumer.
    drop(consumer.context().fetch.lock().expect("lock").take());
    rate
}

/// `vigil score` on the topic `bench` as group `group`, timed from its first finished record to
/// its last; records/s. The first is seen by scraping `/metrics` every millisecond while nothing
/// is done (the scorer idles then), the last is its `vigil_last_record_done_timestamp_seconds`;
/// in between the bench scrapes every 50 ms, so as to take little of the cores the scorer runs on
/// (a scrape every 5 ms took about 5 % of its samples).
fn scorer_throughput(vigil: &Path, addr: &str, group: &str, config: &Path, n: u64) -> f64 {
    let (scorer, http) = start_scorer(vigil, addr, "bench", group, config);
    let unix = || vigil::time::now_micros() as f64 / 1e6;
    let (t_first, done_first) = loop {
        let m = metrics(&http);
        let done = m.get("vigil_records_done_total").copied().unwrap_or(0.0);
        if done > 0.0 {
            break (unix(), done);
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let t_last = loop {
        std::thread::sleep(Duration::from_millis(50));
        let m = metrics(&http);
        if m.get("vigil_records_done_total").copied().unwrap_or(0.0) >= n as f64 {
            break m["vigil_last_record_done_timestamp_seconds"];
        }
    };
    drop(scorer);
    (n as f64 - done_first) / (t_last - t_first)
}

fn main() {
    let copies: usize = std::env::var("VIGIL_BENCH_COPIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let vigil = vigil_bin();
    let Some(tansu) = Tool::Tansu.require() else {
        return;
    };
    let broker = Tansu::start(&tansu);
    let addr = broker.addr.clone();
    for (t, p) in [("bench", 4), ("alerts", 2), ("dead", 1)] {
        broker.topic(t, p);
    }
    let dir = std::env::temp_dir().join(format!("vigil-kafka-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("bench.toml");
    // Live settings: the default batching (latency-driven), no state rewind; the default detector unless
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
            "[kafka]\nrewind = 0\ndelivery = \"{delivery}\"\n[http]\nlog_interval_s = 3600\n{detector}"
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

    // 2. Throughput: rounds alternating the bare loop and the scorer, each a fresh group reading
    // the topic from the start, so that both see the broker in the same states; the ratio is the
    // median of the rounds' ratios (one round on a shared 2-core machine varies by ±15 %).
    let rounds: usize = std::env::var("VIGIL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(3);
    let (mut ratios, mut batch_ratios) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let bare_rate = bare_consume(&addr, &format!("bench-bare-{round}"), n);
        let batch_rate = bare_batch_consume(&addr, &format!("bench-batch-{round}"), n);
        let vigil_rate =
            scorer_throughput(&vigil, &addr, &format!("bench-vigil-{round}"), &config, n);
        println!(
            "round {}: bare rdkafka consume loop {bare_rate:.0} records/s, bare batch read {batch_rate:.0} records/s, vigil score (decode, detect, publish, commit) {vigil_rate:.0} records/s, ratio {:.2} (to the batch read {:.2})",
            round + 1,
            vigil_rate / bare_rate,
            vigil_rate / batch_rate
        );
        ratios.push(vigil_rate / bare_rate);
        batch_ratios.push(vigil_rate / batch_rate);
    }
    let median = |r: &mut Vec<f64>| {
        r.sort_by(f64::total_cmp);
        (r[r.len() / 2], r[0], r[r.len() - 1])
    };
    let (mid, low, high) = median(&mut ratios);
    println!(
        "  ratio vigil / bare = {mid:.2} (median of {rounds} rounds, {low:.2}-{high:.2}; target >= 0.9)"
    );
    let (mid, low, high) = median(&mut batch_ratios);
    println!(
        "  ratio vigil / bare batch read = {mid:.2} (median of {rounds} rounds, {low:.2}-{high:.2}; the same read as Vigil's, nothing done with the records)"
    );

    if std::env::var_os("VIGIL_BENCH_THROUGHPUT_ONLY").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    // 3. Latency at fixed offered rates, Vigil against a bare pass-through on the same broker.
    let rows = fixture_rows(&fixture);
    for (label, rate, total) in [
        ("10 k", 10_000.0, 40_000),
        ("100 k", 100_000.0, 400_000),
        ("max", f64::INFINITY, 400_000),
    ] {
        let name = label.replace(' ', "");
        let (bare_in, bare_out, live) = (
            format!("bare-in-{name}"),
            format!("bare-out-{name}"),
            format!("live-{name}"),
        );
        broker.topic(&bare_in, 4);
        broker.topic(&bare_out, 4);
        broker.topic(&live, 4);

        let pass = PassThrough::start(&addr, &bare_in, &bare_out, total);
        let bare_offered = feed(&addr, &bare_in, &rows, rate, total);
        let bare = pass.finish();

        let (scorer, http) = start_scorer(&vigil, &addr, &live, &format!("live-{name}"), &config);
        while metrics(&http)
            .get("vigil_assigned_partitions")
            .copied()
            .unwrap_or(0.0)
            < 4.0
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let offered = feed(&addr, &live, &rows, rate, total);
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
        drop(scorer);
        let q = |stage: &str, q: &str| {
            m.get(&format!(
                "vigil_stage_latency_seconds{{stage=\"{stage}\",quantile=\"{q}\"}}"
            ))
            .copied()
            .unwrap_or(f64::NAN)
                * 1e3
        };
        let (v50, v99) = (q("end_to_end", "0.5"), q("end_to_end", "0.99"));
        let (b50, b99) = (bare.read_to_ack(0.5), bare.read_to_ack(0.99));
        println!(
            "\nlatency at {label} records/s ({total} records, 4 partitions; offered {offered:.0}/s to vigil, {bare_offered:.0}/s to the bare pass-through):"
        );
        println!(
            "  bare pass-through (consume, produce one message per record, acks=all, idempotent): read -> delivered p50 {b50:.2} ms, p99 {b99:.2} ms; Kafka timestamp -> delivered p50 {:.1} ms, p99 {:.1} ms",
            bare.kafka_to_ack(0.5),
            bare.kafka_to_ack(0.99)
        );
        println!(
            "  vigil score: read -> alerts acknowledged (end_to_end) p50 {v50:.2} ms, p99 {v99:.2} ms, p99.9 {:.2} ms; Kafka timestamp -> acknowledged (kafka_to_ack) p50 {:.1} ms, p99 {:.1} ms",
            q("end_to_end", "0.999"),
            q("kafka_to_ack", "0.5"),
            q("kafka_to_ack", "0.99")
        );
        println!(
            "  latency ratio vigil / bare at {label}: p50 = {:.2}, p99 = {:.2} (target <= 1.5)",
            v50 / b50,
            v99 / b99
        );
        // Batching is driven by the load: what has queued when a shard's input runs empty.
        let batches = m
            .get("vigil_stage_latency_seconds_count{stage=\"sink_write\"}")
            .copied()
            .unwrap_or(f64::NAN);
        println!(
            "  batches scored: {batches:.0}, mean {:.1} records per batch",
            total as f64 / batches
        );
        // The per-batch stages; the per-record ones are above.
        for stage in Stage::ALL
            .into_iter()
            .filter(|s| !matches!(s, Stage::EndToEnd | Stage::KafkaToAck))
        {
            let stage = stage.name();
            println!(
                "  stage {stage:<13} p50 {:.3} ms, p99 {:.3} ms",
                q(stage, "0.5"),
                q(stage, "0.99")
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Produces `total` JSON records to `topic` at `rate` records/s (`INFINITY`: as fast as the
/// producer takes them), waits for their delivery and returns the rate offered.
fn feed(addr: &str, topic: &str, rows: &[(String, String)], rate: f64, total: usize) -> f64 {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("linger.ms", "2")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let start = Instant::now();
    let t0 = vigil::time::now_millis();
    for i in 0..total {
        let (sensor, values) = &rows[i % rows.len()];
        let payload = common::payload(sensor, t0 + i as i64 * 10, values);
        while producer
            .send(
                BaseRecord::<str, str>::to(topic)
                    .key(sensor.as_str())
                    .payload(payload.as_str()),
            )
            .is_err()
        {
            std::thread::sleep(Duration::from_micros(100));
        }
        if i % 100 == 0 && rate.is_finite() {
            if let Some(wait) =
                Duration::from_secs_f64(i as f64 / rate).checked_sub(start.elapsed())
            {
                std::thread::sleep(wait);
            }
        }
    }
    let offered = total as f64 / start.elapsed().as_secs_f64();
    let _ = producer.flush(Duration::from_secs(30));
    offered
}

/// The anchor for Vigil's latency: a consumer group member that produces one message per record
/// it reads to another topic, with the producer settings of Vigil's alert sink (acks=all,
/// idempotent, linger 1 ms), and times each record from its read (and from its Kafka timestamp)
/// to the delivery report of its message.
struct PassThrough {
    total: usize,
    handle: std::thread::JoinHandle<Delivered>,
}

#[derive(Debug)]
struct Delivered {
    /// Microseconds from the record's read to its message's delivery report.
    read_to_ack: Histogram<u64>,
    /// Milliseconds from the record's Kafka timestamp to its message's delivery report.
    kafka_to_ack: Histogram<u64>,
    /// Delivery reports that were errors.
    failed: u64,
}

impl Delivered {
    fn read_to_ack(&self, q: f64) -> f64 {
        self.read_to_ack.value_at_quantile(q) as f64 / 1e3
    }
    fn kafka_to_ack(&self, q: f64) -> f64 {
        self.kafka_to_ack.value_at_quantile(q) as f64
    }
}

struct PassContext(Arc<Mutex<Delivered>>);

impl ClientContext for PassContext {}

impl ProducerContext for PassContext {
    type DeliveryOpaque = Box<(Instant, i64)>;

    fn delivery(&self, result: &DeliveryResult<'_>, read: Self::DeliveryOpaque) {
        let (at, ts) = *read;
        let mut d = self.0.lock().expect("delivered");
        if result.is_err() {
            d.failed += 1;
            return;
        }
        d.read_to_ack
            .saturating_record(at.elapsed().as_micros().try_into().unwrap_or(u64::MAX));
        d.kafka_to_ack
            .saturating_record((vigil::time::now_millis() - ts).max(0) as u64);
    }
}

impl PassThrough {
    /// Joins the group on `input` and returns once it has all 4 partitions.
    fn start(addr: &str, input: &str, output: &str, total: usize) -> PassThrough {
        let (addr, input, output) = (addr.to_string(), input.to_string(), output.to_string());
        let (tx, ready) = crossbeam_channel::bounded(1);
        let handle = std::thread::spawn(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &addr)
                .set("group.id", format!("{input}-group"))
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "earliest")
                .set("fetch.wait.max.ms", "5")
                .set("fetch.queue.backoff.ms", "10")
                .create()
                .expect("consumer");
            consumer.subscribe(&[input.as_str()]).expect("subscribe");
            let delivered = Arc::new(Mutex::new(Delivered {
                read_to_ack: Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram"),
                kafka_to_ack: Histogram::new_with_bounds(1, 3_600_000, 3).expect("histogram"),
                failed: 0,
            }));
            let producer: ThreadedProducer<PassContext> = ClientConfig::new()
                .set("bootstrap.servers", &addr)
                .set("acks", "all")
                .set("enable.idempotence", "true")
                .set("linger.ms", "1")
                .set("queue.buffering.max.messages", "1000000")
                .create_with_context(PassContext(delivered.clone()))
                .expect("producer");
            let mut pending = None;
            while consumer.assignment().map_or(0, |a| a.count()) < 4 {
                // Records polled while joining are passed on like the rest.
                pending = consumer.poll(Duration::from_millis(100));
                if pending.is_some() {
                    break;
                }
            }
            let _ = tx.send(());
            let mut read = 0;
            while read < total {
                let message = match pending.take() {
                    Some(m) => m,
                    None => match consumer.poll(Duration::from_millis(100)) {
                        Some(m) => m,
                        None => continue,
                    },
                };
                let Ok(m) = message else { continue };
                let at = Instant::now();
                let ts = m.timestamp().to_millis().unwrap_or(0);
                let mut record = BaseRecord::with_opaque_to(&output, Box::new((at, ts)))
                    .payload(m.payload().unwrap_or_default())
                    .key(m.key().unwrap_or_default());
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((_, back)) => {
                            record = back;
                            std::thread::sleep(Duration::from_micros(100));
                        }
                    }
                }
                read += 1;
            }
            producer.flush(Duration::from_secs(30)).expect("flush");
            drop(producer);
            Arc::try_unwrap(delivered)
                .expect("the producer is gone")
                .into_inner()
                .expect("delivered")
        });
        ready.recv().expect("the pass-through joined");
        PassThrough { handle, total }
    }

    /// Waits until every record's message is delivered.
    fn finish(self) -> Delivered {
        let d = self.handle.join().expect("pass-through");
        assert_eq!(d.failed, 0, "pass-through deliveries failed");
        assert_eq!(
            d.read_to_ack.len(),
            self.total as u64,
            "every record delivered"
        );
        d
    }
}
