//! Pipeline bench: replay of the bundled fixture end to end (decode, route, score, alert, write),
//! with 1 and 2 shards. `cargo bench --bench pipeline`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use vigil::config::{Config, RawConfig};
use vigil::replay::replay;

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

criterion_group!(benches, replay_fixture);
criterion_main!(benches);
