//! RFC 5545 recurrence rules of maintenance windows (API and CLI input).
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    let _ = text.parse::<patchbay_core::window::Recurrence>();
});
