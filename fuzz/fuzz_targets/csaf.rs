//! CSAF 2.0 documents (JSON): the product tree, statuses, remediations, VEX.
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let _ = patchbay_feeds::csaf::parse(bytes);
});
