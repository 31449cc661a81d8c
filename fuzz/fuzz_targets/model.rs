//! The Vigil isolation-forest model file loader: any text gives a model or an error, never a crash,
//! and a model that loads writes itself back in a form that loads again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::iforest::model::IForestModel;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(model) = IForestModel::from_json(text) {
        let again = IForestModel::from_json(&model.to_json());
        assert!(
            again.is_ok(),
            "a loaded model does not load again: {:?}",
            again.err()
        );
    }
});
