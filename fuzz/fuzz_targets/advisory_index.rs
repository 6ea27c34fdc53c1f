//! The compiled advisory index file (`patchbay scan`'s cache, read from disk).
//! The bytes are tried twice: as a whole file (header, version, length and
//! checksum checks), and as the payload of a header with a valid checksum, so
//! the record readers behind the checksum are reached too. Lookups on whatever
//! opens must answer or fail, never panic.
#![no_main]
use patchbay_core::compiled::{CompiledIndex, seal};

fn exercise(c: &CompiledIndex) {
    let _ = c.to_index();
    let _ = c.subset("Debian:12", ["openssl", "linux", ""]);
    for cve in ["CVE-2023-4911", "", "\u{ffff}"] {
        let _ = c.kev(cve);
        let _ = c.epss(cve);
    }
    let _ = c.note();
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(c) = CompiledIndex::open(data.to_vec(), None) {
        exercise(&c);
    }
    let payload = data.get(patchbay_core::compiled::HEADER_LEN..).unwrap_or(data);
    if let Ok(c) = CompiledIndex::open(seal([0; 32], payload), None) {
        exercise(&c);
    }
});
