//! A model's registry manifest (`models/NAME/manifest.toml`): what it is (`name`, `version`,
//! `kind`), what it reads, what its output means and its threshold, and where it came from. The one
//! parser of manifests, for every kind: `onnx` (an ONNX file run by ONNX Runtime), `iforest`
//! (Vigil's own forest file) and `zscore` (parameters only).
//!
//! Parsing checks values only; the model file a manifest names is read when its detector is
//! loaded (`detectors::load`).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a manifest cannot be used. Displayed as one line, naming the file and the cause (so the
/// cause is in the message, not chained as a `source`).
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("manifest {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// What a model's output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Meaning {
    /// One number per row: the anomaly score itself.
    Score,
    /// One number per row in [0, 1]: the probability of an anomaly (the score).
    Probability,
    /// The input reconstructed (same shape): the score is the mean over the row's values of
    /// `((x − y) / scale)²`.
    Reconstruction,
    /// One number per row: an isolation forest's sum of path lengths over `trees` trees grown on
    /// `sample_size` rows; the score is `2^(−sum / (trees · c(sample_size)))`.
    PathLengthSum,
}

/// `[input]` of an ONNX manifest.
#[derive(Debug, Clone)]
pub struct InputSpec {
    /// The ONNX input's name.
    pub name: String,
    /// Channels in the order the model reads them.
    pub channels: Vec<String>,
    /// Records per sample (1: one record; more: the last `window` records, oldest first, as one
    /// row of `window × channels` values).
    pub window: u32,
}

/// `[output]` of an ONNX manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// The ONNX output's name.
    pub name: String,
    pub meaning: Meaning,
    /// Reconstruction: per input value, the error's scale (default 1).
    #[serde(default)]
    pub scale: Vec<f32>,
    /// Scores at or above this are anomalous.
    pub threshold: f32,
    /// PathLengthSum: trees and their subsample size.
    pub trees: Option<usize>,
    pub sample_size: Option<usize>,
}

/// `[params]` of a z-score manifest: unset fields take the detector's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZscoreParams {
    pub half_life: Option<f64>,
    pub warmup: Option<u32>,
    pub min_std: Option<f32>,
    pub clip: Option<f32>,
}

/// An ONNX model's manifest: everything ONNX Runtime's session is checked against.
#[derive(Debug, Clone)]
pub struct OnnxManifest {
    pub name: String,
    pub version: String,
    /// The model file, resolved against the manifest's directory.
    pub file: PathBuf,
    pub input: InputSpec,
    pub output: OutputSpec,
}

/// What a manifest describes, by kind.
#[derive(Debug, Clone)]
pub enum Model {
    Onnx(OnnxManifest),
    Iforest {
        /// The forest file, resolved against the manifest's directory.
        file: PathBuf,
        /// The channels the forest must read, in order (checked against the file at load).
        channels: Option<Vec<String>>,
    },
    Zscore(ZscoreParams),
}

/// A parsed, checked manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub description: String,
    /// How it was trained, on what: free-form.
    pub provenance: BTreeMap<String, String>,
    pub model: Model,
}

/// The file as written, every kind's fields together.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    version: String,
    kind: String,
    /// onnx, iforest: the model file, relative to the manifest.
    file: Option<PathBuf>,
    #[serde(default)]
    description: String,
    input: Option<RawInput>,
    output: Option<OutputSpec>,
    params: Option<ZscoreParams>,
    #[serde(default)]
    provenance: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    /// onnx only.
    name: Option<String>,
    channels: Vec<String>,
    /// onnx only. Default 1.
    window: Option<u32>,
}

/// Longest window a manifest may ask for.
pub const MAX_WINDOW: u32 = 4096;

/// The kinds a manifest may have.
pub const KINDS: [&str; 3] = ["onnx", "iforest", "zscore"];

impl Manifest {
    /// Reads and checks `path`; model files come back resolved against its directory.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        Manifest::load_kind(path, None)
    }

    /// [`Manifest::load`] of an ONNX manifest: any other kind is refused.
    pub fn load_onnx(path: &Path) -> Result<OnnxManifest, ManifestError> {
        match Manifest::load_kind(path, Some("onnx"))?.model {
            Model::Onnx(m) => Ok(m),
            _ => unreachable!("load_kind checked the kind"),
        }
    }

    fn load_kind(path: &Path, want: Option<&str>) -> Result<Manifest, ManifestError> {
        let invalid = |message: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|error| ManifestError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let raw: RawManifest =
            toml::from_str(&text).map_err(|e| invalid(e.message().replace('\n', " ")))?;
        if let Some(want) = want.filter(|w| *w != raw.kind) {
            return Err(invalid(format!(
                "kind {:?}: only {want:?} manifests name {} files",
                raw.kind,
                want.to_uppercase()
            )));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        raw.check(dir).map_err(invalid)
    }

    /// `name@version`, as alerts and logs name it.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

impl RawManifest {
    fn check(self, dir: &Path) -> Result<Manifest, String> {
        if self.name.is_empty() || self.version.is_empty() {
            return Err("name and version must not be empty".into());
        }
        let not_for = |field: &str, present: bool| {
            if present {
                Err(format!(
                    "{field} is not a field of {:?} manifests",
                    self.kind
                ))
            } else {
                Ok(())
            }
        };
        let model = match self.kind.as_str() {
            "onnx" => {
                not_for("params", self.params.is_some())?;
                let file = self
                    .file
                    .ok_or("an onnx manifest needs file = \"MODEL.onnx\"")?;
                let input = self.input.ok_or("an onnx manifest needs [input]")?;
                let output = self.output.ok_or("an onnx manifest needs [output]")?;
                let m = OnnxManifest {
                    name: self.name.clone(),
                    version: self.version.clone(),
                    file: dir.join(file),
                    input: InputSpec {
                        name: input
                            .name
                            .ok_or("input.name (the ONNX input) is required")?,
                        channels: input.channels,
                        window: input.window.unwrap_or(1),
                    },
                    output,
                };
                m.check()?;
                Model::Onnx(m)
            }
            "iforest" => {
                not_for("output", self.output.is_some())?;
                not_for("params", self.params.is_some())?;
                let file = self
                    .file
                    .ok_or("an iforest manifest needs file = \"MODEL.vigil\"")?;
                let channels = match self.input {
                    Some(i) => {
                        if i.name.is_some() || i.window.is_some() {
                            return Err("input of an iforest manifest has channels only".into());
                        }
                        Some(i.channels)
                    }
                    None => None,
                };
                Model::Iforest {
                    file: dir.join(file),
                    channels,
                }
            }
            "zscore" => {
                not_for("file", self.file.is_some())?;
                not_for("input", self.input.is_some())?;
                not_for("output", self.output.is_some())?;
                Model::Zscore(self.params.unwrap_or_default())
            }
            other => {
                return Err(format!(
                    "kind {other:?}: expected {}",
                    KINDS.map(|k| format!("{k:?}")).join(", ")
                ))
            }
        };
        Ok(Manifest {
            name: self.name,
            version: self.version,
            description: self.description,
            provenance: self.provenance,
            model,
        })
    }
}

impl OnnxManifest {
    fn check(&self) -> Result<(), String> {
        let c = &self.input.channels;
        if c.is_empty() || (1..c.len()).any(|i| c[..i].contains(&c[i])) {
            return Err("input.channels must be a non-empty list without repeats".into());
        }
        if !(1..=MAX_WINDOW).contains(&self.input.window) {
            return Err(format!("input.window must be 1 to {MAX_WINDOW}"));
        }
        let width = self.width();
        let o = &self.output;
        if !o.threshold.is_finite() {
            return Err("output.threshold must be a number".into());
        }
        match o.meaning {
            Meaning::Reconstruction => {
                if !o.scale.is_empty() && o.scale.len() != width {
                    return Err(format!(
                        "output.scale has {} values; the input has {width}",
                        o.scale.len()
                    ));
                }
                if o.scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
                    return Err("output.scale values must be positive".into());
                }
            }
            Meaning::PathLengthSum => {
                if !(o.trees.is_some_and(|t| t > 0) && o.sample_size.is_some_and(|s| s >= 2)) {
                    return Err("path_length_sum needs output.trees and output.sample_size".into());
                }
            }
            Meaning::Score | Meaning::Probability => {}
        }
        Ok(())
    }

    /// Values per input row: `window × channels`.
    pub fn width(&self) -> usize {
        self.input.window as usize * self.input.channels.len()
    }

    /// `name@version`, as alerts and logs name it.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vigil-manifest-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("manifest.toml");
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn every_kind_parses_and_resolves_its_file_beside_the_manifest() {
        let z = Manifest::load(&write(
            "name = \"z\"\nversion = \"2\"\nkind = \"zscore\"\n[params]\nwarmup = 5\n",
        ))
        .expect("zscore");
        assert_eq!(z.id(), "z@2");
        assert!(matches!(
            z.model,
            Model::Zscore(ZscoreParams {
                warmup: Some(5),
                ..
            })
        ));
        let path = write(
            "name = \"f\"\nversion = \"1\"\nkind = \"iforest\"\nfile = \"f.vigil\"\n[input]\nchannels = [\"a\"]\n",
        );
        let f = Manifest::load(&path).expect("iforest");
        let Model::Iforest { file, channels } = f.model else {
            panic!("iforest")
        };
        assert_eq!(file, path.parent().expect("dir").join("f.vigil"));
        assert_eq!(channels, Some(vec!["a".to_string()]));
    }

    #[test]
    fn wrong_fields_for_a_kind_are_refused_in_one_line() {
        for (text, want) in [
            (
                "name = \"z\"\nversion = \"1\"\nkind = \"zscore\"\nfile = \"x\"\n",
                "file is not a field of \"zscore\"",
            ),
            (
                "name = \"f\"\nversion = \"1\"\nkind = \"iforest\"\n",
                "needs file",
            ),
            (
                "name = \"t\"\nversion = \"1\"\nkind = \"tree\"\n",
                "kind \"tree\": expected \"onnx\", \"iforest\", \"zscore\"",
            ),
            (
                "name = \"\"\nversion = \"1\"\nkind = \"zscore\"\n",
                "must not be empty",
            ),
            (
                "name = \"z\"\nversion = \"1\"\nkind = \"zscore\"\ncolour = 1\n",
                "unknown field `colour`",
            ),
        ] {
            let e = Manifest::load(&write(text)).expect_err(text).to_string();
            assert!(e.contains(want) && !e.contains('\n'), "{want}: {e}");
        }
        let e = Manifest::load_onnx(&write("name = \"z\"\nversion = \"1\"\nkind = \"zscore\"\n"))
            .expect_err("not onnx")
            .to_string();
        assert!(e.contains("only \"onnx\""), "{e}");
    }
}
