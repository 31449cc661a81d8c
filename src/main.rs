//! The `vigil` command: parse flags, build the configuration, run, map failures to exit codes
//! (2: bad flag, config or input, nothing ran; 1: failure while running).

use anyhow::Context as _;
use clap::Parser;
use cli::*;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use vigil::config::{self, Config, Overrides};
use vigil::replay::{self, ReplayOptions};
use vigil::simulate::{self, SimOptions};

mod cli;

/// Writes a line to stderr; a stderr that cannot be written (closed, `/dev/full`) is no reason to
/// panic (`eprintln!` would): the exit code still tells.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Writes text to stderr as is, like [`say!`] without the newline.
fn say_raw(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Stderr for log lines: a line that cannot be written is dropped (tracing's own fallback for a
/// failed write is `eprintln!`, which panics).
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether stdout was closed when Vigil started.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Records whether stdout was closed at start. Rust's runtime opens `/dev/null` (read-write) on a
/// closed stdin, stdout or stderr before `main`, so that no file Vigil opens takes its number; a
/// stdout that is `/dev/null` opened read-write is taken for one that was closed (a shell's
/// `>/dev/null` opens it write-only).
fn note_closed_stdout() {
    // SAFETY: fstat and stat write into the zeroed structs they are given; fcntl(F_GETFL) only
    // asks about a descriptor number; the path is a valid C string.
    let closed = unsafe {
        let (mut out, mut null): (libc::stat, libc::stat) =
            (std::mem::zeroed(), std::mem::zeroed());
        let flags = libc::fcntl(1, libc::F_GETFL);
        libc::fstat(1, &mut out) == 0
            && libc::stat(c"/dev/null".as_ptr(), &mut null) == 0
            && out.st_rdev == null.st_rdev
            && (out.st_mode & libc::S_IFMT) == libc::S_IFCHR
            && flags >= 0
            && (flags & libc::O_ACCMODE) == libc::O_RDWR
    };
    STDOUT_CLOSED.store(closed, std::sync::atomic::Ordering::Relaxed);
}

/// A failure and the exit code it maps to.
enum Failure {
    Usage(anyhow::Error),
    Runtime(anyhow::Error),
}

fn main() -> ExitCode {
    note_closed_stdout();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            say!("vigil: {first} (see 'vigil --help')");
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
            say!("vigil: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            say!("vigil: {e:#}");
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
        .with_writer(|| LossyStderr);
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

/// A usage error (exit code 2) from anything that displays.
fn usage(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Usage(e.into())
}

/// The run's configuration: the one place flags, environment and file meet.
fn configure(file: Option<&PathBuf>, flags: &Overrides) -> Result<Config, Failure> {
    config::load(file.map(PathBuf::as_path), flags).map_err(usage)
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

fn write_metrics(
    report: &vigil::telemetry::report::Report,
    path: &std::path::Path,
) -> Result<(), Failure> {
    replay::write_metrics(report, path)
        .with_context(|| format!("cannot write metrics to {}", path.display()))
        .map_err(Failure::Runtime)
}

fn run_replay(args: ReplayArgs) -> Result<(), Failure> {
    let flags = Overrides {
        shards: args.shards,
        speed: args.speed,
        batch_size: args.batch_size,
        alerts: args.alerts,
        dead_letter: args.dead_letter,
        metrics: args.metrics_out,
        ignore: args.ignore,
        ..Overrides::default()
    };
    let config = configure(args.config.as_ref(), &flags)?;
    if config.output.alerts.is_none() && STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(usage(anyhow::anyhow!(
            "standard output is closed: nowhere to write the alerts (give --alerts FILE)"
        )));
    }
    let stop = install_stop_flag()?;
    let options = ReplayOptions {
        progress: !args.quiet,
        ..ReplayOptions::default()
    };
    let report = replay::replay(&config, &args.files, stop, options).map_err(|e| {
        if e.is_usage() {
            usage(e)
        } else {
            Failure::Runtime(e.into())
        }
    })?;
    if !args.quiet {
        say_raw(&report.table());
        if report.dead_letters > 0 {
            say!(
                "dead letters written to {}",
                config.output.dead_letter.display()
            );
        }
    }
    if let Some(path) = &config.output.metrics {
        write_metrics(&report, path)?;
    }
    Ok(())
}

fn run_score(args: ScoreArgs) -> Result<(), Failure> {
    let flags = Overrides {
        bootstrap_servers: args.kafka.bootstrap_servers,
        group_id: args.group_id,
        input_topics: args.topics,
        alert_topic: args.alert_topic,
        dead_letter_topic: args.dead_letter_topic,
        http_listen: args.http_listen,
        shards: args.shards,
        ..Overrides::default()
    };
    let config = configure(args.kafka.config.as_ref(), &flags)?;
    let stop = install_stop_flag()?;
    // With a config file: SIGHUP or a change to it (or to a model it names) swaps the detectors.
    let reload = match args.kafka.config {
        Some(path) => {
            let hup = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
                .context("cannot install the SIGHUP handler")
                .map_err(Failure::Runtime)?;
            Some(vigil::score::Reload {
                config: path,
                overrides: flags,
                hup,
                every: std::time::Duration::from_secs(2),
            })
        }
        None => None,
    };
    let report = vigil::score::score(&config, stop, reload).map_err(|e| {
        if e.is_usage() {
            usage(e)
        } else {
            Failure::Runtime(e.into())
        }
    })?;
    say_raw(&report.table());
    if let Some(path) = &args.metrics_out {
        write_metrics(&report, path)?;
    }
    Ok(())
}

fn run_produce(args: ProduceArgs) -> Result<(), Failure> {
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(usage(anyhow::anyhow!(
                "--rate must be a positive number of records per second"
            )));
        }
    }
    let flags = Overrides {
        bootstrap_servers: args.kafka.bootstrap_servers,
        ignore: args.ignore,
        ..Overrides::default()
    };
    let config = configure(args.kafka.config.as_ref(), &flags)?;
    let produced =
        vigil::produce::produce(&config, &args.files, &args.topic, args.rate).map_err(|e| {
            if e.is_usage() {
                usage(e)
            } else {
                Failure::Runtime(e.into())
            }
        })?;
    say!(
        "produced {} records to {} in {:.2} s ({:.0} records/s); {} lines skipped",
        produced.records,
        args.topic,
        produced.seconds,
        produced.records as f64 / produced.seconds.max(1e-9),
        produced.skipped
    );
    Ok(())
}

fn eval_failure(e: vigil::eval::EvalError) -> Failure {
    match e {
        vigil::eval::EvalError::Usage(_) => usage(e),
        other => Failure::Runtime(other.into()),
    }
}

/// A table for people on stderr, the same as JSON on stdout.
fn print_report(table: &str, report: &impl serde::Serialize) -> Result<(), Failure> {
    say_raw(table);
    let json = serde_json::to_string_pretty(report).map_err(|e| Failure::Runtime(e.into()))?;
    println!("{json}");
    Ok(())
}

fn run_eval_nab(args: EvalArgs) -> Result<(), Failure> {
    let config = configure(args.config.as_ref(), &Overrides::default())?;
    let (results, html) = (args.results_dir.as_deref(), args.report.as_deref());
    let report = vigil::eval::eval_nab(&config, &args.dir, args.detector.as_deref(), results, html)
        .map_err(eval_failure)?;
    print_report(&report.table(), &report)
}

fn run_eval_skab(args: EvalArgs) -> Result<(), Failure> {
    let config = configure(args.config.as_ref(), &Overrides::default())?;
    if args.results_dir.is_some() {
        return Err(usage(anyhow::anyhow!("--results-dir is for NAB only")));
    }
    let report = vigil::eval::eval_skab(
        &config,
        &args.dir,
        args.detector.as_deref(),
        args.report.as_deref(),
    )
    .map_err(eval_failure)?;
    print_report(&report.table(), &report)
}

fn run_compare(args: CompareArgs) -> Result<(), Failure> {
    let request = vigil::compare::Request {
        files: args.files,
        serving: args.serving,
        from: args.from,
        to: args.to,
        tolerance_s: args.tolerance_s,
        metrics: args.metrics,
    };
    let rows = vigil::compare::run(&request).map_err(usage)?;
    print_report(&vigil::compare::table(&rows), &rows)
}

/// A model's output path must be in an existing directory (a usage error, found before work);
/// a write that fails after that is a runtime error.
fn check_model_out(out: &std::path::Path) -> Result<(), Failure> {
    if vigil::sinks::file::in_existing_dir(out) {
        Ok(())
    } else {
        Err(usage(anyhow::anyhow!(
            "cannot write {}: no such directory",
            out.display()
        )))
    }
}

fn run_train_iforest(args: TrainIforestArgs) -> Result<(), Failure> {
    check_model_out(&args.out)?;
    let flags = Overrides {
        ignore: args.ignore,
        ..Overrides::default()
    };
    let config = configure(args.config.as_ref(), &flags)?;
    let until_ms = match &args.until {
        None => None,
        Some(t) => Some(
            vigil::time::parse_timestamp(t, vigil::time::EpochUnit::Auto)
                .ok_or_else(|| usage(anyhow::anyhow!("--until {t:?} is not a timestamp")))?,
        ),
    };
    let opts = vigil::train::TrainOptions {
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
    let t = vigil::train::train_iforest(&config, &opts).map_err(usage)?;
    t.model
        .save(&args.out)
        .map_err(|e| Failure::Runtime(anyhow::anyhow!(e)))?;
    say!(
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
    check_model_out(&args.out)?;
    let text = |e: String| usage(anyhow::anyhow!(e));
    let bytes = std::fs::read(&args.onnx)
        .map_err(|e| text(format!("cannot read {}: {e}", args.onnx.display())))?;
    let opts = vigil::iforest::onnx::ImportOptions {
        features: args.features,
        sample_size: args.sample,
        threshold: args.threshold,
    };
    let model = vigil::iforest::onnx::import(&bytes, &args.onnx.display().to_string(), &opts)
        .map_err(|e| text(format!("{}: {e}", args.onnx.display())))?;
    model
        .save(&args.out)
        .map_err(|e| Failure::Runtime(anyhow::anyhow!(e)))?;
    say!(
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
    let (csv, labels) = simulate::generate(&opts, &name).map_err(|e| usage(anyhow::anyhow!(e)))?;
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
    say!(
        "wrote {} ({} records) and {}",
        args.out.display(),
        opts.pumps as u64 * opts.seconds,
        labels_path.display()
    );
    Ok(())
}
