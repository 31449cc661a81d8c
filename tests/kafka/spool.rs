//! The store-and-forward spool at the edge: devices over MQTT (mosquitto), alerts to a tansu that
//! hangs (SIGSTOP), dies and comes back, and a Vigil killed with SIGKILL in the middle of it.

use super::mqtt::{fixture_messages, publish, score_mqtt, Mosquitto};
use super::{replay_alerts, setup, strip, Broker, SERIAL};
use crate::support::{Tansu, Tool, S3};
use crate::temp_dir;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

fn spool_config(dir: &Path, max_bytes: Option<u64>) -> String {
    let mut s = format!("[edge]\nspool_dir = {:?}\n", dir.join("spool"));
    if let Some(m) = max_bytes {
        s.push_str(&format!("spool_max_bytes = {m}\n"));
    }
    s
}

fn segments(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("spool")).map_or(0, |d| {
        d.filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "spool"))
        })
        .count()
    })
}

/// Checks that `got` (the alert topic, partition by partition) holds every alert of `want`
/// (replay's) and each sensor's in replay's order, once duplicates are set aside; returns the
/// number of duplicates. A message forwarded twice from the spool is byte-identical; one scored
/// twice (its input redelivered after a kill) differs only in `raised_at`, which is stripped.
fn in_order(got: Vec<Value>, want: &[Value]) -> usize {
    let (mut seen, mut dups) = (HashSet::new(), 0);
    let mut per_sensor: HashMap<String, Vec<String>> = HashMap::new();
    for a in got {
        let s = strip(a);
        let text = s.to_string();
        if !seen.insert(text.clone()) {
            dups += 1;
            continue;
        }
        per_sensor
            .entry(s["sensor"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(text);
    }
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    for a in want {
        let s = strip(a.clone());
        expected
            .entry(s["sensor"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(s.to_string());
    }
    assert_eq!(
        per_sensor.keys().collect::<HashSet<_>>(),
        expected.keys().collect::<HashSet<_>>()
    );
    for (sensor, list) in &expected {
        assert_eq!(
            &per_sensor[sensor], list,
            "{sensor}'s alerts differ or are out of order"
        );
    }
    dups
}

/// The broker hangs for 7 s (SIGSTOP) while the fixture streams in over MQTT, then is killed and
/// restarted on its stored log: scoring goes on throughout, the spool holds what the broker does
/// not take, and every alert arrives, each sensor's in order.
#[test]
fn spool_delivers_every_alert_in_order_through_a_hung_and_a_restarted_broker() {
    let (Some(bin), Some(moto), Some(mosquitto)) = (
        Tool::Tansu.require(),
        Tool::Moto.require(),
        Tool::Mosquitto.require(),
    ) else {
        return;
    };
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let s3 = S3::start(&moto);
    let mut broker = Broker::from(Tansu::start_persistent(&bin, &s3));
    broker.topic("alerts", 2);
    broker.topic("dead", 1);
    let mqtt = Mosquitto::start(&mosquitto, &temp_dir("mosquitto"));
    let dir = temp_dir("spool-outage");
    let want = replay_alerts();
    let scorer = score_mqtt(&broker, &mqtt, &dir, "edge", &spool_config(&dir, None));
    scorer.wait_until(30, "subscribed", |m| {
        m.get("vigil_assigned_partitions") == Some(&1.0)
    });
    let messages = fixture_messages();
    let n = messages.len();
    // 64,800 records at 4,000/s: the fixture's first anomalies (01:00 and 01:30, 5.4 s and
    // 8.1 s into the feed) fall in the hang.
    let feeder = {
        let port = mqtt.port;
        std::thread::spawn(move || publish(port, &messages, Some(4000)))
    };
    std::thread::sleep(Duration::from_secs(2));
    assert!(broker.tansu.signal("-STOP"));
    let hung = Instant::now();
    let done_before = scorer.metric("vigil_records_done_total");
    let mut held = 0.0f64;
    while hung.elapsed() < Duration::from_secs(7) {
        held = held.max(scorer.metric("vigil_spool_messages"));
        std::thread::sleep(Duration::from_millis(200));
    }
    let done_during = scorer.metric("vigil_records_done_total") - done_before;
    assert!(broker.tansu.signal("-CONT"));
    eprintln!("spool: broker hung 7 s: {done_during} records scored meanwhile, at most {held} messages spooled");
    assert!(done_during > 10_000.0, "scoring stopped with the uplink");
    assert!(
        held > 0.0,
        "nothing waited in the spool while the broker hung"
    );
    std::thread::sleep(Duration::from_secs(1));
    broker.tansu.kill9();
    std::thread::sleep(Duration::from_secs(2));
    broker.tansu.restart();
    feeder.join().expect("feeder");
    scorer.wait_until(120, "every record scored and every alert forwarded", |m| {
        m.get("vigil_records_done_total") == Some(&(n as f64))
            && m.get("vigil_spool_messages") == Some(&0.0)
    });
    let forwarded = scorer.metric("vigil_spool_forwarded_total");
    let (status, log) = scorer.terminate();
    assert!(status.success(), "{log}");
    assert_eq!(segments(&dir), 0, "the spool is empty after a clean stop");
    let got = broker.alerts(want.len(), Duration::from_secs(60));
    let dups = in_order(got, &want);
    eprintln!(
        "spool outage: {} alerts, {forwarded} forwarded from the spool, {dups} duplicates",
        want.len()
    );
}

/// Vigil scores the whole fixture while the broker hangs, so every alert is in the spool, and is
/// killed with SIGKILL; the broker comes back and a new Vigil forwards everything from the spool.
#[test]
fn spool_survives_a_kill9_during_the_outage() {
    let Some(mosquitto) = Tool::Mosquitto.require() else {
        return;
    };
    let Some((_serial, broker)) = setup() else {
        return;
    };
    let mqtt = Mosquitto::start(&mosquitto, &temp_dir("mosquitto"));
    let dir = temp_dir("spool-kill");
    let want = replay_alerts();
    let cfg = spool_config(&dir, None);
    let first = score_mqtt(&broker, &mqtt, &dir, "first", &cfg);
    first.wait_until(30, "subscribed", |m| {
        m.get("vigil_assigned_partitions") == Some(&1.0)
    });
    assert!(broker.tansu.signal("-STOP"));
    let messages = fixture_messages();
    let n = messages.len();
    publish(mqtt.port, &messages, None);
    first.wait_until(120, "every record scored into the spool", |m| {
        m.get("vigil_records_done_total") == Some(&(n as f64))
            && m.get("vigil_spool_messages") == Some(&(want.len() as f64))
    });
    first.kill9();
    assert!(broker.tansu.signal("-CONT"));
    assert!(segments(&dir) > 0);
    let second = score_mqtt(&broker, &mqtt, &dir, "second", &cfg);
    second.wait_until(60, "the spool forwarded", |m| {
        m.get("vigil_spool_messages") == Some(&0.0)
            && m.get("vigil_spool_forwarded_total") == Some(&(want.len() as f64))
    });
    let (status, log) = second.terminate();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("from an earlier run are forwarded first"),
        "{log}"
    );
    let got = broker.alerts(want.len(), Duration::from_secs(30));
    let dups = in_order(got, &want);
    eprintln!("spool kill: {} alerts, {dups} duplicates", want.len());
}

/// A 1 MiB spool fills while the broker hangs: input pauses (the metric and a log line say so),
/// nothing is dropped, and once the broker is back every dead letter arrives in order.
#[test]
fn spool_full_pauses_input_and_loses_nothing() {
    let Some(mosquitto) = Tool::Mosquitto.require() else {
        return;
    };
    let Some((_serial, broker)) = setup() else {
        return;
    };
    let mqtt = Mosquitto::start(&mosquitto, &temp_dir("mosquitto"));
    let dir = temp_dir("spool-full");
    let scorer = score_mqtt(
        &broker,
        &mqtt,
        &dir,
        "full",
        &spool_config(&dir, Some(1 << 20)),
    );
    scorer.wait_until(30, "subscribed", |m| {
        m.get("vigil_assigned_partitions") == Some(&1.0)
    });
    assert!(broker.tansu.signal("-STOP"));
    // 3,000 malformed payloads of 1 kB: 3 MB of dead letters for a 1 MiB spool.
    let n = 3000;
    let pad = "x".repeat(1000);
    let messages: Vec<(String, String)> = (0..n)
        .map(|i| ("plant/line-1/d1".to_string(), format!("bad {i:05} {pad}")))
        .collect();
    let feeder = {
        let port = mqtt.port;
        std::thread::spawn(move || publish(port, &messages, None))
    };
    scorer.wait_until(60, "the spool full", |m| {
        m.get("vigil_spool_full") == Some(&1.0)
    });
    std::thread::sleep(Duration::from_secs(2));
    let m = scorer.metrics();
    assert!(m["vigil_spool_bytes"] <= (1 << 20) as f64, "{m:?}");
    assert_eq!(
        m["vigil_spool_full"], 1.0,
        "still full: the broker still hangs"
    );
    let log = std::fs::read_to_string(&scorer.log).unwrap_or_default();
    assert!(log.contains("spool full"), "{log}");
    assert!(broker.tansu.signal("-CONT"));
    feeder.join().expect("feeder");
    scorer.wait_until(120, "everything forwarded", |m| {
        m.get("vigil_spool_forwarded_total") == Some(&(n as f64))
            && m.get("vigil_spool_full") == Some(&0.0)
    });
    let (status, log) = scorer.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("input resumes"), "{log}");
    let dead = broker.read("dead", 1, n, Duration::from_secs(30));
    let payloads: Vec<String> = dead
        .iter()
        .map(|(p, ..)| String::from_utf8_lossy(&p[..9.min(p.len())]).into_owned())
        .collect();
    let mut first_seen = Vec::new();
    let mut seen = HashSet::new();
    for p in &payloads {
        if seen.insert(p.clone()) {
            first_seen.push(p.clone());
        }
    }
    let want: Vec<String> = (0..n).map(|i| format!("bad {i:05}")).collect();
    assert_eq!(first_seen, want, "dead letters missing or out of order");
    eprintln!(
        "spool full: {n} dead letters, {} duplicates",
        payloads.len() - n
    );
}
