//! A model's features: a sensor's channel values and streaming features derived from them,
//! computed by one piece of code in training and in the stream, so the two can never disagree.
//!
//! Spec syntax (also the feature's name in the model file):
//! - `pressure`: the reading itself;
//! - `diff(pressure)`: the reading minus the sensor's previous reading of that channel;
//! - `mean(pressure,10)`: the mean of the channel's last 10 readings, this one included.
//!
//! A derived feature is NaN until it has its history (the first reading of a `diff`, the first
//! `n - 1` of a `mean`), and a missing reading makes every feature built on it NaN; rows with a NaN
//! feature are skipped in training and score NaN ("no observation") in the stream. A NaN reading
//! leaves the history untouched.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How a feature is computed from its channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "transform", rename_all = "lowercase")]
pub enum Transform {
    Value,
    Diff,
    Mean { window: u32 },
}

/// One feature: a transform of one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feature {
    pub channel: String,
    #[serde(flatten)]
    pub transform: Transform,
}

/// Longest rolling-mean window.
pub const MAX_WINDOW: u32 = 10_000;

impl Feature {
    /// Parses `channel`, `diff(channel)` or `mean(channel,n)`.
    pub fn parse(spec: &str) -> Result<Feature, String> {
        let spec = spec.trim();
        let inner = |prefix: &str| {
            spec.strip_prefix(prefix)
                .and_then(|s| s.strip_suffix(')'))
                .map(str::trim)
        };
        let bad =
            || format!("feature {spec:?}: expected CHANNEL, diff(CHANNEL) or mean(CHANNEL,N)");
        let feature = if let Some(c) = inner("diff(") {
            Feature {
                channel: c.to_string(),
                transform: Transform::Diff,
            }
        } else if let Some(args) = inner("mean(") {
            let (c, n) = args.rsplit_once(',').ok_or_else(bad)?;
            let window: u32 = n.trim().parse().map_err(|_| bad())?;
            if !(2..=MAX_WINDOW).contains(&window) {
                return Err(format!(
                    "feature {spec:?}: the window must be 2 to {MAX_WINDOW} readings"
                ));
            }
            Feature {
                channel: c.trim().to_string(),
                transform: Transform::Mean { window },
            }
        } else {
            Feature {
                channel: spec.to_string(),
                transform: Transform::Value,
            }
        };
        if feature.channel.is_empty() || feature.channel.contains(['(', ')', ',']) {
            return Err(bad());
        }
        Ok(feature)
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.transform {
            Transform::Value => write!(f, "{}", self.channel),
            Transform::Diff => write!(f, "diff({})", self.channel),
            Transform::Mean { window } => write!(f, "mean({},{window})", self.channel),
        }
    }
}

/// Splits a comma-separated list of specs, keeping the comma inside `mean(c,n)`:
/// `"a,mean(b,5),diff(a)"` → `["a", "mean(b,5)", "diff(a)"]`.
pub fn split_specs(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, ch) in list.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(list[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(list[start..].trim().to_string());
    out
}

/// Where each feature reads in a record of one schema.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Column of each feature's channel in the record.
    columns: Vec<usize>,
    transforms: Vec<Transform>,
    /// Offset of each feature's history in a sensor's history buffer, and the buffer's length.
    offsets: Vec<usize>,
    history: usize,
}

impl Layout {
    /// The layout of `features` over records with `channels`, or the first channel missing.
    pub fn new<S: AsRef<str>>(features: &[Feature], channels: &[S]) -> Result<Layout, String> {
        let mut columns = Vec::with_capacity(features.len());
        let mut offsets = Vec::with_capacity(features.len());
        let mut history = 0;
        for f in features {
            let col = channels
                .iter()
                .position(|c| c.as_ref() == f.channel)
                .ok_or_else(|| f.channel.clone())?;
            columns.push(col);
            offsets.push(history);
            // diff: the previous reading. mean: a ring of `window` readings, a count and a cursor.
            history += match f.transform {
                Transform::Value => 0,
                Transform::Diff => 1,
                Transform::Mean { window } => window as usize + 2,
            };
        }
        Ok(Layout {
            columns,
            transforms: features.iter().map(|f| f.transform.clone()).collect(),
            offsets,
            history,
        })
    }

    /// Numbers of history each sensor keeps.
    pub fn history_len(&self) -> usize {
        self.history
    }

    /// A fresh sensor's history.
    pub fn fresh_history(&self) -> Vec<f32> {
        let mut h = vec![0.0; self.history];
        for (t, &o) in self.transforms.iter().zip(&self.offsets) {
            if *t == Transform::Diff {
                h[o] = f32::NAN;
            }
        }
        h
    }

    /// Computes the features of one record (`row`: its readings) into `out`, updating the sensor's
    /// `history`. Returns whether every feature is a number.
    pub fn compute(&self, row: &[f32], history: &mut [f32], out: &mut [f32]) -> bool {
        let mut complete = true;
        for (i, t) in self.transforms.iter().enumerate() {
            let x = row[self.columns[i]];
            let h = &mut history[self.offsets[i]..];
            let v = match *t {
                Transform::Value => x,
                Transform::Diff => {
                    let d = x - h[0];
                    if x.is_finite() {
                        h[0] = x;
                    }
                    d
                }
                Transform::Mean { window } => {
                    let w = window as usize;
                    // h[..w]: ring; h[w]: readings held (<= w); h[w + 1]: cursor.
                    if x.is_finite() {
                        let cursor = h[w + 1] as usize;
                        h[cursor] = x;
                        h[w + 1] = ((cursor + 1) % w) as f32;
                        h[w] = (h[w] + 1.0).min(window as f32);
                    }
                    if x.is_finite() && h[w] as usize == w {
                        // Summed in ring order from index 0: the same result whatever the cursor.
                        h[..w].iter().map(|&v| v as f64).sum::<f64>() as f32 / window as f32
                    } else {
                        f32::NAN
                    }
                }
            };
            complete &= v.is_finite();
            out[i] = v;
        }
        complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_lists_split_outside_parentheses() {
        assert_eq!(
            split_specs("a, mean(b,5),diff(a)"),
            ["a", "mean(b,5)", "diff(a)"]
        );
    }

    #[test]
    fn specs_parse_and_print_back() {
        for spec in ["pressure", "diff(pressure)", "mean(Volume Flow RateRMS,10)"] {
            assert_eq!(Feature::parse(spec).expect(spec).to_string(), spec);
        }
        for bad in [
            "",
            "mean(p)",
            "mean(p,1)",
            "mean(p,x)",
            "diff()",
            "diff(a,b)",
        ] {
            assert!(Feature::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn derived_features_need_their_history_and_skip_missing_readings() {
        let features: Vec<Feature> = ["b", "diff(a)", "mean(a,3)"]
            .iter()
            .map(|s| Feature::parse(s).expect("spec"))
            .collect();
        let layout = Layout::new(&features, &["a", "b"]).expect("layout");
        assert_eq!(
            Layout::new(&features, &["b", "c"]).expect_err("missing"),
            "a"
        );
        let mut h = layout.fresh_history();
        let mut out = [0.0; 3];
        let rows = [
            [1.0, 10.0],
            [2.0, 20.0],
            [f32::NAN, 30.0],
            [6.0, 40.0],
            [7.0, 50.0],
        ];
        let mut got = Vec::new();
        for r in rows {
            let ok = layout.compute(&r, &mut h, &mut out);
            got.push((ok, out));
        }
        assert!(!got[0].0 && got[0].1[0] == 10.0 && got[0].1[1].is_nan());
        assert!(!got[1].0 && got[1].1[1] == 1.0 && got[1].1[2].is_nan());
        assert!(!got[2].0, "a missing reading");
        assert_eq!(got[3], (true, [40.0, 4.0, 3.0]));
        assert_eq!(got[4], (true, [50.0, 1.0, 5.0]));
    }
}
