//! The configuration loader: any YAML text, never a panic; what it accepts passes validation
//! again (the loader validates exactly what it returns).
#![no_main]

use imgproxy_gateway::config::{load_str, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env: Vec<(String, String)> = Vec::new();
    if let Ok(config) = load_str(text, env) {
        validate(&config).expect("a loaded configuration is valid");
    }
});
