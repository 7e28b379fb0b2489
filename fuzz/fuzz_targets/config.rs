//! Fuzzes the configuration path: .properties lexing, ${} substitution and the agent model.
//! Any input must give a config or a ConfigError, never a panic.
#![no_main]

use flume_fast::config::{load_str, Substitutions};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut subs = Substitutions::default();
    subs.defines.insert("PORT".into(), "4444".into());
    if let Ok(cfg) = load_str(Path::new("fuzz.conf"), text, None, &subs) {
        let _ = flume_fast::config::render::flow(&cfg);
    }
});
