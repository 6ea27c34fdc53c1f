//! Pure parsers of command output and `/proc` files used by inventory collection.
//!
//! Every function takes text and returns values; none touches the system. Lines
//! that do not have the expected shape are skipped, never a panic: the input
//! comes from tools whose output varies between versions.

use patchbay_core::inventory::PendingUpdate;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Parses `apt-get -s dist-upgrade` (simulation) output.
///
/// Each `Inst` line becomes a [`PendingUpdate`]:
///
/// ```text
/// Inst tzdata [2026b-0+deb12u1] (2026f-0+deb12u1 Debian-Security:12/oldstable-security [all])
/// Inst libperl5.36 [5.36.0-7+deb12u2] (5.36.0-7+deb12u3 Debian:12.14/oldstable [amd64]) [perl:amd64 ]
/// Inst newpkg (1.0-1 Debian:12.14/oldstable [amd64])
/// ```
///
/// The bracketed installed version is absent for new installs (then
/// `current_version` is empty). `origin` is apt's release text between the version
/// and the architecture (`Label:Version/Suite`, comma-separated when several
/// archives carry the version). A `name:arch` package name is split.
pub fn apt_simulation(text: &str) -> Vec<PendingUpdate> {
    text.lines().filter_map(apt_inst_line).collect()
}

fn apt_inst_line(line: &str) -> Option<PendingUpdate> {
    let rest = line.strip_prefix("Inst ")?.trim_start();
    let (name, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if name.is_empty() {
        return None;
    }
    rest = rest.trim_start();
    let mut current_version = "";
    if let Some(r) = rest.strip_prefix('[') {
        let (cur, after) = r.split_once(']')?;
        current_version = cur.trim();
        rest = after.trim_start();
    }
    let inner = rest.strip_prefix('(')?;
    let (inner, _) = inner.split_once(')')?;
    let inner = inner.trim();
    let (version, mut release) = inner.split_once(' ').unwrap_or((inner, ""));
    if version.is_empty() {
        return None;
    }
    release = release.trim();
    let mut arch = "";
    if release.ends_with(']')
        && let Some(open) = release.rfind('[')
    {
        arch = release[open + 1..release.len() - 1].trim();
        release = release[..open].trim_end();
    }
    let (name, name_arch) = match name.split_once(':') {
        Some((n, a)) => (n, a),
        None => (name, ""),
    };
    if arch.is_empty() {
        arch = name_arch;
    }
    Some(PendingUpdate {
        name: name.to_owned(),
        arch: arch.to_owned(),
        current_version: current_version.to_owned(),
        available_version: version.to_owned(),
        origin: release.to_owned(),
    })
}

/// Parses `dnf check-update -q` (or `yum check-update -q`) output.
///
/// ```text
/// openssl-libs.x86_64          1:3.0.7-25.el9_3          baseos
/// ```
///
/// `current_version` is left empty (dnf does not print it); callers fill it from
/// the installed package list. A line wrapped because the name is too long
/// (`name.arch` alone on one line, version and repository on the next) is joined.
/// The "Obsoleting Packages" section and anything after it is ignored.
pub fn dnf_check_update(text: &str) -> Vec<PendingUpdate> {
    let mut out = Vec::new();
    let mut pending: Vec<&str> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            pending.clear();
            continue;
        }
        if trimmed
            .get(..10)
            .is_some_and(|w| w.eq_ignore_ascii_case("obsoleting"))
        {
            break;
        }
        let words = trimmed.split_whitespace().count();
        if words >= 3 || pending.len() + words > 3 {
            pending.clear();
        }
        pending.extend(trimmed.split_whitespace().take(3));
        if pending.len() < 3 {
            continue;
        }
        if let Some(u) = dnf_record(pending[0], pending[1], pending[2]) {
            out.push(u);
        }
        pending.clear();
    }
    out
}

fn dnf_record(name_arch: &str, version: &str, repo: &str) -> Option<PendingUpdate> {
    let (name, arch) = name_arch.rsplit_once('.')?;
    let plausible_version = version.contains('-')
        && version
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || arch.is_empty() || !plausible_version {
        return None;
    }
    Some(PendingUpdate {
        name: name.to_owned(),
        arch: arch.to_owned(),
        current_version: String::new(),
        available_version: version.to_owned(),
        origin: repo.to_owned(),
    })
}

/// Parses `apk version -l '<'` output (apk-tools 2 and 3).
///
/// ```text
/// Installed:                               Available:
/// busybox-1.37.0-r12                     < 1.37.0-r13
/// curl-8.11.1-r0                         < 8.12.0-r0 @edge
/// ```
///
/// Only `<` lines are taken. `arch` is left empty (apk does not print it); the
/// repository tag, if any, becomes `origin`.
pub fn apk_version(text: &str) -> Vec<PendingUpdate> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let pkgver = words.next()?;
            if words.next()? != "<" {
                return None;
            }
            let available = words.next()?;
            let tag = words.next().unwrap_or("");
            let (name, current) = split_apk_name_version(pkgver)?;
            Some(PendingUpdate {
                name: name.to_owned(),
                arch: String::new(),
                current_version: current.to_owned(),
                available_version: available.to_owned(),
                origin: tag.to_owned(),
            })
        })
        .collect()
}

/// Splits apk's `name-version-rN` into name and `version-rN`.
pub(crate) fn split_apk_name_version(s: &str) -> Option<(&str, &str)> {
    let rel = s.rfind('-')?;
    let release = &s[rel + 1..];
    if !release.starts_with('r') || !release[1..].chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let ver = s[..rel].rfind('-')?;
    let name = &s[..ver];
    if name.is_empty() || ver + 1 >= rel {
        return None;
    }
    Some((name, &s[ver + 1..]))
}

/// Parses `ip -o addr show` output into addresses without prefix length,
/// skipping loopback (`127.0.0.0/8`, `::1`).
///
/// ```text
/// 4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\       valid_lft forever preferred_lft forever
/// ```
pub fn ip_addr(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        while let Some(word) = words.next() {
            if word == "inet" || word == "inet6" {
                let addr = words.next().unwrap_or("").split('/').next().unwrap_or("");
                if let Ok(ip) = addr.parse::<IpAddr>()
                    && !ip.is_loopback()
                {
                    out.push(ip.to_string());
                }
            }
        }
    }
    out
}

/// The MACs of the interfaces in `ip -j link show` output: Ethernet links
/// (`link_type` `ether`) with a real address, lower case, sorted, without
/// duplicates (a bridge repeats its port's).
///
/// ```text
/// [{"ifindex":2,"ifname":"eth0","link_type":"ether","address":"52:54:00:12:34:56",…}]
/// ```
pub fn link_macs(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["link_type"].as_str() == Some("ether"))
        .filter_map(|l| l["address"].as_str())
        .filter_map(|a| a.parse::<patchbay_core::discovery::Mac>().ok())
        .filter(|m| !m.is_placeholder())
        .map(|m| m.to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The neighbour table in `ip -j neigh show` output: entries that resolved
/// to a MAC (`lladdr`), whatever their state but `FAILED`/`INCOMPLETE`,
/// sorted, without duplicates; loopback and link-local IPv6 addresses are
/// skipped (every host has them).
///
/// ```text
/// [{"dst":"10.0.0.1","dev":"eth0","lladdr":"52:54:00:aa:bb:cc","state":["REACHABLE"]}]
/// ```
pub fn neighbours(v: &serde_json::Value) -> Vec<patchbay_core::inventory::Neighbour> {
    let mut out: Vec<patchbay_core::inventory::Neighbour> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| {
            !n["state"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|x| matches!(x.as_str(), Some("FAILED" | "INCOMPLETE")))
            })
        })
        .filter_map(|n| {
            let ip: IpAddr = n["dst"].as_str()?.parse().ok()?;
            let mac: patchbay_core::discovery::Mac = n["lladdr"].as_str()?.parse().ok()?;
            let link_local = matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
            (!ip.is_loopback() && !link_local && !mac.is_placeholder()).then(|| {
                patchbay_core::inventory::Neighbour {
                    ip: ip.to_string(),
                    mac: mac.to_string(),
                }
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The listening sockets in a `/proc/net/tcp`-style table (`tcp6`, `udp`,
/// `udp6` alike): TCP in state `0A` (LISTEN), UDP in state `07` with no
/// remote end; sockets bound to loopback are skipped. `proto/port` each.
///
/// ```text
///   sl  local_address rem_address   st tx_queue rx_queue …
///    0: 00000000:0016 00000000:0000 0A 00000000:00000000 …
/// ```
pub fn proc_net_listening(text: &str, proto: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(state)) = (f.get(1), f.get(2), f.get(3)) else {
            continue;
        };
        let listening = match proto {
            "tcp" => *state == "0A",
            _ => *state == "07" && remote.split(':').nth(1) == Some("0000"),
        };
        let Some((addr, port)) = local.split_once(':') else {
            continue;
        };
        let Ok(port) = u16::from_str_radix(port, 16) else {
            continue;
        };
        // Loopback: 127.x.x.x (little-endian hex ends in 7F), ::1.
        let loopback =
            (addr.len() == 8 && addr.ends_with("7F")) || addr == "00000000000000000000000001000000";
        if listening && !loopback && port != 0 {
            out.push(format!("{proto}/{port}"));
        }
    }
    out
}

/// Parses `/proc/net/fib_trie` into the host's local IPv4 addresses (leaves
/// marked `host LOCAL`), skipping loopback.
///
/// ```text
///            |-- 192.0.2.2
///               /32 host LOCAL
/// ```
pub fn fib_trie(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(addr) = t.strip_prefix("|-- ") {
            last = addr.trim().parse().ok();
        } else if t.starts_with('/') && t.ends_with("host LOCAL") {
            if let Some(ip) = last
                && !ip.is_loopback()
            {
                out.push(ip.to_string());
            }
        } else {
            last = None;
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Parses `/proc/net/if_inet6` into IPv6 addresses, skipping `::1`.
///
/// ```text
/// fd000000000000000000000000000002 04 40 00 82     eth0
/// ```
pub fn if_inet6(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let hex = line.split_whitespace().next()?;
            if hex.len() != 32 || !hex.is_ascii() {
                return None;
            }
            let bits = u128::from_str_radix(hex, 16).ok()?;
            let ip = Ipv6Addr::from(bits);
            (!ip.is_loopback()).then(|| ip.to_string())
        })
        .collect()
}

/// Returns the paths of deleted shared libraries still mapped, from the text of
/// `/proc/<pid>/maps`, sorted and deduplicated.
///
/// ```text
/// 7f2c1a200000-7f2c1a228000 r--p 00000000 08:01 1835 /usr/lib/x86_64-linux-gnu/libc.so.6 (deleted)
/// ```
///
/// A shared library is a file whose name contains `.so` as a suffix or followed by
/// a dot (`libc.so.6`, `libfoo.so`). Anonymous shared memory (`/memfd:`,
/// `/dev/shm/`, `/SYSV`) is not a library.
pub fn deleted_libraries(maps: &str) -> Vec<String> {
    let mut out: Vec<String> = maps
        .lines()
        .filter_map(|line| {
            let path = maps_path(line)?;
            let path = path.strip_suffix(" (deleted)")?;
            if path.starts_with("/memfd:")
                || path.starts_with("/dev/shm/")
                || path.starts_with("/SYSV")
            {
                return None;
            }
            let file = path.rsplit('/').next().unwrap_or(path);
            let is_lib = file.ends_with(".so") || file.contains(".so.");
            is_lib.then(|| path.to_owned())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The path column of a maps line (everything after the five first fields), if any.
fn maps_path(line: &str) -> Option<&str> {
    let mut rest = line;
    for _ in 0..5 {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace)?;
        rest = &rest[end..];
    }
    let path = rest.trim();
    path.starts_with('/').then_some(path)
}

/// The systemd service unit of a process from the text of `/proc/<pid>/cgroup`:
/// the last path component ending in `.service`.
///
/// The unified hierarchy line (`0::/system.slice/ssh.service`) is preferred, then
/// the v1 `name=systemd` line, then any line.
pub fn cgroup_service(text: &str) -> Option<String> {
    let lines: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            Some((controllers, path))
        })
        .collect();
    let by_rank = |want: &dyn Fn(&str) -> bool| {
        lines
            .iter()
            .filter(|(c, _)| want(c))
            .find_map(|(_, path)| service_in_path(path))
    };
    by_rank(&|c| c.is_empty())
        .or_else(|| by_rank(&|c| c == "name=systemd"))
        .or_else(|| by_rank(&|_| true))
}

fn service_in_path(path: &str) -> Option<String> {
    path.split('/')
        .rev()
        .find(|c| c.len() > ".service".len() && c.ends_with(".service"))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {

    #[test]
    fn proc_net_listening_sockets() {
        // /proc/net/tcp of a host with sshd on *:22, a service on 127.0.0.1:631
        // and an established connection; /proc/net/udp6 with *:53.
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20519 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20520 1 0000000000000000 100 0 0 10 0
   2: 0B4E500A:0016 0E4E500A:C0A2 01 00000000:00000000 02:0009F4E3 00000000     0        0 22130 4 0000000000000000 20 4 31 10 -1
";
        assert_eq!(proc_net_listening(tcp, "tcp"), vec!["tcp/22"]);
        let udp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  1: 00000000000000000000000000000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 30144 2 0000000000000000 0
  2: 00000000000000000000000001000000:0277 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 30145 2 0000000000000000 0
";
        assert_eq!(proc_net_listening(udp6, "udp"), vec!["udp/53"]);
        assert!(proc_net_listening("garbage\n1: x y z\n", "tcp").is_empty());
    }

    #[test]
    fn ip_json_link_and_neigh() {
        // `ip -j link show` and `ip -j neigh show` of iproute2 6.1 (Debian 12).
        let link: serde_json::Value = serde_json::from_str(r#"[
            {"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP"],"mtu":65536,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00"},
            {"ifindex":2,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"link_type":"ether","address":"52:54:00:78:00:02","broadcast":"ff:ff:ff:ff:ff:ff"},
            {"ifindex":3,"ifname":"br0","link_type":"ether","address":"52:54:00:78:00:02"},
            {"ifindex":4,"ifname":"wg0","link_type":"none"}]"#).unwrap();
        assert_eq!(link_macs(&link), vec!["52:54:00:78:00:02"]);
        let neigh: serde_json::Value = serde_json::from_str(r#"[
            {"dst":"10.78.20.1","dev":"eth0","lladdr":"8a:1c:2e:00:00:01","state":["REACHABLE"]},
            {"dst":"10.78.20.14","dev":"eth0","lladdr":"52:54:00:78:00:04","state":["STALE"]},
            {"dst":"10.78.20.99","dev":"eth0","state":["FAILED"]},
            {"dst":"10.78.20.98","dev":"eth0","lladdr":"52:54:00:78:00:98","state":["INCOMPLETE"]},
            {"dst":"fe80::1","dev":"eth0","lladdr":"8a:1c:2e:00:00:01","router":null,"state":["STALE"]},
            {"dst":"10.78.20.14","dev":"eth1","lladdr":"52:54:00:78:00:04","state":["DELAY"]}]"#).unwrap();
        let n = neighbours(&neigh);
        assert_eq!(
            n.iter()
                .map(|n| (n.ip.as_str(), n.mac.as_str()))
                .collect::<Vec<_>>(),
            vec![
                ("10.78.20.1", "8a:1c:2e:00:00:01"),
                ("10.78.20.14", "52:54:00:78:00:04")
            ]
        );
        assert!(neighbours(&serde_json::json!({"not": "a list"})).is_empty());
    }
    use super::*;

    /// Real `apt-get -s -o Debug::NoLocking=1 dist-upgrade` output captured on the
    /// Debian 12 build machine (80 upgrades).
    const APT_HOST: &str =
        include_str!("../../../../fixtures/agent/apt/apt-get-s-dist-upgrade.host.txt");
    /// Real output of the same simulation in a chroot built from the debootstrap
    /// status file and a crafted security archive (see fixtures/agent/PROVENANCE.md).
    const APT_CHROOT: &str =
        include_str!("../../../../fixtures/agent/apt/apt-get-s-dist-upgrade.chroot.txt");
    /// Real `ip -o addr show` output of the build machine.
    const IP_ADDR: &str = include_str!("../../../../fixtures/agent/proc/ip-o-addr-show.txt");
    /// Real `/proc/net/fib_trie` of the build machine.
    const FIB_TRIE: &str = include_str!("../../../../fixtures/agent/proc/fib_trie.txt");
    /// Real `/proc/net/if_inet6` of the build machine.
    const IF_INET6: &str = include_str!("../../../../fixtures/agent/proc/if_inet6.txt");
    /// Real `/proc/<pid>/maps` of a process whose preloaded library was deleted.
    const MAPS: &str = include_str!("../../../../fixtures/agent/proc/maps-deleted.txt");

    /// dnf 4 `check-update -q` output in the documented column format, with a
    /// wrapped long name and an obsoletes section.
    const DNF: &str = "
bash.x86_64                          5.1.8-9.el9                          baseos
openssl-libs.x86_64                  1:3.0.7-25.el9_3                     baseos
python3-a-really-long-package-name-that-wraps.noarch
                                     1.2.3-4.el9                          appstream
kernel.x86_64                        5.14.0-362.18.1.el9_3                baseos
Obsoleting Packages
grub2-tools.x86_64                   1:2.06-70.el9_3.2                    baseos
    grub2-tools.x86_64               1:2.06-70.el9_3.1                    @baseos
";

    /// apk-tools `version -l '<'` output in the format printed by app_version.c.
    const APK: &str = "Installed:                               Available:
busybox-1.37.0-r12                      < 1.37.0-r13
libcrypto3-3.5.4-r0                     < 3.5.5-r0
curl-8.11.1-r0                          < 8.12.0-r0 @edge
musl-1.2.5-r10                          = 1.2.5-r10
";

    const CGROUP_V2: &str = "0::/system.slice/ssh.service\n";
    const CGROUP_V1: &str = "12:pids:/system.slice/cron.service\n\
        1:name=systemd:/system.slice/cron.service\n";
    const CGROUP_USER: &str =
        "0::/user.slice/user-1000.slice/user@1000.service/app.slice/dbus.service\n";
    const CGROUP_NONE: &str = "9:name=systemd:/\n0::/\n";

    fn upd(name: &str, arch: &str, cur: &str, avail: &str, origin: &str) -> PendingUpdate {
        PendingUpdate {
            name: name.into(),
            arch: arch.into(),
            current_version: cur.into(),
            available_version: avail.into(),
            origin: origin.into(),
        }
    }

    #[test]
    fn apt_host_sample() {
        let u = apt_simulation(APT_HOST);
        assert_eq!(u.len(), 80);
        assert_eq!(
            u[0],
            upd(
                "base-files",
                "amd64",
                "12.4+deb12u11",
                "12.4+deb12u14",
                "Debian:12.14/oldstable"
            )
        );
        let perl = u.iter().find(|u| u.name == "libperl5.36").unwrap();
        assert_eq!(perl.available_version, "5.36.0-7+deb12u3");
        assert_eq!(perl.arch, "amd64");
        let login = u.iter().find(|u| u.name == "login").unwrap();
        assert_eq!(login.current_version, "1:4.13+dfsg1-1+deb12u1");
        let both = u
            .iter()
            .filter(|u| u.origin == "Debian:12.14/oldstable, Debian-Security:12/oldstable-security")
            .count();
        assert_eq!(both, 14);
        assert!(
            u.iter()
                .all(|u| !u.current_version.is_empty() && !u.arch.is_empty())
        );
    }

    #[test]
    fn apt_chroot_sample_matches_apt_list_upgradable() {
        // The six packages `apt list --upgradable` reported in that chroot.
        let mut u = apt_simulation(APT_CHROOT);
        u.sort();
        let sec = "Debian-Security:12/oldstable-security";
        assert_eq!(
            u,
            vec![
                upd("apt", "amd64", "2.6.1", "2.6.2", sec),
                upd("libapt-pkg6.0", "amd64", "2.6.1", "2.6.2", sec),
                upd(
                    "liblzma5",
                    "amd64",
                    "5.4.1-1+deb12u1",
                    "5.4.1-1+deb12u2",
                    sec
                ),
                upd("libpcre2-8-0", "amd64", "10.42-1", "10.42-1+deb12u2", sec),
                upd(
                    "perl-base",
                    "amd64",
                    "5.36.0-7+deb12u3",
                    "5.36.0-7+deb12u4",
                    sec
                ),
                upd("tzdata", "all", "2026b-0+deb12u1", "2026f-0+deb12u1", sec),
            ]
        );
    }

    #[test]
    fn apt_new_install_and_multiarch() {
        let u = apt_simulation(
            "Inst libfoo1 (1.0-1 Debian:12.14/oldstable [amd64])\n\
             Inst libc6:i386 [2.36-9+deb12u9] (2.36-9+deb12u10 Debian:12.14/oldstable [i386])\n\
             Inst bare [1] (2)\n\
             Remv old [1.0]\nConf libfoo1 (1.0-1 Debian:12.14/oldstable [amd64])\n",
        );
        assert_eq!(
            u,
            vec![
                upd("libfoo1", "amd64", "", "1.0-1", "Debian:12.14/oldstable"),
                upd(
                    "libc6",
                    "i386",
                    "2.36-9+deb12u9",
                    "2.36-9+deb12u10",
                    "Debian:12.14/oldstable"
                ),
                upd("bare", "", "1", "2", ""),
            ]
        );
    }

    #[test]
    fn dnf_sample() {
        let u = dnf_check_update(DNF);
        assert_eq!(
            u,
            vec![
                upd("bash", "x86_64", "", "5.1.8-9.el9", "baseos"),
                upd("openssl-libs", "x86_64", "", "1:3.0.7-25.el9_3", "baseos"),
                upd(
                    "python3-a-really-long-package-name-that-wraps",
                    "noarch",
                    "",
                    "1.2.3-4.el9",
                    "appstream"
                ),
                upd("kernel", "x86_64", "", "5.14.0-362.18.1.el9_3", "baseos"),
            ]
        );
        assert!(dnf_check_update("").is_empty());
        assert!(dnf_check_update("Last metadata expiration check: 0:01:02 ago.\n").is_empty());
    }

    #[test]
    fn apk_sample() {
        let u = apk_version(APK);
        assert_eq!(
            u,
            vec![
                upd("busybox", "", "1.37.0-r12", "1.37.0-r13", ""),
                upd("libcrypto3", "", "3.5.4-r0", "3.5.5-r0", ""),
                upd("curl", "", "8.11.1-r0", "8.12.0-r0", "@edge"),
            ]
        );
        assert_eq!(
            split_apk_name_version("py3-foo-bar-1.0_rc1-r2"),
            Some(("py3-foo-bar", "1.0_rc1-r2"))
        );
        assert_eq!(split_apk_name_version("x-r1"), None);
        // Real apk-tools 3.0.8 output (Alpine 3.23 root, local test repository):
        // the header is 42 columns wide and the line ends with a space.
        assert_eq!(
            apk_version(
                "Installed:                                Available:\npblib-1.0-r0                            < 2.0-r0 \n"
            ),
            vec![upd("pblib", "", "1.0-r0", "2.0-r0", "")]
        );
        assert_eq!(split_apk_name_version("-1-r1"), None);
    }

    #[test]
    fn ip_samples() {
        assert_eq!(
            ip_addr(IP_ADDR),
            vec!["192.0.2.2", "fd00::2", "fe80::fc:ff:fe00:1"]
        );
        assert_eq!(fib_trie(FIB_TRIE), vec!["192.0.2.2"]);
        assert_eq!(if_inet6(IF_INET6), vec!["fe80::fc:ff:fe00:1", "fd00::2"]);
    }

    #[test]
    fn maps_sample() {
        assert_eq!(deleted_libraries(MAPS).len(), 1, "{MAPS}");
        assert!(deleted_libraries(MAPS)[0].ends_with("/libm.so.6"));
        let crafted = "7f00-7f01 r--p 00000000 08:01 1 /usr/lib/libfoo.so (deleted)\n\
            7f00-7f01 r--p 00000000 08:01 1 /opt/my app/libbar.so.1.2 (deleted)\n\
            7f00-7f01 rw-s 00000000 00:01 1 /memfd:x.so.1 (deleted)\n\
            7f00-7f01 rw-s 00000000 00:01 1 /dev/shm/lib.so.1 (deleted)\n\
            7f00-7f01 r--p 00000000 08:01 1 /var/tmp/data.sock (deleted)\n\
            7f00-7f01 r--p 00000000 08:01 1 /usr/lib/libok.so.3\n\
            7f00-7f01 r-xp 00000000 00:00 0 [vdso]\n";
        assert_eq!(
            deleted_libraries(crafted),
            vec!["/opt/my app/libbar.so.1.2", "/usr/lib/libfoo.so"]
        );
    }

    #[test]
    fn cgroup_samples() {
        assert_eq!(cgroup_service(CGROUP_V2).as_deref(), Some("ssh.service"));
        assert_eq!(cgroup_service(CGROUP_V1).as_deref(), Some("cron.service"));
        assert_eq!(cgroup_service(CGROUP_USER).as_deref(), Some("dbus.service"));
        assert_eq!(cgroup_service(CGROUP_NONE), None);
        assert_eq!(cgroup_service("0::/system.slice/.service"), None);
    }

    /// Every parser on one input; the results are discarded, only panics matter.
    fn run_all(s: &str) {
        let _ = apt_simulation(s);
        let _ = dnf_check_update(s);
        let _ = apk_version(s);
        let _ = ip_addr(s);
        let _ = fib_trie(s);
        let _ = if_inet6(s);
        let _ = deleted_libraries(s);
        let _ = cgroup_service(s);
    }

    /// A deterministic stand-in for a property test: every parser survives every
    /// char-boundary prefix and suffix of every sample, every sample with one line
    /// removed, and single-character substitutions with the characters the parsers
    /// split on.
    ///
    /// The 15 kB host apt sample is too long for the quadratic prefix loop in a
    /// debug build; its prefixes are taken over its header, its first Inst/Conf
    /// lines and lines of every other shape (multi-archive origin, trailing
    /// dependency brackets), and so are substitutions; line removal uses all of it.
    #[test]
    fn never_panics_on_truncations_and_mutations() {
        let apt_head: String = APT_HOST
            .lines()
            .take(30)
            .chain(APT_HOST.lines().filter(|l| l.contains(", ")).take(2))
            .chain(APT_HOST.lines().filter(|l| l.ends_with(" []")).take(1))
            .map(|l| format!("{l}\n"))
            .collect();
        let short = [
            apt_head.as_str(),
            APT_CHROOT,
            IP_ADDR,
            FIB_TRIE,
            IF_INET6,
            MAPS,
            DNF,
            APK,
            CGROUP_V1,
            CGROUP_V2,
            CGROUP_USER,
            CGROUP_NONE,
        ];
        let mut runs = 0usize;
        for sample in short {
            for (i, _) in sample.char_indices() {
                run_all(&sample[..i]);
                run_all(&sample[i..]);
                runs += 2;
            }
        }
        for sample in short.iter().copied().chain([APT_HOST]) {
            let lines: Vec<&str> = sample.lines().collect();
            for skip in 0..lines.len() {
                let s: Vec<&str> = lines
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != skip)
                    .map(|(_, l)| *l)
                    .collect();
                run_all(&s.join("\n"));
                runs += 1;
            }
            if sample.len() > 5000 {
                continue;
            }
            // Substitutions are quadratic; stride through the longer samples.
            let stride = (sample.len() / 150).max(1);
            let positions: Vec<usize> = sample
                .char_indices()
                .map(|(i, _)| i)
                .step_by(stride)
                .collect();
            for &i in &positions {
                let c = sample[i..].chars().next().unwrap();
                for r in [
                    "", " ", "\n", "[", "]", "(", ")", "-", ":", "/", ".", "<", "é", "\t",
                ] {
                    let mut s = String::with_capacity(sample.len() + 2);
                    s.push_str(&sample[..i]);
                    s.push_str(r);
                    s.push_str(&sample[i + c.len_utf8()..]);
                    run_all(&s);
                    runs += 1;
                }
            }
        }
        for s in [
            "Inst",
            "Inst ",
            "Inst  [",
            "Inst x [1",
            "Inst x [1] (",
            "Inst x (1 [",
            "Inst x (1 ])",
            "Inst x ( )",
            "a-r",
            "-r1",
            "--r1 < 2",
            "|-- ",
            "/32 host LOCAL",
            "0::",
            "::",
            "0:",
            "",
            "\n\n",
            "a b c d e (deleted)",
            "1 2 3 4 5 / (deleted)",
            "obsoleting",
            "x.y",
        ] {
            run_all(s);
        }
        assert!(runs > 10_000, "{runs}");
    }
}
