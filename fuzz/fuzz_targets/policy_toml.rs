//! Policy as code (TOML), as an operator uploads it.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Ok(p) = patchbay_core::policy::parse(text) {
        // The canonical fingerprint of what parsed is total.
        let _ = p.fingerprint();
    }
});
