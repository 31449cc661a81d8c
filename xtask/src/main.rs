//! `cargo xtask`: the project's own commands, with nothing to install by hand first.
//!
//! - `cargo xtask test [ARGS]`: installs what the tests need (the tansu broker and the ONNX
//!   Runtime library, from PyPI wheels into `.ci/cache/`, idempotent and cached; the zlib headers
//!   librdkafka builds against, stunnel4 and openssl for the TLS tests and mosquitto for the MQTT
//!   tests, from Debian's packages,
//!   when missing), then runs the whole suite
//!   (`cargo test --workspace`, with `ARGS` passed on) with every tool required: a test that would
//!   skip for a missing tool fails instead. It ends by naming the kernel paths this CPU could not
//!   test.
//! - `cargo xtask install`: only the installing part.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => install().and_then(|tools| test(&tools, &args[1..])),
        Some("install") => install().map(|_| ()),
        _ => {
            eprintln!("usage: cargo xtask test [CARGO TEST ARGS] | cargo xtask install");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root (this crate lives in `xtask/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where the installed tools are.
#[derive(Debug)]
struct Tools {
    tansu: PathBuf,
    onnxruntime: PathBuf,
}

fn step(what: &str) {
    eprintln!("== {what}");
}

/// Runs `cmd`, failing with `what` when it does not succeed.
fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{what} failed ({s})")),
        Err(e) => Err(format!("{what}: cannot run {:?}: {e}", cmd.get_program())),
    }
}

fn install() -> Result<Tools, String> {
    let root = root();
    step("C toolchain and zlib headers for librdkafka");
    let has_zlib = Path::new("/usr/include/zlib.h").exists()
        || Command::new("pkg-config")
            .args(["--exists", "zlib"])
            .status()
            .is_ok_and(|s| s.success());
    if !has_zlib {
        eprintln!("zlib headers missing: installing zlib1g-dev from Debian's packages");
        run(
            Command::new("sh").args([
                "-c",
                "(apt-get update -qq && apt-get install -y -qq zlib1g-dev) >/dev/null",
            ]),
            "installing zlib1g-dev (install it by hand if this is not a Debian machine you are root on)",
        )?;
    }
    step("stunnel4 and openssl for the TLS tests");
    let present = |bin: &str, arg: &str| {
        Command::new(bin)
            .arg(arg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok()
    };
    if !(present("stunnel4", "-version") && present("openssl", "version")) {
        eprintln!("stunnel4 or openssl missing: installing them from Debian's packages");
        run(
            Command::new("sh").args([
                "-c",
                "(apt-get update -qq && apt-get install -y -qq stunnel4 openssl) >/dev/null",
            ]),
            "installing stunnel4 and openssl (install them by hand if this is not a Debian machine you are root on)",
        )?;
    }
    step("mosquitto, the MQTT broker of the edge tests");
    if !Path::new("/usr/sbin/mosquitto").exists() && !present("mosquitto", "-h") {
        eprintln!("mosquitto missing: installing it from Debian's packages");
        run(
            Command::new("sh").args([
                "-c",
                "(apt-get update -qq && apt-get install -y -qq mosquitto) >/dev/null",
            ]),
            "installing mosquitto (install it by hand if this is not a Debian machine you are root on)",
        )?;
    }
    step("tansu broker for the Kafka tests (.ci/install-tansu)");
    run(
        Command::new("bash").arg(root.join(".ci/install-tansu")),
        ".ci/install-tansu",
    )?;
    step("moto's S3 server, the storage of a broker that restarts (.ci/install-moto)");
    run(
        Command::new("bash").arg(root.join(".ci/install-moto")),
        ".ci/install-moto",
    )?;
    step("ONNX Runtime for the ONNX tests (.ci/install-onnxruntime)");
    run(
        Command::new("bash").arg(root.join(".ci/install-onnxruntime")),
        ".ci/install-onnxruntime",
    )?;
    let tools = Tools {
        tansu: root.join(".ci/cache/bin/tansu"),
        onnxruntime: root.join(".ci/cache/onnxruntime/libonnxruntime.so.1.31.1"),
    };
    for p in [&tools.tansu, &tools.onnxruntime] {
        if !p.exists() {
            return Err(format!("{} is missing after installing it", p.display()));
        }
    }
    Ok(tools)
}

fn test(tools: &Tools, extra: &[String]) -> Result<(), String> {
    let root = root();
    let datasets = root.join("../shared/datasets");
    if !datasets.join("nab/data").is_dir() {
        return Err(format!(
            "{} is missing: the tests read NAB and SKAB from ../shared/datasets beside the checkout",
            datasets.display()
        ));
    }
    step("tests: cargo test --workspace (every tool required)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(
        Command::new(cargo)
            .current_dir(&root)
            .args(["test", "--workspace"])
            .args(extra)
            .env("VIGIL_TANSU", &tools.tansu)
            .env("ORT_DYLIB_PATH", &tools.onnxruntime)
            .env("VIGIL_REQUIRE_TOOLS", "1")
            .env_remove("VIGIL_ISA"),
        "cargo test --workspace",
    )?;
    let (tested, untested) = isa_paths();
    eprintln!("kernel paths tested against their oracles on this CPU: {tested}");
    if !untested.is_empty() {
        eprintln!("not tested here (this CPU lacks them): {untested}");
    }
    Ok(())
}

/// The kernel paths this CPU runs, and those it cannot.
fn isa_paths() -> (String, String) {
    use vigil_kernels::isa::Isa;
    let names = |available: bool| {
        Isa::ALL
            .into_iter()
            .filter(|i| i.is_available() == available)
            .map(Isa::name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    (names(true), names(false))
}

#[cfg(test)]
mod tests {
    #[test]
    fn scalar_is_always_among_the_tested_paths() {
        let (tested, untested) = super::isa_paths();
        assert!(tested.contains("scalar"), "{tested}");
        assert!(!untested.contains("scalar"), "{untested}");
    }
}
