//! Configuration in two steps: the raw TOML shape ([`raw`]: every field documented, unknown fields
//! refused), then one validated [`Config`] in which nothing is a raw string any more. Validation
//! checks values only; it reads no model: models are read when detectors are loaded
//! (`crate::detectors::load`).
//!
//! [`load`] is the one place a run's configuration is made: the file (or the built-in defaults),
//! then the `VIGIL_*` environment, then command-line flags ([`Overrides`]), highest last.
//! `VIGIL_ISA` is read by the kernels' own choice (`vigil_kernels::isa::choose`), over
//! `pipeline.isa`.

pub mod detectors;
mod overlay;
pub mod policy;
pub mod raw;
mod sections;

pub use detectors::{zscore_params, ChannelRange, DetectorSpec, PcaSpec, SpecKind, DEFAULT_ZSCORE};
pub use overlay::{load, Overrides};
pub use policy::{PolicyBase, PolicyConfig, DEFAULT_POLICY, LIKELIHOOD_POLICY, SEQUENCE_POLICY};
pub use raw::RawConfig;
pub use sections::{
    Delivery, InputConfig, KafkaConfig, MqttConfig, OutputConfig, PipelineConfig, Properties,
    Speed, SpoolConfig, TopicLayout,
};

use raw::RawPolicy;
use std::path::PathBuf;

/// What went wrong reading or checking configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Isa(vigil_kernels::isa::IsaError),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl ConfigError {
    pub(crate) fn invalid(msg: impl Into<String>) -> ConfigError {
        ConfigError::Invalid(msg.into())
    }
}

/// Everything a run needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub input: InputConfig,
    pub pipeline: PipelineConfig,
    /// `[alerts]`, checked: detectors whose policy starts at a model's threshold finish theirs
    /// from it when they are loaded.
    pub alerts: RawPolicy,
    /// The detectors, in order. Never empty: without entries, one sequence detector with its
    /// defaults.
    pub detectors: Vec<DetectorSpec>,
    /// `onnx.runtime`: the ONNX Runtime library, when set.
    pub onnx_runtime: Option<PathBuf>,
    pub output: OutputConfig,
    pub kafka: KafkaConfig,
    pub mqtt: MqttConfig,
    /// `[edge]`: the spool, when set.
    pub spool: Option<SpoolConfig>,
}

/// The detector set when none is configured, the best measured on NAB and SKAB together (see
/// the README's evaluation table): the sequence detector on records of one channel (a lone
/// series, as NAB's), the baseline detector on records of several (a machine's channels, as
/// SKAB's and the bundled pumps').
fn default_detectors() -> Vec<raw::RawDetector> {
    vec![
        raw::RawDetector {
            common: raw::RawCommon {
                max_channels: Some(1),
                ..Default::default()
            },
            kind: raw::RawKind::Sequence(Default::default()),
        },
        raw::RawDetector {
            common: raw::RawCommon {
                min_channels: Some(2),
                ..Default::default()
            },
            kind: raw::RawKind::Baseline(Default::default()),
        },
    ]
}

impl Config {
    /// Checks `raw`'s values.
    pub fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
        let input = sections::input(raw.input)?;
        let pipeline = sections::pipeline(raw.pipeline)?;
        PolicyConfig::from_raw(&raw.alerts, &DEFAULT_POLICY, "[alerts]")?;
        let entries = if raw.detectors.is_empty() {
            default_detectors()
        } else {
            raw.detectors
        };
        let detectors = entries
            .into_iter()
            .map(|d| detectors::spec(d, &raw.alerts))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, d) in detectors.iter().enumerate() {
            if let Some(name) = &d.name {
                if detectors[..i].iter().any(|e| e.name.as_ref() == Some(name)) {
                    return Err(ConfigError::invalid(format!(
                        "two detectors are named {name:?}"
                    )));
                }
            }
        }
        Ok(Config {
            input,
            pipeline,
            alerts: raw.alerts,
            detectors,
            onnx_runtime: raw.onnx.runtime,
            output: sections::output(raw.output),
            kafka: sections::kafka(raw.kafka, raw.http)?,
            mqtt: sections::mqtt(raw.mqtt)?,
            spool: sections::spool(raw.edge)?,
        })
    }
}

/// This host's name (`localhost` when it cannot be read): names an instance by default.
pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or fails.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let name = std::ffi::CStr::from_bytes_until_nul(&buf)
        .ok()
        .filter(|_| ok)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let c = Config::validate(RawConfig::default()).expect("valid");
        assert!(c.pipeline.isa().is_available());
        assert_eq!(c.detectors.len(), 2);
        assert_eq!(c.detectors[0].label(), "sequence");
        assert!(matches!(c.detectors[0].kind, SpecKind::Sequence(_)));
        assert_eq!(c.detectors[1].label(), "baseline");
        assert!(matches!(c.detectors[1].kind, SpecKind::Baseline(_)));
        let (one, several) = (c.detectors[0].channels, c.detectors[1].channels);
        assert!(one.contains(1) && !one.contains(2));
        assert!(!several.contains(1) && several.contains(2) && several.contains(1000));
    }

    #[test]
    fn a_channel_range_must_be_a_range() {
        for (toml, want) in [
            (
                "[[detectors]]\nkind = \"zscore\"\nmin_channels = 0\n",
                "min_channels",
            ),
            (
                "[[detectors]]\nkind = \"zscore\"\nmin_channels = 3\nmax_channels = 2\n",
                "min_channels",
            ),
        ] {
            let raw = RawConfig::from_toml(toml).expect("parses");
            let e = Config::validate(raw).expect_err(toml).to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn a_full_file_parses() {
        let raw = RawConfig::from_toml(
            r#"
            [input]
            ignore_columns = ["anomaly", "changepoint"]
            delimiter = ";"
            [pipeline]
            shards = 4
            speed = "realtime"
            [alerts]
            open = 5.0
            [[detectors]]
            kind = "zscore"
            name = "fast"
            half_life = 30
            [detectors.alerts]
            open_after = 1
            "#,
        )
        .expect("parses");
        let c = Config::validate(raw).expect("valid");
        assert_eq!(c.input.delimiter, Some(b';'));
        assert_eq!(c.pipeline.shards, 4);
        assert_eq!(c.pipeline.speed, Speed::Factor(1.0));
        let d = &c.detectors[0];
        let p = PolicyConfig::resolve(PolicyBase::ZScore, &c.alerts, &d.alerts, "fast")
            .expect("policy");
        assert_eq!(p.open, 5.0);
        assert_eq!(p.open_after, 1);
    }

    #[test]
    fn sequence_keys_reach_its_parameters_beside_the_likelihood_s() {
        use vigil_kernels::likelihood::LikelihoodSpec;
        use vigil_kernels::sequence::{SequenceParams, SequenceSpec};
        let raw = RawConfig::from_toml(
            "[[detectors]]\nkind = \"sequence\"\nlevels = 8\norder = 2\nlearn = 50\ncap = 5\nextent_score = 0\ntime_of_day = false\n",
        )
        .expect("parses");
        let c = Config::validate(raw).expect("valid");
        let want = SequenceParams::new(&SequenceSpec {
            levels: 8,
            order: 2,
            learn: 50,
            extent_score: 0.0,
            time_of_day: false,
            likelihood: LikelihoodSpec {
                cap: 5.0,
                ..LikelihoodSpec::default()
            },
            ..SequenceSpec::default()
        })
        .expect("valid");
        assert!(matches!(&c.detectors[0].kind, SpecKind::Sequence(p) if *p == want));
        let p = PolicyConfig::resolve(PolicyBase::Sequence, &c.alerts, &c.detectors[0].alerts, "s")
            .expect("policy");
        assert_eq!((p.open, p.open_after), (4.0, 3));
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused_in_one_line() {
        for (text, want) in [
            ("[pipeline]\nshardz = 3\n", "line 2: unknown field `shardz`"),
            (
                "[[detectors]]\nkind = \"zscore\"\nhalf_lfe = 3\n",
                "unknown field `half_lfe`",
            ),
            (
                "[[detectors]]\nkind = \"magic\"\n",
                "unknown variant `magic`",
            ),
            (
                "[[detectors]]\nkind = \"zscore\"\nsensors = [\"a\"]\n",
                "unknown field `sensors`",
            ),
            (
                "[[detectors]]\nkind = \"zscore\"\n[detectors.alerts]\nopn = 1\n",
                "unknown field `opn`",
            ),
            ("[[detectors]]\nname = \"x\"\n", "missing field `kind`"),
            ("bogus = 1\n", "unknown field `bogus`"),
        ] {
            let err = RawConfig::from_toml(text).expect_err(text);
            assert!(err.contains(want), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
        for (text, want) in [
            (
                "[kafka]\ndelivery = \"exactly-twice\"\n",
                "kafka.delivery must be \"at-least-once\" or \"exactly-once\"",
            ),
            (
                "[kafka]\ndelivery = \"exactly-once\"\ntransaction_interval_ms = 0\n",
                "kafka.transaction_interval_ms must be positive",
            ),
            ("[pipeline]\nshards = 0\n", "shards must be positive"),
            (
                "[kafka]\nbootstrap_servers = \" , \"\n",
                "kafka.bootstrap_servers must name at least one broker",
            ),
            (
                "[pipeline]\nchannel_capacity = 100000000000\n",
                "pipeline.channel_capacity must be at most 4096, got 100000000000",
            ),
            (
                "[pipeline]\nbatch_size = 100000000000\n",
                "pipeline.batch_size must be at most 1048576",
            ),
            (
                "[[detectors]]\nkind = \"zscore\"\nname = \"\"\n",
                "a zscore detector's name cannot be empty",
            ),
            ("[pipeline]\nspeed = \"fast\"\n", "speed must be"),
            ("[pipeline]\nisa = \"sse9\"\n", "unknown instruction set"),
            ("[alerts]\nopen = 2.0\nclose = 3.0\n", "close < open"),
            ("[[detectors]]\nkind = \"zscore\"\nwarmup = 0\n", "warmup"),
            (
                "[[detectors]]\nkind = \"likelihood\"\ncap = 0\n",
                "detector likelihood: cap must be",
            ),
            (
                "[[detectors]]\nkind = \"likelihood\"\nhistory_half_life = -1\n",
                "history_half_life",
            ),
            (
                "[[detectors]]\nkind = \"sequence\"\norder = 9\n",
                "detector sequence: order must be between 1 and 8",
            ),
            (
                "[[detectors]]\nkind = \"sequence\"\nmemory_bits = 30\n",
                "memory_bits must be between 10 and 20",
            ),
            (
                "[[detectors]]\nkind = \"sequence\"\nlevels = 0\n",
                "levels must be",
            ),
            (
                "[[detectors]]\nkind = \"sequence\"\nhistory_warmup = 0\n",
                "history_warmup",
            ),
            ("[input]\nepoch_unit = \"days\"\n", "epoch_unit"),
            ("[[detectors]]\nkind = \"iforest\"\n", "model = \"FILE\" is required"),
            (
                "[[detectors]]\nkind = \"zscore\"\nrole = \"boss\"\n",
                "role must be",
            ),
            (
                "[[detectors]]\nkind = \"zscore\"\nname = \"a\"\n[[detectors]]\nkind = \"likelihood\"\nname = \"a\"\n",
                "two detectors are named \"a\"",
            ),
        ] {
            let raw = RawConfig::from_toml(text).expect(text);
            let err = Config::validate(raw).expect_err(text).to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn exactly_once_names_its_producer_after_the_group_and_host_unless_told() {
        let raw = RawConfig::from_toml("[kafka]\ndelivery = \"exactly-once\"\ngroup_id = \"g\"\n")
            .expect("parses");
        let c = Config::validate(raw).expect("valid");
        assert_eq!(
            c.kafka.delivery,
            sections::Delivery::ExactlyOnce {
                transactional_id: format!("vigil-g-{}", hostname()),
                interval: std::time::Duration::from_millis(100),
            }
        );
        let raw = RawConfig::from_toml(
            "[kafka]\ndelivery = \"exactly-once\"\ntransactional_id = \"pod-0\"\n",
        )
        .expect("parses");
        let c = Config::validate(raw).expect("valid");
        assert!(matches!(
            c.kafka.delivery,
            sections::Delivery::ExactlyOnce { ref transactional_id, .. } if transactional_id == "pod-0"
        ));
        let c = Config::validate(RawConfig::default()).expect("valid");
        assert_eq!(c.kafka.delivery, sections::Delivery::AtLeastOnce);
    }

    #[test]
    fn kafka_properties_read_secrets_from_the_environment_or_a_file_and_never_show_them() {
        let dir = std::env::temp_dir().join(format!("vigil-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("password");
        std::fs::write(&file, "s3cr3t-from-file\n").expect("secret");
        // Set once, read by this test only.
        std::env::set_var("VIGIL_TEST_ONLY_SECRET", "s3cr3t-from-env");
        let text = format!(
            "[kafka.properties]\n\"sasl.password\" = \"${{file:{}}}\"\n\"sasl.username\" = \"${{env:VIGIL_TEST_ONLY_SECRET}}\"\n\"client.id\" = \"plain\"\n",
            file.display()
        );
        let c = Config::validate(RawConfig::from_toml(&text).expect("parses")).expect("valid");
        let p = &c.kafka.properties.0;
        assert!(p.contains(&("sasl.password".into(), "s3cr3t-from-file".into())));
        assert!(p.contains(&("sasl.username".into(), "s3cr3t-from-env".into())));
        assert!(p.contains(&("client.id".into(), "plain".into())));
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("sasl.password"));
        for (text, want) in [
            (
                "[kafka.properties]\n\"sasl.password\" = \"${env:VIGIL_TEST_UNSET_SECRET}\"\n",
                "kafka.properties.sasl.password: the environment variable VIGIL_TEST_UNSET_SECRET is not set",
            ),
            (
                "[kafka.properties]\n\"sasl.password\" = \"${file:/nonexistent/secret}\"\n",
                "kafka.properties.sasl.password: cannot read /nonexistent/secret",
            ),
        ] {
            let err = Config::validate(RawConfig::from_toml(text).expect("parses"))
                .expect_err(text)
                .to_string();
            assert!(err.contains(want), "{err}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn validation_reads_no_file() {
        // A model that does not exist is found missing when the detector is loaded, not here.
        let raw = RawConfig::from_toml(
            "[[detectors]]\nkind = \"iforest\"\nmodel = \"/no/such/model.vigil\"\n[[detectors]]\nkind = \"model\"\nmanifest = \"/no/such/manifest.toml\"\n",
        )
        .expect("parses");
        let c = Config::validate(raw).expect("valid without reading the files");
        assert_eq!(c.detectors.len(), 2);
    }
}
