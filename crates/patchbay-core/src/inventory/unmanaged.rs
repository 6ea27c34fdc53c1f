//! Software installed outside the package manager ("unmanaged"): Python
//! distributions, global npm modules, Go binaries and Rust binaries built with
//! `cargo auditable` (issue 20, item 5; ADR 0016, docs/unmanaged-software.md).
//!
//! The agent finds the files (bounded walks of configured roots); this module
//! holds the pure parsers of what it reads, so they are property-tested and
//! fuzzed (`fuzz/fuzz_targets/unmanaged.rs`), and the wire item
//! [`Unmanaged`] with the rules a check-in is held to ([`check`]).
//!
//! | source | parser | what it yields |
//! | --- | --- | --- |
//! | `*.dist-info/METADATA` (core metadata, RFC 822 headers) | [`dist_metadata`] | `Name`, `Version` |
//! | `node_modules/<name>/package.json` | [`npm_package`] | `name`, `version` |
//! | a Go binary's `.go.buildinfo` section (or the whole file, scanned as `go version -m` does) | [`go_buildinfo`] | the Go toolchain version (the `stdlib` package), the main module and every dependency with its version (replacements applied) |
//! | a Rust binary's `.dep-v0` section (zlib-compressed JSON of `cargo auditable`) | [`auditable_deps`] | every crates.io package compiled in (build-only dependencies left out) |
//!
//! # Layout
//!
//! Every parser takes bytes and returns a value or an [`UnmanagedError`] saying
//! what is wrong; none panics or allocates beyond its input's bound (the limits
//! below carry their reasons), whatever the bytes.

use std::io::Read;

use serde::{Deserialize, Serialize};

/// The OSV ecosystem an unmanaged item is matched in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Ecosystem {
    /// Python distributions (PEP 440 versions, PEP 503 names).
    #[serde(rename = "PyPI")]
    Pypi,
    /// npm packages (SemVer).
    #[serde(rename = "npm")]
    Npm,
    /// Go modules and the Go standard library (`stdlib`).
    #[serde(rename = "Go")]
    Go,
    /// Rust crates (SemVer).
    #[serde(rename = "crates.io")]
    CratesIo,
}

impl Ecosystem {
    /// All four.
    pub const ALL: [Ecosystem; 4] = [
        Ecosystem::Pypi,
        Ecosystem::Npm,
        Ecosystem::Go,
        Ecosystem::CratesIo,
    ];

    /// The OSV ecosystem name (`PyPI`, `npm`, `Go`, `crates.io`).
    pub fn osv(self) -> &'static str {
        match self {
            Ecosystem::Pypi => "PyPI",
            Ecosystem::Npm => "npm",
            Ecosystem::Go => "Go",
            Ecosystem::CratesIo => "crates.io",
        }
    }

    /// The ecosystem of an OSV name, if it is one of the four.
    pub fn from_osv(name: &str) -> Option<Ecosystem> {
        Ecosystem::ALL.into_iter().find(|e| e.osv() == name)
    }

    /// The name advisories key a package under: PEP 503-normalised for PyPI,
    /// as written elsewhere (Go module paths and npm names are case-sensitive;
    /// crates.io names are canonical as published).
    pub fn key_name(self, name: &str) -> String {
        match self {
            Ecosystem::Pypi => patchbay_version::pypi::normalize_name(name),
            _ => name.to_owned(),
        }
    }
}

/// One piece of software found outside the package manager, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Unmanaged {
    /// The OSV ecosystem it is matched in.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub ecosystem: Ecosystem,
    /// Package name (distribution, npm package, Go module path, crate).
    pub name: String,
    /// Version as found (`2.25.0`, `v0.7.0`, `go1.19.8`).
    pub version: String,
    /// Where: the `.dist-info` directory, the module's `package.json`, or the
    /// binary (a Go or Rust binary's dependencies all carry the binary's path).
    pub path: String,
}

/// Bounds on what the agent reads and a check-in may carry. Each is far above
/// real hosts and far below what would hurt the agent or the server.
pub mod limits {
    /// Items per inventory (a host with many virtualenvs has a few thousand).
    pub const MAX_ITEMS: usize = 20_000;
    /// Length of a name, version or path.
    pub const MAX_FIELD_LEN: usize = 512;
    /// Bytes of a `METADATA` file read: the headers come first and are a few
    /// KiB; the long description after them is never needed.
    pub const MAX_METADATA: usize = 64 * 1024;
    /// Bytes of a `package.json` (real ones are a few KiB; lock-step nesting is
    /// bounded by serde_json's recursion limit of 128).
    pub const MAX_PACKAGE_JSON: usize = 1024 * 1024;
    /// Bytes of a `.go.buildinfo` section or of a file scanned for it (the
    /// section is a few KiB even for large binaries).
    pub const MAX_GO_BUILDINFO: usize = 1024 * 1024;
    /// Compressed bytes of a `.dep-v0` section.
    pub const MAX_AUDITABLE_COMPRESSED: usize = 1024 * 1024;
    /// Decompressed bytes of a `.dep-v0` section: a zlib bomb stops here.
    pub const MAX_AUDITABLE_JSON: usize = 8 * 1024 * 1024;
    /// Dependencies taken from one binary.
    pub const MAX_DEPS: usize = 5_000;
}

/// Why a file's content was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnmanagedError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, UnmanagedError> {
    Err(UnmanagedError(msg.into()))
}

fn field_ok(what: &str, v: &str) -> Result<(), UnmanagedError> {
    if v.is_empty() {
        return err(format!("{what} is empty"));
    }
    if v.len() > limits::MAX_FIELD_LEN {
        return err(format!(
            "{what} is longer than {} bytes",
            limits::MAX_FIELD_LEN
        ));
    }
    if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return err(format!(
            "{what} {v:?} contains spaces or control characters"
        ));
    }
    Ok(())
}

/// PEP 508 distribution names: ASCII letters and digits, with `.`, `_` and `-`
/// inside.
fn pep508_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// `Name` and `Version` of a core metadata file (`METADATA` of a `.dist-info`,
/// `PKG-INFO`): RFC 822-style headers up to the first blank line, continuation
/// lines (leading space or tab) belonging to the header before. Only the first
/// [`limits::MAX_METADATA`] bytes are looked at; a header block that does not
/// end within them, a missing or repeated `Name`/`Version`, or a name that is
/// not a PEP 508 name is an error.
pub fn dist_metadata(bytes: &[u8]) -> Result<(String, String), UnmanagedError> {
    let bytes = &bytes[..bytes.len().min(limits::MAX_METADATA)];
    // The headers are UTF-8 (core metadata 2.1+); the description may be cut
    // mid-character by the bound, so only the valid prefix is read.
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
    };
    let mut name = None;
    let mut version = None;
    let mut ended = false;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            ended = true;
            break;
        }
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return err(format!("metadata header line {line:.80?} has no ':'"));
        };
        let slot = if key.eq_ignore_ascii_case("Name") {
            &mut name
        } else if key.eq_ignore_ascii_case("Version") {
            &mut version
        } else {
            continue;
        };
        if slot.is_some() {
            return err(format!("metadata repeats the {key} header"));
        }
        *slot = Some(value.trim().to_owned());
    }
    if !ended && text.len() == limits::MAX_METADATA {
        return err(format!(
            "metadata headers do not end within {} bytes",
            limits::MAX_METADATA
        ));
    }
    let name = name.ok_or_else(|| UnmanagedError("metadata has no Name header".into()))?;
    let version = version.ok_or_else(|| UnmanagedError("metadata has no Version header".into()))?;
    if !pep508_name(&name) {
        return err(format!(
            "Name {name:.80?} is not a PEP 508 distribution name"
        ));
    }
    field_ok("Name", &name)?;
    field_ok("Version", &version)?;
    Ok((name, version))
}

/// `name` and `version` of an npm `package.json`. Larger than
/// [`limits::MAX_PACKAGE_JSON`], not JSON, or without both as strings is an
/// error (serde_json refuses nesting deeper than 128).
pub fn npm_package(bytes: &[u8]) -> Result<(String, String), UnmanagedError> {
    #[derive(Deserialize)]
    struct Raw {
        name: Option<serde_json::Value>,
        version: Option<serde_json::Value>,
    }
    if bytes.len() > limits::MAX_PACKAGE_JSON {
        return err(format!(
            "package.json is larger than {} bytes",
            limits::MAX_PACKAGE_JSON
        ));
    }
    let raw: Raw = serde_json::from_slice(bytes)
        .map_err(|e| UnmanagedError(format!("package.json is not valid JSON: {e}")))?;
    let get = |v: Option<serde_json::Value>, what: &str| match v {
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(_) => err(format!("package.json {what} is not a string")),
        None => err(format!("package.json has no {what}")),
    };
    let name = get(raw.name, "name")?;
    let version = get(raw.version, "version")?;
    field_ok("name", &name)?;
    field_ok("version", &version)?;
    Ok((name, version))
}

/// What a Go binary's build information says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GoBuildInfo {
    /// The toolchain that built it (`go1.19.8`): the version of the `stdlib`
    /// package compiled in.
    pub go_version: String,
    /// The main package's import path (`path` line), if recorded.
    pub path: Option<String>,
    /// The main module (`mod` line) and its version (`(devel)` when built from
    /// a working tree).
    pub main: Option<(String, String)>,
    /// The dependencies (`dep` lines), each replaced by its `=>` line when it
    /// has one; a replacement by a local directory (no version) is left out.
    pub deps: Vec<(String, String)>,
}

/// `\xff Go buildinf:`, the 14-byte magic at the start of `.go.buildinfo`.
pub const GO_BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";

/// Reads a Go binary's build information from its `.go.buildinfo` section or,
/// when the section cannot be located, from the file's bytes scanned for the
/// magic at 16-byte alignment (as Go's `debug/buildinfo` does). Only the
/// Go 1.18+ format is read (flag bit 2: the version and module strings follow
/// the 32-byte header inline, each prefixed with its unsigned varint length);
/// older binaries store pointers into the data segment and are an error, as is
/// anything malformed. At most [`limits::MAX_GO_BUILDINFO`] bytes are looked at.
pub fn go_buildinfo(bytes: &[u8]) -> Result<GoBuildInfo, UnmanagedError> {
    let bytes = &bytes[..bytes.len().min(limits::MAX_GO_BUILDINFO)];
    let start = (0..bytes.len())
        .step_by(16)
        .find(|&i| bytes[i..].starts_with(GO_BUILDINFO_MAGIC))
        .ok_or_else(|| UnmanagedError("no Go build information (magic not found)".into()))?;
    let header = bytes
        .get(start..start + 32)
        .ok_or_else(|| UnmanagedError("Go build information header is cut short".into()))?;
    let flags = header[15];
    if flags & 2 == 0 {
        return err(
            "Go build information of a binary built before Go 1.18 (pointer format) is not read",
        );
    }
    let rest = &bytes[start + 32..];
    let (version, rest) = varint_string(rest, "Go version")?;
    let (modinfo, _) = varint_string(rest, "module information")?;
    let version = std::str::from_utf8(version)
        .map_err(|_| UnmanagedError("Go version is not UTF-8".into()))?;
    // An experiment tag follows a space (`go1.22.0 X:nocoverageredesign`).
    let go_version = version.split(' ').next().unwrap_or_default().to_owned();
    if !go_version.starts_with("go") {
        return err(format!(
            "Go version {go_version:.40?} does not start with \"go\""
        ));
    }
    field_ok("Go version", &go_version)?;
    // The module information is framed by 16-byte sentinels (cmd/go
    // modinfo.go); `debug/buildinfo` strips them the same way.
    let mut modinfo = modinfo;
    if modinfo.len() >= 33 && modinfo[modinfo.len() - 17] == b'\n' {
        modinfo = &modinfo[16..modinfo.len() - 16];
    }
    let modinfo = std::str::from_utf8(modinfo)
        .map_err(|_| UnmanagedError("Go module information is not UTF-8".into()))?;
    let mut info = GoBuildInfo {
        go_version,
        ..Default::default()
    };
    // Where a `=>` line applies: the main module (no) or the last dep.
    let mut last_dep: Option<usize> = None;
    for line in modinfo.lines() {
        let mut cols = line.split('\t');
        let kind = cols.next().unwrap_or_default();
        let path = cols.next().unwrap_or_default();
        let version = cols.next().unwrap_or_default();
        match kind {
            "path" => info.path = Some(path.to_owned()).filter(|p| !p.is_empty()),
            "mod" => {
                field_ok("main module path", path)?;
                if !version.is_empty() {
                    field_ok("main module version", version)?;
                }
                info.main = Some((path.to_owned(), version.to_owned()));
                last_dep = None;
            }
            "dep" => {
                if info.deps.len() >= limits::MAX_DEPS {
                    return err(format!("more than {} Go dependencies", limits::MAX_DEPS));
                }
                field_ok("dependency path", path)?;
                field_ok("dependency version", version)?;
                info.deps.push((path.to_owned(), version.to_owned()));
                last_dep = Some(info.deps.len() - 1);
            }
            "=>" => {
                let Some(i) = last_dep.take() else { continue };
                if version.is_empty() {
                    // A local directory: nothing to match it under.
                    info.deps.remove(i);
                } else {
                    field_ok("replacement path", path)?;
                    field_ok("replacement version", version)?;
                    info.deps[i] = (path.to_owned(), version.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

/// An unsigned LEB128 length (Go's `binary.Uvarint`) and that many bytes.
fn varint_string<'a>(b: &'a [u8], what: &str) -> Result<(&'a [u8], &'a [u8]), UnmanagedError> {
    let mut n: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let rest = &b[i + 1..];
            let len = usize::try_from(n).unwrap_or(usize::MAX);
            if len > rest.len() {
                return err(format!("{what} is longer than the data holding it"));
            }
            return Ok(rest.split_at(len));
        }
    }
    err(format!("{what}: bad length"))
}

/// The crates.io packages compiled into a binary built with `cargo auditable`:
/// its `.dep-v0` section, zlib-compressed JSON
/// (`{"packages": [{"name", "version", "source", "kind", …}]}`, the
/// `auditable-serde` format). Packages from elsewhere (`local`, `git`,
/// `registry`) have no crates.io advisories, and `kind: "build"` ones are not
/// in the binary; both are left out. Decompression stops at
/// [`limits::MAX_AUDITABLE_JSON`] bytes.
pub fn auditable_deps(compressed: &[u8]) -> Result<Vec<(String, String)>, UnmanagedError> {
    #[derive(Deserialize)]
    struct Raw {
        packages: Vec<RawPackage>,
    }
    #[derive(Deserialize)]
    struct RawPackage {
        name: String,
        version: String,
        #[serde(default)]
        source: Option<String>,
        #[serde(default)]
        kind: Option<String>,
    }
    if compressed.len() > limits::MAX_AUDITABLE_COMPRESSED {
        return err(format!(
            "dependency list is larger than {} bytes",
            limits::MAX_AUDITABLE_COMPRESSED
        ));
    }
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .take(limits::MAX_AUDITABLE_JSON as u64 + 1)
        .read_to_end(&mut json)
        .map_err(|e| UnmanagedError(format!("dependency list is not zlib data: {e}")))?;
    if json.len() > limits::MAX_AUDITABLE_JSON {
        return err(format!(
            "dependency list decompresses to more than {} bytes",
            limits::MAX_AUDITABLE_JSON
        ));
    }
    let raw: Raw = serde_json::from_slice(&json)
        .map_err(|e| UnmanagedError(format!("dependency list is not cargo-auditable JSON: {e}")))?;
    if raw.packages.len() > limits::MAX_DEPS {
        return err(format!("more than {} packages", limits::MAX_DEPS));
    }
    let mut out = Vec::new();
    for p in raw.packages {
        if p.source.as_deref() != Some("crates.io") || p.kind.as_deref() == Some("build") {
            continue;
        }
        field_ok("crate name", &p.name)?;
        field_ok("crate version", &p.version)?;
        out.push((p.name, p.version));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The items a Go binary at `path` contributes: `stdlib` at its toolchain
/// version, the main module when it has a version (not `(devel)`), and its
/// dependencies.
pub fn go_items(info: &GoBuildInfo, path: &str) -> Vec<Unmanaged> {
    let item = |name: &str, version: &str| Unmanaged {
        ecosystem: Ecosystem::Go,
        name: name.to_owned(),
        version: version.to_owned(),
        path: path.to_owned(),
    };
    let mut out = vec![item("stdlib", &info.go_version)];
    if let Some((m, v)) = &info.main
        && !v.is_empty()
        && v != "(devel)"
    {
        out.push(item(m, v));
    }
    out.extend(info.deps.iter().map(|(m, v)| item(m, v)));
    out
}

/// Checks a reported list (the server holds every check-in to it): at most
/// [`limits::MAX_ITEMS`] items; names, versions and paths non-empty, at most
/// [`limits::MAX_FIELD_LEN`] bytes, without spaces or control characters;
/// paths absolute. The message names the item.
pub fn check(items: &[Unmanaged]) -> Result<(), String> {
    if items.len() > limits::MAX_ITEMS {
        return Err(format!(
            "{} unmanaged items; the limit is {}",
            items.len(),
            limits::MAX_ITEMS
        ));
    }
    for (i, u) in items.iter().enumerate() {
        let at = |e: UnmanagedError| format!("unmanaged item #{i} ({:.80?}): {e}", u.name);
        field_ok("name", &u.name).map_err(at)?;
        field_ok("version", &u.version).map_err(at)?;
        if u.path.is_empty()
            || u.path.len() > limits::MAX_FIELD_LEN
            || u.path.chars().any(char::is_control)
        {
            return Err(at(UnmanagedError(format!(
                "path is empty, longer than {} bytes or contains control characters",
                limits::MAX_FIELD_LEN
            ))));
        }
        if !u.path.starts_with('/') {
            return Err(at(UnmanagedError("path is not absolute".into())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn metadata_headers() {
        let m = b"Metadata-Version: 2.1\nName: requests\nVersion: 2.25.0\nSummary: x\n  continued: y\n\nName: not-this\n";
        assert_eq!(
            dist_metadata(m).unwrap(),
            ("requests".into(), "2.25.0".into())
        );
        let crlf = b"Name: Foo.Bar\r\nVersion: 1.0\r\n\r\n";
        assert_eq!(
            dist_metadata(crlf).unwrap(),
            ("Foo.Bar".into(), "1.0".into())
        );
        assert!(
            dist_metadata(b"Name: a\n\n")
                .unwrap_err()
                .0
                .contains("Version")
        );
        assert!(
            dist_metadata(b"Name: a\nName: b\nVersion: 1\n")
                .unwrap_err()
                .0
                .contains("repeats")
        );
        assert!(
            dist_metadata(b"Name: a;rm\nVersion: 1\n")
                .unwrap_err()
                .0
                .contains("PEP 508")
        );
        assert!(dist_metadata(b"Name: a\nVersion: 1 2\n").is_err());
        let long = format!("Name: a\nVersion: 1\nX: {}", "y".repeat(70_000));
        assert!(
            dist_metadata(long.as_bytes())
                .unwrap_err()
                .0
                .contains("do not end")
        );
    }

    #[test]
    fn package_json() {
        assert_eq!(
            npm_package(br#"{"name":"@scope/x","version":"1.2.3","deps":{"a":[1,2]}}"#).unwrap(),
            ("@scope/x".into(), "1.2.3".into())
        );
        assert!(
            npm_package(br#"{"name":"x"}"#)
                .unwrap_err()
                .0
                .contains("version")
        );
        assert!(npm_package(br#"{"name":1,"version":"1"}"#).is_err());
        let deep = "[".repeat(100_000);
        assert!(npm_package(deep.as_bytes()).is_err());
    }

    /// A Go 1.18+ build information blob as the linker writes it.
    pub(crate) fn go_blob(version: &str, modinfo: &str) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b.extend_from_slice(GO_BUILDINFO_MAGIC);
        b.push(8);
        b.push(2);
        b.resize(16 + 32, 0);
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

    #[test]
    fn go_build_info() {
        let blob = go_blob(
            "go1.19.8",
            "path\texample.com/hello\nmod\texample.com/hello\t(devel)\t\ndep\tgolang.org/x/text\tv0.3.7\th1:x\ndep\texample.com/old\tv1.0.0\th1:y\n=>\texample.com/new\tv1.1.0\th1:z\ndep\texample.com/local\tv1.0.0\n=>\t../local\t\t\nbuild\t-compiler=gc\n",
        );
        let info = go_buildinfo(&blob).unwrap();
        assert_eq!(info.go_version, "go1.19.8");
        assert_eq!(info.path.as_deref(), Some("example.com/hello"));
        assert_eq!(
            info.main,
            Some(("example.com/hello".into(), "(devel)".into()))
        );
        assert_eq!(
            info.deps,
            vec![
                ("golang.org/x/text".into(), "v0.3.7".into()),
                ("example.com/new".into(), "v1.1.0".into()),
            ]
        );
        let items = go_items(&info, "/usr/local/bin/hello");
        assert_eq!(
            items.len(),
            3,
            "stdlib and two deps; (devel) is not a version"
        );
        assert_eq!(
            (items[0].name.as_str(), items[0].version.as_str()),
            ("stdlib", "go1.19.8")
        );
        // Cut anywhere: an error, never a panic.
        for n in 0..blob.len() {
            let _ = go_buildinfo(&blob[..n]);
        }
        let mut old = blob.clone();
        old[16 + 15] = 0;
        assert!(go_buildinfo(&old).unwrap_err().0.contains("1.18"));
        assert!(go_buildinfo(b"no magic here").is_err());
        let mut huge = blob[..48].to_vec();
        huge.extend_from_slice(&[0xff; 12]);
        assert!(go_buildinfo(&huge).is_err());
    }

    pub(crate) fn zlib(json: &str) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(json.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn auditable() {
        let json = r#"{"packages":[
            {"name":"app","version":"0.1.0","source":"local","dependencies":[1,2],"root":true},
            {"name":"smallvec","version":"1.6.0","source":"crates.io"},
            {"name":"cc","version":"1.0.0","source":"crates.io","kind":"build"},
            {"name":"time","version":"0.1.43","source":"crates.io","kind":"runtime"}]}"#;
        assert_eq!(
            auditable_deps(&zlib(json)).unwrap(),
            vec![
                ("smallvec".into(), "1.6.0".into()),
                ("time".into(), "0.1.43".into())
            ]
        );
        assert!(auditable_deps(b"not zlib").is_err());
        // A zlib bomb: 9 MiB of spaces stops at the bound.
        let bomb = zlib(&" ".repeat(limits::MAX_AUDITABLE_JSON + 1024));
        assert!(auditable_deps(&bomb).unwrap_err().0.contains("more than"));
    }

    #[test]
    fn checks_name_the_item() {
        let u = |name: &str, path: &str| Unmanaged {
            ecosystem: Ecosystem::Pypi,
            name: name.into(),
            version: "1".into(),
            path: path.into(),
        };
        assert!(check(&[u("a", "/x")]).is_ok());
        assert!(check(&[u("a", "x")]).unwrap_err().contains("absolute"));
        assert!(
            check(&[u("a", "/x"), u("b c", "/x")])
                .unwrap_err()
                .contains("#1")
        );
        assert!(check(&[u("a", "/x\n")]).is_err());
        assert_eq!(
            serde_json::to_string(&Ecosystem::CratesIo).unwrap(),
            "\"crates.io\""
        );
        for e in Ecosystem::ALL {
            assert_eq!(Ecosystem::from_osv(e.osv()), Some(e));
            assert!(patchbay_version::Scheme::for_osv_ecosystem(e.osv()).is_some());
        }
        assert_eq!(Ecosystem::Pypi.key_name("Foo_Bar"), "foo-bar");
    }
}
