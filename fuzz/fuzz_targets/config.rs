//! The config parser and validation: any text gives a config or an error, never a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::config::{Config, RawConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(raw) = RawConfig::from_toml(text) {
        let _ = Config::validate(raw);
    }
});
