//! Unmanaged-software parsers (issue 20, item 5): a `.dist-info/METADATA`, an
//! npm `package.json`, a Go binary's build information and a cargo-auditable
//! `.dep-v0` section (the first byte picks the parser). None may panic or
//! run away (every one is bounded); what one accepts passes the check-in
//! rules (`unmanaged::check`).
#![no_main]
use patchbay_core::inventory::unmanaged::{
    Ecosystem, Unmanaged, auditable_deps, check, dist_metadata, go_buildinfo, go_items,
    npm_package,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let item = |ecosystem, name: String, version: String| Unmanaged {
        ecosystem,
        name,
        version,
        path: "/fuzz".into(),
    };
    let items: Vec<Unmanaged> = match pick % 4 {
        0 => dist_metadata(rest)
            .map(|(n, v)| vec![item(Ecosystem::Pypi, n, v)])
            .unwrap_or_default(),
        1 => npm_package(rest)
            .map(|(n, v)| vec![item(Ecosystem::Npm, n, v)])
            .unwrap_or_default(),
        2 => go_buildinfo(rest)
            .map(|info| go_items(&info, "/fuzz"))
            .unwrap_or_default(),
        _ => auditable_deps(rest)
            .map(|deps| {
                deps.into_iter()
                    .map(|(n, v)| item(Ecosystem::CratesIo, n, v))
                    .collect()
            })
            .unwrap_or_default(),
    };
    if let Err(e) = check(&items) {
        panic!("a parsed item fails the check-in rules: {e}");
    }
});
