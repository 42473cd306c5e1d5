//! The proxy's TOML: any text loads or gets a one-line error, never a panic; an error never
//! repeats a secret given literally.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ghapp_proxy::config::ProxyConfig::parse(text, "fuzz") {
        Ok(cfg) => {
            let _ = format!("{cfg:?}");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty());
        }
    }
});
