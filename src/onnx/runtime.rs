//! Finding and loading ONNX Runtime, once per process and only when an ONNX model is configured:
//! Vigil without ONNX models never touches the library.
//!
//! Where the library is looked for, first found wins: `onnx.runtime` in the configuration, the
//! `ORT_DYLIB_PATH` environment variable, then [`DEFAULT_LOCATIONS`] (where
//! `.ci/install-onnxruntime` puts it).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// The ONNX Runtime version Vigil is built and tested against (ort's `api-31`).
pub const VERSION: &str = "1.31.1";

/// Looked at when neither the configuration nor `ORT_DYLIB_PATH` names the library.
pub const DEFAULT_LOCATIONS: [&str; 2] = [
    ".ci/cache/onnxruntime/libonnxruntime.so.1.31.1",
    "/usr/local/lib/libonnxruntime.so.1.31.1",
];

/// The library to load: the configured path, else `ORT_DYLIB_PATH`, else the first default that
/// exists.
pub fn locate(configured: Option<&Path>) -> Result<PathBuf, String> {
    let chosen = configured
        .map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os("ORT_DYLIB_PATH")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| {
            DEFAULT_LOCATIONS
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
        });
    match chosen {
        Some(p) if p.exists() => Ok(p),
        Some(p) => Err(format!(
            "ONNX Runtime library {} does not exist (run .ci/install-onnxruntime, or set onnx.runtime / ORT_DYLIB_PATH to libonnxruntime.so.{VERSION})",
            p.display()
        )),
        None => Err(format!(
            "ONNX Runtime {VERSION} not found: run .ci/install-onnxruntime (it fetches the library from PyPI into {}), or set onnx.runtime or ORT_DYLIB_PATH to libonnxruntime.so.{VERSION}",
            DEFAULT_LOCATIONS[0]
        )),
    }
}

/// The process's one ONNX Runtime environment (ort allows one): loaded from the first path asked
/// for; later calls get the same environment, or the same error.
pub fn environment(configured: Option<&Path>) -> Result<ort::environment::Environment, String> {
    static ENV: Mutex<Option<Result<ort::environment::Environment, String>>> = Mutex::new(None);
    let mut slot = ENV.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(done) = slot.as_ref() {
        return done.clone();
    }
    let result = locate(configured).and_then(|path| {
        // A statically linked glibc program cannot load a shared library that links libc itself:
        // the process would crash in dlopen. Say so instead (the image's binary is one).
        if cfg!(target_feature = "crt-static") {
            return Err(format!(
                "cannot load ONNX Runtime from {}: this vigil is statically linked; ONNX \
                 detectors need the dynamically linked build (cargo build --release)",
                path.display()
            ));
        }
        let env = ort::init_from(&path)
            .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?
            .with_name("vigil")
            .build()
            .map_err(|e| format!("ONNX Runtime from {}: {e}", path.display()))?;
        tracing::info!("ONNX Runtime loaded from {}", path.display());
        Ok(env)
    });
    *slot = Some(result.clone());
    result
}
