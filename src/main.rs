//! The `vigil` command: parse flags, build the configuration, run, map failures to exit codes
//! (2: bad flag, config or input, nothing ran; 1: failure while running).

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use vigil::config::{Config, RawConfig};
use vigil::replay;
use vigil::simulate::{self, SimOptions};

#[derive(Parser, Debug)]
#[command(
    name = "vigil",
    version,
    about = "Real-time anomaly detection for sensor streams"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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
struct CompareArgs {
    /// Alert files (JSON lines): the serving alerts and the shadow alerts.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The serving detector's name (default: the one detector not tagged shadow).
    #[arg(long)]
    serving: Option<String>,
    /// Only alerts opened at or after this time.
    #[arg(long)]
    from: Option<String>,
    /// Only alerts opened before this time.
    #[arg(long)]
    to: Option<String>,
    /// Alerts of two versions on the same sensor match when their spans overlap within this many
    /// seconds.
    #[arg(long, default_value_t = 60.0)]
    tolerance_s: f64,
    /// Summary JSON files (`--metrics-out`) with each detector's cost per record.
    #[arg(long, num_args = 1..)]
    metrics: Vec<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum TrainCommand {
    /// An isolation forest over a sensor's channels (and derived features), trained on normal data.
    Iforest(TrainIforestArgs),
}

#[derive(clap::Args, Debug)]
struct TrainIforestArgs {
    /// Recorded files (CSV or JSON lines) of normal operation.
    #[arg(long, num_args = 1.., required = true)]
    input: Vec<PathBuf>,
    /// The model file to write (e.g. models/pumps.vigil).
    #[arg(long)]
    out: PathBuf,
    /// Trees in the forest.
    #[arg(long, default_value_t = 100)]
    trees: usize,
    /// ψ: rows each tree is grown on.
    #[arg(long, default_value_t = 256)]
    sample: usize,
    /// Seed: the same data, flags and seed give the same model.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Features, comma-separated: CHANNEL, diff(CHANNEL), mean(CHANNEL,N). Default: every channel.
    #[arg(long)]
    features: Option<String>,
    /// Share of training rows above the alert threshold (its quantile).
    #[arg(long, default_value_t = 0.01)]
    contamination: f64,
    /// Only these sensors' records (comma-separated). Default: all.
    #[arg(long, value_delimiter = ',')]
    sensors: Vec<String>,
    /// Only records before this time (e.g. 2026-01-05T00:55:00Z): the known-normal part of a run.
    #[arg(long)]
    until: Option<String>,
    /// Only the first N records of each file (e.g. SKAB's 400 training rows).
    #[arg(long)]
    head: Option<u64>,
    /// Config file (TOML), for its [input] section.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Columns that are not channels (comma-separated), e.g. anomaly,changepoint.
    #[arg(long, value_delimiter = ',')]
    ignore: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum ImportCommand {
    /// A scikit-learn IsolationForest written as one ONNX TreeEnsembleRegressor node.
    Iforest(ImportIforestArgs),
}

#[derive(clap::Args, Debug)]
struct ImportIforestArgs {
    /// The ONNX file.
    onnx: PathBuf,
    /// The model file to write.
    #[arg(long)]
    out: PathBuf,
    /// Feature names in input order (must match the file's own list, if it has one).
    #[arg(long, value_delimiter = ',')]
    features: Option<Vec<String>>,
    /// ψ, if the file does not record max_samples.
    #[arg(long)]
    sample: Option<usize>,
    /// Alert threshold, if the file does not record scikit-learn's offset_.
    #[arg(long)]
    threshold: Option<f32>,
}

#[derive(Subcommand, Debug)]
enum EvalCommand {
    /// NAB v1.1: DIR holds data/ and labels/combined_windows.json (e.g. ../shared/datasets/nab).
    Nab(EvalArgs),
    /// SKAB: DIR holds data/<group>/<n>.csv (e.g. ../shared/datasets/skab-dev).
    Skab(EvalArgs),
}

#[derive(clap::Args, Debug)]
struct EvalArgs {
    /// The corpus directory.
    dir: PathBuf,
    /// Detector to evaluate, by name (default: the first configured).
    #[arg(long)]
    detector: Option<String>,
    /// Config file (TOML) with the detectors.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write the benchmark's own results layout here, for other scorers to check (NAB).
    #[arg(long)]
    results_dir: Option<PathBuf>,
    /// Write a self-contained HTML report with a plot per file here.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// Kafka connection flags shared by `score` and `produce` (they override VIGIL_* variables, which
/// override the config file).
#[derive(clap::Args, Debug)]
struct KafkaArgs {
    /// Config file (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Brokers, e.g. 127.0.0.1:9092.
    #[arg(long)]
    bootstrap_servers: Option<String>,
}

#[derive(clap::Args, Debug)]
struct ScoreArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Consumer group.
    #[arg(long)]
    group_id: Option<String>,
    /// Input topic (repeatable or comma-separated).
    #[arg(long = "topic", value_delimiter = ',')]
    topics: Vec<String>,
    /// Topic for alerts.
    #[arg(long)]
    alert_topic: Option<String>,
    /// Topic for records that fail to decode.
    #[arg(long)]
    dead_letter_topic: Option<String>,
    /// Address of /metrics, /healthz and /readyz, or `off`.
    #[arg(long)]
    http_listen: Option<String>,
    /// Number of shard workers.
    #[arg(long)]
    shards: Option<usize>,
    /// Write the final summary as JSON here.
    #[arg(long)]
    metrics_out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct ProduceArgs {
    /// Files to load (any format replay reads).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Topic to write to.
    #[arg(long)]
    topic: String,
    /// Records per second (default: as fast as the broker takes them).
    #[arg(long)]
    rate: Option<f64>,
    /// Columns that are not channels (comma-separated).
    #[arg(long, value_delimiter = ',')]
    ignore: Vec<String>,
    #[command(flatten)]
    kafka: KafkaArgs,
}

#[derive(clap::Args, Debug)]
struct ReplayArgs {
    /// Files to replay, in order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Config file (TOML). Flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write alerts (JSON lines) here instead of standard output.
    #[arg(long)]
    alerts: Option<PathBuf>,
    /// Write records that fail to decode here (default dead-letters.jsonl, made only if needed).
    #[arg(long)]
    dead_letter: Option<PathBuf>,
    /// Number of shard workers.
    #[arg(long)]
    shards: Option<usize>,
    /// max, realtime, or a factor of real time (e.g. 60).
    #[arg(long)]
    speed: Option<String>,
    /// Write the summary and per-stage latency as JSON here.
    #[arg(long)]
    metrics_out: Option<PathBuf>,
    /// Columns that are not channels (comma-separated, repeatable), e.g. anomaly,changepoint.
    #[arg(long, value_delimiter = ',')]
    ignore: Vec<String>,
    /// Rows per batch.
    #[arg(long)]
    batch_size: Option<usize>,
    /// No progress bar, no summary table.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(clap::Args, Debug)]
struct SimulateArgs {
    /// The recording to write; its labels go beside it as NAME.labels.json.
    #[arg(long, default_value = "fixtures/pumps.csv")]
    out: PathBuf,
    #[arg(long, default_value_t = SimOptions::default().pumps)]
    pumps: usize,
    #[arg(long, default_value_t = SimOptions::default().seconds)]
    seconds: u64,
    #[arg(long, default_value_t = SimOptions::default().seed)]
    seed: u64,
}

/// A failure and the exit code it maps to.
enum Failure {
    Usage(anyhow::Error),
    Runtime(anyhow::Error),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            eprintln!("vigil: {first} (see 'vigil --help')");
            return ExitCode::from(2);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("vigil: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("vigil: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    // VIGIL_LOG_FORMAT=json: one JSON object per line, for log collectors.
    let _ = if std::env::var("VIGIL_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Replay(args) => run_replay(args),
        Command::Score(args) => run_score(args),
        Command::Produce(args) => run_produce(args),
        Command::Eval(EvalCommand::Nab(args)) => run_eval_nab(args),
        Command::Eval(EvalCommand::Skab(args)) => run_eval_skab(args),
        Command::Simulate(args) => run_simulate(args),
        Command::Compare(args) => run_compare(args),
        Command::Train(TrainCommand::Iforest(args)) => run_train_iforest(args),
        Command::Import(ImportCommand::Iforest(args)) => run_import_iforest(args),
    }
}

fn run_compare(args: CompareArgs) -> Result<(), Failure> {
    use vigil::compare::{compare, table, Alerts};
    let usage = |e: String| Failure::Usage(anyhow::anyhow!(e));
    let when = |t: &Option<String>, default: i64| match t {
        None => Ok(default),
        Some(t) => vigil::time::parse_timestamp(t, vigil::time::EpochUnit::Auto)
            .ok_or_else(|| usage(format!("{t:?} is not a timestamp"))),
    };
    let (from, to) = (when(&args.from, i64::MIN)?, when(&args.to, i64::MAX)?);
    let alerts = Alerts::read(&args.files, from, to).map_err(usage)?;
    let serving = match args.serving {
        Some(s) => s,
        None => {
            let serving: Vec<&String> = alerts
                .detectors()
                .iter()
                .filter(|(_, shadow)| !**shadow)
                .map(|(n, _)| n)
                .collect();
            match serving.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(usage(
                        "no serving alerts in these files: pass --serving NAME".into(),
                    ))
                }
                _ => {
                    return Err(usage(format!(
                        "several serving detectors {serving:?}: pass --serving NAME"
                    )))
                }
            }
        }
    };
    let mut costs = std::collections::BTreeMap::new();
    for m in &args.metrics {
        let text = std::fs::read_to_string(m)
            .map_err(|e| usage(format!("cannot read {}: {e}", m.display())))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|_| usage(format!("{} is not a summary JSON file", m.display())))?;
        for d in v["detectors"].as_array().into_iter().flatten() {
            if let (Some(n), Some(c)) = (d["name"].as_str(), d["ns_per_record"].as_f64()) {
                costs.insert(n.to_string(), c);
            }
        }
    }
    let tolerance = (args.tolerance_s * 1000.0) as i64;
    let rows: Vec<_> = alerts
        .detectors()
        .keys()
        .filter(|d| **d != serving)
        .map(|d| {
            let mut c = compare(&alerts, &serving, d, tolerance);
            c.serving_ns_per_record = costs.get(&serving).copied();
            c.candidate_ns_per_record = costs.get(d).copied();
            c
        })
        .collect();
    print_eval(&table(&rows), &rows)
}

fn run_train_iforest(args: TrainIforestArgs) -> Result<(), Failure> {
    let usage = |e: String| Failure::Usage(anyhow::anyhow!(e));
    let mut raw = load_config(args.config.as_ref())?;
    raw.input.ignore_columns.extend(args.ignore);
    let config = Config::validate(raw, None).map_err(|e| Failure::Usage(e.into()))?;
    let until_ms = match &args.until {
        None => None,
        Some(t) => Some(
            vigil::time::parse_timestamp(t, vigil::time::EpochUnit::Auto)
                .ok_or_else(|| usage(format!("--until {t:?} is not a timestamp")))?,
        ),
    };
    let opts = vigil::iforest::train::TrainOptions {
        inputs: args.input,
        params: vigil_kernels::iforest::train::TrainParams {
            trees: args.trees,
            sample_size: args.sample,
            seed: args.seed,
        },
        features: args
            .features
            .as_deref()
            .map(vigil::iforest::features::split_specs),
        contamination: args.contamination,
        sensors: args.sensors,
        until_ms,
        head: args.head,
    };
    let started = std::time::Instant::now();
    let t = vigil::iforest::train::train_iforest(&config, &opts).map_err(usage)?;
    t.model.save(&args.out).map_err(usage)?;
    eprintln!(
        "trained {} trees (sample {}) on {} rows of {} features [{}] from {} records ({} incomplete, {} dead letters) in {:.2} s; threshold {:.4} (contamination {}); wrote {}",
        t.model.forest.n_trees(),
        t.model.forest.sample_size(),
        t.model.training.rows,
        t.model.features.len(),
        t.model.features.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", "),
        t.records,
        t.skipped,
        t.dead_letters,
        started.elapsed().as_secs_f64(),
        t.model.threshold,
        args.contamination,
        args.out.display()
    );
    Ok(())
}

fn run_import_iforest(args: ImportIforestArgs) -> Result<(), Failure> {
    let usage = |e: String| Failure::Usage(anyhow::anyhow!(e));
    let bytes = std::fs::read(&args.onnx)
        .map_err(|e| usage(format!("cannot read {}: {e}", args.onnx.display())))?;
    let opts = vigil::iforest::onnx::ImportOptions {
        features: args.features,
        sample_size: args.sample,
        threshold: args.threshold,
    };
    let model = vigil::iforest::onnx::import(&bytes, &args.onnx.display().to_string(), &opts)
        .map_err(|e| usage(format!("{}: {e}", args.onnx.display())))?;
    model.save(&args.out).map_err(usage)?;
    eprintln!(
        "imported {} trees (sample {}) over [{}], threshold {:.4}; wrote {}",
        model.forest.n_trees(),
        model.forest.sample_size(),
        model
            .features
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        model.threshold,
        args.out.display()
    );
    Ok(())
}

fn load_config(path: Option<&PathBuf>) -> Result<RawConfig, Failure> {
    match path {
        Some(p) => RawConfig::from_file(p).map_err(|e| Failure::Usage(e.into())),
        None => Ok(RawConfig::default()),
    }
}

fn run_replay(args: ReplayArgs) -> Result<(), Failure> {
    let mut raw = load_config(args.config.as_ref())?;
    // Flags override the file.
    raw.pipeline.shards = args.shards.or(raw.pipeline.shards);
    raw.pipeline.speed = args.speed.or(raw.pipeline.speed);
    raw.pipeline.batch_size = args.batch_size.or(raw.pipeline.batch_size);
    raw.output.alerts = args.alerts.or(raw.output.alerts);
    raw.output.dead_letter = args.dead_letter.or(raw.output.dead_letter);
    raw.output.metrics = args.metrics_out.or(raw.output.metrics);
    raw.input.ignore_columns.extend(args.ignore);
    let isa_env = std::env::var("VIGIL_ISA").ok();
    let config = Config::validate(raw, isa_env.as_deref()).map_err(|e| Failure::Usage(e.into()))?;
    let stop = install_stop_flag()?;
    let isa_note = if isa_env.is_some() {
        "forced by VIGIL_ISA"
    } else {
        "chosen at run time; VIGIL_ISA=scalar forces the portable path"
    };
    let report =
        replay::replay(&config, &args.files, stop, !args.quiet, isa_note).map_err(|e| {
            if e.is_usage() {
                Failure::Usage(e.into())
            } else {
                Failure::Runtime(e.into())
            }
        })?;
    if !args.quiet {
        eprint!("{}", report.table());
        if report.dead_letters > 0 {
            eprintln!(
                "dead letters written to {}",
                config.output.dead_letter.display()
            );
        }
    }
    if let Some(path) = &config.output.metrics {
        replay::write_metrics(&report, path)
            .with_context(|| format!("cannot write metrics to {}", path.display()))
            .map_err(Failure::Runtime)?;
    }
    Ok(())
}

/// The `VIGIL_*` variables of the Kafka settings, applied over the file.
fn apply_kafka_env(raw: &mut RawConfig) {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let k = &mut raw.kafka;
    k.bootstrap_servers = var("VIGIL_BOOTSTRAP_SERVERS").or(k.bootstrap_servers.take());
    k.group_id = var("VIGIL_GROUP_ID").or(k.group_id.take());
    if let Some(t) = var("VIGIL_INPUT_TOPICS") {
        k.input_topics = Some(t.split(',').map(|s| s.trim().to_string()).collect());
    }
    k.alert_topic = var("VIGIL_ALERT_TOPIC").or(k.alert_topic.take());
    k.dead_letter_topic = var("VIGIL_DEAD_LETTER_TOPIC").or(k.dead_letter_topic.take());
    raw.http.listen = var("VIGIL_HTTP_LISTEN").or(raw.http.listen.take());
}

fn kafka_config(args: &KafkaArgs, edit: impl FnOnce(&mut RawConfig)) -> Result<Config, Failure> {
    let mut raw = load_config(args.config.as_ref())?;
    apply_kafka_env(&mut raw);
    if let Some(b) = &args.bootstrap_servers {
        raw.kafka.bootstrap_servers = Some(b.clone());
    }
    edit(&mut raw);
    let isa_env = std::env::var("VIGIL_ISA").ok();
    Config::validate(raw, isa_env.as_deref()).map_err(|e| Failure::Usage(e.into()))
}

fn install_stop_flag() -> Result<Arc<AtomicBool>, Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .context("cannot install signal handlers")
            .map_err(Failure::Runtime)?;
    }
    Ok(stop)
}

fn run_score(args: ScoreArgs) -> Result<(), Failure> {
    let config_path = args.kafka.config.clone();
    let config = kafka_config(&args.kafka, |raw| {
        if let Some(g) = args.group_id {
            raw.kafka.group_id = Some(g);
        }
        if !args.topics.is_empty() {
            raw.kafka.input_topics = Some(args.topics);
        }
        raw.kafka.alert_topic = args.alert_topic.or(raw.kafka.alert_topic.take());
        raw.kafka.dead_letter_topic = args
            .dead_letter_topic
            .or(raw.kafka.dead_letter_topic.take());
        raw.http.listen = args.http_listen.or(raw.http.listen.take());
        raw.pipeline.shards = args.shards.or(raw.pipeline.shards);
    })?;
    let stop = install_stop_flag()?;
    // With a config file: SIGHUP or a change to it (or to a model it names) swaps the detectors.
    let reload = match config_path {
        Some(path) => {
            let hup = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
                .context("cannot install the SIGHUP handler")
                .map_err(Failure::Runtime)?;
            Some(vigil::score::Reload {
                config: path,
                isa_override: std::env::var("VIGIL_ISA").ok(),
                hup,
                every: std::time::Duration::from_secs(2),
            })
        }
        None => None,
    };
    let report = vigil::score::score(&config, stop, reload).map_err(|e| match e {
        vigil::score::ScoreError::Usage(_) => Failure::Usage(e.into()),
        other => Failure::Runtime(other.into()),
    })?;
    eprint!("{}", report.table());
    if let Some(path) = &args.metrics_out {
        replay::write_metrics(&report, path)
            .with_context(|| format!("cannot write metrics to {}", path.display()))
            .map_err(Failure::Runtime)?;
    }
    Ok(())
}

fn run_produce(args: ProduceArgs) -> Result<(), Failure> {
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(Failure::Usage(anyhow::anyhow!(
                "--rate must be a positive number of records per second"
            )));
        }
    }
    let config = kafka_config(&args.kafka, |raw| {
        raw.input.ignore_columns.extend(args.ignore)
    })?;
    let produced = vigil::produce::produce(&config, &args.files, &args.topic, args.rate).map_err(
        |e| match e {
            vigil::produce::ProduceError::Usage(_) => Failure::Usage(e.into()),
            other => Failure::Runtime(other.into()),
        },
    )?;
    eprintln!(
        "produced {} records to {} in {:.2} s ({:.0} records/s); {} lines skipped",
        produced.records,
        args.topic,
        produced.seconds,
        produced.records as f64 / produced.seconds.max(1e-9),
        produced.skipped
    );
    Ok(())
}

fn eval_failure(e: vigil::eval::run::EvalError) -> Failure {
    match e {
        vigil::eval::run::EvalError::Usage(_) => Failure::Usage(e.into()),
        other => Failure::Runtime(other.into()),
    }
}

/// The configuration of an evaluation, and its table (stderr) and JSON (stdout) once run.
fn eval_config(args: &EvalArgs) -> Result<Config, Failure> {
    let raw = load_config(args.config.as_ref())?;
    let isa_env = std::env::var("VIGIL_ISA").ok();
    Config::validate(raw, isa_env.as_deref()).map_err(|e| Failure::Usage(e.into()))
}

fn print_eval(table: &str, report: &impl serde::Serialize) -> Result<(), Failure> {
    eprint!("{table}");
    let json = serde_json::to_string_pretty(report).map_err(|e| Failure::Runtime(e.into()))?;
    println!("{json}");
    Ok(())
}

fn run_eval_nab(args: EvalArgs) -> Result<(), Failure> {
    let config = eval_config(&args)?;
    let (results, html) = (args.results_dir.as_deref(), args.report.as_deref());
    let report =
        vigil::eval::run::eval_nab(&config, &args.dir, args.detector.as_deref(), results, html)
            .map_err(eval_failure)?;
    print_eval(&report.table(), &report)
}

fn run_eval_skab(args: EvalArgs) -> Result<(), Failure> {
    let config = eval_config(&args)?;
    if args.results_dir.is_some() {
        return Err(Failure::Usage(anyhow::anyhow!(
            "--results-dir is for NAB only"
        )));
    }
    let report = vigil::eval::run::eval_skab(
        &config,
        &args.dir,
        args.detector.as_deref(),
        args.report.as_deref(),
    )
    .map_err(eval_failure)?;
    print_eval(&report.table(), &report)
}

fn run_simulate(args: SimulateArgs) -> Result<(), Failure> {
    let opts = SimOptions {
        pumps: args.pumps,
        seconds: args.seconds,
        seed: args.seed,
        ..SimOptions::default()
    };
    let name = args
        .out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (csv, labels) =
        simulate::generate(&opts, &name).map_err(|e| Failure::Usage(anyhow::anyhow!(e)))?;
    let labels_path = args.out.with_extension("labels.json");
    let write = |path: &PathBuf, bytes: &[u8]| {
        std::fs::write(path, bytes)
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(Failure::Usage)
    };
    write(&args.out, csv.as_bytes())?;
    let mut json = serde_json::to_vec_pretty(&labels).map_err(|e| Failure::Runtime(e.into()))?;
    json.push(b'\n');
    write(&labels_path, &json)?;
    eprintln!(
        "wrote {} ({} records) and {}",
        args.out.display(),
        opts.pumps as u64 * opts.seconds,
        labels_path.display()
    );
    Ok(())
}
