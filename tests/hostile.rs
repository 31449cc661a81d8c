//! What an adversarial run of the binary found, each kept fixed: outputs over inputs, signals during
//! paced gaps, closed or full standard streams, files that shrink under the reader, FIFOs.

use crate::{read_jsonl, root, temp_dir};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

fn vigil() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.current_dir(root()).env_remove("VIGIL_ISA");
    cmd
}

fn fixture() -> String {
    root().join("fixtures/pumps.csv").display().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Sends `signal` (e.g. `-TERM`) to `child`.
fn signal(child: &Child, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {signal}");
}

/// Waits at most `limit` for `child` to exit.
fn exits_within(child: &mut Child, limit: Duration) -> Option<(ExitStatus, Duration)> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some((status, start.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Waits (at most a minute) for `child`, whose stderr is piped, to exit: its status and stderr.
fn exit_and_stderr(mut child: Child, what: &str) -> (ExitStatus, String) {
    use std::io::Read;
    let (status, _) = exits_within(&mut child, Duration::from_secs(60)).expect(what);
    let mut err = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut err).expect("stderr");
    }
    (status, err)
}

#[test]
fn an_output_that_is_an_input_is_refused_and_the_recording_kept() {
    let dir = temp_dir("hostile-same");
    let input = dir.join("same.csv");
    std::fs::copy(fixture(), &input).expect("copy");
    let before = std::fs::read(&input).expect("read");
    let link = dir.join("link.csv");
    std::os::unix::fs::symlink(&input, &link).expect("symlink");
    let hard = dir.join("hard.csv");
    std::fs::hard_link(&input, &hard).expect("hard link");
    let input = input.to_str().expect("utf8");
    for (flag, output) in [
        ("--alerts", input),
        ("--dead-letter", link.to_str().expect("utf8")),
        ("--metrics-out", hard.to_str().expect("utf8")),
    ] {
        let out = vigil()
            .args(["replay", "--quiet", input, flag, output])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{flag}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("is also an input: refusing to overwrite the recording"),
            "{}",
            stderr(&out)
        );
        assert_eq!(std::fs::read(input).expect("read"), before, "{flag}");
    }
    // A metrics file in a missing directory is refused before the run, not after it.
    let out = vigil()
        .args([
            "replay",
            "--quiet",
            input,
            "--metrics-out",
            "/no/such/dir/m.json",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no such directory"),
        "{}",
        stderr(&out)
    );
}

/// A two-sensor recording whose readings jump from `first` to `second` (timestamps).
fn gap_file(dir: &Path, first: &str, second: &str) -> String {
    let path = dir.join(format!("gap-{}.csv", &second[..4]));
    let mut text = String::from("timestamp,sensor,p\n");
    for ts in [first, second] {
        for s in ["a", "b"] {
            text.push_str(&format!("{ts},{s},1.0\n"));
        }
    }
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

#[test]
fn a_signal_ends_a_paced_replay_during_a_gap() {
    let dir = temp_dir("hostile-gap");
    for (file, speed) in [
        // A minute's gap at real time, and a jump of eight millennia.
        (
            gap_file(&dir, "2026-01-05 00:00:00", "2026-01-05 00:01:00"),
            "realtime",
        ),
        (
            gap_file(&dir, "1900-01-01 00:00:00", "9999-01-01 00:00:00"),
            "realtime",
        ),
        // A factor so small that the wait overflows any clock.
        (
            gap_file(&dir, "2026-01-05 00:00:00", "2026-01-05 00:00:01"),
            "1e-300",
        ),
    ] {
        let alerts = dir.join("alerts.jsonl");
        let metrics = dir.join("metrics.json");
        let mut child = vigil()
            .args(["replay", "--quiet", "--speed", speed, &file, "--alerts"])
            .arg(&alerts)
            .arg("--metrics-out")
            .arg(&metrics)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(700));
        signal(&child, "-TERM");
        let (status, took) = exits_within(&mut child, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{file} at {speed}: no exit within 10 s of SIGTERM"));
        assert!(status.success(), "{file} at {speed}: {status}");
        assert!(took < Duration::from_secs(2), "{file}: {took:?}");
        // The rows after the gap (after the signal) were not read.
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&metrics).expect("metrics")).expect("JSON");
        assert_eq!(report["records"], 2, "{file} at {speed}: {report}");
    }
}

#[test]
fn closed_or_full_standard_streams_neither_panic_nor_lose_alerts_silently() {
    let dir = temp_dir("hostile-streams");
    // Alerts to a closed stdout: nowhere to write them, said before anything runs.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec '{}' replay --quiet '{}' >&-",
            env!("CARGO_BIN_EXE_vigil"),
            fixture()
        ))
        .output()
        .expect("sh");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("standard output is closed"));
    // Logs and the summary to a full stderr: the run goes on and writes every alert.
    let alerts = dir.join("alerts.jsonl");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let status = vigil()
        .args(["replay", &fixture(), "--alerts"])
        .arg(&alerts)
        .stderr(full)
        .status()
        .expect("run");
    assert!(status.success(), "{status}");
    assert!(read_jsonl(&alerts).len() >= 4);
    // A write that fails is exit 1, naming the file.
    let out = vigil()
        .args(["replay", "--quiet", &fixture(), "--alerts", "/dev/full"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/dev/full: No space left"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_recording_cut_short_while_it_is_read_is_exit_1() {
    let dir = temp_dir("hostile-shrink");
    let path = dir.join("long.csv");
    let mut text = String::from("timestamp,sensor,p\n");
    for i in 0..1_000_000u64 {
        text.push_str(&format!("{},s{},{}.5\n", 1_700_000_000 + i, i % 4, i % 7));
    }
    std::fs::write(&path, text).expect("write");
    // Paced at 100,000 records/s: reading takes ten seconds, the file is emptied after one.
    let child = vigil()
        .args([
            "replay",
            "--quiet",
            "--speed",
            "100000",
            "--alerts",
            "/dev/null",
        ])
        .arg(&path)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_secs(1));
    std::fs::File::create(&path).expect("truncate");
    let (status, err) = exit_and_stderr(child, "replay ends after the cut");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("shrank while it was read"), "{err}");
}

#[test]
fn an_unreachable_broker_is_a_few_clear_lines_not_a_flood() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let child = vigil()
        .args(["score", "--topic", "x", "--http-listen", "off"])
        .args(["--bootstrap-servers", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_secs(5));
    signal(&child, "-TERM");
    let (_, err) = exit_and_stderr(child, "exits after SIGTERM");
    let complaints = err
        .lines()
        .take_while(|l| !l.contains("stopping"))
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .count();
    assert!(err.contains("no broker reachable"), "{err}");
    // librdkafka retries every few hundred ms: unlimited, that was ~45 lines a second.
    assert!(complaints <= 12, "{complaints} lines in 5 s:\n{err}");
    // An empty broker list is refused at once.
    let out = vigil()
        .args(["score", "--topic", "x", "--bootstrap-servers", ""])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("must name at least one broker"));
}

#[test]
fn a_fifo_is_replayed_like_a_file_and_a_signal_ends_any_wait_on_its_writer() {
    use std::io::Write;
    let dir = temp_dir("hostile-fifo");
    let fifo = dir.join("sensors.csv");
    let make = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(make.success());
    let replay = |alerts: &Path, metrics: &Path| {
        vigil()
            .args(["replay", "--quiet", "--alerts"])
            .arg(alerts)
            .arg("--metrics-out")
            .arg(metrics)
            .arg(&fifo)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (alerts, metrics) = (dir.join("alerts.jsonl"), dir.join("metrics.json"));
    let records = |metrics: &Path| -> serde_json::Value {
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(metrics).expect("metrics"))
            .expect("JSON")["records"]
            .clone()
    };

    // No writer ever comes: SIGTERM ends the wait at once, with a line that says why.
    let mut child = replay(&alerts, &metrics);
    std::thread::sleep(Duration::from_millis(700));
    signal(&child, "-TERM");
    let (status, took) = exits_within(&mut child, Duration::from_secs(10))
        .expect("no exit within 10 s of SIGTERM while waiting for a writer");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let (_, err) = exit_and_stderr(child, "exited");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("waiting for a writer"), "{err}");

    // The whole recording through the FIFO: the same alerts as from the file.
    let child = replay(&alerts, &metrics);
    std::fs::write(&fifo, std::fs::read(fixture()).expect("fixture")).expect("write the FIFO");
    let (status, err) = exit_and_stderr(child, "the FIFO's replay");
    assert!(status.success(), "{err}");
    let from_file = dir.join("file-alerts.jsonl");
    let out = vigil()
        .args(["replay", "--quiet", "--alerts"])
        .arg(&from_file)
        .arg(fixture())
        .output()
        .expect("replay the file");
    assert!(out.status.success(), "{}", stderr(&out));
    let key = |a: &serde_json::Value| {
        format!(
            "{} {} {} {} {}",
            a["sensor"], a["channel"], a["event"], a["ts"], a["line"]
        )
    };
    let (fifo_alerts, file_alerts) = (read_jsonl(&alerts), read_jsonl(&from_file));
    assert!(fifo_alerts.len() >= 4);
    // The same alerts; shards interleave in an order that depends on where reads were cut.
    let sorted = |alerts: &[serde_json::Value]| {
        let mut keys = alerts.iter().map(key).collect::<Vec<_>>();
        keys.sort();
        keys
    };
    assert_eq!(sorted(&fifo_alerts), sorted(&file_alerts));

    // A writer that sends a few rows and then goes quiet: SIGTERM drains what came and exits 0.
    let mut child = replay(&alerts, &metrics);
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("open the FIFO");
    writer
        .write_all(b"timestamp,sensor,p\n1700000000,s1,1.5\n1700000001,s1,1.6\n")
        .expect("write");
    writer.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(700));
    signal(&child, "-TERM");
    let (status, took) = exits_within(&mut child, Duration::from_secs(10))
        .expect("no exit within 10 s of SIGTERM while the writer is quiet");
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(records(&metrics), 2);
    drop(writer);
}
