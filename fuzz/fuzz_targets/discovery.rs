//! Discovery files: nmap XML, dhcpd and dnsmasq leases, AWS/Azure/GCP JSON
//! (the first byte picks the parser). None may panic; an accepted file's
//! observations reconcile without panicking.
#![no_main]
use patchbay_core::discovery::{self, SourceKind};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let kinds = [
        SourceKind::Nmap,
        SourceKind::Dhcpd,
        SourceKind::Dnsmasq,
        SourceKind::Aws,
        SourceKind::Azure,
        SourceKind::Gcp,
    ];
    let kind = kinds[usize::from(pick) % kinds.len()];
    if let Ok(obs) = discovery::parse(kind, text) {
        let now = jiff::Timestamp::UNIX_EPOCH;
        let seen: Vec<discovery::Seen> = obs
            .into_iter()
            .enumerate()
            .map(|(i, obs)| discovery::Seen {
                id: i as i64,
                kind,
                source: "fuzz".into(),
                at: obs.seen_at.unwrap_or(now),
                obs,
            })
            .collect();
        let _ = discovery::reconcile(
            &seen,
            &[],
            &Default::default(),
            now,
            jiff::SignedDuration::from_hours(24),
        );
    }
});
