//! The one place flags, environment and file become a [`Config`].

use super::{Config, ConfigError, RawConfig};
use std::path::{Path, PathBuf};

/// What the command line sets over the file and the environment. Every field is optional: unset
/// ones leave the file's (or the environment's) value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub shards: Option<usize>,
    pub batch_size: Option<usize>,
    pub speed: Option<String>,
    pub alerts: Option<PathBuf>,
    pub dead_letter: Option<PathBuf>,
    pub metrics: Option<PathBuf>,
    /// Added to `input.ignore_columns`.
    pub ignore: Vec<String>,
    pub bootstrap_servers: Option<String>,
    pub group_id: Option<String>,
    /// Replaces `kafka.input_topics` when not empty.
    pub input_topics: Vec<String>,
    pub alert_topic: Option<String>,
    pub dead_letter_topic: Option<String>,
    pub http_listen: Option<String>,
}

/// The `VIGIL_*` variables of the Kafka and HTTP settings, over the file.
fn apply_env(raw: &mut RawConfig, var: impl Fn(&str) -> Option<String>) {
    let k = &mut raw.kafka;
    k.bootstrap_servers = var("VIGIL_BOOTSTRAP_SERVERS").or(k.bootstrap_servers.take());
    k.group_id = var("VIGIL_GROUP_ID").or(k.group_id.take());
    if let Some(t) = var("VIGIL_INPUT_TOPICS") {
        k.input_topics = Some(t.split(',').map(|s| s.trim().to_string()).collect());
    }
    k.alert_topic = var("VIGIL_ALERT_TOPIC").or(k.alert_topic.take());
    k.dead_letter_topic = var("VIGIL_DEAD_LETTER_TOPIC").or(k.dead_letter_topic.take());
    k.transactional_id = var("VIGIL_TRANSACTIONAL_ID").or(k.transactional_id.take());
    raw.http.listen = var("VIGIL_HTTP_LISTEN").or(raw.http.listen.take());
    raw.edge.spool_dir = var("VIGIL_SPOOL_DIR")
        .map(PathBuf::from)
        .or(raw.edge.spool_dir.take());
    let m = &mut raw.mqtt;
    m.broker = var("VIGIL_MQTT_BROKER").or(m.broker.take());
    if let Some(t) = var("VIGIL_MQTT_TOPICS") {
        m.topics = Some(t.split(',').map(|s| s.trim().to_string()).collect());
    }
}

impl Overrides {
    /// Sets the flags over `raw`.
    fn apply(&self, raw: &mut RawConfig) {
        let o = self.clone();
        let p = &mut raw.pipeline;
        p.shards = o.shards.or(p.shards);
        p.batch_size = o.batch_size.or(p.batch_size);
        p.speed = o.speed.or(p.speed.take());
        let out = &mut raw.output;
        out.alerts = o.alerts.or(out.alerts.take());
        out.dead_letter = o.dead_letter.or(out.dead_letter.take());
        out.metrics = o.metrics.or(out.metrics.take());
        raw.input.ignore_columns.extend(o.ignore);
        let k = &mut raw.kafka;
        k.bootstrap_servers = o.bootstrap_servers.or(k.bootstrap_servers.take());
        k.group_id = o.group_id.or(k.group_id.take());
        if !o.input_topics.is_empty() {
            k.input_topics = Some(o.input_topics);
        }
        k.alert_topic = o.alert_topic.or(k.alert_topic.take());
        k.dead_letter_topic = o.dead_letter_topic.or(k.dead_letter_topic.take());
        raw.http.listen = o.http_listen.or(raw.http.listen.take());
    }
}

/// The configuration of a run: `file` (or the defaults), the `VIGIL_*` environment over it,
/// `flags` over both, validated.
pub fn load(file: Option<&Path>, flags: &Overrides) -> Result<Config, ConfigError> {
    let mut raw = match file {
        Some(p) => RawConfig::from_file(p)?,
        None => RawConfig::default(),
    };
    apply_env(&mut raw, |name| {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    });
    flags.apply(&mut raw);
    Config::validate(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_environment_which_wins_over_the_file() {
        let mut raw = RawConfig::from_toml(
            "[kafka]\ngroup_id = \"file\"\nalert_topic = \"file-alerts\"\nbootstrap_servers = \"file:1\"\n",
        )
        .expect("parses");
        apply_env(&mut raw, |name| match name {
            "VIGIL_GROUP_ID" => Some("env".into()),
            "VIGIL_ALERT_TOPIC" => Some("env-alerts".into()),
            _ => None,
        });
        Overrides {
            alert_topic: Some("flag-alerts".into()),
            shards: Some(3),
            ignore: vec!["label".into()],
            ..Overrides::default()
        }
        .apply(&mut raw);
        let c = Config::validate(raw).expect("valid");
        assert_eq!(c.kafka.bootstrap_servers, "file:1");
        assert_eq!(c.kafka.group_id, "env");
        assert_eq!(c.kafka.alert_topic, "flag-alerts");
        assert_eq!(c.pipeline.shards, 3);
        assert_eq!(c.input.ignore_columns, ["label"]);
    }
}
