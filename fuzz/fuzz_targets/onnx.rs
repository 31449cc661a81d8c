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
        let again = IForestModel::from_json(&model.to_json());
        assert!(
            again.is_ok(),
            "an imported model does not load: {:?}",
            again.err()
        );
    }
});
