//! The unmanaged-software parsers (issue 20, item 5): arbitrary bytes never
//! panic, rendered inputs read back exactly (metadata headers, package.json,
//! Go build information, cargo-auditable lists), and matching in the language
//! ecosystems goes by each ecosystem's own order and name rules.

use std::io::Write;

use patchbay_core::assess::{
    AdvisoryInfo, Assessor, Index, finding_name, unmanaged_arch, unmanaged_path,
};
use patchbay_core::inventory::unmanaged::{
    Ecosystem, GO_BUILDINFO_MAGIC, Unmanaged, auditable_deps, check, dist_metadata, go_buildinfo,
    go_items, npm_package,
};
use patchbay_version::osv::{Event, Range, RangeKind};
use proptest::prelude::*;

fn go_blob(version: &str, modinfo: &str, pad: usize) -> Vec<u8> {
    let mut b = vec![0u8; pad * 16];
    b.extend_from_slice(GO_BUILDINFO_MAGIC);
    b.extend_from_slice(&[8, 2]);
    b.resize(pad * 16 + 32, 0);
    let mut put = |s: &[u8]| {
        let mut n = s.len();
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                b.push(byte);
                break;
            }
            b.push(byte | 0x80);
        }
        b.extend_from_slice(s);
    };
    put(version.as_bytes());
    let mut m = vec![0x30u8; 16];
    m.extend_from_slice(modinfo.as_bytes());
    m.extend_from_slice(&[0xf9; 16]);
    put(&m);
    b
}

fn zlib(s: &str) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(s.as_bytes()).unwrap();
    e.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(512)
    ))]

    /// Every parser answers Ok or Err on any bytes.
    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = dist_metadata(&b);
        let _ = npm_package(&b);
        let _ = go_buildinfo(&b);
        let _ = auditable_deps(&b);
        // The magic in front of arbitrary bytes exercises the varint and
        // module-line readers.
        let mut g = GO_BUILDINFO_MAGIC.to_vec();
        g.extend_from_slice(&[8, 2]);
        g.resize(32, 0);
        g.extend_from_slice(&b);
        let _ = go_buildinfo(&g);
        let _ = auditable_deps(&zlib(&String::from_utf8_lossy(&b)));
    }

    #[test]
    fn metadata_reads_back(
        name in "[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?",
        version in "[0-9][0-9a-z.+!-]{0,15}",
        extra in proptest::collection::vec(("[A-Z][a-z-]{1,10}", "[ -~]{0,30}"), 0..5),
        crlf in any::<bool>(),
    ) {
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut text = format!("Metadata-Version: 2.1{nl}");
        for (k, v) in &extra {
            if !k.eq_ignore_ascii_case("name") && !k.eq_ignore_ascii_case("version") {
                text += &format!("{k}: {v}{nl}");
            }
        }
        text += &format!("Name: {name}{nl}Version: {version}{nl}{nl}Name: body{nl}");
        prop_assert_eq!(dist_metadata(text.as_bytes()).unwrap(), (name, version));
    }

    #[test]
    fn package_json_reads_back(name in "(@[a-z]{1,8}/)?[a-z][a-z0-9._-]{0,20}", version in "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(-[a-z0-9.]{1,8})?") {
        let json = serde_json::json!({"name": name, "version": version, "dependencies": {"x": "^1"}});
        prop_assert_eq!(npm_package(json.to_string().as_bytes()).unwrap(), (name, version));
    }

    /// Rendered build information reads back, wherever the blob sits (16-byte
    /// aligned) and whatever precedes it.
    #[test]
    fn go_buildinfo_reads_back(
        minor in 18u32..24, patch in 0u32..12,
        deps in proptest::collection::vec(("[a-z]{1,8}\\.(com|org)/[a-z]{1,8}", 0u32..5, 0u32..20), 0..40),
        pad in 0usize..8,
        noise in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let go = format!("go1.{minor}.{patch}");
        let mut modinfo = "path\texample.com/cmd\nmod\texample.com/cmd\t(devel)\t\n".to_string();
        for (p, a, b) in &deps {
            modinfo += &format!("dep\t{p}\tv{a}.{b}.0\th1:abc=\n");
        }
        modinfo += "build\tGOOS=linux\n";
        let mut blob = go_blob(&go, &modinfo, pad);
        for (i, n) in noise.iter().enumerate().take(pad * 16) {
            // Noise before the magic (never a 16-aligned magic itself).
            blob[i] = *n & 0x7f;
        }
        let info = go_buildinfo(&blob).unwrap();
        prop_assert_eq!(&info.go_version, &go);
        let want: Vec<(String, String)> = deps.iter().map(|(p, a, b)| (p.clone(), format!("v{a}.{b}.0"))).collect();
        prop_assert_eq!(&info.deps, &want);
        let items = go_items(&info, "/usr/local/bin/cmd");
        prop_assert_eq!(items.len(), 1 + deps.len());
        prop_assert!(check(&items).is_ok());
    }

    #[test]
    fn auditable_reads_back(pkgs in proptest::collection::vec(("[a-z][a-z0-9_-]{0,12}", 0u32..4, 0u32..30, 0u8..4), 0..30)) {
        let list: Vec<serde_json::Value> = pkgs.iter().map(|(n, a, b, s)| {
            let source = ["crates.io", "local", "git", "crates.io"][usize::from(*s)];
            serde_json::json!({"name": n, "version": format!("{a}.{b}.0"), "source": source})
        }).collect();
        let json = serde_json::json!({"packages": list}).to_string();
        let mut want: Vec<(String, String)> = pkgs.iter()
            .filter(|(_, _, _, s)| *s % 3 == 0)
            .map(|(n, a, b, _)| (n.clone(), format!("{a}.{b}.0")))
            .collect();
        want.sort();
        want.dedup();
        prop_assert_eq!(auditable_deps(&zlib(&json)).unwrap(), want);
    }
}

fn info(id: &str) -> AdvisoryInfo {
    AdvisoryInfo {
        id: id.into(),
        cves: vec![],
        cvss: None,
        cvss_vector: None,
        summary: String::new(),
        published: None,
        distro_severity: None,
    }
}

fn range(kind: RangeKind, fixed: &str) -> Vec<Range> {
    vec![Range {
        kind,
        events: vec![Event::Introduced("0".into()), Event::Fixed(fixed.into())],
    }]
}

fn item(eco: Ecosystem, name: &str, version: &str, path: &str) -> Unmanaged {
    Unmanaged {
        ecosystem: eco,
        name: name.into(),
        version: version.into(),
        path: path.into(),
    }
}

/// Each ecosystem matches under its own order and name rules, the path is in
/// the finding's `arch`, and the same software in two places is two findings.
#[test]
fn unmanaged_items_match_in_their_ecosystems() {
    let mut idx = Index::new();
    idx.add(
        info("PYSEC-1"),
        vec![(
            "PyPI".into(),
            "Foo_Bar".into(),
            range(RangeKind::Ecosystem, "2.31.0"),
            vec![],
        )],
    );
    idx.add(
        info("GO-1"),
        vec![(
            "Go".into(),
            "stdlib".into(),
            range(RangeKind::Semver, "1.19.9"),
            vec![],
        )],
    );
    idx.add(
        info("NPM-1"),
        vec![(
            "npm".into(),
            "left-pad".into(),
            range(RangeKind::Semver, "1.3.0"),
            vec![],
        )],
    );
    idx.add(
        info("RUSTSEC-1"),
        vec![(
            "crates.io".into(),
            "smallvec".into(),
            range(RangeKind::Semver, "1.6.1"),
            vec![],
        )],
    );
    let items = vec![
        item(
            Ecosystem::Pypi,
            "foo.bar",
            "2.31.0rc1",
            "/usr/local/lib/python3.11/dist-packages/foo.bar-2.31.0rc1.dist-info",
        ),
        item(
            Ecosystem::Pypi,
            "foo-bar",
            "2.31.0",
            "/opt/venv/lib/python3.11/site-packages/foo_bar-2.31.0.dist-info",
        ),
        item(
            Ecosystem::Pypi,
            "Foo-Bar",
            "2.30",
            "/opt/other/lib/python3.11/site-packages/Foo_Bar-2.30.dist-info",
        ),
        item(Ecosystem::Go, "stdlib", "go1.19.8", "/usr/local/bin/hello"),
        item(
            Ecosystem::Go,
            "example.com/hello",
            "(devel)",
            "/usr/local/bin/hello",
        ),
        item(
            Ecosystem::Npm,
            "left-pad",
            "1.2.0",
            "/usr/local/lib/node_modules/left-pad/package.json",
        ),
        item(
            Ecosystem::CratesIo,
            "smallvec",
            "1.6.0",
            "/usr/local/bin/tool",
        ),
        item(
            Ecosystem::CratesIo,
            "smallvec",
            "1.6.1",
            "/usr/local/bin/fixed",
        ),
    ];
    let (f, _) = Assessor::new().assess_unmanaged(&idx, &items);
    let got: Vec<(&str, &str, Option<&str>, Option<&str>)> = f
        .iter()
        .map(|f| {
            (
                f.advisory.as_str(),
                f.installed_version.as_str(),
                f.fixed_version.as_deref(),
                unmanaged_path(&f.arch),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "PYSEC-1",
                "2.30",
                Some("2.31.0"),
                Some("/opt/other/lib/python3.11/site-packages/Foo_Bar-2.30.dist-info")
            ),
            (
                "PYSEC-1",
                "2.31.0rc1",
                Some("2.31.0"),
                Some("/usr/local/lib/python3.11/dist-packages/foo.bar-2.31.0rc1.dist-info")
            ),
            (
                "NPM-1",
                "1.2.0",
                Some("1.3.0"),
                Some("/usr/local/lib/node_modules/left-pad/package.json")
            ),
            (
                "RUSTSEC-1",
                "1.6.0",
                Some("1.6.1"),
                Some("/usr/local/bin/tool")
            ),
            (
                "GO-1",
                "go1.19.8",
                Some("1.19.9"),
                Some("/usr/local/bin/hello")
            ),
        ]
    );
    assert!(f.iter().all(|f| f.arch.starts_with("unmanaged:")));
    assert_eq!(unmanaged_arch("/x"), "unmanaged:/x");
    assert_eq!(
        finding_name("h", "GO-1", "stdlib", "unmanaged:/usr/local/bin/a"),
        "F-h-GO-1-stdlib@/usr/local/bin/a"
    );
    assert_eq!(
        finding_name("h", "DSA-1", "openssl", "amd64"),
        "F-h-DSA-1-openssl"
    );
    assert_eq!(unmanaged_path("amd64"), None);
}

fn fixture(rel: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/unmanaged")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Real files: the `.go.buildinfo` section of a program built here with
/// Debian 12's Go 1.19.8 (`objcopy -O binary --only-section`), and the
/// METADATA pip installed for urllib3 1.26.4 (43 KB: its long description
/// follows the headers).
#[test]
fn real_files_read() {
    let info = go_buildinfo(&fixture("go1.19.8-hello.go.buildinfo")).unwrap();
    assert_eq!(info.go_version, "go1.19.8");
    assert_eq!(info.path.as_deref(), Some("command-line-arguments"));
    assert_eq!(info.main, None);
    assert!(info.deps.is_empty());
    let items = go_items(&info, "/usr/local/bin/hello");
    assert_eq!(items.len(), 1);
    assert_eq!(
        dist_metadata(&fixture("urllib3-1.26.4.METADATA")).unwrap(),
        ("urllib3".to_owned(), "1.26.4".to_owned())
    );
}
