//! Pipeline bench: replay of the bundled fixture end to end (decode, route, score, alert, write),
//! with 1 and 2 shards (criterion); then a 3.6 M-record simulation replayed against a bare decode
//! of the same file (the same reading, CSV parsing and float conversion into columns on one
//! thread, no pipeline, no detector), printed as `ratio vigil / bare = X` (target >= 0.8), and
//! the memory per sensor of a replay of a million sensors. `cargo bench --bench pipeline`.

mod common;
use common::best;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;
use vigil::config::{Config, RawConfig};
use vigil::decode::Decoder;
use vigil::record::{Interner, NameTable};
use vigil::replay::replay;
use vigil::sources::file;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/pumps.csv")
}

fn replay_fixture(c: &mut Criterion) {
    let out = std::env::temp_dir().join(format!("vigil-bench-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("temp dir");
    let records = std::fs::read_to_string(fixture())
        .expect("fixture")
        .lines()
        .count() as u64
        - 1;
    let mut group = c.benchmark_group("replay_fixture_csv");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(records));
    for shards in [1usize, 2] {
        let raw =
            RawConfig::from_toml(&format!("[pipeline]\nshards = {shards}\n")).expect("config");
        let mut config = Config::validate(raw).expect("valid");
        config.output.alerts = Some(out.join("alerts.jsonl"));
        config.output.dead_letter = out.join("dead.jsonl");
        group.bench_with_input(BenchmarkId::new("shards", shards), &shards, |b, _| {
            b.iter(|| {
                let report = replay(
                    &config,
                    &[fixture()],
                    Arc::new(AtomicBool::new(false)),
                    vigil::replay::ReplayOptions::default(),
                )
                .expect("replay");
                assert_eq!(report.records, records);
            })
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&out);
}

/// The decode stage alone on Kafka messages: the fixture's 64,800 records as the load generator
/// sends them (JSON, channels in the fixture's order), as consumer polls of 1024 messages, decoded
/// into record batches as `vigil score`'s decode thread does.
fn decode_messages(c: &mut Criterion) {
    use vigil::decode::{Input, MessageBatch};
    use vigil::record::Origin;
    let rows = common::fixture_rows(&fixture());
    let polls: Vec<Input> = rows
        .chunks(1024)
        .enumerate()
        .map(|(p, chunk)| {
            let mut poll = MessageBatch::new(std::time::Instant::now());
            poll.ticket = p as u64;
            for (i, (sensor, values)) in chunk.iter().enumerate() {
                let origin = Origin {
                    source: 0,
                    position: (p * 1024 + i) as u64,
                };
                let ts = 1_767_571_200_000 + i as i64;
                poll.push(
                    origin,
                    common::payload(sensor, ts, values).as_bytes(),
                    0,
                    false,
                    None,
                );
            }
            Input::Messages(poll)
        })
        .collect();
    let config = Config::validate(RawConfig::default()).expect("valid");
    let mut decoder = Decoder::new(
        config.input.clone(),
        Arc::new(NameTable::default()),
        config.pipeline.batch_size,
        config.pipeline.speed,
    );
    let mut group = c.benchmark_group("decode_kafka_json");
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function("fixture", |b| {
        b.iter(|| {
            let (mut dead, mut n) = (Vec::new(), 0usize);
            for poll in &polls {
                decoder.input(poll, &mut dead, &mut |batch| {
                    n += black_box(batch).len();
                    true
                });
            }
            assert!(dead.is_empty() && n == rows.len());
        })
    });
    group.finish();
}

/// Reads and decodes `path` on this thread as the replay's source and decode stages do, and
/// drops the batches; returns the records decoded.
fn bare_decode(path: &Path, config: &Config) -> u64 {
    let mut decoder = Decoder::new(
        config.input.clone(),
        Arc::new(NameTable::default()),
        config.pipeline.batch_size,
        config.pipeline.speed,
    );
    let mut sources = Interner::new(Arc::new(NameTable::default()));
    let stop = AtomicBool::new(false);
    let input = file::open(path, &mut decoder, &mut sources, &stop).expect("open");
    let (tx, rx) = crossbeam_channel::unbounded();
    file::read(vec![input], &tx, &stop, &AtomicU64::new(0)).expect("read");
    drop(tx);
    let mut dead = Vec::new();
    let mut rows = 0u64;
    for chunk in rx {
        decoder.input(&chunk, &mut dead, &mut |b| {
            rows += black_box(b).len() as u64;
            true
        });
    }
    assert!(dead.is_empty());
    rows
}

/// The replay of a 3.6 M-record simulation against [`bare_decode`] of the same file.
fn replay_vs_bare() {
    let dir = std::env::temp_dir().join(format!("vigil-bench-bare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sim = dir.join("sim.csv");
    let opts = vigil::simulate::SimOptions {
        pumps: 100,
        seconds: 36_000,
        seed: 7,
        start_ms: 1_767_571_200_000,
    };
    let (csv, _) = vigil::simulate::generate(&opts, "sim.csv").expect("simulate");
    std::fs::write(&sim, csv).expect("write the simulation");
    let size = std::fs::metadata(&sim).map(|m| m.len()).unwrap_or(0);
    let mut config = Config::validate(RawConfig::default()).expect("valid");
    config.output.alerts = Some(dir.join("alerts.jsonl"));
    config.output.dead_letter = dir.join("dead.jsonl");
    let mut records = 0;
    let bare = best(3, || records = bare_decode(&sim, &config));
    let mut replayed = 0;
    let vigil = best(3, || {
        replayed = replay(
            &config,
            std::slice::from_ref(&sim),
            Arc::new(AtomicBool::new(false)),
            vigil::replay::ReplayOptions::default(),
        )
        .expect("replay")
        .records;
    });
    assert_eq!(records, replayed);
    let rate = |t: Duration| records as f64 / t.as_secs_f64() / 1e6;
    println!(
        "\nreplay vs bare decode, {records} records ({:.0} MB), best of 3, {}:",
        size as f64 / 1e6,
        common::cpu()
    );
    println!("  bare decode (one thread): {:.2} M records/s", rate(bare));
    println!(
        "  vigil replay (default detectors, {} shards): {:.2} M records/s",
        config.pipeline.shards,
        rate(vigil)
    );
    println!(
        "  ratio vigil / bare = {:.2} (target >= 0.8)",
        bare.as_secs_f64() / vigil.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    replay_vs_bare();
}

criterion_group!(benches, replay_fixture, decode_messages);
