//! os-release(5).
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    let _ = patchbay_core::inventory::os_release::parse(text);
});
