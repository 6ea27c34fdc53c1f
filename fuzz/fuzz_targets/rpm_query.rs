//! The `rpm -qa --queryformat` listing the agent parses.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    let _ = patchbay_core::inventory::rpm::parse_query_list(text);
});
