//! The Vigil isolation-forest model file loader: any text gives a model or an error, never a crash,
//! and a model that loads writes itself back as the same model.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use vigil::iforest::model::IForestModel;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(model) = IForestModel::from_json(text) {
        common::assert_writes_back_the_same(&model);
    }
});
