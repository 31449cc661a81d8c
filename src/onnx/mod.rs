//! ONNX models through ONNX Runtime (ort, loaded at run time): manifests, sessions, and turning a
//! model's output into anomaly scores.

pub mod runtime;

use crate::manifest::{Manifest, Meaning, OnnxManifest};
use ort::session::Session;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vigil_kernels::iforest::average_path_length;

/// A checked ONNX model: its manifest, and where ONNX Runtime is. Sessions are made per worker.
#[derive(Debug)]
pub struct OnnxModel {
    pub manifest: OnnxManifest,
    runtime: Option<PathBuf>,
}

impl OnnxModel {
    /// Loads `manifest_path` and its model once to check them: the library is found and loaded,
    /// the file parses, its opsets are known, and its input and output match the manifest.
    /// Errors are one line.
    pub fn load(manifest_path: &Path, runtime: Option<&Path>) -> Result<Arc<OnnxModel>, String> {
        let manifest = Manifest::load_onnx(manifest_path).map_err(|e| e.to_string())?;
        let model = OnnxModel {
            manifest,
            runtime: runtime.map(Path::to_path_buf),
        };
        model.session()?;
        Ok(Arc::new(model))
    }

    /// A new session with one intra-op thread, checked against the manifest.
    pub fn session(&self) -> Result<Session, String> {
        let m = &self.manifest;
        let env = runtime::environment(self.runtime.as_deref())?;
        // ONNX Runtime's messages span lines: errors here are one line.
        let what = |e: String| {
            format!(
                "model {} ({}): {}",
                m.id(),
                m.file.display(),
                e.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        };
        let session = Session::builder(&env)
            .and_then(|b| Ok(b.with_intra_threads(1)?))
            .and_then(|b| Ok(b.with_inter_threads(1)?))
            .map_err(|e| what(e.to_string()))?
            .commit_from_file(&m.file)
            .map_err(|e| what(format!("ONNX Runtime cannot load it: {e}")))?;
        let input = session
            .inputs()
            .iter()
            .find(|i| i.name() == m.input.name)
            .ok_or_else(|| what(format!("it has no input named {:?}", m.input.name)))?;
        if let ort::value::ValueType::Tensor { ty, shape, .. } = input.dtype() {
            if *ty != ort::value::TensorElementType::Float32 {
                return Err(what(format!(
                    "input {:?} is {ty:?}, not float32",
                    m.input.name
                )));
            }
            let width = m.width() as i64;
            if shape.len() != 2 || (shape[1] != width && shape[1] >= 0) {
                return Err(what(format!(
                    "input {:?} has shape {:?}; the manifest's {} channels × window {} need (N, {width})",
                    m.input.name,
                    &shape[..],
                    m.input.channels.len(),
                    m.input.window
                )));
            }
        } else {
            return Err(what(format!("input {:?} is not a tensor", m.input.name)));
        }
        if !session.outputs().iter().any(|o| o.name() == m.output.name) {
            return Err(what(format!("it has no output named {:?}", m.output.name)));
        }
        Ok(session)
    }

    /// Runs `rows` rows of `x` (row-major, [`OnnxManifest::width`] values each) and writes each row's
    /// anomaly score to `out`.
    pub fn score(
        &self,
        session: &mut Session,
        x: &[f32],
        rows: usize,
        out: &mut [f32],
    ) -> Result<(), String> {
        self.with_output(session, x, rows, |y| {
            score_output(&self.manifest, x, y, rows, out)
        })?
    }
}

/// How each of a model's channels made one row's score, and what it expected of the first
/// channel's latest reading where the model says (a reconstruction).
#[derive(Debug, Clone, PartialEq)]
pub struct RowExplanation {
    /// Per manifest channel, in its order: a non-negative weight (shares are weights over their
    /// sum).
    pub weights: Vec<f64>,
    pub expected: Option<f32>,
}

impl OnnxModel {
    /// Explains one input row (`width` values, the score just computed `score`).
    ///
    /// A reconstruction explains itself: each channel's weight is its part of the reconstruction
    /// error over the window, and the expected value is the reconstruction of the first channel's
    /// latest reading. Any other output is explained by occlusion: per channel, the row is scored
    /// again with that channel at `typical[k]` throughout the window, and the weight is how much
    /// the score fell (none when it rose). One `run` call either way.
    pub fn explain(
        &self,
        session: &mut Session,
        row: &[f32],
        score: f32,
        typical: &[f32],
    ) -> Result<RowExplanation, String> {
        let m = &self.manifest;
        let (c, width) = (m.input.channels.len(), m.width());
        if row.len() != width || typical.len() != c {
            return Err(format!(
                "model {}: cannot explain a row of {} values",
                m.id(),
                row.len()
            ));
        }
        if m.output.meaning == Meaning::Reconstruction {
            let y = self.with_output(session, row, 1, <[f32]>::to_vec)?;
            if y.len() != width {
                return Err(format!(
                    "model {}: {} output values for 1 row",
                    m.id(),
                    y.len()
                ));
            }
            let mut weights = vec![0.0; c];
            for (i, (&x, &y)) in row.iter().zip(&y).enumerate() {
                let s = m.output.scale.get(i).copied().unwrap_or(1.0) as f64;
                let e = (x as f64 - y as f64) / s;
                weights[i % c] += e * e;
            }
            return Ok(RowExplanation {
                weights,
                expected: Some(y[width - c]),
            });
        }
        let mut x = Vec::with_capacity(c * width);
        for (k, &t) in typical.iter().enumerate() {
            x.extend_from_slice(row);
            let at = x.len() - width;
            for v in x[at..].iter_mut().skip(k).step_by(c) {
                *v = t;
            }
        }
        let mut occluded = vec![0.0; c];
        self.score(session, &x, c, &mut occluded)?;
        Ok(RowExplanation {
            weights: occluded
                .iter()
                .map(|&s| (score as f64 - s as f64).max(0.0))
                .collect(),
            expected: None,
        })
    }

    /// Runs `rows` rows of `x` and hands the model's raw output to `f`.
    fn with_output<R>(
        &self,
        session: &mut Session,
        x: &[f32],
        rows: usize,
        f: impl FnOnce(&[f32]) -> R,
    ) -> Result<R, String> {
        let m = &self.manifest;
        let input =
            ndarray::ArrayView2::from_shape((rows, m.width()), x).map_err(|e| e.to_string())?;
        let tensor = ort::value::TensorRef::from_array_view(input).map_err(|e| e.to_string())?;
        let outputs = session
            .run(ort::inputs![m.input.name.as_str() => tensor])
            .map_err(|e| format!("model {}: {e}", m.id()))?;
        let (_, y) = outputs[m.output.name.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| format!("model {}: output {}: {e}", m.id(), m.output.name))?;
        Ok(f(y))
    }
}

/// Turns a model's raw output into one anomaly score per row, as its manifest says.
pub fn score_output(
    m: &OnnxManifest,
    x: &[f32],
    y: &[f32],
    rows: usize,
    out: &mut [f32],
) -> Result<(), String> {
    let width = m.width();
    let per_row = match m.output.meaning {
        Meaning::Reconstruction => width,
        _ => 1,
    };
    if y.len() != rows * per_row {
        return Err(format!(
            "model {}: {} output values for {rows} rows (expected {} per row)",
            m.id(),
            y.len(),
            per_row
        ));
    }
    match m.output.meaning {
        Meaning::Score | Meaning::Probability => out[..rows].copy_from_slice(y),
        Meaning::PathLengthSum => {
            let trees = m.output.trees.unwrap_or(1) as f64;
            let c = average_path_length(m.output.sample_size.unwrap_or(2) as f64);
            for (o, &h) in out.iter_mut().zip(y) {
                *o = (-(h as f64) / (trees * c)).exp2() as f32;
            }
        }
        Meaning::Reconstruction => {
            for r in 0..rows {
                let (xr, yr) = (&x[r * width..][..width], &y[r * width..][..width]);
                let sum: f64 = (0..width)
                    .map(|i| {
                        let s = m.output.scale.get(i).copied().unwrap_or(1.0) as f64;
                        let e = (xr[i] as f64 - yr[i] as f64) / s;
                        e * e
                    })
                    .sum();
                out[r] = (sum / width as f64) as f32;
            }
        }
    }
    Ok(())
}
