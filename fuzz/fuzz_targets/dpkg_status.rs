//! The dpkg status database (`/var/lib/dpkg/status`), as an agent reads it.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    let _ = patchbay_core::inventory::dpkg::parse_status(text);
});
