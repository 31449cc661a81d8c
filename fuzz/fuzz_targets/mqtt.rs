//! The MQTT payload decoder: the first line of the input is the message's topic, the rest its
//! payload. Whatever the bytes, the topic layouts either name a sensor (and channel) or not, and
//! the payload gives one record or one dead letter with a reason, never both, never a crash.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use vigil::config::TopicLayout;

fuzz_target!(|data: &[u8]| {
    let layouts: Vec<TopicLayout> = ["plant/+/{sensor}/{channel}", "plant/+/{sensor}", "{sensor}"]
        .iter()
        .filter_map(|l| TopicLayout::parse(l).ok())
        .collect();
    let cut = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let topic = String::from_utf8_lossy(&data[..cut]);
    let payload = data.get(cut + 1..).unwrap_or_default();
    let fields = layouts.iter().find_map(|l| l.fields(&topic));
    if let Some(f) = &fields {
        assert!(f
            .sensor
            .as_ref()
            .is_some_and(|s| !s.is_empty() && !s.contains('/')));
        assert!(f
            .channel
            .as_ref()
            .is_none_or(|c| !c.is_empty() && !c.contains('/')));
    }
    let (rows, dead) = common::decode_json(payload, fields.as_ref());
    assert!(
        rows + dead.len() <= 1,
        "{rows} rows and {} dead letters from one message",
        dead.len()
    );
});
