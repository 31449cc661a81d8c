//! The ONNX TreeEnsembleRegressor reader behind `vigil import`: any bytes give a model or an
//! error, never a crash, and what it imports is a model Vigil can load back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::iforest::model::IForestModel;
use vigil::iforest::onnx::{import, ImportOptions};

fuzz_target!(|data: &[u8]| {
    let opts = ImportOptions {
        features: None,
        sample_size: Some(256),
        threshold: None,
    };
    if let Ok(model) = import(data, "fuzz.onnx", &opts) {
        let json = model.to_json();
        match IForestModel::from_json(&json) {
            Ok(again) => assert_eq!(
                again.to_json(),
                json,
                "a imported model changes when written back"
            ),
            Err(e) => panic!("a imported model does not load back: {e}"),
        }
    }
});
