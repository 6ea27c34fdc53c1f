//! The dnf and zypper backends on real rpm roots, with Debian's own dnf, zypper
//! and rpm (host tools with `--installroot`/`--root`), against a local rpm-md
//! repository built with rpmbuild and createrepo_c and served over HTTP.

use crate::support::{agent, ensure_tools, run, serve_dir};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const TESTS: &[crate::Test] = &[
    (
        "rpm::dnf_apply_scope_and_rollback_in_an_installroot",
        dnf_apply_scope_and_rollback_in_an_installroot,
    ),
    (
        "rpm::zypper_apply_and_rollback_in_a_root",
        zypper_apply_and_rollback_in_a_root,
    ),
];

struct RpmRepo {
    url: String,
    _dir: tempfile::TempDir,
}

/// pb-demo 1.0-1 and 1.1-1 (1.1 requires pb-extra), pb-extra 1.0-1, pb-lib
/// 1.0-1 and 2.0-1, pb-tool 1.0-1 (requires pb-lib >= 2.0), all noarch.
fn rpm_repo() -> &'static RpmRepo {
    static REPO: OnceLock<RpmRepo> = OnceLock::new();
    REPO.get_or_init(|| {
        ensure_tools(&[("rpmbuild", "rpm"), ("createrepo_c", "createrepo-c"), ("dnf", "dnf"), ("zypper", "zypper")]);
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("top");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        let specs: &[(&str, &str, Option<&str>)] = &[
            ("pb-demo", "1.0", None),
            ("pb-demo", "1.1", Some("pb-extra")),
            ("pb-extra", "1.0", None),
            ("pb-lib", "1.0", None),
            ("pb-lib", "2.0", None),
            ("pb-tool", "1.0", Some("pb-lib >= 2.0")),
        ];
        for (name, version, requires) in specs {
            let spec = dir.path().join(format!("{name}-{version}.spec"));
            std::fs::write(
                &spec,
                format!(
                    "Name: {name}\nVersion: {version}\nRelease: 1\nSummary: Patchbay test package\nLicense: Apache-2.0\nBuildArch: noarch\nAutoReqProv: no\n{}\n%description\nPatchbay test package.\n%install\nmkdir -p %{{buildroot}}/usr/share/{name}\necho {version} > %{{buildroot}}/usr/share/{name}/version\n%files\n/usr/share/{name}/version\n",
                    requires.map(|r| format!("Requires: {r}")).unwrap_or_default()
                ),
            )
            .unwrap();
            run(Command::new("rpmbuild")
                .args(["--quiet", "-bb", "--define"])
                .arg(format!("_topdir {}", top.display()))
                .arg(&spec));
        }
        for e in std::fs::read_dir(top.join("RPMS/noarch")).unwrap().flatten() {
            std::fs::copy(e.path(), repo.join(e.file_name())).unwrap();
        }
        run(Command::new("createrepo_c").arg("-q").arg(&repo));
        RpmRepo {
            url: serve_dir(repo),
            _dir: dir,
        }
    })
}

/// `rpm -qa` of a root: name → version-release.
fn rpm_packages(root: &Path) -> BTreeMap<String, String> {
    let out = run(Command::new("rpm").arg("--root").arg(root).args([
        "-qa",
        "--qf",
        "%{NAME}\\t%{VERSION}-%{RELEASE}\\n",
    ]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn agent_on(
    root: &Path,
    state: &Path,
    backend: &str,
    sub: &str,
    args: &[&str],
) -> crate::support::AgentRun {
    let mut all = vec![
        sub,
        "--backend",
        backend,
        "--root",
        root.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    all.extend(args);
    agent(&all)
}

/// The same story as on Debian, with dnf and `--installroot`: an exact upgrade
/// that newly installs a dependency and leaves an upgradable unnamed package
/// alone, a refusal when an unnamed package would be upgraded, updates with their
/// repository, and a rollback that downgrades and removes the new dependency.
fn dnf_apply_scope_and_rollback_in_an_installroot() {
    let repo = rpm_repo();
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().join("root");
    let state = dir.path().join("state");
    std::fs::create_dir_all(root.join("etc/yum.repos.d")).unwrap();
    std::fs::create_dir_all(root.join("etc/dnf/vars")).unwrap();
    std::fs::write(
        root.join("etc/yum.repos.d/pbtest.repo"),
        format!(
            "[pbtest]\nname=pbtest\nbaseurl={}\ngpgcheck=0\nenabled=1\nmetadata_expire=0\n",
            repo.url
        ),
    )
    .unwrap();
    std::fs::write(root.join("etc/dnf/vars/releasever"), "12\n").unwrap();
    run(Command::new("dnf").arg("--installroot").arg(&root).args([
        "-y",
        "-q",
        "install",
        "pb-demo-1.0-1",
        "pb-lib-1.0-1",
    ]));
    assert_eq!(
        rpm_packages(&root),
        map(&[("pb-demo", "1.0-1"), ("pb-lib", "1.0-1")])
    );

    let u = agent_on(&root, &state, "dnf", "updates", &[]);
    assert_eq!(u.code, 0, "{:#}\n{}", u.json, u.stderr);
    let ups = u.json["updates"].as_array().unwrap();
    let lib = ups
        .iter()
        .find(|x| x["name"] == "pb-lib")
        .unwrap_or_else(|| panic!("{ups:?}"));
    assert_eq!(lib["available_version"], "2.0-1");
    assert_eq!(lib["current_version"], "1.0-1");
    assert_eq!(lib["origin"], "pbtest");

    let r = agent_on(
        &root,
        &state,
        "dnf",
        "apply",
        &["--job-key", "d-1", "pb-demo=1.1-1"],
    );
    assert_eq!(r.code, 0, "{:#}\n{}", r.json, r.stderr);
    assert_eq!(
        rpm_packages(&root),
        map(&[
            ("pb-demo", "1.1-1"),
            ("pb-extra", "1.0-1"),
            ("pb-lib", "1.0-1")
        ]),
        "pb-lib 2.0-1 is available but not named: unchanged"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("usr/share/pb-demo/version")).unwrap(),
        "1.1\n"
    );

    let before = rpm_packages(&root);
    let r = agent_on(
        &root,
        &state,
        "dnf",
        "apply",
        &["--job-key", "d-2", "pb-tool=1.0-1"],
    );
    assert_eq!(r.code, 1, "{:#}", r.json);
    assert_eq!(r.json["error"]["step"], "scope");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pb-lib (1.0-1 -> 2.0-1)"),
        "{:#}",
        r.json
    );
    assert_eq!(rpm_packages(&root), before);

    let rb = agent_on(&root, &state, "dnf", "rollback", &["--job-key", "d-1"]);
    assert_eq!(rb.code, 0, "{:#}\n{}", rb.json, rb.stderr);
    assert_eq!(
        rpm_packages(&root),
        map(&[("pb-demo", "1.0-1"), ("pb-lib", "1.0-1")])
    );
}

/// zypper with `--root`: exact upgrade, then rollback with `--oldpackage`.
fn zypper_apply_and_rollback_in_a_root() {
    let repo = rpm_repo();
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().join("root");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&root).unwrap();
    let zypper = || {
        let mut c = Command::new("zypper");
        c.arg("--root").arg(&root).arg("--non-interactive");
        c
    };
    run(zypper().args(["addrepo", "--no-gpgcheck", &repo.url, "pbtest"]));
    run(zypper().arg("refresh"));
    run(zypper().args([
        "install",
        "--no-recommends",
        "--",
        "pb-demo=1.0-1",
        "pb-lib=1.0-1",
    ]));
    assert_eq!(
        rpm_packages(&root),
        map(&[("pb-demo", "1.0-1"), ("pb-lib", "1.0-1")])
    );

    let u = agent_on(&root, &state, "zypper", "updates", &[]);
    assert_eq!(u.code, 0, "{:#}\n{}", u.json, u.stderr);
    let ups = u.json["updates"].as_array().unwrap();
    assert!(
        ups.iter().any(|x| x["name"] == "pb-lib"
            && x["available_version"] == "2.0-1"
            && x["origin"] == "pbtest"),
        "{ups:?}"
    );

    let r = agent_on(
        &root,
        &state,
        "zypper",
        "apply",
        &["--job-key", "z-1", "pb-demo=1.1-1"],
    );
    assert_eq!(r.code, 0, "{:#}\n{}", r.json, r.stderr);
    assert_eq!(
        rpm_packages(&root),
        map(&[
            ("pb-demo", "1.1-1"),
            ("pb-extra", "1.0-1"),
            ("pb-lib", "1.0-1")
        ])
    );

    let r = agent_on(
        &root,
        &state,
        "zypper",
        "apply",
        &["--job-key", "z-2", "pb-tool=1.0-1"],
    );
    assert_eq!(r.code, 1, "{:#}", r.json);
    assert_eq!(r.json["error"]["step"], "scope");

    let rb = agent_on(&root, &state, "zypper", "rollback", &["--job-key", "z-1"]);
    assert_eq!(rb.code, 0, "{:#}\n{}", rb.json, rb.stderr);
    assert_eq!(
        rpm_packages(&root),
        map(&[("pb-demo", "1.0-1"), ("pb-lib", "1.0-1")])
    );
}
