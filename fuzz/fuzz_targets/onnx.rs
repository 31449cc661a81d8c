//! The ONNX TreeEnsembleRegressor reader behind `vigil import`: any bytes give a model or an
//! error, never a crash, and what it imports is a model Vigil loads back as the same model.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use vigil::iforest::onnx::{import, ImportOptions};

fuzz_target!(|data: &[u8]| {
    let opts = ImportOptions {
        features: None,
        sample_size: Some(256),
        threshold: None,
    };
    if let Ok(model) = import(data, "fuzz.onnx", &opts) {
        common::assert_writes_back_the_same(&model);
    }
});
