//! `vigil score` reading devices from a real MQTT broker (Debian's mosquitto, started per test on
//! a free loopback port), alerts and dead letters to tansu.

use super::{replay_alerts, setup, sorted, Broker, Scorer};
use crate::support::{free_port, Tool};
use crate::temp_dir;
use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A mosquitto broker on a free loopback port, stopped on drop.
pub(super) struct Mosquitto {
    child: Child,
    pub(super) port: u16,
}

impl Mosquitto {
    pub(super) fn start(bin: &Path, dir: &Path) -> Mosquitto {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        // Vigil acknowledges a message once its alerts are durable, so the broker's window of
        // unacknowledged messages bounds throughput: raised from mosquitto's 20. The session's
        // queue holds whatever arrives while Vigil is away.
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 1000\n\
                 max_queued_messages 0\npersistence false\n"
            ),
        )
        .expect("mosquitto.conf");
        let child = Command::new(bin)
            .args(["-c", conf.to_str().expect("utf8")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("mosquitto.log")).expect("log"))
            .spawn()
            .expect("start mosquitto");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Mosquitto { child, port }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes `(topic, payload)` at QoS 1 (at most `rate` a second) and returns once the broker
/// acknowledged every one.
pub(super) fn publish(port: u16, messages: &[(String, String)], rate: Option<u32>) {
    let mut options = MqttOptions::new(format!("feeder-{}", free_port()), "127.0.0.1", port);
    options.set_inflight(200).set_request_channel_capacity(1024);
    let (client, mut connection) = Client::new(options, 1024);
    let feed = {
        let messages = messages.to_vec();
        std::thread::spawn(move || {
            let start = Instant::now();
            for (i, (topic, payload)) in messages.into_iter().enumerate() {
                if let Some(r) = rate {
                    let due = start + Duration::from_secs_f64(i as f64 / f64::from(r));
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
                client
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .expect("publish");
            }
            client
        })
    };
    let (mut acked, deadline) = (0, Instant::now() + Duration::from_secs(300));
    while acked < messages.len() {
        assert!(
            Instant::now() < deadline,
            "{acked} of {} acknowledged",
            messages.len()
        );
        match connection.recv_timeout(Duration::from_secs(1)) {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => panic!("feeder: {e}"),
        }
    }
    let client = feed.join().expect("feeder thread");
    let _ = client.disconnect();
    while let Ok(Ok(e)) = connection.recv_timeout(Duration::from_secs(1)) {
        if matches!(e, Event::Outgoing(Outgoing::Disconnect)) {
            break;
        }
    }
}

/// The fixture as MQTT messages: each pump publishes its records to `plant/line-1/<pump>`, whose
/// layout `plant/+/{sensor}` names the sensor (the payload does not).
pub(super) fn fixture_messages() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(crate::root().join("fixtures/pumps.csv")).expect("fixture");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let values: serde_json::Map<String, Value> = header[2..]
                .iter()
                .zip(&cells[2..])
                .map(|(k, v)| {
                    let v = v.parse::<f64>().map_or(Value::Null, Value::from);
                    (k.to_string(), v)
                })
                .collect();
            let payload = serde_json::json!({"ts": cells[0], "values": values});
            (format!("plant/line-1/{}", cells[1]), payload.to_string())
        })
        .collect()
}

/// `vigil score` on `mqtt`'s topics `filter`, alerts to `broker`.
pub(super) fn score_mqtt(
    broker: &Broker,
    mqtt: &Mosquitto,
    dir: &Path,
    tag: &str,
    extra: &str,
) -> Scorer {
    let cfg = dir.join(format!("{tag}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[mqtt]\nbroker = \"{}\"\ntopics = [\"plant/#\"]\nclient_id = \"vigil-edge\"\n\
             topic_layouts = [\"plant/+/{{sensor}}\"]\n{extra}",
            mqtt.addr()
        ),
    )
    .expect("config");
    let cfg = cfg.to_str().expect("utf8");
    Scorer::spawn(
        &[
            "score",
            "--config",
            cfg,
            "--bootstrap-servers",
            &broker.addr,
        ],
        dir,
        tag,
        &[],
    )
}

fn brokers() -> Option<(std::sync::MutexGuard<'static, ()>, Broker, Mosquitto)> {
    let bin = Tool::Mosquitto.require()?;
    let (guard, broker) = setup()?;
    let mqtt = Mosquitto::start(&bin, &temp_dir("mosquitto"));
    Some((guard, broker, mqtt))
}

/// The fixture published over MQTT gives exactly the alerts of `vigil replay`; malformed payloads
/// go to the dead-letter topic with their reason and MQTT topic, and scoring goes on.
#[test]
fn mqtt_records_score_as_replay_and_malformed_payloads_are_dead_letters() {
    let Some((_serial, broker, mqtt)) = brokers() else {
        return;
    };
    let dir = temp_dir("mqtt-replay");
    let want = replay_alerts();
    let scorer = score_mqtt(&broker, &mqtt, &dir, "score", "");
    scorer.wait_until(30, "subscribed", |m| {
        m.get("vigil_assigned_partitions") == Some(&1.0)
    });
    let mut messages = fixture_messages();
    let bad = [
        ("plant/line-1/pump-9", "not json", "bad JSON record"),
        (
            "plant/line-1/pump-9",
            r#"{"ts":1,"values":{}}"#,
            "no values",
        ),
        (
            "plant/line-1/pump-9",
            r#"{"sensor":"pump-1","ts":1,"values":{"p":1}}"#,
            "in a topic of sensor",
        ),
        (
            "plant/unmapped",
            r#"{"ts":1,"values":{"p":1}}"#,
            "missing field `sensor`",
        ),
    ];
    for (i, (topic, payload, _)) in bad.iter().enumerate() {
        messages.insert(1000 + 5000 * i, (topic.to_string(), payload.to_string()));
    }
    publish(mqtt.port, &messages, None);
    scorer.wait_until(120, "every record done", |m| {
        m.get("vigil_records_done_total") == Some(&((messages.len() - bad.len()) as f64))
            && m.get("vigil_dead_letters_total") == Some(&(bad.len() as f64))
    });
    let (status, log) = scorer.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("connected to MQTT broker"), "{log}");

    let got = broker.alerts(want.len(), Duration::from_secs(30));
    assert_eq!(
        sorted(got),
        sorted(want),
        "MQTT alerts differ from replay's"
    );
    let dead = broker.read("dead", 1, bad.len(), Duration::from_secs(20));
    assert_eq!(dead.len(), bad.len());
    for (payload, headers, ..) in &dead {
        let reason = &headers["vigil.reason"];
        let (topic, _, why) = bad
            .iter()
            .find(|(_, p, _)| p.as_bytes() == payload.as_slice())
            .unwrap_or_else(|| panic!("unexpected dead letter {reason}"));
        assert!(reason.contains(why), "{reason} should say {why}");
        assert_eq!(headers["vigil.source.topic"], format!("mqtt:{topic}"));
    }
}

/// Vigil killed with SIGKILL while the broker holds a backlog for its session: after a restart,
/// every message is scored and every dead letter derived from one is published (each message
/// is acknowledged only once its output is durable, so nothing the broker dropped from the
/// session was unfinished). Dead letters are the probe: every message makes exactly one.
#[test]
fn mqtt_kill9_mid_stream_loses_nothing() {
    let Some((_serial, broker, mqtt)) = brokers() else {
        return;
    };
    let dir = temp_dir("mqtt-kill");
    let n = 20_000;
    let messages: Vec<(String, String)> = (0..n)
        .map(|i| (format!("plant/line-1/d{}", i % 7), format!("{{\"n\":{i}}}")))
        .collect();
    // The session exists (subscribed) before the feed, so the broker keeps what Vigil misses.
    let first = score_mqtt(&broker, &mqtt, &dir, "first", "");
    first.wait_until(30, "subscribed", |m| {
        m.get("vigil_assigned_partitions") == Some(&1.0)
    });
    let feeder = {
        let port = mqtt.port;
        let messages = messages.clone();
        std::thread::spawn(move || publish(port, &messages, Some(4000)))
    };
    first.wait_until(60, "part of the feed scored", |m| {
        m.get("vigil_dead_letters_total")
            .is_some_and(|d| *d >= (n / 4) as f64)
    });
    let before = first.metric("vigil_dead_letters_total");
    first.kill9();
    eprintln!("mqtt: killed after {before} of {n} messages");
    let second = score_mqtt(&broker, &mqtt, &dir, "second", "");
    feeder.join().expect("feeder");
    assert!(before < n as f64, "the kill came after the whole feed");
    let dead = broker.read("dead", 1, n, Duration::from_secs(120));
    let (status, log) = second.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("session kept"), "{log}");
    let distinct: std::collections::HashSet<&[u8]> =
        dead.iter().map(|(p, ..)| p.as_slice()).collect();
    eprintln!(
        "mqtt kill: {} dead letters for {n} messages; {} duplicates",
        dead.len(),
        dead.len() - distinct.len()
    );
    assert_eq!(distinct.len(), n, "messages lost across the kill");
}
