//! Where alerts and dead letters go, and their JSON shape (the same in a file and on a topic).

pub mod file;
pub mod kafka;
pub mod spool;

use crate::contract::{Alert, AlertEvent, Names};
use crate::record::DeadLetter;
use crate::time::{format_iso, now_millis};
use serde::Serialize;

#[derive(Serialize)]
struct AlertLine<'a> {
    sensor: &'a str,
    channel: &'a str,
    detector: &'a str,
    event: &'static str,
    ts: String,
    score: f32,
    value: f32,
    expected: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    streak_start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    opened: Option<String>,
    peak: f32,
    raised_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    contributions: Vec<Contribution<'a>>,
    #[serde(flatten)]
    origin: OriginJson<'a>,
}

/// A channel's share of a multivariate score.
#[derive(Serialize)]
struct Contribution<'a> {
    channel: &'a str,
    share: f32,
}

/// Where the record that raised an alert came from.
#[derive(Serialize)]
#[serde(untagged)]
enum OriginJson<'a> {
    File {
        source: &'a str,
        line: u64,
    },
    Kafka {
        topic: &'a str,
        partition: i32,
        offset: u64,
    },
}

fn origin_json<'a>(names: &Names, source: &'a str, position: u64) -> OriginJson<'a> {
    match source
        .rsplit_once('/')
        .and_then(|(t, p)| Some((t, p.parse().ok()?)))
    {
        Some((topic, partition)) if names.kafka => OriginJson::Kafka {
            topic,
            partition,
            offset: position,
        },
        _ => OriginJson::File {
            source,
            line: position,
        },
    }
}

/// An alert as one JSON object (no newline).
pub fn alert_json(alert: &Alert, names: &Names, out: &mut Vec<u8>) {
    let sensor = names.sensors.get(alert.sensor);
    let source = names.sources.get(alert.origin.source);
    let since = format_iso(alert.since);
    let line = AlertLine {
        sensor: &sensor,
        channel: &alert.channel,
        detector: &alert.detector,
        event: alert.event.name(),
        ts: format_iso(alert.ts),
        score: alert.score,
        value: alert.value,
        expected: alert.expected,
        streak_start: (alert.event == AlertEvent::Open).then(|| since.clone()),
        opened: (alert.event == AlertEvent::Close).then_some(since),
        peak: alert.peak,
        raised_at: format_iso(now_millis()),
        role: alert.shadow.then_some("shadow"),
        reason: alert.reason,
        contributions: alert
            .contributions
            .iter()
            .map(|(channel, share)| Contribution {
                channel,
                share: (share * 1000.0).round() / 1000.0,
            })
            .collect(),
        origin: origin_json(names, &source, alert.origin.position),
    };
    // Serializing plain strings and numbers into a Vec cannot fail.
    let _ = serde_json::to_writer(out, &line);
}

#[derive(Serialize)]
struct DeadLine<'a> {
    source: &'a str,
    line: u64,
    reason: &'a str,
    raw: std::borrow::Cow<'a, str>,
}

/// A dead letter as one JSON object (no newline). Invalid UTF-8 in the raw bytes is shown as U+FFFD.
pub fn dead_letter_json(dead: &DeadLetter, names: &Names, out: &mut Vec<u8>) {
    let source = names.sources.get(dead.origin.source);
    let line = DeadLine {
        source: &source,
        line: dead.origin.position,
        reason: &dead.reason,
        raw: String::from_utf8_lossy(&dead.raw),
    };
    let _ = serde_json::to_writer(out, &line);
}
