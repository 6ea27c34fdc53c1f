//! Output a rehearsal reads (issue 18): apt-get/dpkg transcripts with failing
//! package scripts, apt's resolution errors, `apt-cache show` relations and
//! `/proc/self/mountinfo`. Never panics; every script output kept is bounded.
#![no_main]
use patchbay_agent::exec::rehearse;
libfuzzer_sys::fuzz_target!(|input: (u8, &str)| {
    let (k, t) = input;
    match k % 4 {
        0 => {
            for f in rehearse::script_failures(t) {
                assert!(f.output.len() <= rehearse::MAX_OUTPUT);
            }
        }
        1 => drop(rehearse::apt_unmet(t)),
        2 => drop(rehearse::deb822_relations(t)),
        _ => drop(rehearse::separate_mounts(t, std::path::Path::new("/"))),
    }
});
