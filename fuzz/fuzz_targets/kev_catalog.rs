//! The CISA KEV catalog (JSON).
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let _ = patchbay_feeds::kev::parse(bytes);
});
