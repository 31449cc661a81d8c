//! `vigil produce` and `vigil score` over TLS: Debian's stunnel4 terminates TLS in front of tansu
//! (which advertises the TLS port), with a test CA and broker certificates made here by the
//! `openssl` command. A good certificate works end to end; a CA that did not sign it, an expired
//! certificate and a host name it does not name are each refused before anything runs: one line
//! naming the reason, exit 2, and never a fallback to plaintext.

use crate::support::{free_port, Tansu, Tool};
use crate::{root, temp_dir};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `openssl ARGS` in `dir` (with `SAN` in its environment when given), which must succeed.
fn openssl_with(dir: &Path, san: Option<&str>, args: &[&str]) {
    let mut cmd = Command::new("openssl");
    if let Some(san) = san {
        cmd.env("SAN", san);
    }
    let out = cmd.current_dir(dir).args(args).output().expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    openssl_with(dir, None, args);
}

/// The test PKI in `dir`: `ca.pem` (signs the broker certificates), `other-ca.pem` (signs none),
/// and broker key pairs `good` (localhost, valid), `expired` (localhost, expired in 2020) and
/// `wrongname` (wrong.example, valid).
fn make_pki(dir: &Path) {
    // A new key pair `name.key` and either a self-signed CA `name.pem` or a request `name.csr`.
    let req = |name: &str, cn: &str, ca: bool| {
        let (key, out, subj) = (
            format!("{name}.key"),
            format!("{name}.{}", if ca { "pem" } else { "csr" }),
            format!("/CN={cn}"),
        );
        let mut args = vec!["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key];
        args.extend(["-out", &out, "-subj", &subj]);
        if ca {
            args.extend(["-x509", "-days", "30"]);
        }
        openssl(dir, &args);
    };
    let ca = |name: &str, cn: &str| req(name, cn, true);
    ca("ca", "vigil test CA");
    ca("other-ca", "another CA");
    std::fs::create_dir_all(dir.join("db")).expect("db");
    std::fs::write(dir.join("db/index.txt"), "").expect("index");
    std::fs::write(dir.join("db/serial"), "01\n").expect("serial");
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = test\n[test]\ndatabase = db/index.txt\nserial = db/serial\n\
         new_certs_dir = db\ndefault_md = sha256\npolicy = any\nx509_extensions = ext\n\
         unique_subject = no\n[any]\ncommonName = supplied\n[ext]\nsubjectAltName = $ENV::SAN\n",
    )
    .expect("ca.cnf");
    for (name, host, dates) in [
        ("good", "localhost", ["-days", "30", "", ""]),
        (
            "expired",
            "localhost",
            [
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20200201000000Z",
            ],
        ),
        ("wrongname", "wrong.example", ["-days", "30", "", ""]),
    ] {
        req(name, host, false);
        let mut args = vec![
            "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-in",
        ];
        let (csr, pem) = (format!("{name}.csr"), format!("{name}.pem"));
        args.extend([csr.as_str(), "-out", pem.as_str()]);
        args.extend(dates.iter().copied().filter(|a| !a.is_empty()));
        openssl_with(dir, Some(&format!("DNS:{host}")), &args);
    }
}

/// stunnel4 accepting TLS on `port` with the key pair `name`, forwarding to `backend`.
struct Stunnel(Child);

impl Stunnel {
    fn start(dir: &Path, name: &str, port: u16, backend: &str) -> Stunnel {
        let conf = dir.join(format!("stunnel-{name}.conf"));
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{port}\nconnect = {backend}\n\
                 cert = {0}/{name}.pem\nkey = {0}/{name}.key\n",
                dir.display()
            ),
        )
        .expect("stunnel conf");
        let child = Command::new("stunnel4")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("stunnel-{name}.log"))).expect("log"))
            .spawn()
            .expect("stunnel4");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "stunnel4 did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Stunnel(child)
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn vigil() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.current_dir(root()).env_remove("VIGIL_ISA");
    c
}

/// The secret the good-certificate run reads from a file (as a mounted Kubernetes secret): it
/// must appear in no log line and not in `/metrics`.
const SECRET: &str = "tls-test-s3cr3t-9f2b";

/// A config trusting `ca` over TLS, with a (here unused) key password read from `dir/secret`.
fn tls_config(dir: &Path, name: &str, ca: &Path) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(dir.join("secret"), format!("{SECRET}\n")).expect("secret");
    std::fs::write(
        &path,
        format!(
            "[kafka.properties]\n\"security.protocol\" = \"ssl\"\n\"ssl.ca.location\" = \"{}\"\n\
             \"ssl.key.password\" = \"${{file:{}}}\"\n",
            ca.display(),
            dir.join("secret").display()
        ),
    )
    .expect("config");
    path
}

fn produce(bootstrap: &str, config: &Path) -> std::process::Output {
    vigil()
        .args(["produce", "fixtures/pumps.csv", "--topic", "sensors"])
        .args(["--bootstrap-servers", bootstrap, "--config"])
        .arg(config)
        .output()
        .expect("vigil produce")
}

#[test]
fn tls_to_the_broker_is_verified_and_a_bad_certificate_is_exit_2_before_anything_runs() {
    let (Some(tansu), Some(_)) = (Tool::Tansu.require(), Tool::Stunnel.require()) else {
        return;
    };
    let dir = temp_dir("tls");
    make_pki(&dir);
    let port = free_port();
    let bootstrap = format!("localhost:{port}");
    let broker = Tansu::start_advertising(&tansu, Some(&bootstrap));
    for (topic, partitions) in [("sensors", 2), ("alerts", 1), ("dead", 1)] {
        broker.topic(topic, partitions);
    }
    let trusted = tls_config(&dir, "trusted", &dir.join("ca.pem"));

    // A good certificate: records in and alerts out, all over TLS.
    {
        let _tls = Stunnel::start(&dir, "good", port, &broker.addr);
        let out = produce(&bootstrap, &trusted);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let http = format!("127.0.0.1:{}", free_port());
        let mut scorer = vigil()
            .args(["score", "--topic", "sensors", "--group-id", "g-tls"])
            .args(["--alert-topic", "alerts", "--dead-letter-topic", "dead"])
            .args([
                "--bootstrap-servers",
                &bootstrap,
                "--http-listen",
                &http,
                "--config",
            ])
            .arg(&trusted)
            .env("VIGIL_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("score.log")).expect("log"))
            .spawn()
            .expect("vigil score");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let m = crate::support::metrics(&http);
            if m.get("vigil_records_done_total") == Some(&64_800.0) {
                let text = crate::support::http_get(&http, "/metrics").map(|r| r.1);
                assert!(
                    !text.unwrap_or_default().contains(SECRET),
                    "a secret in /metrics"
                );
                assert!(
                    m.get("vigil_alerts_opened_total")
                        .is_some_and(|v| *v >= 4.0),
                    "{m:?}"
                );
                break;
            }
            assert!(Instant::now() < deadline, "not scored over TLS: {m:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = Command::new("kill")
            .args(["-TERM", &scorer.id().to_string()])
            .status();
        let status = scorer.wait().expect("wait");
        assert!(status.success(), "{status}");
        let log = std::fs::read_to_string(dir.join("score.log")).expect("log");
        assert!(log.contains("scoring"), "{log}");
        assert!(!log.contains(SECRET), "a secret in the log");
        assert!(!String::from_utf8_lossy(&out.stderr).contains(SECRET));
    }

    // Each refusal: exit 2 within the check's 10 s, one line naming the TLS failure.
    let other = tls_config(&dir, "other", &dir.join("other-ca.pem"));
    for (cert, config, what) in [
        ("good", &other, "a CA that did not sign the certificate"),
        ("expired", &trusted, "an expired certificate"),
        ("wrongname", &trusted, "a certificate for another host"),
    ] {
        let _tls = Stunnel::start(&dir, cert, port, &broker.addr);
        let started = Instant::now();
        let out = produce(&bootstrap, config);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(started.elapsed() < Duration::from_secs(30), "{what}");
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("vigil: ") && last.contains("refused the connection's security"),
            "{what}: {last}"
        );
        assert!(last.contains("SSL handshake failed"), "{what}: {last}");
        let out = vigil()
            .args(["score", "--topic", "sensors", "--http-listen", "off"])
            .args(["--bootstrap-servers", &bootstrap, "--config"])
            .arg(config)
            .output()
            .expect("vigil score");
        assert_eq!(out.status.code(), Some(2), "{what}: score");
        eprintln!("{what}: {last}");
    }
}
