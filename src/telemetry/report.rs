//! The end-of-run summary: a table for people (stderr) and the same as JSON (`--metrics-out`).

use super::StageStats;
use serde::Serialize;
use std::fmt::Write as _;

/// What a run did and how fast.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub elapsed_s: f64,
    pub records: u64,
    pub records_per_s: f64,
    pub dead_letters: u64,
    pub readings_skipped: u64,
    pub alerts_opened: u64,
    pub alerts_closed: u64,
    pub alerts_open_at_end: u64,
    pub isa: String,
    pub shards: usize,
    pub stages: Vec<StageStats>,
    /// Per detector: role and cost (scoring time per record, all shards).
    pub detectors: Vec<DetectorLine>,
}

/// One detector's line in the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DetectorLine {
    pub name: String,
    /// Its role at the end of the run.
    pub role: &'static str,
    pub records: u64,
    /// Records it scored while serving.
    pub serving_records: u64,
    pub ns_per_record: f64,
}

impl DetectorLine {
    /// The report's lines from the run's counters.
    pub fn from_counters(counters: &super::Counters) -> Vec<DetectorLine> {
        counters
            .detectors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|c| DetectorLine {
                name: c.name.to_string(),
                role: c.role,
                records: c.records,
                serving_records: c.serving_records,
                ns_per_record: c.ns as f64 / c.records.max(1) as f64,
            })
            .collect()
    }
}

impl Report {
    /// The summary table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "records {}  ({:.0} records/s over {:.3} s, {} shards, kernel {})",
            self.records, self.records_per_s, self.elapsed_s, self.shards, self.isa
        );
        let _ = writeln!(
            s,
            "alerts opened {}  closed {}  still open {}  dead letters {}  readings skipped (NaN/Inf/missing) {}",
            self.alerts_opened, self.alerts_closed, self.alerts_open_at_end, self.dead_letters, self.readings_skipped
        );
        let _ = writeln!(
            s,
            "{:<13} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "stage (µs)", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        for st in &self.stages {
            let _ = writeln!(
                s,
                "{:<13} {:>10} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                st.stage, st.count, st.p50_us, st.p90_us, st.p99_us, st.p999_us, st.max_us
            );
        }
        for d in &self.detectors {
            let _ = writeln!(
                s,
                "detector {} ({}): {} records ({} while serving), {:.1} ns/record",
                d.name, d.role, d.records, d.serving_records, d.ns_per_record
            );
        }
        s
    }
}
