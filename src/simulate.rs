//! A deterministic recording of pumps with labelled, injected anomalies: the bundled fixture.
//!
//! Several pumps report pressure (bar), flow (m³/h), temperature (°C) and vibration (mm/s RMS)
//! once a second. Normal behaviour has slow cycles, autocorrelated noise and a few missing readings.
//! Five faults are injected at fixed fractions of the recording, each on its own pump, and written
//! as labels beside it:
//!
//! | kind | pump | what happens | can a level z-score see it? |
//! |---|---|---|---|
//! | `pressure_spike` | 1 | pressure +1.2 bar for 8 s | yes |
//! | `valve_closure` | 2 | pressure steps +1.5 bar, flow falls to 40 % for 10 min | yes |
//! | `stuck_sensor` | 4 | vibration freezes at its last value for 15 min | no: a constant is never far from its own mean |
//! | `slow_drift` | 3 | temperature drifts up 0.006 °C/s for 20 min, then recalibrates | yes |
//! | `dropout` | 5 | flow transmitter loses signal and reads 0 for 60 s | yes |

use crate::time::format_iso;
use serde::Serialize;
use std::f64::consts::PI;
use std::fmt::Write as _;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Number of pumps, at least 5 (one per injected fault).
    pub pumps: usize,
    /// Length of the recording in seconds (one reading per pump per second), at least 3600.
    pub seconds: u64,
    pub seed: u64,
    /// Event time of the first reading, epoch ms.
    pub start_ms: i64,
}

impl Default for SimOptions {
    fn default() -> Self {
        // 2026-01-05T00:00:00Z
        SimOptions {
            pumps: 6,
            seconds: 3 * 3600,
            seed: 7,
            start_ms: 1_767_571_200_000,
        }
    }
}

/// One injected anomaly.
#[derive(Debug, Clone, Serialize)]
pub struct Label {
    pub sensor: String,
    pub channels: Vec<&'static str>,
    pub kind: &'static str,
    /// First and last affected second, inclusive (ISO-8601).
    pub start: String,
    pub end: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub zscore_visible: bool,
    pub description: &'static str,
}

/// The labels file.
#[derive(Debug, Clone, Serialize)]
pub struct Labels {
    pub recording: String,
    pub generator: String,
    /// Alerts opened up to this many seconds after an anomaly's end still belong to it (the
    /// statistics need a while to settle after a fault clears).
    pub grace_s: u64,
    pub anomalies: Vec<Label>,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        (-2.0 * self.unit().ln()).sqrt() * (2.0 * PI * self.unit()).cos()
    }
}

/// A fault: pump index, kind, first second, duration.
struct Fault {
    pump: usize,
    kind: &'static str,
    start: u64,
    len: u64,
}

fn faults(seconds: u64) -> Vec<Fault> {
    let at = |f: f64| (seconds as f64 * f) as u64;
    vec![
        Fault {
            pump: 0,
            kind: "pressure_spike",
            start: at(1.0 / 3.0),
            len: 8,
        },
        Fault {
            pump: 1,
            kind: "valve_closure",
            start: at(0.5),
            len: 600,
        },
        Fault {
            pump: 3,
            kind: "stuck_sensor",
            start: at(0.583),
            len: 900,
        },
        Fault {
            pump: 2,
            kind: "slow_drift",
            start: at(0.667),
            len: 1200,
        },
        Fault {
            pump: 4,
            kind: "dropout",
            start: at(0.8),
            len: 60,
        },
    ]
}

/// Generates the recording (CSV text) and its labels.
pub fn generate(opts: &SimOptions, recording_name: &str) -> Result<(String, Labels), String> {
    if opts.pumps < 5 {
        return Err(format!(
            "--pumps must be at least 5 (one per injected fault), got {}",
            opts.pumps
        ));
    }
    if opts.seconds < 3600 {
        return Err(format!(
            "--seconds must be at least 3600, got {}",
            opts.seconds
        ));
    }
    let mut rng = Rng(opts.seed);
    let faults = faults(opts.seconds);
    let n = opts.pumps;
    let mut ar_p = vec![0.0f64; n];
    let mut ar_f = vec![0.0f64; n];
    let mut ar_t = vec![0.0f64; n];
    let mut last_vib = vec![0.0f64; n];
    let phase: Vec<f64> = (0..n).map(|_| rng.unit() * 2.0 * PI).collect();
    let mut csv = String::with_capacity(opts.seconds as usize * n * 48);
    csv.push_str("timestamp,sensor,pressure,flow,temperature,vibration\n");
    for t in 0..opts.seconds {
        let ts = opts.start_ms + t as i64 * 1000;
        let stamp = format_iso(ts)
            .replace('T', " ")
            .trim_end_matches('Z')
            .to_string();
        let tf = t as f64;
        for p in 0..n {
            let pf = p as f64;
            ar_p[p] = 0.8 * ar_p[p] + 0.024 * rng.normal();
            ar_f[p] = 0.7 * ar_f[p] + 0.21 * rng.normal();
            ar_t[p] = 0.95 * ar_t[p] + 0.031 * rng.normal();
            let dp =
                0.08 * (2.0 * PI * tf / 1800.0 + phase[p]).sin() + ar_p[p] + 0.02 * rng.normal();
            let mut pressure = 5.0 + 0.2 * pf + dp;
            let mut flow = 40.0 + 2.0 * pf - 3.0 * dp + ar_f[p];
            let mut temperature =
                55.0 + pf + 0.5 * (2.0 * PI * tf / 7200.0 + phase[p]).sin() + ar_t[p];
            let mut vibration = (2.0 + 0.1 * pf) * (0.04 * rng.normal()).exp();
            for f in faults
                .iter()
                .filter(|f| f.pump == p && t >= f.start && t < f.start + f.len)
            {
                let k = (t - f.start) as f64;
                match f.kind {
                    "pressure_spike" => pressure += 1.2,
                    "valve_closure" => {
                        pressure += 1.5;
                        flow *= 0.4;
                    }
                    "stuck_sensor" => vibration = last_vib[p],
                    "slow_drift" => temperature += 0.006 * k,
                    "dropout" => flow = 0.0,
                    _ => {}
                }
            }
            last_vib[p] = vibration;
            let mut cell = |v: f64, decimals: usize| {
                // About one reading in 2000 goes missing, as on a real fieldbus.
                if rng.unit() < 0.0005 {
                    String::new()
                } else {
                    format!("{v:.decimals$}")
                }
            };
            let (a, b, c, d) = (
                cell(pressure, 4),
                cell(flow, 3),
                cell(temperature, 3),
                cell(vibration, 4),
            );
            let _ = writeln!(csv, "{stamp},pump-{},{a},{b},{c},{d}", p + 1);
        }
    }
    let anomalies = faults
        .iter()
        .map(|f| {
            let (start_ms, end_ms) = (
                opts.start_ms + f.start as i64 * 1000,
                opts.start_ms + (f.start + f.len - 1) as i64 * 1000,
            );
            let (channels, visible, description): (Vec<&'static str>, bool, &'static str) =
                match f.kind {
                    "pressure_spike" => (vec!["pressure"], true, "pressure +1.2 bar for 8 s"),
                    "valve_closure" => (
                        vec!["pressure", "flow"],
                        true,
                        "pressure +1.5 bar and flow at 40 % for 10 min",
                    ),
                    "stuck_sensor" => (
                        vec!["vibration"],
                        false,
                        "vibration frozen at its last value for 15 min",
                    ),
                    "slow_drift" => (
                        vec!["temperature"],
                        true,
                        "temperature drifting +0.006 °C/s for 20 min",
                    ),
                    _ => (vec!["flow"], true, "flow reads 0 (signal lost) for 60 s"),
                };
            Label {
                sensor: format!("pump-{}", f.pump + 1),
                channels,
                kind: f.kind,
                start: format_iso(start_ms),
                end: format_iso(end_ms),
                start_ms,
                end_ms,
                zscore_visible: visible,
                description,
            }
        })
        .collect();
    let labels = Labels {
        recording: recording_name.to_string(),
        generator: format!(
            "vigil simulate --pumps {} --seconds {} --seed {}",
            opts.pumps, opts.seconds, opts.seed
        ),
        grace_s: 300,
        anomalies,
    };
    Ok((csv, labels))
}
