//! The Vigil isolation-forest model file loader: any text gives a model or an error, never a crash,
//! and a model that loads writes itself back as the same model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::iforest::model::IForestModel;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(model) = IForestModel::from_json(text) {
        let json = model.to_json();
        match IForestModel::from_json(&json) {
            Ok(again) => assert_eq!(
                again.to_json(),
                json,
                "a loaded model changes when written back"
            ),
            Err(e) => panic!("a loaded model does not load back: {e}"),
        }
    }
});
