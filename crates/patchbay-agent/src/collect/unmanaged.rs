//! Software installed outside the package manager (issue 20, item 5; ADR 0016,
//! docs/unmanaged-software.md): Python distributions, global npm modules, Go
//! binaries and Rust binaries built with `cargo auditable`, each reported with
//! its path as [`Unmanaged`] in the host facts.
//!
//! Where it looks (`[unmanaged]` in `agent.toml`, [`Settings`]; every path is
//! inside `--root`):
//!
//! - `python` (default `/usr/local/lib`, `/usr/local/lib64`): each
//!   `python3*/{site,dist}-packages/*.dist-info/METADATA` (and `*.egg-info`'s
//!   `PKG-INFO`) — where `pip` installs as root outside dpkg/rpm;
//! - `virtualenvs` (default none): each directory is a virtualenv (it has
//!   `pyvenv.cfg`) or holds virtualenvs one level down; their
//!   `lib/python3*/site-packages`;
//! - `npm` (default `/usr/local/lib/node_modules`): `<name>/package.json` and
//!   `@scope/<name>/package.json` — `npm -g`'s global prefix;
//! - `binaries` (default `/usr/local/bin`, `/usr/local/sbin`, `/opt`): ELF
//!   files up to `max_depth` levels down, read for a `.go.buildinfo` section
//!   (Go) and a `.dep-v0` section (`cargo auditable`).
//!
//! Bounds, so a hostile or huge tree cannot hurt the agent: symbolic links are
//! never followed (the configured directories themselves are resolved inside
//! the root, never out of it); at most `max_entries` directory entries are
//! visited in all; a binary larger than `max_binary_bytes` is skipped, and of
//! the others only the ELF headers and the two sections are read (lazily,
//! through `object`'s read cache), each section bounded by the core parser's
//! limit; `METADATA` is read up to 64 KiB and `package.json` up to 1 MiB. A
//! file that cannot be read or parsed is logged and skipped: it never fails the
//! inventory. Files that dpkg owns (`var/lib/dpkg/info/*.list`) are not
//! unmanaged and are left out.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use patchbay_core::inventory::unmanaged::{
    self, Ecosystem, Unmanaged, auditable_deps, dist_metadata, go_buildinfo, go_items, npm_package,
};
use serde::{Deserialize, Serialize};

/// `[unmanaged]` of `agent.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Look at all (default `true`).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Directories holding `python3*/{site,dist}-packages`.
    #[serde(default = "default_python")]
    pub python: Vec<PathBuf>,
    /// Virtualenvs, or directories of virtualenvs.
    #[serde(default)]
    pub virtualenvs: Vec<PathBuf>,
    /// Global `node_modules` directories.
    #[serde(default = "default_npm")]
    pub npm: Vec<PathBuf>,
    /// Directories searched for Go and `cargo auditable` binaries.
    #[serde(default = "default_binaries")]
    pub binaries: Vec<PathBuf>,
    /// How deep below each binaries directory to look (`/opt/app/bin/x` is 3).
    #[serde(default = "default_depth")]
    pub max_depth: usize,
    /// Directory entries visited in all, across every search path.
    #[serde(default = "default_entries")]
    pub max_entries: usize,
    /// Binaries larger than this are skipped.
    #[serde(default = "default_binary_bytes")]
    pub max_binary_bytes: u64,
}

fn yes() -> bool {
    true
}
fn default_python() -> Vec<PathBuf> {
    vec!["/usr/local/lib".into(), "/usr/local/lib64".into()]
}
fn default_npm() -> Vec<PathBuf> {
    vec!["/usr/local/lib/node_modules".into()]
}
fn default_binaries() -> Vec<PathBuf> {
    vec![
        "/usr/local/bin".into(),
        "/usr/local/sbin".into(),
        "/opt".into(),
    ]
}
fn default_depth() -> usize {
    3
}
fn default_entries() -> usize {
    50_000
}
fn default_binary_bytes() -> u64 {
    512 * 1024 * 1024
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            python: default_python(),
            virtualenvs: Vec::new(),
            npm: default_npm(),
            binaries: default_binaries(),
            max_depth: default_depth(),
            max_entries: default_entries(),
            max_binary_bytes: default_binary_bytes(),
        }
    }
}

/// What one scan did, for the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanStats {
    /// Directory entries visited.
    pub entries: usize,
    /// Files that could not be read or parsed (logged, skipped).
    pub skipped: usize,
    /// Whether `max_entries` stopped the scan.
    pub truncated: bool,
}

/// The walk's state: the root, the budget, the findings.
struct Scan<'a> {
    /// Resolves a path inside the root to a host path (confined to the root).
    resolve: &'a dyn Fn(&Path) -> PathBuf,
    root: &'a Path,
    settings: &'a Settings,
    stats: ScanStats,
    /// (host path of the file or directory that proves it, item).
    found: Vec<(PathBuf, Unmanaged)>,
}

impl Scan<'_> {
    /// Entries of a directory (never following a symbolic link to it), within
    /// the budget, sorted so the scan is deterministic.
    fn entries(&mut self, dir: &Path) -> Vec<(PathBuf, fs::FileType)> {
        let Ok(meta) = fs::symlink_metadata(dir) else {
            return Vec::new();
        };
        if !meta.is_dir() {
            return Vec::new();
        }
        let Ok(rd) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            if self.stats.entries >= self.settings.max_entries {
                self.stats.truncated = true;
                break;
            }
            self.stats.entries += 1;
            if let Ok(t) = e.file_type() {
                out.push((e.path(), t));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The path of a host path inside the root (`/usr/local/bin/x`).
    fn inner(&self, host: &Path) -> String {
        let rel = host.strip_prefix(self.root).unwrap_or(host);
        let s = rel.to_string_lossy();
        if s.starts_with('/') {
            s.into_owned()
        } else {
            format!("/{s}")
        }
    }

    fn skip(&mut self, path: &Path, why: impl std::fmt::Display) {
        self.stats.skipped += 1;
        tracing::debug!(path = %path.display(), %why, "unmanaged software: file skipped");
    }

    /// `*.dist-info` / `*.egg-info` under one `site-packages` directory.
    fn site_packages(&mut self, dir: &Path) {
        for (p, t) in self.entries(dir) {
            if !t.is_dir() {
                continue;
            }
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let meta = if name.ends_with(".dist-info") {
                p.join("METADATA")
            } else if name.ends_with(".egg-info") {
                p.join("PKG-INFO")
            } else {
                continue;
            };
            match read_bounded(&meta, unmanaged::limits::MAX_METADATA as u64)
                .map_err(|e| e.to_string())
                .and_then(|b| dist_metadata(&b).map_err(|e| e.to_string()))
            {
                Ok((n, v)) => {
                    let path = self.inner(&p);
                    self.found.push((
                        meta,
                        Unmanaged {
                            ecosystem: Ecosystem::Pypi,
                            name: n,
                            version: v,
                            path,
                        },
                    ));
                }
                Err(e) => self.skip(&meta, e),
            }
        }
    }

    /// `python3*/{site,dist}-packages` under `dir`.
    fn python_lib(&mut self, dir: &Path) {
        for (p, t) in self.entries(dir) {
            let is_py = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("python3"));
            if t.is_dir() && is_py {
                for sub in ["site-packages", "dist-packages"] {
                    self.site_packages(&p.join(sub));
                }
            }
        }
    }

    fn virtualenvs(&mut self, dir: &Path) {
        if dir.join("pyvenv.cfg").is_file() {
            self.python_lib(&dir.join("lib"));
            return;
        }
        for (p, t) in self.entries(dir) {
            if t.is_dir() && p.join("pyvenv.cfg").is_file() {
                self.python_lib(&p.join("lib"));
            }
        }
    }

    fn npm_module(&mut self, dir: &Path) {
        let pj = dir.join("package.json");
        match read_bounded(&pj, unmanaged::limits::MAX_PACKAGE_JSON as u64)
            .map_err(|e| e.to_string())
            .and_then(|b| npm_package(&b).map_err(|e| e.to_string()))
        {
            Ok((n, v)) => {
                let path = self.inner(&pj);
                self.found.push((
                    pj,
                    Unmanaged {
                        ecosystem: Ecosystem::Npm,
                        name: n,
                        version: v,
                        path,
                    },
                ));
            }
            Err(e) => self.skip(&pj, e),
        }
    }

    fn node_modules(&mut self, dir: &Path) {
        for (p, t) in self.entries(dir) {
            if !t.is_dir() {
                continue;
            }
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with('.') {
                continue;
            }
            if name.starts_with('@') {
                for (q, u) in self.entries(&p) {
                    if u.is_dir() {
                        self.npm_module(&q);
                    }
                }
            } else {
                self.npm_module(&p);
            }
        }
    }

    fn binaries(&mut self, dir: &Path, depth: usize) {
        for (p, t) in self.entries(dir) {
            if t.is_dir() {
                if depth < self.settings.max_depth {
                    self.binaries(&p, depth + 1);
                }
            } else if t.is_file() {
                match binary_items(&p, self.settings.max_binary_bytes) {
                    Ok(items) => {
                        let path = self.inner(&p);
                        for mut u in items {
                            u.path = path.clone();
                            self.found.push((p.clone(), u));
                        }
                    }
                    Err(e) => self.skip(&p, e),
                }
            }
        }
    }
}

/// At most `max` bytes of a regular file (never through a symbolic link).
fn read_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut out = Vec::new();
    fs::File::open(path)?.take(max).read_to_end(&mut out)?;
    Ok(out)
}

/// The Go and `cargo auditable` items of one file: nothing for a file that is
/// not ELF or has neither section; an error for one too large or malformed.
fn binary_items(path: &Path, max_bytes: u64) -> Result<Vec<Unmanaged>, String> {
    let meta = fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    let mut file = fs::File::open(path).map_err(|e| e.to_string())?;
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || &magic != b"\x7fELF" {
        return Ok(Vec::new());
    }
    if meta.len() > max_bytes {
        return Err(format!("larger than {max_bytes} bytes"));
    }
    let cache = object::read::ReadCache::new(file);
    let (go, dep) = match object::FileKind::parse(&cache).map_err(|e| format!("ELF: {e}"))? {
        object::FileKind::Elf32 => {
            elf_sections::<object::elf::FileHeader32<object::Endianness>>(&cache)?
        }
        object::FileKind::Elf64 => {
            elf_sections::<object::elf::FileHeader64<object::Endianness>>(&cache)?
        }
        _ => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    if let Some(b) = go {
        let info = go_buildinfo(&b).map_err(|e| e.to_string())?;
        out.extend(go_items(&info, "/"));
    }
    if let Some(b) = dep {
        for (name, version) in auditable_deps(&b).map_err(|e| e.to_string())? {
            out.push(Unmanaged {
                ecosystem: Ecosystem::CratesIo,
                name,
                version,
                path: "/".into(),
            });
        }
    }
    Ok(out)
}

/// The bytes of a binary's `.go.buildinfo` and `.dep-v0` sections, when it
/// has them.
type BuildInfoSections = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The `.go.buildinfo` and `.dep-v0` sections of an ELF file, read through
/// its section headers only (never its symbol tables, which are megabytes in
/// a large Go binary), each at most its parser's bound.
fn elf_sections<H>(data: &object::read::ReadCache<fs::File>) -> Result<BuildInfoSections, String>
where
    H: object::read::elf::FileHeader<Endian = object::Endianness>,
{
    use object::read::elf::SectionHeader;
    let header = H::parse(data).map_err(|e| format!("ELF header: {e}"))?;
    let endian = header.endian().map_err(|e| format!("ELF header: {e}"))?;
    let sections = header
        .sections(endian, data)
        .map_err(|e| format!("ELF sections: {e}"))?;
    let get = |name: &str, max: usize| -> Result<Option<Vec<u8>>, String> {
        let Some((_, s)) = sections.section_by_name(endian, name.as_bytes()) else {
            return Ok(None);
        };
        let size: u64 = s.sh_size(endian).into();
        if size > max as u64 {
            return Err(format!("{name} is larger than {max} bytes"));
        }
        s.data(endian, data)
            .map(|b| Some(b.to_vec()))
            .map_err(|e| format!("{name}: {e}"))
    };
    Ok((
        get(".go.buildinfo", unmanaged::limits::MAX_GO_BUILDINFO)?,
        get(".dep-v0", unmanaged::limits::MAX_AUDITABLE_COMPRESSED)?,
    ))
}

/// The paths dpkg owns, among `candidates` (paths inside the root): read from
/// `var/lib/dpkg/info/*.list` only when there are candidates.
fn dpkg_owned(resolve: &dyn Fn(&Path) -> PathBuf, candidates: &HashSet<String>) -> HashSet<String> {
    let mut owned = HashSet::new();
    if candidates.is_empty() {
        return owned;
    }
    let Ok(rd) = fs::read_dir(resolve(Path::new("var/lib/dpkg/info"))) else {
        return owned;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "list") {
            continue;
        }
        let Ok(text) = fs::read_to_string(&p) else {
            continue;
        };
        for line in text.lines() {
            if candidates.contains(line) {
                owned.insert(line.to_owned());
            }
        }
    }
    owned
}

/// Scans the configured places inside the root (`resolve` maps a path inside
/// the root to the host path, confined to the root) and returns the items,
/// sorted, without those whose file dpkg owns.
pub fn scan(
    root: &Path,
    resolve: &dyn Fn(&Path) -> PathBuf,
    settings: &Settings,
) -> (Vec<Unmanaged>, ScanStats) {
    if !settings.enabled {
        return (Vec::new(), ScanStats::default());
    }
    let mut s = Scan {
        resolve,
        root,
        settings,
        stats: ScanStats::default(),
        found: Vec::new(),
    };
    let rel = |p: &Path| p.strip_prefix("/").unwrap_or(p).to_path_buf();
    for d in &settings.python {
        let host = (s.resolve)(&rel(d));
        s.python_lib(&host);
    }
    for d in &settings.virtualenvs {
        let host = (s.resolve)(&rel(d));
        s.virtualenvs(&host);
    }
    for d in &settings.npm {
        let host = (s.resolve)(&rel(d));
        s.node_modules(&host);
    }
    for d in &settings.binaries {
        let host = (s.resolve)(&rel(d));
        s.binaries(&host, 1);
    }
    // What dpkg installed is managed, wherever it is (a Debian package may
    // ship a Go binary under /usr/local or /opt).
    let candidates: HashSet<String> = s.found.iter().map(|(p, _)| s.inner(p)).collect();
    let owned = dpkg_owned(resolve, &candidates);
    let stats = s.stats.clone();
    let inner: Vec<(String, Unmanaged)> = s
        .found
        .iter()
        .map(|(p, u)| (s.inner(p), u.clone()))
        .collect();
    let mut out: Vec<Unmanaged> = inner
        .into_iter()
        .filter(|(p, _)| !owned.contains(p))
        .map(|(_, u)| u)
        // An item the server would refuse (a path over 512 bytes, one with a
        // control character) is dropped here, logged: one odd file must not
        // get the whole check-in refused.
        .filter(|u| match unmanaged::check(std::slice::from_ref(u)) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(path = %u.path.escape_debug(), %e, "unmanaged software: item left out");
                false
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out.truncate(unmanaged::limits::MAX_ITEMS);
    (out, stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::Command;

    /// Debian's Go toolchain binary: a real Go ELF with build information.
    const HOST_GO: &str = "/usr/lib/go-1.19/bin/go";

    fn write(root: &Path, rel: &str, body: &[u8]) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, body).unwrap();
    }

    fn metadata(name: &str, version: &str) -> Vec<u8> {
        format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nlong text\n")
            .into_bytes()
    }

    fn scan_of(root: &Path, settings: &Settings) -> (Vec<Unmanaged>, ScanStats) {
        scan(root, &|rel: &Path| root.join(rel), settings)
    }

    fn keys(items: &[Unmanaged]) -> Vec<(String, String, String, String)> {
        items
            .iter()
            .map(|u| {
                (
                    u.ecosystem.osv().to_owned(),
                    u.name.clone(),
                    u.version.clone(),
                    u.path.clone(),
                )
            })
            .collect()
    }

    /// A file system tree with every kind of unmanaged software, real ELF
    /// binaries (Debian's Go toolchain; `/bin/true` given a `.dep-v0`
    /// section by objcopy, as `cargo auditable`'s linker step does), a file
    /// dpkg owns, links out of the root, and hostile files.
    #[test]
    fn every_kind_is_found_with_its_path_and_nothing_else() {
        assert!(
            Path::new(HOST_GO).is_file(),
            "{HOST_GO} is missing: apt-get install golang-go (scripts/test does; this test does not skip)"
        );
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let py = "usr/local/lib/python3.11/dist-packages";
        write(
            root,
            &format!("{py}/urllib3-1.26.4.dist-info/METADATA"),
            &metadata("urllib3", "1.26.4"),
        );
        write(
            root,
            &format!("{py}/Old_Thing-0.9.egg-info/PKG-INFO"),
            &metadata("Old_Thing", "0.9"),
        );
        // dpkg owns this one: not unmanaged.
        write(
            root,
            &format!("{py}/debpkg-1.0.dist-info/METADATA"),
            &metadata("debpkg", "1.0"),
        );
        write(
            root,
            "var/lib/dpkg/info/python3-debpkg.list",
            format!("/.\n/usr\n/{py}/debpkg-1.0.dist-info/METADATA\n").as_bytes(),
        );
        // Hostile: headers that never end, and binary junk.
        let mut endless = b"Name: x\nVersion: 1\n".to_vec();
        endless.extend(std::iter::repeat_n(b'a', 200_000));
        write(
            root,
            &format!("{py}/endless-1.dist-info/METADATA"),
            &endless,
        );
        write(
            root,
            &format!("{py}/junk-1.dist-info/METADATA"),
            &[0xff, 0, 0xfe, b'\n', b':'],
        );
        // A virtualenv under a directory of virtualenvs.
        write(root, "srv/venvs/app/pyvenv.cfg", b"home = /usr/bin\n");
        write(
            root,
            "srv/venvs/app/lib/python3.11/site-packages/Django-3.2.dist-info/METADATA",
            &metadata("Django", "3.2"),
        );
        // npm, plain and scoped; one package.json is not JSON.
        let nm = "usr/local/lib/node_modules";
        write(
            root,
            &format!("{nm}/left-pad/package.json"),
            br#"{"name":"left-pad","version":"1.2.0"}"#,
        );
        write(
            root,
            &format!("{nm}/@scope/tool/package.json"),
            br#"{"name":"@scope/tool","version":"0.1.0"}"#,
        );
        write(root, &format!("{nm}/broken/package.json"), b"{not json");
        // Binaries: a real Go binary two levels under /opt, a Rust one.
        let gobin = root.join("opt/vendor/bin/gotool");
        fs::create_dir_all(gobin.parent().unwrap()).unwrap();
        fs::copy(HOST_GO, &gobin).unwrap();
        let dep = dir.path().join("dep-v0");
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(
            br#"{"packages":[{"name":"tool","version":"0.1.0","source":"local","dependencies":[1],"root":true},{"name":"smallvec","version":"1.6.0","source":"crates.io"}]}"#,
        )
        .unwrap();
        fs::write(&dep, z.finish().unwrap()).unwrap();
        let rustbin = root.join("usr/local/bin/rusttool");
        fs::create_dir_all(rustbin.parent().unwrap()).unwrap();
        let o = Command::new("objcopy")
            .arg("--add-section")
            .arg(format!(".dep-v0={}", dep.display()))
            .arg("/bin/true")
            .arg(&rustbin)
            .output()
            .expect("objcopy (binutils)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // A script and a link to the host's Go: neither is reported.
        write(root, "usr/local/bin/script.sh", b"#!/bin/sh\necho hi\n");
        // A path the server would refuse (a newline in it): left out, the rest
        // still reported.
        write(
            root,
            &format!("{nm}/odd\nname/package.json"),
            br#"{"name":"odd","version":"1.0.0"}"#,
        );
        std::os::unix::fs::symlink(HOST_GO, root.join("usr/local/bin/go-link")).unwrap();
        std::os::unix::fs::symlink("/usr/lib", root.join("usr/local/lib/python3.12")).unwrap();

        let settings = Settings {
            virtualenvs: vec!["/srv/venvs".into()],
            ..Settings::default()
        };
        let (items, stats) = scan_of(root, &settings);
        let k = keys(&items);
        let has = |eco: &str, name: &str, version: &str, path: &str| {
            k.contains(&(eco.into(), name.into(), version.into(), path.into()))
        };
        assert!(
            has(
                "PyPI",
                "urllib3",
                "1.26.4",
                &format!("/{py}/urllib3-1.26.4.dist-info")
            ),
            "{k:?}"
        );
        assert!(has(
            "PyPI",
            "Old_Thing",
            "0.9",
            &format!("/{py}/Old_Thing-0.9.egg-info")
        ));
        assert!(has(
            "PyPI",
            "Django",
            "3.2",
            "/srv/venvs/app/lib/python3.11/site-packages/Django-3.2.dist-info"
        ));
        assert!(has(
            "npm",
            "left-pad",
            "1.2.0",
            &format!("/{nm}/left-pad/package.json")
        ));
        assert!(has(
            "npm",
            "@scope/tool",
            "0.1.0",
            &format!("/{nm}/@scope/tool/package.json")
        ));
        assert!(
            has("Go", "stdlib", "go1.19.8", "/opt/vendor/bin/gotool"),
            "{k:?}"
        );
        assert!(has(
            "crates.io",
            "smallvec",
            "1.6.0",
            "/usr/local/bin/rusttool"
        ));
        assert!(!k.iter().any(|i| i.1 == "debpkg"), "dpkg owns it");
        assert!(
            !k.iter()
                .any(|i| i.3.contains("go-link") || i.3.contains("python3.12")),
            "links are not followed: {k:?}"
        );
        assert!(
            !k.iter()
                .any(|i| i.1 == "tool" || i.1 == "x" || i.1 == "broken")
        );
        assert_eq!(
            stats.skipped, 3,
            "endless, junk and broken are skipped: {stats:?}"
        );
        assert!(!stats.truncated);
        assert!(patchbay_core::inventory::unmanaged::check(&items).is_ok());

        // The bounds: too few entries stops the scan (and says so); a binary
        // above the size limit is skipped; disabled finds nothing.
        let (few, st) = scan_of(
            root,
            &Settings {
                max_entries: 3,
                ..settings.clone()
            },
        );
        assert!(
            st.truncated && st.entries == 3 && few.len() < items.len(),
            "{st:?}"
        );
        let (small, st) = scan_of(
            root,
            &Settings {
                max_binary_bytes: 1024 * 1024,
                ..settings.clone()
            },
        );
        assert!(!small.iter().any(|u| u.path == "/opt/vendor/bin/gotool"));
        assert_eq!(st.skipped, 4);
        let (none, _) = scan_of(
            root,
            &Settings {
                enabled: false,
                ..settings.clone()
            },
        );
        assert!(none.is_empty());
        // Depth: /opt/vendor/bin/gotool is 3 levels down.
        let (shallow, _) = scan_of(
            root,
            &Settings {
                max_depth: 2,
                ..settings
            },
        );
        assert!(!shallow.iter().any(|u| u.path == "/opt/vendor/bin/gotool"));
    }

    #[test]
    fn settings_parse_from_agent_toml() {
        let c = crate::exec::config::Config::parse(
            "[unmanaged]\nvirtualenvs = [\"/srv/venvs\"]\nmax_entries = 10\n",
        )
        .unwrap();
        assert_eq!(c.unmanaged.virtualenvs, vec![PathBuf::from("/srv/venvs")]);
        assert_eq!(c.unmanaged.max_entries, 10);
        assert_eq!(c.unmanaged.npm, default_npm());
        let e = crate::exec::config::Config::parse("[unmanaged]\nvirtualenv = []\n").unwrap_err();
        assert!(format!("{e:#}").contains("virtualenv"), "{e:#}");
        assert_eq!(
            crate::exec::config::Config::default().unmanaged,
            Settings::default()
        );
    }
}
