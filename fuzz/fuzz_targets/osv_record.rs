//! One OSV record (JSON), as imported from a feed.
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let _ = patchbay_feeds::osv::parse(bytes);
});
