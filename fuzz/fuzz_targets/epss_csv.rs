//! The FIRST EPSS daily CSV (streamed).
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let _ = patchbay_feeds::epss::read(bytes, |_| {}, |_| {});
});
