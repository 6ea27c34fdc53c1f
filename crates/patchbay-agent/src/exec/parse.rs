//! Pure parsers of package-manager output used by the execution layer.
//!
//! Every function takes text and returns values; none runs a program or reads a
//! file. Lines that do not have the expected shape are skipped, never a panic (the
//! property tests at the bottom feed them arbitrary input): the text comes from
//! tools whose output varies between versions, and a parser that guessed would be
//! worse than one that reports less. Where a caller must not act on a partial
//! reading (the transaction a simulation announces), the backend cross-checks the
//! result against a second source (the package database after the change).

use super::{Action, AuditIssue, Installed, PackageSize, Wanted};

/// Parses one `PKG=VER` job argument.
///
/// The name may carry an architecture (`libc6:amd64=2.36-9`); the version is
/// everything after the first `=` and must not be empty or contain whitespace.
pub fn wanted(arg: &str) -> Result<Wanted, String> {
    let Some((name, version)) = arg.split_once('=') else {
        return Err(format!(
            "{arg:?}: expected PKG=VERSION (exact versions only)"
        ));
    };
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '=') {
        return Err(format!("{arg:?}: invalid package name"));
    }
    if version.is_empty() || version.chars().any(char::is_whitespace) {
        return Err(format!("{arg:?}: invalid version"));
    }
    Ok(Wanted {
        name: name.to_owned(),
        version: version.to_owned(),
    })
}

/// The `dpkg-query -W -f` format that [`dpkg_query`] reads.
pub const DPKG_QUERY_FORMAT: &str =
    "${Package}\\t${Architecture}\\t${Version}\\t${db:Status-Status}\\t${Installed-Size}\\n";

/// Parses `dpkg-query -W -f` output in [`DPKG_QUERY_FORMAT`] (`<TAB>` is a tab).
///
/// ```text
/// pb-demo<TAB>all<TAB>1.1<TAB>installed<TAB>12
/// base-files<TAB>amd64<TAB>12.4+deb12u11<TAB>installed<TAB>394
/// libfoo<TAB>amd64<TAB>1.0<TAB>config-files
/// ```
///
/// Packages dpkg only remembers (`not-installed`, `config-files`) are dropped;
/// every other state (`installed`, `half-configured`, `unpacked`, …) is kept with
/// its status, so an interrupted run is visible.
pub fn dpkg_query(text: &str) -> Vec<Installed> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            let name = f.next()?.trim();
            let arch = f.next()?.trim();
            let version = f.next()?.trim();
            let status = f.next()?.trim();
            let size = f.next().and_then(|s| s.trim().parse::<u64>().ok());
            if name.is_empty()
                || version.is_empty()
                || status.is_empty()
                || matches!(status, "not-installed" | "config-files")
            {
                return None;
            }
            Some(Installed {
                name: name.to_owned(),
                arch: arch.to_owned(),
                version: version.to_owned(),
                status: status.to_owned(),
                installed_kib: size,
            })
        })
        .collect()
}

/// Parses the transaction of an `apt-get -s install|remove` simulation.
///
/// ```text
/// Inst pb-demo [1.0] (1.1 Patchbay-Security:bookworm-security [all])
/// Inst pb-extra (1.0 Patchbay-Security:bookworm-security [all])
/// Remv pb-old [2.0]
/// Purg pb-gone [1.0] [pb-demo:amd64 ]
/// Conf pb-demo (1.1 Patchbay-Security:bookworm-security [all])
/// ```
///
/// `Inst` with a bracketed version changes an installed package (upgrade,
/// downgrade or reinstall), without one it installs a new package; `Remv`/`Purg`
/// remove one. `Conf` lines repeat an `Inst` and are skipped. A `name:arch`
/// package name is split.
pub fn apt_actions(text: &str) -> Vec<Action> {
    text.lines()
        .filter_map(|line| {
            if let Some(rest) = line.strip_prefix("Inst ") {
                apt_inst(rest)
            } else if let Some(rest) = line
                .strip_prefix("Remv ")
                .or_else(|| line.strip_prefix("Purg "))
            {
                apt_remv(rest)
            } else {
                None
            }
        })
        .collect()
}

fn split_name_arch(name: &str) -> (&str, &str) {
    name.split_once(':').unwrap_or((name, ""))
}

fn apt_inst(rest: &str) -> Option<Action> {
    let rest = rest.trim_start();
    let (name, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if name.is_empty() {
        return None;
    }
    rest = rest.trim_start();
    let mut from = None;
    if let Some(r) = rest.strip_prefix('[') {
        let (cur, after) = r.split_once(']')?;
        let cur = cur.trim();
        if !cur.is_empty() {
            from = Some(cur.to_owned());
        }
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
    let (name, name_arch) = split_name_arch(name);
    if name.is_empty() {
        return None;
    }
    Some(Action {
        name: name.to_owned(),
        arch: if arch.is_empty() { name_arch } else { arch }.to_owned(),
        from,
        to: Some(version.to_owned()),
        origin: release.to_owned(),
    })
}

fn apt_remv(rest: &str) -> Option<Action> {
    let rest = rest.trim_start();
    let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let (name, arch) = split_name_arch(name);
    if name.is_empty() {
        return None;
    }
    let from = rest
        .trim_start()
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .map(|(v, _)| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    Some(Action {
        name: name.to_owned(),
        arch: arch.to_owned(),
        from,
        to: None,
        origin: String::new(),
    })
}

/// Parses `dpkg --audit` (`dpkg -C`) output: one issue per listed package.
///
/// ```text
/// The following packages are only half configured, probably due to problems
/// configuring them the first time.  The configuration should be retried using
/// dpkg --configure <package> or the configure menu option in dselect:
///  pb-demo              Patchbay demo package
/// ```
///
/// The problem is the first line of the paragraph that lists the package
/// (`The following packages are only half configured, …`). dpkg exits 0 whether
/// or not it found problems, so the output is the only signal.
pub fn dpkg_audit(text: &str) -> Vec<AuditIssue> {
    let mut out = Vec::new();
    let mut problem = String::new();
    let mut in_list = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            problem.clear();
            in_list = false;
            continue;
        }
        if line.starts_with(' ') {
            in_list = true;
            if let Some(pkg) = line.split_whitespace().next() {
                out.push(AuditIssue {
                    package: pkg.to_owned(),
                    problem: problem.trim_end_matches([',', ':']).to_owned(),
                });
            }
        } else if problem.is_empty() || in_list {
            problem = line.trim().to_owned();
            in_list = false;
        }
    }
    out
}

/// Whether a listing of `/var/lib/dpkg/updates` shows an unfinished dpkg run:
/// dpkg journals database updates there as files named by four digits and folds
/// them in when it finishes; any left over means dpkg was interrupted (apt then
/// refuses with "dpkg was interrupted, you must manually run 'dpkg --configure
/// -a'"). `tmp.i` is dpkg's scratch file and does not count.
pub fn dpkg_updates_pending<S: AsRef<str>>(names: &[S]) -> bool {
    names.iter().any(|n| {
        let n = n.as_ref();
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Parses `apt-cache show --no-all-versions PKG=VER…` (deb822 paragraphs) into
/// download (`Size`, bytes) and unpacked (`Installed-Size`, KiB) sizes.
/// Paragraphs without `Package` or `Version` are skipped; missing sizes are 0.
pub fn deb822_sizes(text: &str) -> Vec<PackageSize> {
    let mut out = Vec::new();
    let mut cur = PackageSize::default();
    let flush = |cur: &mut PackageSize, out: &mut Vec<PackageSize>| {
        let p = std::mem::take(cur);
        if !p.name.is_empty() && !p.version.is_empty() {
            out.push(p);
        }
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut cur, &mut out);
            continue;
        }
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k {
            "Package" => cur.name = v.to_owned(),
            "Version" => cur.version = v.to_owned(),
            "Size" => cur.size_bytes = v.parse().unwrap_or(0),
            "Installed-Size" => cur.installed_kib = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// The `rpm -q --qf` format that [`rpm_query`] reads.
pub const RPM_QUERY_FORMAT: &str =
    "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\t%{SIZE}\\n";

/// Parses `rpm -qa --qf` output in [`RPM_QUERY_FORMAT`] (`<TAB>` is a tab).
///
/// ```text
/// pb-demo<TAB>0<TAB>1.1-1<TAB>noarch<TAB>6
/// bash<TAB>0<TAB>5.2.15-5.el9<TAB>x86_64<TAB>7738634
/// ```
///
/// The version is `VERSION-RELEASE`, prefixed by `EPOCH:` when the epoch is not
/// zero (the form dnf and zypper accept in `name-[epoch:]version-release`).
/// `gpg-pubkey` pseudo-packages are dropped.
pub fn rpm_query(text: &str) -> Vec<Installed> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            let name = f.next()?.trim();
            let epoch = f.next()?.trim();
            let vr = f.next()?.trim();
            let arch = f.next()?.trim();
            let size = f.next().and_then(|s| s.trim().parse::<u64>().ok());
            if name.is_empty() || name == "gpg-pubkey" || vr.is_empty() || !vr.contains('-') {
                return None;
            }
            let version = match epoch {
                "" | "0" | "(none)" => vr.to_owned(),
                e if e.bytes().all(|b| b.is_ascii_digit()) => format!("{e}:{vr}"),
                _ => return None,
            };
            Some(Installed {
                name: name.to_owned(),
                arch: arch.to_owned(),
                version,
                status: "installed".to_owned(),
                installed_kib: size.map(|b| b.div_ceil(1024)),
            })
        })
        .collect()
}

/// Parses the transaction table dnf (4.x) prints before asking for
/// confirmation (`dnf --assumeno install …`, which answers "no" and changes
/// nothing):
///
/// ```text
/// ================================================================================
///  Package          Architecture    Version              Repository         Size
/// ================================================================================
/// Upgrading:
///  pb-demo          noarch          1.1-1                pbtest            6.3 k
/// Installing dependencies:
///  pb-extra         noarch          1.0-1                pbtest            6.1 k
/// Downgrading:
///  pb-lib           noarch          1.0-1                pbtest            6.0 k
/// Removing:
///  pb-old           noarch          2.0-1                @System             0
///
/// Transaction Summary
/// ```
///
/// The section decides the action: `Installing…` (including dependencies and
/// weak dependencies) are new packages, `Upgrading`/`Downgrading`/`Reinstalling`
/// change an installed one (its old version is not printed: `from` is set to
/// `"?"`, and callers fill it from the package database), `Removing…`/`Erasing`
/// remove one. Lines dnf wraps because a name is long (the name alone on one line,
/// the rest indented on the next) are joined.
pub fn dnf_transaction(text: &str) -> Vec<Action> {
    #[derive(Clone, Copy, PartialEq)]
    enum Sect {
        None,
        New,
        Change,
        Remove,
    }
    let mut out = Vec::new();
    let mut sect = Sect::None;
    let mut carry: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with("Transaction Summary") {
            if t.starts_with("Transaction Summary") {
                break;
            }
            carry = None;
            continue;
        }
        if !line.starts_with(' ') && t.ends_with(':') {
            let head = t.trim_end_matches(':').to_ascii_lowercase();
            sect = if head.starts_with("installing") || head.starts_with("upgrading dependencies") {
                if head.starts_with("upgrading") {
                    Sect::Change
                } else {
                    Sect::New
                }
            } else if head.starts_with("upgrading")
                || head.starts_with("downgrading")
                || head.starts_with("reinstalling")
            {
                Sect::Change
            } else if head.starts_with("removing") || head.starts_with("erasing") {
                Sect::Remove
            } else {
                Sect::None
            };
            carry = None;
            continue;
        }
        if sect == Sect::None || !line.starts_with(' ') {
            continue;
        }
        let mut words: Vec<&str> = t.split_whitespace().collect();
        let joined;
        if let Some(prev) = carry.take() {
            joined = format!("{prev} {t}");
            words = joined.split_whitespace().collect();
            if words.len() < 4 {
                continue;
            }
            push_dnf(&mut out, sect == Sect::New, sect == Sect::Remove, &words);
            continue;
        }
        if words.len() == 1 {
            carry = Some(words[0].to_owned());
            continue;
        }
        if words.len() < 4 {
            continue;
        }
        push_dnf(&mut out, sect == Sect::New, sect == Sect::Remove, &words);
    }
    out
}

fn push_dnf(out: &mut Vec<Action>, new: bool, remove: bool, w: &[&str]) {
    let (name, arch, version, repo) = (w[0], w[1], w[2], w[3]);
    if name.is_empty() || !version.contains('-') {
        return;
    }
    out.push(Action {
        name: name.to_owned(),
        arch: arch.to_owned(),
        from: if new { None } else { Some("?".to_owned()) },
        to: if remove {
            None
        } else {
            Some(version.to_owned())
        },
        origin: if remove {
            String::new()
        } else {
            repo.to_owned()
        },
    });
}

/// The value of attribute `key` in the XML start tag `tag` (the text between `<`
/// and `>`), with the five predefined entities and numeric character references
/// decoded. Minimal by design: zypper's `--xmlout` elements are flat.
fn xml_attr(tag: &str, key: &str) -> Option<String> {
    // Skip the element name, then read `name = "value"` pairs in order.
    let mut rest = tag.trim_start_matches(|c: char| !c.is_whitespace());
    loop {
        rest = rest.trim_start();
        let eq = rest.find('=')?;
        let name = rest[..eq].trim();
        let v = rest[eq + 1..].trim_start();
        let quote = v.chars().next()?;
        if quote != '"' && quote != '\'' {
            return None;
        }
        let body = &v[1..];
        let end = body.find(quote)?;
        if name == key {
            return Some(xml_unescape(&body[..end]));
        }
        rest = &body[end + 1..];
    }
}

fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let ent = &tail[1..end];
        let decoded = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The start tags (text between `<` and `>`) of elements named `name`, with the
/// byte offset just past each tag.
fn xml_tags<'a>(xml: &'a str, name: &str) -> Vec<(&'a str, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    let open = format!("<{name}");
    while let Some(i) = xml[pos..].find(&open) {
        let start = pos + i;
        let after = start + open.len();
        let Some(end) = xml[after..].find('>') else {
            break;
        };
        let next = xml[after..].chars().next();
        if matches!(next, Some(c) if c.is_whitespace() || c == '/' || c == '>') {
            out.push((&xml[start + 1..after + end], after + end + 1));
        }
        pos = after + end + 1;
    }
    out
}

/// Parses `zypper --xmlout list-updates` (package updates):
///
/// ```text
/// <update-list>
///  <update kind="package" name="pb-demo" edition="1.1-1" arch="noarch" edition-old="1.0-1">
///   <source url="http://127.0.0.1:8080/" alias="pbtest"/>
///  </update>
/// </update-list>
/// ```
///
/// Returns `(name, arch, old edition or "", new edition, repository alias)`;
/// `kind="patch"` entries are skipped.
pub fn zypper_updates(xml: &str) -> Vec<(String, String, String, String, String)> {
    let mut out = Vec::new();
    let tags = xml_tags(xml, "update");
    for (i, (tag, end)) in tags.iter().enumerate() {
        let kind = xml_attr(tag, "kind").unwrap_or_else(|| "package".into());
        if kind != "package" {
            continue;
        }
        let (Some(name), Some(edition)) = (xml_attr(tag, "name"), xml_attr(tag, "edition")) else {
            continue;
        };
        let limit = tags.get(i + 1).map_or(xml.len(), |(_, e)| *e);
        let body = xml.get(*end..limit).unwrap_or("");
        let alias = xml_tags(body, "source")
            .first()
            .and_then(|(t, _)| xml_attr(t, "alias"))
            .unwrap_or_default();
        out.push((
            name,
            xml_attr(tag, "arch").unwrap_or_default(),
            xml_attr(tag, "edition-old").unwrap_or_default(),
            edition,
            alias,
        ));
    }
    out
}

/// Parses the install summary of `zypper --xmlout … install --dry-run` (and
/// `remove --dry-run`):
///
/// ```text
/// <install-summary download-size="6508" space-usage-diff="12" packages-to-change="2">
/// <to-upgrade>
/// <solvable type="package" name="pb-demo" edition="1.1-1" arch="noarch" edition-old="1.0-1" repository="pbtest"/>
/// </to-upgrade>
/// <to-install>
/// <solvable type="package" name="pb-extra" edition="1.0-1" arch="noarch" repository="pbtest"/>
/// </to-install>
/// <to-remove>
/// <solvable type="package" name="pb-old" edition="2.0-1" arch="noarch"/>
/// </to-remove>
/// </install-summary>
/// ```
///
/// Sections `to-install` are new packages; `to-upgrade`, `to-downgrade`,
/// `to-reinstall`, `to-change-arch`, `to-change-vendor` change one; `to-remove`
/// removes one. Non-package solvables (patterns, products) are skipped.
pub fn zypper_summary(xml: &str) -> Vec<Action> {
    let mut marks: Vec<(usize, &str)> = Vec::new();
    for sect in [
        "to-install",
        "to-upgrade",
        "to-downgrade",
        "to-reinstall",
        "to-change-arch",
        "to-change-vendor",
        "to-remove",
    ] {
        for (_, end) in xml_tags(xml, sect) {
            marks.push((end, sect));
        }
    }
    marks.sort_unstable();
    let mut out = Vec::new();
    for (tag, end) in xml_tags(xml, "solvable") {
        let Some(&(_, sect)) = marks.iter().rev().find(|(m, _)| *m <= end) else {
            continue;
        };
        if xml_attr(tag, "type").is_some_and(|t| t != "package") {
            continue;
        }
        let (Some(name), Some(edition)) = (xml_attr(tag, "name"), xml_attr(tag, "edition")) else {
            continue;
        };
        let arch = xml_attr(tag, "arch").unwrap_or_default();
        let action = match sect {
            "to-install" => Action {
                name,
                arch,
                from: None,
                to: Some(edition),
                origin: xml_attr(tag, "repository").unwrap_or_default(),
            },
            "to-remove" => Action {
                name,
                arch,
                from: Some(edition),
                to: None,
                origin: String::new(),
            },
            _ => Action {
                name,
                arch,
                from: Some(xml_attr(tag, "edition-old").unwrap_or_else(|| "?".into())),
                to: Some(edition),
                origin: xml_attr(tag, "repository").unwrap_or_default(),
            },
        };
        out.push(action);
    }
    out
}

/// The sizes in zypper's `<install-summary download-size="6086"
/// space-usage-diff="4" …>`: bytes to download and the change of used space
/// (negative when the transaction frees space), or `None` without a summary.
pub fn zypper_sizes(xml: &str) -> Option<(u64, i64)> {
    let (tag, _) = xml_tags(xml, "install-summary").into_iter().next()?;
    let dl = xml_attr(tag, "download-size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let diff = xml_attr(tag, "space-usage-diff")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some((dl, diff))
}

/// The sizes dnf prints under its transaction table: `Total download size:
/// 5.9 k` (or `Total size:`) and `Installed size: 12 M` (`Freed space:` counts
/// as 0), in bytes; dnf's units are powers of 1024.
pub fn dnf_sizes(text: &str) -> (u64, u64) {
    let parse = |v: &str| -> Option<u64> {
        let mut w = v.split_whitespace();
        let n: f64 = w.next()?.parse().ok()?;
        let mult = match w.next().unwrap_or("") {
            "" => 1.0,
            "k" | "K" => 1024.0,
            "M" => 1024.0 * 1024.0,
            "G" => 1024.0 * 1024.0 * 1024.0,
            _ => return None,
        };
        let b = n * mult;
        (b.is_finite() && b >= 0.0).then_some(b as u64)
    };
    let mut dl = 0;
    let mut inst = 0;
    for line in text.lines() {
        if let Some(v) = line
            .strip_prefix("Total download size:")
            .or_else(|| line.strip_prefix("Total size:"))
        {
            dl = parse(v).unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Installed size:") {
            inst = parse(v).unwrap_or(0);
        }
    }
    (dl, inst)
}

/// Parses `apk add --simulate` / `apk del --simulate` progress lines:
///
/// ```text
/// (1/3) Upgrading pb-demo (1.0-r0 -> 1.1-r0)
/// (2/3) Installing pb-extra (1.0-r0)
/// (3/3) Purging pb-old (2.0-r0)
/// (1/1) Downgrading pb-lib (2.0-r0 -> 1.0-r0)
/// ```
///
/// `Installing` is a new package, `Upgrading`/`Downgrading`/`Replacing`/
/// `Reinstalling` change one, `Purging`/`Deleting` remove one.
pub fn apk_simulation(text: &str) -> Vec<Action> {
    text.lines()
        .filter_map(|line| {
            let t = line.trim_start();
            let rest = t.strip_prefix('(')?;
            let (counter, rest) = rest.split_once(')')?;
            if !counter.contains('/') {
                return None;
            }
            let mut words = rest.split_whitespace();
            let verb = words.next()?;
            let name = words.next()?;
            let paren = rest.find('(')?;
            let inner = rest[paren + 1..].split(')').next()?;
            let (old, new) = match inner.split_once("->") {
                Some((a, b)) => (a.trim(), b.trim()),
                None => ("", inner.trim()),
            };
            if new.is_empty() {
                return None;
            }
            let (from, to) = match verb {
                "Installing" => (None, Some(new.to_owned())),
                "Upgrading" | "Downgrading" | "Replacing" | "Reinstalling" => (
                    Some(if old.is_empty() { new } else { old }.to_owned()),
                    Some(new.to_owned()),
                ),
                "Purging" | "Deleting" => (Some(new.to_owned()), None),
                _ => return None,
            };
            Some(Action {
                name: name.to_owned(),
                arch: String::new(),
                from,
                to,
                origin: String::new(),
            })
        })
        .collect()
}

/// A package script apk-tools wrote to `lib/apk/exec` to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApkScript {
    /// The file name (`pbslow-1.1-r0.post-upgrade`).
    pub file: String,
    /// Package name.
    pub name: String,
    /// Package version.
    pub version: String,
    /// Script kind (`post-upgrade`, `pre-install`, …).
    pub kind: String,
}

/// Parses the name of a script file in `lib/apk/exec`: `NAME-VERSION.KIND`,
/// where KIND is one of apk's script types (apk-tools 3.0.8 ran
/// `lib/apk/exec/pbslow-1.1-r0.post-upgrade 1.1-r0 1.0-r0` from there).
pub fn apk_script(file: &str) -> Option<ApkScript> {
    const KINDS: &[&str] = &[
        "pre-install",
        "post-install",
        "pre-deinstall",
        "post-deinstall",
        "pre-upgrade",
        "post-upgrade",
        "trigger",
    ];
    let (pkgver, kind) = file.rsplit_once('.')?;
    if !KINDS.contains(&kind) {
        return None;
    }
    let (name, version) = crate::collect::parse::split_apk_name_version(pkgver)?;
    Some(ApkScript {
        file: file.to_owned(),
        name: name.to_owned(),
        version: version.to_owned(),
        kind: kind.to_owned(),
    })
}

/// A `KEY:   123 kB` field of `/proc/PID/status`, in KiB.
pub fn proc_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k != key {
            return None;
        }
        v.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wanted_args() {
        let w = wanted("pb-demo=1.1").unwrap();
        assert_eq!((w.name.as_str(), w.version.as_str()), ("pb-demo", "1.1"));
        let w = wanted("libc6:amd64=2.36-9+deb12u10").unwrap();
        assert_eq!(w.name, "libc6:amd64");
        assert_eq!(wanted("e=1:2.0=x").unwrap().version, "1:2.0=x");
        for bad in ["pb-demo", "=1.0", "pb-demo=", "pb demo=1", "a=1 2"] {
            assert!(wanted(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dpkg_query_keeps_interrupted_and_drops_config_files() {
        let text = "pb-demo\tall\t1.3\thalf-configured\t12\n\
                    base-files\tamd64\t12.4+deb12u11\tinstalled\t394\n\
                    libold\tamd64\t1.0\tconfig-files\t\n\
                    gone\tamd64\t\tnot-installed\t\n\
                    garbage line\n";
        let p = dpkg_query(text);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].status, "half-configured");
        assert_eq!(p[1].installed_kib, Some(394));
    }

    #[test]
    fn apt_actions_real_output() {
        // Captured from `chroot ROOT apt-get -s install …` on Debian 12.
        let text = "Reading package lists...\nBuilding dependency tree...\n\
            The following packages will be upgraded:\n  pb-demo\n\
            Inst pb-demo [1.0] (1.1 Patchbay-Security:bookworm-security [all])\n\
            Inst pb-extra (1.0 Patchbay-Security:bookworm-security [all])\n\
            Inst libc6:i386 [2.36-9+deb12u9] (2.36-9+deb12u10 Debian:12.14/oldstable [i386])\n\
            Remv pb-old [2.0]\n\
            Purg pb-gone:amd64 [1.0] [pb-demo:amd64 ]\n\
            Conf pb-demo (1.1 Patchbay-Security:bookworm-security [all])\n";
        let a = apt_actions(text);
        assert_eq!(a.len(), 5);
        assert_eq!(a[0].from.as_deref(), Some("1.0"));
        assert_eq!(a[0].to.as_deref(), Some("1.1"));
        assert_eq!(a[0].origin, "Patchbay-Security:bookworm-security");
        assert_eq!(a[0].arch, "all");
        assert_eq!(a[1].from, None);
        assert_eq!(a[2].name, "libc6");
        assert_eq!(a[2].arch, "i386");
        assert_eq!((a[3].name.as_str(), a[3].to.as_deref()), ("pb-old", None));
        assert_eq!(a[3].from.as_deref(), Some("2.0"));
        assert_eq!(
            (a[4].name.as_str(), a[4].arch.as_str()),
            ("pb-gone", "amd64")
        );
    }

    #[test]
    fn dpkg_audit_real_output() {
        // Captured from `dpkg --audit` after SIGKILL during a postinst.
        let text = "The following packages are only half configured, probably due to problems\n\
            configuring them the first time.  The configuration should be retried using\n\
            dpkg --configure <package> or the configure menu option in dselect:\n \
            pb-demo              Patchbay demo package\n\n\
            The following packages are only half installed, due to problems during\n\
            installation.  The installation can probably be completed by retrying it;\n\
            the packages can be removed using dselect or dpkg --remove:\n \
            pb-x                 X\n \
            pb-y                 Y\n";
        let issues = dpkg_audit(text);
        assert_eq!(issues.len(), 3);
        assert_eq!(issues[0].package, "pb-demo");
        assert!(
            issues[0].problem.contains("only half configured"),
            "{issues:?}"
        );
        assert!(issues[2].problem.contains("half installed"));
        assert!(dpkg_audit("").is_empty());
    }

    #[test]
    fn updates_dir() {
        assert!(dpkg_updates_pending(&["0000", "tmp.i"]));
        assert!(!dpkg_updates_pending(&["tmp.i"]));
        assert!(!dpkg_updates_pending::<&str>(&[]));
    }

    #[test]
    fn sizes() {
        let text = "Package: pb-demo\nVersion: 1.1\nInstalled-Size: 12\nDescription: x\n more\nSize: 616\n\n\
                    Package: pb-extra\nVersion: 1.0\n";
        let s = deb822_sizes(text);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].size_bytes, s[0].installed_kib), (616, 12));
        assert_eq!((s[1].size_bytes, s[1].installed_kib), (0, 0));
    }

    #[test]
    fn rpm_query_epochs() {
        let p = rpm_query(
            "pb-demo\t0\t1.1-1\tnoarch\t6\nopenssl-libs\t1\t3.0.7-25.el9\tx86_64\t6000000\ngpg-pubkey\t0\tfd431d51-4ae0493b\t(none)\t0\nbad\n",
        );
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].version, "1.1-1");
        assert_eq!(p[1].version, "1:3.0.7-25.el9");
        assert_eq!(p[1].installed_kib, Some(5860));
    }

    #[test]
    fn dnf_table() {
        let text = "Dependencies resolved.\n\
================================================================================\n \
Package              Architecture    Version            Repository         Size\n\
================================================================================\n\
Upgrading:\n \
pb-demo              noarch          1.1-1              pbtest            6.3 k\n\
Installing dependencies:\n \
pb-extra             noarch          1.0-1              pbtest            6.1 k\n\
Downgrading:\n \
a-very-long-package-name-that-wraps\n                      noarch          1.0-1              pbtest            6.0 k\n\
Removing:\n \
pb-old               noarch          2.0-1              @System             0  \n\
\n\
Transaction Summary\n\
================================================================================\n\
Upgrade  1 Package\n";
        let a = dnf_transaction(text);
        assert_eq!(a.len(), 4, "{a:?}");
        assert_eq!(a[0].to.as_deref(), Some("1.1-1"));
        assert_eq!(a[0].from.as_deref(), Some("?"));
        assert_eq!(a[1].from, None);
        assert_eq!(a[2].name, "a-very-long-package-name-that-wraps");
        assert_eq!(a[3].to, None);
    }

    #[test]
    fn zypper_xml() {
        let xml = r#"<?xml version='1.0'?>
<stream>
<update-status version="0.6">
<update-list>
<update kind="package" name="pb-demo" edition="1.1-1" arch="noarch" edition-old="1.0-1" >
<summary>demo &amp; test</summary>
<source url="http://127.0.0.1:8080/" alias="pb&quot;test"/>
</update>
<update kind="patch" name="SUSE-2024-1" edition="1" arch="noarch"/>
</update-list>
</update-status>
</stream>"#;
        let u = zypper_updates(xml);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].0, "pb-demo");
        assert_eq!(u[0].2, "1.0-1");
        assert_eq!(u[0].4, "pb\"test");

        let xml = r#"<install-summary download-size="6508" space-usage-diff="12">
<to-upgrade>
<solvable type="package" name="pb-demo" edition="1.1-1" arch="noarch" edition-old="1.0-1" repository="pbtest"/>
</to-upgrade>
<to-install>
<solvable type="package" name="pb-extra" edition="1.0-1" arch="noarch" repository="pbtest"/>
<solvable type="pattern" name="base" edition="1" arch="noarch"/>
</to-install>
<to-remove>
<solvable type="package" name="pb-old" edition="2.0-1" arch="noarch"/>
</to-remove>
</install-summary>"#;
        let a = zypper_summary(xml);
        assert_eq!(a.len(), 3, "{a:?}");
        assert_eq!(a[0].from.as_deref(), Some("1.0-1"));
        assert_eq!(a[1].from, None);
        assert_eq!(a[2].to, None);
    }

    #[test]
    fn sizes_of_rpm_tools() {
        // Captured from zypper 1.14 (Debian 12) `--xmlout install --dry-run`.
        let xml = "<message type=\"info\">Resolving package dependencies...</message>\n<install-summary download-size=\"6086\" space-usage-diff=\"4\" packages-to-change=\"1\">\n<to-install>\n<solvable type=\"package\" name=\"pb-demo\" edition=\"1.0-1\" arch=\"noarch\" summary=\"Patchbay demo package\">\n<description>Patchbay test package.</description></solvable>\n</to-install>\n</install-summary>";
        assert_eq!(zypper_sizes(xml), Some((6086, 4)));
        let a = zypper_summary(xml);
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].name.as_str(), a[0].from.as_deref(), a[0].to.as_deref()),
            ("pb-demo", None, Some("1.0-1"))
        );
        assert_eq!(zypper_sizes("<stream/>"), None);
        // Captured from dnf 4.14 (Debian 12) `--assumeno install`.
        assert_eq!(
            dnf_sizes(
                "Upgrade  1 Package\n\nTotal download size: 5.9 k\nInstalled size: 2 M\nOperation aborted.\n"
            ),
            (6041, 2 * 1024 * 1024)
        );
        assert_eq!(dnf_sizes("Freed space: 4  \n"), (0, 0));
    }

    #[test]
    fn apk_sim() {
        let text = "(1/4) Upgrading pb-demo (1.0-r0 -> 1.1-r0)\n\
                    (2/4) Installing pb-extra (1.0-r0)\n\
                    (3/4) Purging pb-old (2.0-r0)\n\
                    (4/4) Downgrading pb-lib (2.0-r0 -> 1.0-r0)\nOK: 10 MiB in 20 packages\n";
        let a = apk_simulation(text);
        assert_eq!(a.len(), 4);
        assert_eq!(a[0].from.as_deref(), Some("1.0-r0"));
        assert_eq!(a[1].from, None);
        assert_eq!(a[2].to, None);
        assert_eq!(a[3].to.as_deref(), Some("1.0-r0"));
    }

    /// Real output of apk-tools 3.0.8 (Alpine 3.23 root, `chroot ROOT /sbin/apk
    /// --no-progress …`, packages built with `apk mkpkg`).
    #[test]
    fn apk_sim_real_apk_tools_3() {
        // `add --simulate pbtest=1.1-r0` over pbtest 1.0-r0: a new dependency.
        let a = apk_simulation(
            "(1/2) Installing pbextra (1.0-r0)\n(2/2) Upgrading pbtest (1.0-r0 -> 1.1-r0)\nOK: 67.8 MiB in 61 packages\n",
        );
        assert_eq!(
            a.iter()
                .map(|a| (a.name.as_str(), a.from.as_deref(), a.to.as_deref()))
                .collect::<Vec<_>>(),
            [
                ("pbextra", None, Some("1.0-r0")),
                ("pbtest", Some("1.0-r0"), Some("1.1-r0"))
            ]
        );
        // The real `add pbtest=1.0-r0` (a rollback): script lines are not actions;
        // the orphaned dependency is purged in the same transaction.
        let a = apk_simulation(
            "(1/2) Downgrading pbtest (1.1-r0 -> 1.0-r0)\n  Executing pbtest-1.0-r0.post-upgrade\n(2/2) Purging pbextra (1.0-r0)\nOK: 67.8 MiB in 60 packages\n",
        );
        assert_eq!(
            a.iter()
                .map(|a| (a.name.as_str(), a.from.as_deref(), a.to.as_deref()))
                .collect::<Vec<_>>(),
            [
                ("pbtest", Some("1.1-r0"), Some("1.0-r0")),
                ("pbextra", Some("1.0-r0"), None)
            ]
        );
        // `add --simulate pbtool=1.0-r0` upgrading the unnamed pblib.
        let a = apk_simulation(
            "(1/2) Upgrading pblib (1.0-r0 -> 2.0-r0)\n(2/2) Installing pbtool (1.0-r0)\nOK: 67.8 MiB in 63 packages\n",
        );
        assert_eq!(a[0].name, "pblib");
        assert_eq!(a[0].to.as_deref(), Some("2.0-r0"));
        // `del --simulate pbextra` while pbtest needs it: nothing happens.
        assert!(
            apk_simulation(
                "World updated, but the following packages are not removed due to:\n  pbextra: pbtest\n\nOK: 67.8 MiB in 61 packages\n"
            )
            .is_empty()
        );
        // `fix --simulate` on a consistent root.
        assert!(apk_simulation("OK: 67.8 MiB in 60 packages\n").is_empty());
    }

    #[test]
    fn apk_scripts() {
        let s = apk_script("pbslow-1.1-r0.post-upgrade").unwrap();
        assert_eq!(
            (s.name.as_str(), s.version.as_str(), s.kind.as_str()),
            ("pbslow", "1.1-r0", "post-upgrade")
        );
        let s = apk_script("py3-foo-bar-1.0_rc1-r2.pre-install").unwrap();
        assert_eq!(
            (s.name.as_str(), s.version.as_str()),
            ("py3-foo-bar", "1.0_rc1-r2")
        );
        assert_eq!(apk_script("pbslow-1.1-r0.sh"), None);
        assert_eq!(apk_script("pbslow.post-upgrade"), None);
        assert_eq!(apk_script(""), None);
    }

    #[test]
    fn proc_status() {
        let s = "Name:\tpatchbay-agent\nVmHWM:\t    5120 kB\nRssAnon:\t    2048 kB\n";
        assert_eq!(proc_status_kib(s, "RssAnon"), Some(2048));
        assert_eq!(proc_status_kib(s, "VmHWM"), Some(5120));
        assert_eq!(proc_status_kib(s, "VmRSS"), None);
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-z0-9][a-z0-9+.-]{0,20}"
    }
    fn version() -> impl Strategy<Value = String> {
        "[0-9][0-9A-Za-z.+~]{0,10}(-[0-9A-Za-z.+~]{1,6})?"
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*|[\\s\\S]{0,400}") {
            let _ = wanted(&s);
            let _ = dpkg_query(&s);
            let _ = apt_actions(&s);
            let _ = dpkg_audit(&s);
            let _ = deb822_sizes(&s);
            let _ = rpm_query(&s);
            let _ = dnf_transaction(&s);
            let _ = zypper_updates(&s);
            let _ = zypper_summary(&s);
            let _ = apk_simulation(&s);
            let _ = apk_script(&s);
            let _ = proc_status_kib(&s, "RssAnon");
            let _ = zypper_sizes(&s);
            let _ = dnf_sizes(&s);
        }

        #[test]
        fn line_parsers_never_panic(lines in proptest::collection::vec(
            prop_oneof![
                "Inst [^\\n]{0,60}", "Remv [^\\n]{0,40}", "\\([0-9]/[0-9]\\) [^\\n]{0,50}",
                " [^\\n]{0,40}", "<update [^\\n]{0,60}", "<solvable [^\\n]{0,60}", "<to-install>",
                "[A-Za-z]+: [^\\n]{0,20}", "[^\\n]{0,30}\\t[^\\n]{0,30}\\t[^\\n]{0,10}\\t[^\\n]{0,10}",
            ], 0..12)) {
            let s = lines.join("\n");
            let _ = apt_actions(&s);
            let _ = dpkg_audit(&s);
            let _ = dnf_transaction(&s);
            let _ = zypper_updates(&s);
            let _ = zypper_summary(&s);
            let _ = apk_simulation(&s);
            let _ = deb822_sizes(&s);
            let _ = dpkg_query(&s);
            let _ = rpm_query(&s);
        }

        /// dpkg-query lines round-trip.
        #[test]
        fn dpkg_query_round_trip(pkgs in proptest::collection::vec((name(), version(), 0u64..100000), 0..20)) {
            let text: String = pkgs.iter().map(|(n, v, s)| format!("{n}\tamd64\t{v}\tinstalled\t{s}\n")).collect();
            let parsed = dpkg_query(&text);
            prop_assert_eq!(parsed.len(), pkgs.len());
            for (p, (n, v, s)) in parsed.iter().zip(&pkgs) {
                prop_assert_eq!(&p.name, n);
                prop_assert_eq!(&p.version, v);
                prop_assert_eq!(p.installed_kib, Some(*s));
            }
        }

        /// apt simulation lines round-trip: upgrade, new install and removal.
        #[test]
        fn apt_round_trip(acts in proptest::collection::vec((name(), proptest::option::of(version()), proptest::option::of(version())), 0..20)) {
            let mut text = String::from("Reading package lists...\n");
            let mut expect = Vec::new();
            for (n, from, to) in &acts {
                match (from, to) {
                    (f, Some(t)) => {
                        let cur = f.as_ref().map(|f| format!("[{f}] ")).unwrap_or_default();
                        text.push_str(&format!("Inst {n} {cur}({t} Debian:12/stable [amd64])\n"));
                        expect.push((n.clone(), f.clone(), Some(t.clone())));
                    }
                    (Some(f), None) => {
                        text.push_str(&format!("Remv {n} [{f}]\n"));
                        expect.push((n.clone(), Some(f.clone()), None));
                    }
                    (None, None) => {}
                }
            }
            let got: Vec<_> = apt_actions(&text).into_iter().map(|a| (a.name, a.from, a.to)).collect();
            prop_assert_eq!(got, expect);
        }

        /// XML attribute values survive escaping.
        #[test]
        fn zypper_attr_round_trip(n in name(), v in version(), alias in "[ -~]{0,20}") {
            let esc = alias.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;").replace('>', "&gt;");
            let xml = format!("<update-list><update kind=\"package\" name=\"{n}\" edition=\"{v}\" arch=\"noarch\"><source url=\"x\" alias=\"{esc}\"/></update></update-list>");
            let u = zypper_updates(&xml);
            prop_assert_eq!(u.len(), 1);
            prop_assert_eq!(&u[0].0, &n);
            prop_assert_eq!(&u[0].3, &v);
            prop_assert_eq!(&u[0].4, &alias);
        }
    }
}
