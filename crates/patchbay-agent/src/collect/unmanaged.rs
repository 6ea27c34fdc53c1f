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
    use object::{Object, ObjectSection};
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
    let obj = object::File::parse(&cache).map_err(|e| format!("ELF: {e}"))?;
    let mut out = Vec::new();
    let section = |name: &str, max: usize| -> Result<Option<&[u8]>, String> {
        let Some(s) = obj.section_by_name(name) else {
            return Ok(None);
        };
        if s.size() > max as u64 {
            return Err(format!("{name} is larger than {max} bytes"));
        }
        s.data().map(Some).map_err(|e| format!("{name}: {e}"))
    };
    if let Some(b) = section(".go.buildinfo", unmanaged::limits::MAX_GO_BUILDINFO)? {
        let info = go_buildinfo(b).map_err(|e| e.to_string())?;
        out.extend(go_items(&info, "/"));
    }
    if let Some(b) = section(".dep-v0", unmanaged::limits::MAX_AUDITABLE_COMPRESSED)? {
        for (name, version) in auditable_deps(b).map_err(|e| e.to_string())? {
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
        .collect();
    out.sort();
    out.dedup();
    out.truncate(unmanaged::limits::MAX_ITEMS);
    (out, stats)
}
