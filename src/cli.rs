//! The `vigil` command line: every command, flag and its help text. Parsed by `main.rs`, which
//! turns flags into [`vigil::config::Overrides`].

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use vigil::simulate::SimOptions;

#[derive(Parser, Debug)]
#[command(
    name = "vigil",
    version,
    about = "Real-time anomaly detection for sensor streams"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Replay recorded sensor files (CSV or JSON lines) through the pipeline.
    Replay(ReplayArgs),
    /// Consume sensor topics, score them, publish alerts: the long-running service.
    Score(ScoreArgs),
    /// Load recorded sensor files into a topic as JSON records keyed by sensor id.
    Produce(ProduceArgs),
    /// Generate the bundled pump recording and its labels (deterministic for a seed).
    Simulate(SimulateArgs),
    /// Score a detector on a public benchmark, the way the benchmark defines it.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Compare shadow versions' alerts with the serving version's over a span of time.
    Compare(CompareArgs),
    /// Train a model on recorded sensor files.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Import a model made elsewhere into Vigil's model format.
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Alert files (JSON lines): the serving alerts and the shadow alerts.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The serving detector's name (default: the one detector not tagged shadow).
    #[arg(long)]
    pub serving: Option<String>,
    /// Only alerts opened at or after this time.
    #[arg(long)]
    pub from: Option<String>,
    /// Only alerts opened before this time.
    #[arg(long)]
    pub to: Option<String>,
    /// Alerts of two versions on the same sensor match when their spans overlap within this many
    /// seconds.
    #[arg(long, default_value_t = 60.0)]
    pub tolerance_s: f64,
    /// Summary JSON files (`--metrics-out`) with each detector's cost per record.
    #[arg(long, num_args = 1..)]
    pub metrics: Vec<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum TrainCommand {
    /// An isolation forest over a sensor's channels (and derived features), trained on normal data.
    Iforest(TrainIforestArgs),
}

#[derive(clap::Args, Debug)]
pub struct TrainIforestArgs {
    /// Recorded files (CSV or JSON lines) of normal operation.
    #[arg(long, num_args = 1.., required = true)]
    pub input: Vec<PathBuf>,
    /// The model file to write (e.g. models/pumps.vigil).
    #[arg(long)]
    pub out: PathBuf,
    /// Trees in the forest.
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    /// ψ: rows each tree is grown on.
    #[arg(long, default_value_t = 256)]
    pub sample: usize,
    /// Seed: the same data, flags and seed give the same model.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Features, comma-separated: CHANNEL, diff(CHANNEL), mean(CHANNEL,N). Default: every channel.
    #[arg(long)]
    pub features: Option<String>,
    /// Share of training rows above the alert threshold (its quantile).
    #[arg(long, default_value_t = 0.01)]
    pub contamination: f64,
    /// Only these sensors' records (comma-separated). Default: all.
    #[arg(long, value_delimiter = ',')]
    pub sensors: Vec<String>,
    /// Only records before this time (e.g. 2026-01-05T00:55:00Z): the known-normal part of a run.
    #[arg(long)]
    pub until: Option<String>,
    /// Only the first N records of each file (e.g. SKAB's 400 training rows).
    #[arg(long)]
    pub head: Option<u64>,
    /// Config file (TOML), for its [input] section.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Columns that are not channels (comma-separated), e.g. anomaly,changepoint.
    #[arg(long, value_delimiter = ',')]
    pub ignore: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// A scikit-learn IsolationForest written as one ONNX TreeEnsembleRegressor node.
    Iforest(ImportIforestArgs),
}

#[derive(clap::Args, Debug)]
pub struct ImportIforestArgs {
    /// The ONNX file.
    pub onnx: PathBuf,
    /// The model file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Feature names in input order (must match the file's own list, if it has one).
    #[arg(long, value_delimiter = ',')]
    pub features: Option<Vec<String>>,
    /// ψ, if the file does not record max_samples.
    #[arg(long)]
    pub sample: Option<usize>,
    /// Alert threshold, if the file does not record scikit-learn's offset_.
    #[arg(long)]
    pub threshold: Option<f32>,
}

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// NAB v1.1: DIR holds data/ and labels/combined_windows.json (e.g. ../shared/datasets/nab).
    Nab(EvalArgs),
    /// SKAB: DIR holds data/<group>/<n>.csv (e.g. ../shared/datasets/skab-dev).
    Skab(EvalArgs),
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// The corpus directory.
    pub dir: PathBuf,
    /// Detector to evaluate, by name (default: the first configured).
    #[arg(long)]
    pub detector: Option<String>,
    /// Config file (TOML) with the detectors.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Write the benchmark's own results layout here, for other scorers to check (NAB).
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
    /// Write a self-contained HTML report with a plot per file here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Kafka connection flags shared by `score` and `produce` (they override VIGIL_* variables, which
/// override the config file).
#[derive(clap::Args, Debug)]
pub struct KafkaArgs {
    /// Config file (TOML).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Brokers, e.g. 127.0.0.1:9092.
    #[arg(long)]
    pub bootstrap_servers: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Consumer group.
    #[arg(long)]
    pub group_id: Option<String>,
    /// Input topic (repeatable or comma-separated).
    #[arg(long = "topic", value_delimiter = ',')]
    pub topics: Vec<String>,
    /// Topic for alerts.
    #[arg(long)]
    pub alert_topic: Option<String>,
    /// Topic for records that fail to decode.
    #[arg(long)]
    pub dead_letter_topic: Option<String>,
    /// Address of /metrics, /healthz and /readyz, or `off`.
    #[arg(long)]
    pub http_listen: Option<String>,
    /// Number of shard workers.
    #[arg(long)]
    pub shards: Option<usize>,
    /// Write the final summary as JSON here.
    #[arg(long)]
    pub metrics_out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    /// Files to load (any format replay reads).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Topic to write to.
    #[arg(long)]
    pub topic: String,
    /// Records per second (default: as fast as the broker takes them).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Columns that are not channels (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub ignore: Vec<String>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// Files to replay, in order.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Config file (TOML). Flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Write alerts (JSON lines) here instead of standard output.
    #[arg(long)]
    pub alerts: Option<PathBuf>,
    /// Write records that fail to decode here (default dead-letters.jsonl, made only if needed).
    #[arg(long)]
    pub dead_letter: Option<PathBuf>,
    /// Number of shard workers.
    #[arg(long)]
    pub shards: Option<usize>,
    /// max, realtime, or a factor of real time (e.g. 60).
    #[arg(long)]
    pub speed: Option<String>,
    /// Write the summary and per-stage latency as JSON here.
    #[arg(long)]
    pub metrics_out: Option<PathBuf>,
    /// Columns that are not channels (comma-separated, repeatable), e.g. anomaly,changepoint.
    #[arg(long, value_delimiter = ',')]
    pub ignore: Vec<String>,
    /// Rows per batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// No progress bar, no summary table.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// The recording to write; its labels go beside it as NAME.labels.json.
    #[arg(long, default_value = "fixtures/pumps.csv")]
    pub out: PathBuf,
    #[arg(long, default_value_t = SimOptions::default().pumps)]
    pub pumps: usize,
    #[arg(long, default_value_t = SimOptions::default().seconds)]
    pub seconds: u64,
    #[arg(long, default_value_t = SimOptions::default().seed)]
    pub seed: u64,
}
