//! The apk installed database (`/lib/apk/db/installed`).
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    let _ = patchbay_core::inventory::apk::parse_installed(text);
});
