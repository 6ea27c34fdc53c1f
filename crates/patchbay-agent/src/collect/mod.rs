//! Inventory collection: what is this host, what is installed, what is pending.
//!
//! [`collect`] reads everything relative to a root directory: `/` for the running
//! host, or a chroot (a container image, a mounted disk, a debootstrap tree). Host
//! facts that only make sense for a running system (kernel, IP addresses, services
//! mapping deleted libraries) are collected only when the root is `/`.
//!
//! Collection is read-only. Package databases are parsed directly (dpkg status,
//! apk installed database); only rpm is queried through `rpm -qa`. Pending updates
//! come from the package manager's own simulation (`apt-get -s`, `dnf check-update`,
//! `apk version`), each run through [`run_command`] with a timeout. A missing,
//! failing or hanging update tool is logged and yields no pending updates; it never
//! fails the inventory. A package database that cannot be parsed does.
//!
//! Symbolic links inside a chroot are resolved as if the chroot were `/` (a
//! Debian `var/run -> /run` link points into the chroot, not at the host's `/run`).
//!
//! Parsers of tool output are pure functions in [`parse`].

mod command;
pub mod parse;
pub mod unmanaged;

pub use command::{CommandError, run_command};

use anyhow::{Context, anyhow, bail};
use patchbay_core::inventory::{
    HostFacts, Inventory, KNOWN_OS_IDS, OsRelease, Package, PackageFormat, PendingUpdate, apk,
    dpkg, os_family, os_release, rpm,
};
use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// What to collect and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectOptions {
    /// Root of the file system to inventory: `/` for this host, or a chroot directory.
    pub root: PathBuf,
    /// Whether to ask the package manager for pending updates (slow: it simulates
    /// an upgrade, and dnf may refresh its metadata).
    pub pending_updates: bool,
    /// Limit for each external command; a command that takes longer is killed.
    pub command_timeout: Duration,
    /// Report this network namespace's addresses, MACs and neighbour table
    /// even when `root` is not `/` (an agent in a container or namespace
    /// with its own root); with `root` = `/` they are always reported.
    pub host_network: bool,
    /// Where to look for software installed outside the package manager
    /// (`[unmanaged]` of `agent.toml`; [`unmanaged`]).
    pub unmanaged: unmanaged::Settings,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            root: PathBuf::from("/"),
            pending_updates: true,
            command_timeout: Duration::from_secs(120),
            host_network: false,
            unmanaged: unmanaged::Settings::default(),
        }
    }
}

/// The `rpm -qa` query format that `rpm::parse_query_list` reads.
const RPM_QUERYFORMAT: &str = "%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\n";

/// Collects the inventory of `opts.root` and returns it normalized.
///
/// Fails when the root does not exist, when no os-release names the OS, or when a
/// package database exists but cannot be read or parsed (the error names the file
/// and line).
pub fn collect(opts: &CollectOptions) -> anyhow::Result<Inventory> {
    let root = fs::canonicalize(&opts.root)
        .with_context(|| format!("inventory root {}", opts.root.display()))?;
    let host = root == Path::new("/");
    let fsroot = FsRoot {
        root: root.clone(),
        host,
    };

    let os = read_os_release(&fsroot)?;
    let (format, packages) = read_packages(&fsroot, opts.command_timeout)?;

    let facts = HostFacts {
        hostname: if host {
            read_trimmed(Path::new("/proc/sys/kernel/hostname"))
                .filter(|h| !h.is_empty())
                .or_else(|| read_trimmed(&fsroot.path("etc/hostname")))
                .unwrap_or_default()
        } else {
            read_trimmed(&fsroot.path("etc/hostname")).unwrap_or_default()
        },
        machine_id: read_trimmed(&fsroot.path("etc/machine-id")).unwrap_or_default(),
        os,
        kernel: if host {
            read_trimmed(Path::new("/proc/sys/kernel/osrelease")).unwrap_or_default()
        } else {
            String::new()
        },
        arch: std::env::consts::ARCH.to_owned(),
        ip_addresses: if host || opts.host_network {
            ip_addresses(opts.command_timeout)
        } else {
            Vec::new()
        },
        reboot_required: reboot_required(&fsroot, format, &packages, opts.command_timeout),
        services_needing_restart: if host {
            services_needing_restart(Path::new("/proc"))
        } else {
            Vec::new()
        },
        macs: if host || opts.host_network {
            ip_json(&["-j", "link", "show"], opts.command_timeout)
                .map(|v| parse::link_macs(&v))
                .unwrap_or_default()
        } else {
            Vec::new()
        },
        neighbours: if host || opts.host_network {
            ip_json(&["-j", "neigh", "show"], opts.command_timeout)
                .map(|v| parse::neighbours(&v))
                .unwrap_or_default()
        } else {
            Vec::new()
        },
        listening: if host || opts.host_network {
            listening_sockets()
        } else {
            Vec::new()
        },
        unmanaged: {
            let (items, stats) = unmanaged::scan(
                &fsroot.root,
                &|rel: &Path| fsroot.path(&rel.to_string_lossy()),
                &opts.unmanaged,
            );
            if stats.truncated {
                tracing::warn!(
                    entries = stats.entries,
                    "unmanaged software: the scan stopped at [unmanaged] max_entries"
                );
            }
            items
        },
    };

    let pending_updates = if opts.pending_updates {
        pending_updates(&fsroot, format, &packages, opts.command_timeout)
    } else {
        Vec::new()
    };

    let mut inv = Inventory {
        facts,
        format,
        packages,
        pending_updates,
    };
    inv.normalize();
    Ok(inv)
}

/// The file system being inventoried.
struct FsRoot {
    /// Canonical root directory.
    root: PathBuf,
    /// Whether `root` is `/` (the running host).
    host: bool,
}

impl FsRoot {
    /// The host path of `rel` (a path inside the root, without a leading `/`).
    fn path(&self, rel: &str) -> PathBuf {
        if self.host {
            Path::new("/").join(rel)
        } else {
            resolve_in_root(&self.root, Path::new(rel))
        }
    }
}

/// Resolves `rel` inside `root`, following symbolic links as if `root` were `/`:
/// absolute targets restart at `root` and `..` never climbs above it. Components
/// that do not exist are kept as they are; more than 40 links give up following.
fn resolve_in_root(root: &Path, rel: &Path) -> PathBuf {
    let mut todo: VecDeque<OsString> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut done: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            done.pop();
            continue;
        }
        let candidate: PathBuf = root.join(done.iter().collect::<PathBuf>()).join(&c);
        let is_link = fs::symlink_metadata(&candidate).is_ok_and(|m| m.file_type().is_symlink());
        if is_link
            && links < 40
            && let Ok(target) = fs::read_link(&candidate)
        {
            links += 1;
            if target.is_absolute() {
                done.clear();
            }
            for t in target.components().rev() {
                match t {
                    Component::Normal(s) => todo.push_front(s.to_owned()),
                    Component::ParentDir => todo.push_front("..".into()),
                    _ => {}
                }
            }
            continue;
        }
        done.push(c);
    }
    root.join(done.iter().collect::<PathBuf>())
}

/// Reads a small text file and trims it; `None` when it cannot be read.
fn read_trimmed(path: &Path) -> Option<String> {
    fs::read(path)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
}

/// Reads a file as text, replacing invalid UTF-8 rather than failing.
fn read_text(path: &Path) -> anyhow::Result<String> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// `<root>/etc/os-release`, else `<root>/usr/lib/os-release`; an error naming the
/// path when neither exists, or when the OS has no `ID` or is not one Patchbay
/// manages ([`os_family`]).
fn read_os_release(fsroot: &FsRoot) -> anyhow::Result<OsRelease> {
    let etc = fsroot.path("etc/os-release");
    let lib = fsroot.path("usr/lib/os-release");
    let path = if etc.is_file() {
        etc
    } else if lib.is_file() {
        lib
    } else {
        bail!(
            "cannot identify the OS: neither {} nor {} exists",
            fsroot.root.join("etc/os-release").display(),
            fsroot.root.join("usr/lib/os-release").display()
        );
    };
    let text = read_text(&path)?;
    let os = os_release::parse(&text)
        .map_err(|e| anyhow!("{}: line {}: {}", path.display(), e.line, e.message))?;
    if os.id.trim().is_empty() {
        bail!("unknown OS: {} has no ID", path.display());
    }
    if os_family(&os).is_none() {
        bail!(
            "unknown OS in {}: ID={:?} ID_LIKE={:?}; supported: {KNOWN_OS_IDS}",
            path.display(),
            os.id,
            os.id_like
        );
    }
    Ok(os)
}

/// Finds and reads the package database: dpkg, then apk, then rpm.
fn read_packages(
    fsroot: &FsRoot,
    timeout: Duration,
) -> anyhow::Result<(Option<PackageFormat>, Vec<Package>)> {
    let dpkg_status = fsroot.path("var/lib/dpkg/status");
    if dpkg_status.is_file() {
        let text = read_text(&dpkg_status)?;
        let pkgs = dpkg::parse_status(&text)
            .map_err(|e| anyhow!("{}: line {}: {}", dpkg_status.display(), e.line, e.message))?;
        return Ok((Some(PackageFormat::Deb), pkgs));
    }
    let apk_db = fsroot.path("lib/apk/db/installed");
    if apk_db.is_file() {
        let text = read_text(&apk_db)?;
        let pkgs = apk::parse_installed(&text)
            .map_err(|e| anyhow!("{}: line {}: {}", apk_db.display(), e.line, e.message))?;
        return Ok((Some(PackageFormat::Apk), pkgs));
    }
    if let Some(dbpath) = rpm_dbpath(fsroot) {
        return Ok((Some(PackageFormat::Rpm), read_rpm(fsroot, dbpath, timeout)?));
    }
    Ok((None, Vec::new()))
}

/// The rpm database directory (inside the root) if there is one.
///
/// `/usr/lib/sysimage/rpm` (Fedora 36+, RHEL 10) wins over `/var/lib/rpm` when it
/// holds a database, because on those systems `/var/lib/rpm` is only a link to it.
fn rpm_dbpath(fsroot: &FsRoot) -> Option<&'static str> {
    const DB_FILES: [&str; 3] = ["rpmdb.sqlite", "Packages", "Packages.db"];
    let sysimage = fsroot.path("usr/lib/sysimage/rpm");
    let var = fsroot.path("var/lib/rpm");
    let has_db = |dir: &Path| DB_FILES.iter().any(|f| dir.join(f).is_file());
    if has_db(&sysimage) {
        Some("/usr/lib/sysimage/rpm")
    } else if has_db(&var) || var.is_dir() {
        Some("/var/lib/rpm")
    } else if sysimage.is_dir() {
        Some("/usr/lib/sysimage/rpm")
    } else {
        None
    }
}

/// Runs `rpm -qa` against the root's database and parses it.
fn read_rpm(fsroot: &FsRoot, dbpath: &str, timeout: Duration) -> anyhow::Result<Vec<Package>> {
    let mut cmd = Command::new("rpm");
    if !fsroot.host {
        // With --root, rpm looks for --dbpath inside the root.
        cmd.arg("--root")
            .arg(&fsroot.root)
            .args(["--dbpath", dbpath]);
    }
    cmd.args(["-qa", "--queryformat", RPM_QUERYFORMAT]);
    let what = format!(
        "rpm -qa (database {})",
        fsroot.root.join(&dbpath[1..]).display()
    );
    let out = run_command(&mut cmd, timeout).with_context(|| format!("reading {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    rpm::parse_query_list(&text)
        .map_err(|e| anyhow!("{what}: output line {}: {}", e.line, e.message))
}

/// Whether the host waits for a reboot to finish applying updates.
///
/// rpm: `needs-restarting -r` on the running host. apk: the kernel rule of
/// [`crate::exec::plan::apk_reboot_required`] on the running host (Alpine writes
/// no marker file). Others: a `reboot-required` marker. For an rpm or apk root
/// other than `/` nothing here says whether the system on it waits for a reboot
/// (both rules compare with the running system; a job on such a root reports it
/// from the packages it changed), so it is `false`.
fn reboot_required(
    fsroot: &FsRoot,
    format: Option<PackageFormat>,
    packages: &[Package],
    timeout: Duration,
) -> bool {
    match format {
        Some(PackageFormat::Apk) => {
            if !fsroot.host {
                return false;
            }
            let running = read_trimmed(Path::new("/proc/sys/kernel/osrelease"));
            let installed: Vec<(&str, &str)> = packages
                .iter()
                .map(|p| (p.name.as_str(), p.version.as_str()))
                .collect();
            crate::exec::plan::apk_reboot_required(
                &installed,
                &[],
                running.as_deref(),
                &crate::exec::apk::module_dirs(Path::new("/")),
            )
        }
        Some(PackageFormat::Rpm) => {
            if !fsroot.host {
                return false;
            }
            match run_command(Command::new("needs-restarting").arg("-r"), timeout) {
                Ok(out) => out.status.code() == Some(1),
                Err(CommandError::NotFound { .. }) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "needs-restarting -r failed; assuming no reboot required");
                    false
                }
            }
        }
        _ => ["run/reboot-required", "var/run/reboot-required"]
            .iter()
            .any(|p| fsroot.path(p).exists()),
    }
}

/// This network namespace's listening sockets not bound to loopback, from
/// `/proc/net/{tcp,tcp6,udp,udp6}` (`tcp/22`, `udp/53`), sorted.
fn listening_sockets() -> Vec<String> {
    let mut out = Vec::new();
    for (proto, file) in [
        ("tcp", "tcp"),
        ("tcp", "tcp6"),
        ("udp", "udp"),
        ("udp", "udp6"),
    ] {
        match fs::read_to_string(Path::new("/proc/net").join(file)) {
            Ok(t) => out.extend(parse::proc_net_listening(&t, proto)),
            Err(e) => tracing::debug!(error = %e, "cannot read /proc/net/{file}"),
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `ip ARGS` (iproute2's JSON output), or `None` (logged) when `ip` is
/// missing, fails or prints something else.
fn ip_json(args: &[&str], timeout: Duration) -> Option<serde_json::Value> {
    match run_command(Command::new("ip").args(args), timeout) {
        Ok(out) if out.status.success() => match serde_json::from_slice(&out.stdout) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "ip {}: not JSON; not reported", args.join(" "));
                None
            }
        },
        Ok(out) => {
            tracing::warn!(status = %out.status, "ip {} failed; not reported", args.join(" "));
            None
        }
        Err(e) => {
            tracing::debug!(error = %e, "ip {}: not run; not reported", args.join(" "));
            None
        }
    }
}

/// Non-loopback IP addresses of the running host: `ip -o addr show`, else
/// `/proc/net/fib_trie` (IPv4) plus `/proc/net/if_inet6` (IPv6).
fn ip_addresses(timeout: Duration) -> Vec<String> {
    match run_command(Command::new("ip").args(["-o", "addr", "show"]), timeout) {
        Ok(out) if out.status.success() => {
            return parse::ip_addr(&String::from_utf8_lossy(&out.stdout));
        }
        Ok(out) => {
            tracing::warn!(status = %out.status, "ip -o addr show failed; reading /proc/net")
        }
        Err(CommandError::NotFound { .. }) => {
            tracing::debug!("ip not installed; reading /proc/net")
        }
        Err(e) => tracing::warn!(error = %e, "ip -o addr show failed; reading /proc/net"),
    }
    let mut addrs = Vec::new();
    match fs::read_to_string("/proc/net/fib_trie") {
        Ok(t) => addrs.extend(parse::fib_trie(&t)),
        Err(e) => tracing::warn!(error = %e, "cannot read /proc/net/fib_trie; no IPv4 addresses"),
    }
    if let Ok(t) = fs::read_to_string("/proc/net/if_inet6") {
        addrs.extend(parse::if_inet6(&t));
    }
    addrs
}

/// Services (or process names) that still map a deleted shared library, from
/// `<proc>/<pid>/maps`. Processes we may not read are skipped.
pub(crate) fn services_needing_restart(proc: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(proc) else {
        tracing::warn!("cannot list {}; no services reported", proc.display());
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let dir = proc.join(pid);
        let Ok(maps) = fs::read_to_string(dir.join("maps")) else {
            continue;
        };
        if parse::deleted_libraries(&maps).is_empty() {
            continue;
        }
        let service = fs::read_to_string(dir.join("cgroup"))
            .ok()
            .and_then(|c| parse::cgroup_service(&c))
            .or_else(|| read_trimmed(&dir.join("comm")).filter(|c| !c.is_empty()));
        if let Some(s) = service {
            out.push(s);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Pending updates from the package manager; empty (with a warning) when the tool
/// is missing, fails or times out.
fn pending_updates(
    fsroot: &FsRoot,
    format: Option<PackageFormat>,
    packages: &[Package],
    timeout: Duration,
) -> Vec<PendingUpdate> {
    let result = match format {
        Some(PackageFormat::Deb) => apt_pending(fsroot, timeout),
        Some(PackageFormat::Rpm) => dnf_pending(fsroot, timeout),
        Some(PackageFormat::Apk) => apk_pending(fsroot, timeout),
        Some(PackageFormat::Other) | None => return Vec::new(),
    };
    match result {
        Ok(mut updates) => {
            fill_from_installed(&mut updates, packages);
            updates
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot list pending updates; reporting none");
            Vec::new()
        }
    }
}

/// The `apt-get` arguments of a read-only upgrade simulation of `fsroot`.
///
/// `Debug::NoLocking` keeps a held dpkg/apt lock from blocking the simulation and
/// the empty cache file names stop apt from writing `pkgcache.bin`. For a chroot,
/// `Dir=<root>` makes apt read the chroot's sources, lists, preferences and
/// `var/lib/dpkg/status` (all of apt's default paths are relative to `Dir`).
fn apt_args(fsroot: &FsRoot) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-s", "-q", "-o", "Debug::NoLocking=1"]
        .into_iter()
        .map(OsString::from)
        .collect();
    for opt in ["Dir::Cache::pkgcache=", "Dir::Cache::srcpkgcache="] {
        args.push("-o".into());
        args.push(opt.into());
    }
    if !fsroot.host {
        let mut dir = OsString::from("Dir=");
        dir.push(fsroot.root.as_os_str());
        args.push("-o".into());
        args.push(dir);
    }
    args.push("dist-upgrade".into());
    args
}

fn apt_pending(fsroot: &FsRoot, timeout: Duration) -> anyhow::Result<Vec<PendingUpdate>> {
    let out = run_command(Command::new("apt-get").args(apt_args(fsroot)), timeout)?;
    if !out.status.success() {
        bail!(
            "apt-get -s dist-upgrade failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(parse::apt_simulation(&String::from_utf8_lossy(&out.stdout)))
}

fn dnf_pending(fsroot: &FsRoot, timeout: Duration) -> anyhow::Result<Vec<PendingUpdate>> {
    let mut last_err = None;
    for tool in ["dnf", "yum"] {
        let mut cmd = Command::new(tool);
        cmd.args(["check-update", "-q"]);
        if !fsroot.host {
            cmd.arg("--installroot").arg(&fsroot.root);
        }
        match run_command(&mut cmd, timeout) {
            // 100: updates available; 0: none.
            Ok(out) if matches!(out.status.code(), Some(0 | 100)) => {
                return Ok(parse::dnf_check_update(&String::from_utf8_lossy(
                    &out.stdout,
                )));
            }
            Ok(out) => bail!(
                "{tool} check-update failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e @ CommandError::NotFound { .. }) => last_err = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last_err.map_or_else(|| anyhow!("no dnf or yum"), Into::into))
}

/// `apk version -l '<'` run as the execution layer runs apk (the root's own apk
/// through `chroot` for a root other than `/`, [`crate::exec::apk::command`]),
/// with `--no-network`: like `apt-get -s`, it reads the indexes of the last
/// `apk update` and never fetches (apk would otherwise refresh stale indexes,
/// writing to the cache, which the check-in path must not).
fn apk_pending(fsroot: &FsRoot, timeout: Duration) -> anyhow::Result<Vec<PendingUpdate>> {
    let mut cmd = crate::exec::apk::command(&fsroot.root);
    cmd.args(["--no-network", "version", "-l", "<"]);
    let out = run_command(&mut cmd, timeout)?;
    if !out.status.success() {
        bail!(
            "apk version failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(parse::apk_version(&String::from_utf8_lossy(&out.stdout)))
}

/// Fills a missing architecture or installed version from the installed packages
/// (dnf prints no installed version, apk no architecture). With several installed
/// versions of one name (rpm kernels), the last one listed by the package database
/// is taken.
fn fill_from_installed(updates: &mut [PendingUpdate], packages: &[Package]) {
    let mut by_name: HashMap<&str, &Package> = HashMap::new();
    let mut by_name_arch: HashMap<(&str, &str), &Package> = HashMap::new();
    for p in packages {
        by_name.insert(&p.name, p);
        by_name_arch.insert((&p.name, &p.arch), p);
    }
    let by_name_arch = |name: &str, arch: &str| by_name_arch.get(&(name, arch)).copied();
    for u in updates {
        let installed = if u.arch.is_empty() {
            by_name.get(u.name.as_str()).copied()
        } else {
            by_name_arch(&u.name, &u.arch)
        };
        if let Some(p) = installed {
            if u.arch.is_empty() {
                u.arch = p.arch.clone();
            }
            if u.current_version.is_empty() {
                u.current_version = p.version.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::os::unix::fs::symlink;

    /// Agent-specific captures live in fixtures/agent; package databases are
    /// shared with the other crates' tests in fixtures/inventories.
    fn fixture(rel: &str) -> PathBuf {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let own = base.join("agent").join(rel);
        if own.exists() {
            own
        } else {
            base.join("inventories").join(rel)
        }
    }

    fn copy(from: &str, root: &Path, to: &str) {
        let dest = root.join(to);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(fixture(from), &dest).unwrap();
    }

    fn have(tool: &str) -> bool {
        run_command(Command::new(tool).arg("--version"), Duration::from_secs(10)).is_ok()
    }

    fn chroot_opts(root: &Path, pending: bool) -> CollectOptions {
        CollectOptions {
            root: root.to_owned(),
            pending_updates: pending,
            command_timeout: Duration::from_secs(60),
            host_network: false,
            unmanaged: Default::default(),
        }
    }

    fn debian_chroot() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        copy("debian12/os-release", dir.path(), "usr/lib/os-release");
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        symlink("../usr/lib/os-release", dir.path().join("etc/os-release")).unwrap();
        copy(
            "debian12/debootstrap-minbase-before-security-upgrade.dpkg-status",
            dir.path(),
            "var/lib/dpkg/status",
        );
        dir
    }

    #[test]
    fn default_options() {
        let o = CollectOptions::default();
        assert_eq!(o.root, Path::new("/"));
        assert!(o.pending_updates);
        assert_eq!(o.command_timeout, Duration::from_secs(120));
    }

    /// This host against `dpkg-query` as the oracle (on a Debian-family host).
    #[test]
    fn collect_this_host_matches_dpkg_query() {
        assert!(
            Path::new("/var/lib/dpkg/status").is_file() && have("dpkg-query"),
            "the suite runs on a Debian machine: /var/lib/dpkg/status and dpkg-query are needed"
        );
        let inv = collect(&CollectOptions::default()).unwrap();
        assert_eq!(inv.format, Some(PackageFormat::Deb));
        assert_eq!(inv.facts.os.id, "debian");
        assert_eq!(inv.facts.arch, std::env::consts::ARCH);
        assert!(!inv.facts.kernel.is_empty());
        assert!(!inv.facts.hostname.is_empty());
        assert!(
            inv.facts
                .ip_addresses
                .iter()
                .all(|ip| ip != "127.0.0.1" && ip != "::1")
        );

        let out = run_command(
            Command::new("dpkg-query").args(["-W", "-f=${Package}\t${Version}\t${Architecture}\n"]),
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(out.status.success());
        let oracle: BTreeSet<(String, String, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[0].to_owned(), f[1].to_owned(), f[2].to_owned())
            })
            .collect();
        let ours: BTreeSet<(String, String, String)> = inv
            .packages
            .iter()
            .map(|p| (p.name.clone(), p.version.clone(), p.arch.clone()))
            .collect();
        assert_eq!(inv.packages.len(), oracle.len());
        assert_eq!(ours, oracle);

        // Every pending upgrade of an installed package names it at its version.
        for u in &inv.pending_updates {
            if !u.current_version.is_empty() {
                assert!(
                    inv.packages
                        .iter()
                        .any(|p| p.name == u.name && p.version == u.current_version),
                    "{u:?}"
                );
            }
        }
    }

    #[test]
    fn collect_debian_chroot() {
        let dir = debian_chroot();
        fs::write(dir.path().join("etc/hostname"), "minbase\n").unwrap();
        fs::write(
            dir.path().join("etc/machine-id"),
            "0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        let inv = collect(&chroot_opts(dir.path(), false)).unwrap();
        assert_eq!(inv.format, Some(PackageFormat::Deb));
        assert_eq!(inv.packages.len(), 88);
        assert_eq!(inv.facts.os.id, "debian");
        assert_eq!(inv.facts.os.version_id, "12");
        assert_eq!(inv.facts.hostname, "minbase");
        assert_eq!(inv.facts.machine_id, "0123456789abcdef0123456789abcdef");
        assert_eq!(inv.facts.kernel, "");
        assert!(inv.facts.ip_addresses.is_empty());
        assert!(inv.facts.services_needing_restart.is_empty());
        assert!(!inv.facts.reboot_required);
        assert!(inv.pending_updates.is_empty());
        let tz = inv.packages.iter().find(|p| p.name == "tzdata").unwrap();
        assert_eq!(
            (tz.version.as_str(), tz.arch.as_str()),
            ("2026b-0+deb12u1", "all")
        );
    }

    /// `var/run -> /run` is resolved inside the chroot, as on a real Debian tree.
    #[test]
    fn reboot_required_in_chroot_follows_absolute_links_inside_root() {
        let dir = debian_chroot();
        fs::create_dir_all(dir.path().join("var")).unwrap();
        symlink("/run", dir.path().join("var/run")).unwrap();
        fs::create_dir_all(dir.path().join("run")).unwrap();
        let inv = collect(&chroot_opts(dir.path(), false)).unwrap();
        assert!(!inv.facts.reboot_required);
        fs::write(dir.path().join("run/reboot-required"), "").unwrap();
        let inv = collect(&chroot_opts(dir.path(), false)).unwrap();
        assert!(inv.facts.reboot_required);
    }

    /// The real apt simulation in a chroot: the debootstrap status before the
    /// security upgrade plus a local copy of the security archive's entries for the
    /// six packages `apt list --upgradable` reported there.
    #[test]
    fn pending_updates_in_debian_chroot_via_apt_simulation() {
        assert!(
            have("apt-get"),
            "apt-get must be installed (the suite runs on Debian)"
        );
        let dir = debian_chroot();
        let lists = "var/lib/apt/lists/deb.debian.org_debian-security_dists_bookworm-security";
        copy(
            "apt/chroot-security/sources.list",
            dir.path(),
            "etc/apt/sources.list",
        );
        copy(
            "apt/chroot-security/Release",
            dir.path(),
            &format!("{lists}_Release"),
        );
        copy(
            "apt/chroot-security/Packages",
            dir.path(),
            &format!("{lists}_main_binary-amd64_Packages"),
        );
        let before: Vec<(PathBuf, fs::Metadata)> = walk(dir.path());
        let inv = collect(&chroot_opts(dir.path(), true)).unwrap();
        let got: Vec<(&str, &str, &str, &str)> = inv
            .pending_updates
            .iter()
            .map(|u| {
                assert_eq!(u.origin, "Debian-Security:12/oldstable-security");
                (
                    u.name.as_str(),
                    u.arch.as_str(),
                    u.current_version.as_str(),
                    u.available_version.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("apt", "amd64", "2.6.1", "2.6.2"),
                ("libapt-pkg6.0", "amd64", "2.6.1", "2.6.2"),
                ("liblzma5", "amd64", "5.4.1-1+deb12u1", "5.4.1-1+deb12u2"),
                ("libpcre2-8-0", "amd64", "10.42-1", "10.42-1+deb12u2"),
                ("perl-base", "amd64", "5.36.0-7+deb12u3", "5.36.0-7+deb12u4"),
                ("tzdata", "all", "2026b-0+deb12u1", "2026f-0+deb12u1"),
            ]
        );
        // Read-only: the simulation created or changed nothing in the chroot.
        let after = walk(dir.path());
        assert_eq!(
            before
                .iter()
                .map(|(p, m)| (p, m.len(), m.modified().ok()))
                .collect::<Vec<_>>(),
            after
                .iter()
                .map(|(p, m)| (p, m.len(), m.modified().ok()))
                .collect::<Vec<_>>()
        );
    }

    fn walk(root: &Path) -> Vec<(PathBuf, fs::Metadata)> {
        let mut out = Vec::new();
        let mut todo = vec![root.to_owned()];
        while let Some(d) = todo.pop() {
            for e in fs::read_dir(&d).unwrap().flatten() {
                let m = fs::symlink_metadata(e.path()).unwrap();
                if m.is_dir() {
                    todo.push(e.path());
                }
                out.push((e.path(), m));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn collect_alpine_chroot() {
        let dir = tempfile::tempdir().unwrap();
        copy("alpine323/os-release", dir.path(), "etc/os-release");
        copy(
            "alpine323/lib-apk-db-installed",
            dir.path(),
            "lib/apk/db/installed",
        );
        let inv = collect(&chroot_opts(dir.path(), false)).unwrap();
        assert_eq!(inv.format, Some(PackageFormat::Apk));
        assert_eq!(inv.packages.len(), 59);
        assert_eq!(inv.facts.os.id, "alpine");
        assert_eq!(inv.facts.os.version_id, "3.23.6");
        assert_eq!(inv.facts.machine_id, "");
        assert_eq!(inv.facts.hostname, "");
        let apk_tools = inv.packages.iter().find(|p| p.name == "apk-tools").unwrap();
        assert_eq!(apk_tools.version, "3.0.8-r0");
    }

    /// A tool that is missing or fails does not fail the inventory.
    #[test]
    fn alpine_chroot_pending_updates_never_fail() {
        let dir = tempfile::tempdir().unwrap();
        copy("alpine323/os-release", dir.path(), "etc/os-release");
        copy(
            "alpine323/lib-apk-db-installed",
            dir.path(),
            "lib/apk/db/installed",
        );
        let inv = collect(&chroot_opts(dir.path(), true)).unwrap();
        assert_eq!(inv.packages.len(), 59);
    }

    #[test]
    fn no_package_database() {
        let dir = tempfile::tempdir().unwrap();
        copy("alpine323/os-release", dir.path(), "usr/lib/os-release");
        let inv = collect(&chroot_opts(dir.path(), true)).unwrap();
        assert_eq!(inv.format, None);
        assert!(inv.packages.is_empty());
        assert!(inv.pending_updates.is_empty());
    }

    #[test]
    fn missing_os_release_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = collect(&chroot_opts(dir.path(), false)).unwrap_err();
        let msg = format!("{err:#}");
        let root = fs::canonicalize(dir.path()).unwrap();
        assert!(
            msg.contains(&root.join("etc/os-release").display().to_string()),
            "{msg}"
        );
    }

    #[test]
    fn missing_root_is_an_error() {
        let err =
            collect(&chroot_opts(Path::new("/nonexistent/patchbay-root"), false)).unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent/patchbay-root"),
            "{err:#}"
        );
    }

    #[test]
    fn os_release_without_id_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("etc/os-release"), "NAME=\"Mystery\"\n").unwrap();
        let msg = format!(
            "{:#}",
            collect(&chroot_opts(dir.path(), false)).unwrap_err()
        );
        assert!(msg.contains("etc/os-release"), "{msg}");
    }

    #[test]
    fn unmanaged_os_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("etc/os-release"), "ID=plan9\n").unwrap();
        let msg = format!(
            "{:#}",
            collect(&chroot_opts(dir.path(), false)).unwrap_err()
        );
        assert!(
            msg.contains("etc/os-release") && msg.contains("plan9"),
            "{msg}"
        );
    }

    #[test]
    fn unparsable_dpkg_status_names_file_and_line() {
        let dir = debian_chroot();
        let status = dir.path().join("var/lib/dpkg/status");
        let mut text = fs::read_to_string(&status).unwrap();
        text.insert_str(
            0,
            "Package: broken\n this continuation has no field\nnot a field line\n\n",
        );
        fs::write(&status, text).unwrap();
        match collect(&chroot_opts(dir.path(), false)) {
            Err(e) => {
                let msg = format!("{e:#}");
                assert!(msg.contains("var/lib/dpkg/status"), "{msg}");
                assert!(msg.contains("line "), "{msg}");
            }
            // A lenient parser may accept it; then the broken stanza is not a package.
            Ok(inv) => assert!(inv.packages.len() >= 88),
        }
    }

    #[test]
    fn resolve_in_root_keeps_links_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        symlink("/usr/lib/os-release", root.join("etc/abs")).unwrap();
        symlink("../usr/lib/os-release", root.join("etc/rel")).unwrap();
        symlink("../../../../../../../usr/lib", root.join("etc/climb")).unwrap();
        symlink("loop2", root.join("etc/loop1")).unwrap();
        symlink("loop1", root.join("etc/loop2")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        let target = root.join("usr/lib/os-release");
        assert_eq!(resolve_in_root(&root, Path::new("etc/abs")), target);
        assert_eq!(resolve_in_root(&root, Path::new("etc/rel")), target);
        assert_eq!(
            resolve_in_root(&root, Path::new("etc/climb/os-release")),
            target
        );
        assert_eq!(resolve_in_root(&root, Path::new("lib/os-release")), target);
        assert_eq!(
            resolve_in_root(&root, Path::new("etc/missing")),
            root.join("etc/missing")
        );
        // A loop stops after 40 links instead of spinning.
        assert!(resolve_in_root(&root, Path::new("etc/loop1")).starts_with(&root));
    }

    #[test]
    fn apt_args_for_host_and_chroot() {
        let host = FsRoot {
            root: "/".into(),
            host: true,
        };
        let chroot = FsRoot {
            root: "/srv/chroot".into(),
            host: false,
        };
        let s = |f: &FsRoot| {
            apt_args(f)
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            s(&host),
            "-s -q -o Debug::NoLocking=1 -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= dist-upgrade"
        );
        assert_eq!(
            s(&chroot),
            "-s -q -o Debug::NoLocking=1 -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= \
             -o Dir=/srv/chroot dist-upgrade"
        );
    }

    #[test]
    fn fill_from_installed_uses_name_and_arch() {
        let p = |n: &str, v: &str, a: &str| Package {
            name: n.into(),
            version: v.into(),
            arch: a.into(),
            source: None,
            source_version: None,
        };
        let pkgs = vec![
            p("kernel", "5.14.0-1.el9", "x86_64"),
            p("kernel", "5.14.0-2.el9", "x86_64"),
            p("glibc", "2.34-1", "i686"),
            p("glibc", "2.34-1", "x86_64"),
            p("busybox", "1.37.0-r12", "x86_64"),
        ];
        let u = |n: &str, a: &str, c: &str| PendingUpdate {
            name: n.into(),
            arch: a.into(),
            current_version: c.into(),
            available_version: "9".into(),
            origin: String::new(),
        };
        let mut ups = vec![
            u("kernel", "x86_64", ""),
            u("glibc", "i686", ""),
            u("busybox", "", "1.37.0-r12"),
            u("new", "noarch", ""),
        ];
        fill_from_installed(&mut ups, &pkgs);
        assert_eq!(ups[0].current_version, "5.14.0-2.el9");
        assert_eq!(ups[1].current_version, "2.34-1");
        assert_eq!(ups[2].arch, "x86_64");
        assert_eq!(ups[3].current_version, "");
    }

    /// A process that still maps a deleted library is reported by name (no systemd
    /// unit in a container's cgroup).
    #[test]
    fn services_needing_restart_finds_deleted_library() {
        let libm = [
            "/lib/x86_64-linux-gnu/libm.so.6",
            "/usr/lib/x86_64-linux-gnu/libm.so.6",
            "/lib64/libm.so.6",
            "/lib/libm.so.6",
        ]
        .into_iter()
        .find(|p| Path::new(p).is_file());
        let libm = libm.expect("libm.so.6 is on every glibc system");
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libm.so.6");
        fs::copy(libm, &lib).unwrap();
        let mut child = Command::new("sleep")
            .arg("30")
            .env("LD_PRELOAD", &lib)
            .spawn()
            .unwrap();
        let maps = format!("/proc/{}/maps", child.id());
        let mut loaded = false;
        for _ in 0..200 {
            if fs::read_to_string(&maps).is_ok_and(|m| m.contains(lib.to_str().unwrap())) {
                loaded = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        fs::remove_file(&lib).unwrap();
        let found = services_needing_restart(Path::new("/proc"));
        let _ = child.kill();
        let _ = child.wait();
        assert!(loaded, "LD_PRELOAD did not map the library");
        let cgroup = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let expected = parse::cgroup_service(&cgroup).unwrap_or_else(|| "sleep".into());
        assert!(found.contains(&expected), "{found:?} lacks {expected}");
    }
}
