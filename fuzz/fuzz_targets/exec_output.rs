//! Package-manager output the agent parses while applying a job: dpkg-query,
//! apt simulations, dpkg --audit, apt-cache sizes, rpm queries, dnf tables,
//! zypper XML, apk simulations. The first byte picks the parser.
#![no_main]
use patchbay_agent::exec::parse;
libfuzzer_sys::fuzz_target!(|input: (u8, &str)| {
    let (k, t) = input;
    match k % 10 {
        0 => drop(parse::dpkg_query(t)),
        1 => drop(parse::apt_actions(t)),
        2 => drop(parse::dpkg_audit(t)),
        3 => drop(parse::deb822_sizes(t)),
        4 => drop(parse::rpm_query(t)),
        5 => drop(parse::dnf_transaction(t)),
        6 => drop(parse::zypper_summary(t)),
        7 => drop(parse::zypper_updates(t)),
        8 => drop(parse::apk_simulation(t)),
        _ => drop(parse::dnf_sizes(t)),
    }
});
