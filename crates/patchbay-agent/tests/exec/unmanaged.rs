//! Software installed outside the package manager, end to end (issue 20,
//! item 5, acceptance), once per engine: on a copy of the debootstrapped
//! Debian 12 root, `pip` (Debian's python3-pip, from PyPI) installs urllib3
//! 1.26.4 into `/usr/local` as it does for root, and Debian's own Go toolchain
//! (golang-go, Go 1.19.8; no module download) builds a binary into
//! `/usr/local/bin`. A symbolic link to the host's Go binary sits beside it
//! (never followed: the scan must not leave the root). The real
//! `patchbay-agent` checks in once to a real `patchbay serve`; then the
//! staged PyPA records of urllib3 and the Go vulnerability database's
//! standard-library records (`fixtures/feeds/unmanaged/`) are uploaded with
//! `patchbay feeds import`, so the import's delta re-assessment is what
//! matches them.
//!
//! Checked: the asset shows exactly the two pieces of unmanaged software
//! with their paths; its findings are exactly those an independent Python
//! computation gives — PEP 440 by `packaging.version`, the Go toolchain
//! version mapped and compared by the SemVer rules written out in Python, the
//! OSV range walk written out again — with the same fixed versions, each
//! marked unmanaged with its path. Then the binary is deleted and the agent
//! checks in again: the Go findings are resolved, urllib3's stay open.

use crate::rollout::{Engine, Server, patchbay_bin};
use crate::support::{AGENT, RootClone, base_root, ensure_tools, run, wait_for};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

pub const TESTS: &[crate::Test] = &[
    (
        "unmanaged::sqlite_pip_distribution_and_go_binary_matched_as_unmanaged",
        sqlite_pip_distribution_and_go_binary_matched_as_unmanaged,
    ),
    (
        "unmanaged::postgres_pip_distribution_and_go_binary_matched_as_unmanaged",
        postgres_pip_distribution_and_go_binary_matched_as_unmanaged,
    ),
];

fn sqlite_pip_distribution_and_go_binary_matched_as_unmanaged() {
    pip_distribution_and_go_binary(Engine::Sqlite);
}

fn postgres_pip_distribution_and_go_binary_matched_as_unmanaged() {
    pip_distribution_and_go_binary(Engine::Postgres);
}

const PYTHON: &str = "/usr/bin/python3";
const DIST: &str = "/usr/local/lib/python3.11/dist-packages/urllib3-1.26.4.dist-info";
const BINARY: &str = "/usr/local/bin/hello";

/// Debian's pip and packaging for the system python (the PyPI install and
/// the oracle), installed with apt-get when missing; never skipped.
fn ensure_python_tools() {
    ensure_tools(&[("go", "golang-go")]);
    let ok = Command::new(PYTHON)
        .args(["-c", "import pip, packaging.version"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        run(Command::new("apt-get").args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "python3-pip",
            "python3-packaging",
        ]));
    }
}

/// The independent computation: which advisories of the feed files affect
/// each reported item, and their fixed versions.
const ORACLE: &str = r#"
import gzip, json, re, sys
from packaging.version import Version

def go_key(v):
    m = re.fullmatch(r"go(\d+)\.(\d+)(?:\.(\d+))?(?:(beta|rc)(\d+))?", v.split(" ")[0])
    if m:
        v = f"{m[1]}.{m[2]}.{m[3] or 0}" + (f"-{m[4]}.{m[5]}" if m[4] else "")
    elif v.startswith("v"):
        v = v[1:]
    v = v.split("+")[0]
    core, _, pre = v.partition("-")
    nums = tuple(int(x) for x in core.split("."))
    assert len(nums) == 3, v
    if not pre:
        return (nums, 1, ())
    return (nums, 0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))

def pep503(n):
    return re.sub(r"[-_.]+", "-", n).lower()

KEY = {"PyPI": Version, "Go": go_key}

def verdict(key, ranges, v):
    """OSV's evaluation, written out: affected, and the fix closing its interval."""
    fixes, hit = [], False
    for r in ranges:
        if r["type"] == "GIT":
            continue
        evs = []
        for e in r["events"]:
            (k, x), = e.items()
            evs.append((k, x, (0,) if (k == "introduced" and x == "0") else (1, key(x))))
        evs.sort(key=lambda t: t[2])
        vk = (1, key(v))
        inside, opened = False, None
        for i, (k, x, b) in enumerate(evs):
            if k == "introduced" and vk >= b:
                inside, opened = True, i
            elif k == "fixed" and vk >= b:
                inside = False
            elif k == "last_affected" and vk > b:
                inside = False
        if inside:
            hit = True
            closing = [t for t in evs[opened + 1:] if t[0] in ("fixed", "last_affected")]
            fixes.append(closing[0][1] if closing and closing[0][0] == "fixed" else None)
    return hit, fixes

records = []
for path in sys.argv[2:]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        records += [json.loads(l) for l in f if l.strip()]
items = json.load(open(sys.argv[1]))
out = []
for it in items:
    eco = it["ecosystem"]
    if eco not in KEY:
        continue
    key = KEY[eco]
    name = pep503(it["name"]) if eco == "PyPI" else it["name"]
    for rec in records:
        fixes, hit = [], False
        for a in rec.get("affected", []):
            p = a["package"]
            pn = pep503(p["name"]) if p["ecosystem"] == "PyPI" else p["name"]
            if p["ecosystem"] != eco or pn != name:
                continue
            h, fx = verdict(key, a.get("ranges", []), it["version"])
            if it["version"] in a.get("versions", []):
                h = True
            hit |= h
            fixes += fx
        if hit:
            fixed = None
            if fixes and None not in fixes:
                fixed = min(fixes, key=key)
            out.append([rec["id"], it["name"], it["path"], it["version"], fixed])
print(json.dumps(sorted(out, key=lambda r: [str(x) for x in r])))
"#;

fn pip_distribution_and_go_binary(engine: Engine) {
    ensure_python_tools();
    let ws = crate::support::workspace();
    let feeds = [
        ws.join("fixtures/feeds/unmanaged/pypa-urllib3.osv.jsonl"),
        ws.join("fixtures/feeds/unmanaged/go-vulndb-stdlib.osv.jsonl.gz"),
    ];
    let dir = tempfile::Builder::new()
        .prefix("pb-unmanaged-")
        .tempdir()
        .unwrap();
    let clone = RootClone::of(base_root(), dir.path());
    let root = clone.path().to_path_buf();

    // pip, from PyPI, into the root's /usr/local (Debian's pip puts a root
    // install under /usr/local/lib/python3.11/dist-packages).
    run(Command::new(PYTHON)
        .args([
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-compile",
            "--disable-pip-version-check",
            "-q",
            "--root",
        ])
        .arg(&root)
        .arg("urllib3==1.26.4"));
    assert!(
        root.join(&DIST[1..]).join("METADATA").is_file(),
        "pip put urllib3 elsewhere"
    );

    // Debian's Go toolchain builds a program with no module dependencies.
    let go = dir.path().join("go");
    std::fs::create_dir_all(&go).unwrap();
    std::fs::write(
        go.join("main.go"),
        "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n",
    )
    .unwrap();
    run(Command::new("go")
        .current_dir(&go)
        .args(["build", "-o"])
        .arg(root.join(&BINARY[1..]))
        .arg("main.go")
        .env("HOME", &go)
        .env("GOCACHE", go.join("cache"))
        .env("GOPATH", go.join("path"))
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-buildvcs=false"));
    let gov = run(Command::new("go").arg("version"));
    let toolchain = String::from_utf8_lossy(&gov.stdout)
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_owned();
    // A link out of the root, to the host's own Go binary: never followed.
    let host_go = std::fs::canonicalize(
        String::from_utf8_lossy(&run(Command::new("sh").args(["-c", "command -v go"])).stdout)
            .trim(),
    )
    .unwrap();
    std::os::unix::fs::symlink(&host_go, root.join("usr/local/bin/go-host")).unwrap();

    let server = Server::start(engine);
    let url = format!("http://{}", server.addr);
    let token = std::fs::read_to_string(server.dir.path().join("data/admin.token")).unwrap();
    let enroll = server.post(
        "/api/v1/enroll-tokens",
        json!({"name": "unmanaged", "uses": 1, "ttl_secs": 600}),
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "").unwrap();
    let state = dir.path().join("state");
    let checkin = |extra: &[&str]| {
        let mut c = Command::new(AGENT);
        c.args(["--once", "--server", &url, "--no-pending-updates"])
            .args(extra)
            .arg("--root")
            .arg(&root)
            .arg("--state-dir")
            .arg(&state)
            .arg("--config")
            .arg(&config)
            .env_remove("PATCHBAY_SERVER")
            .env("RUST_LOG", "warn");
        run(&mut c)
    };
    checkin(&["--enroll-token", &enroll]);

    let assets = server.get("/api/v1/assets");
    let name = assets["items"][0]["name"].as_str().unwrap().to_owned();
    let detail = server.get(&format!("/api/v1/assets/{name}"));
    let reported = detail["unmanaged"].as_array().cloned().unwrap_or_default();
    let got: BTreeSet<(String, String, String, String)> = reported
        .iter()
        .map(|u| {
            let s = |k: &str| u[k].as_str().unwrap().to_owned();
            (s("ecosystem"), s("name"), s("version"), s("path"))
        })
        .collect();
    let want: BTreeSet<(String, String, String, String)> = [
        ("PyPI", "urllib3", "1.26.4", DIST),
        ("Go", "stdlib", toolchain.as_str(), BINARY),
    ]
    .into_iter()
    .map(|(a, b, c, d)| (a.into(), b.into(), c.into(), d.into()))
    .collect();
    assert_eq!(
        got, want,
        "the asset's unmanaged software (the link to the host's go must not be followed)"
    );
    assert_eq!(
        server.get(&format!("/api/v1/findings?asset={name}"))["items"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "no feeds yet"
    );

    // The feeds, uploaded after the check-in: the import's delta
    // re-assessment matches the unmanaged software.
    for f in &feeds {
        run(Command::new(patchbay_bin())
            .args(["feeds", "import", "--url", &url, "--token", token.trim()])
            .arg(f));
    }

    let items_file = dir.path().join("items.json");
    std::fs::write(&items_file, serde_json::to_string(&reported).unwrap()).unwrap();
    let out = run(Command::new(PYTHON)
        .args(["-c", ORACLE])
        .arg(&items_file)
        .args(&feeds));
    let oracle: Vec<Vec<Value>> = serde_json::from_slice(&out.stdout).unwrap();
    let oracle: BTreeSet<(String, String, String, String, Option<String>)> = oracle
        .into_iter()
        .map(|r| {
            let s = |i: usize| r[i].as_str().unwrap().to_owned();
            (s(0), s(1), s(2), s(3), r[4].as_str().map(str::to_owned))
        })
        .collect();
    let pypi: Vec<&str> = oracle
        .iter()
        .filter(|r| r.1 == "urllib3")
        .map(|r| r.0.as_str())
        .collect();
    assert_eq!(
        pypi,
        ["PYSEC-2021-108", "PYSEC-2023-192", "PYSEC-2023-212"],
        "the oracle itself: 1.26.4 is the fix of PYSEC-2021-59, not inside it"
    );
    let go_expected = oracle.iter().filter(|r| r.1 == "stdlib").count();
    assert!(
        go_expected >= 10,
        "Go {toolchain} has many stdlib advisories: {go_expected}"
    );

    let findings = |all: bool| -> Vec<Value> {
        server.get(&format!("/api/v1/findings?asset={name}&all={all}"))["items"]
            .as_array()
            .unwrap()
            .clone()
    };
    let open_set = |items: &[Value]| -> BTreeSet<(String, String, String, String, Option<String>)> {
        items
            .iter()
            .filter(|f| f["resolved_at"].is_null())
            .map(|f| {
                let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
                assert_eq!(
                    f["arch"].as_str().unwrap(),
                    format!("unmanaged:{}", s("unmanaged_path")),
                    "marked unmanaged with its path: {f}"
                );
                assert_eq!(
                    s("id"),
                    format!(
                        "F-{}-{}-{}@{}",
                        s("asset"),
                        s("advisory"),
                        s("package"),
                        s("unmanaged_path")
                    ),
                    "named with its path"
                );
                (
                    s("advisory"),
                    s("package"),
                    s("unmanaged_path"),
                    s("installed_version"),
                    f["fixed_version"].as_str().map(str::to_owned),
                )
            })
            .collect()
    };
    wait_for("the import's findings", Duration::from_secs(60), || {
        open_set(&findings(false)).len() >= oracle.len()
    });
    assert_eq!(
        open_set(&findings(false)),
        oracle,
        "findings against the independent computation"
    );
    // The worklist carries them too, marked unmanaged.
    let work = server.get("/api/v1/worklist?limit=1000");
    let in_worklist = work["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["unmanaged_path"].as_str() == Some(DIST))
        .count();
    assert_eq!(in_worklist, 3, "urllib3's three findings in the worklist");
    // People see where it is in the CLI's tables.
    let cell = format!("urllib3 (unmanaged: {DIST})");
    for args in [
        vec!["worklist"],
        vec!["findings", "list", "--asset", name.as_str()],
    ] {
        let out = run(Command::new(patchbay_bin()).args(&args).args([
            "--url",
            &url,
            "--token",
            token.trim(),
        ]));
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.matches(&cell).count(), 3, "patchbay {args:?}:\n{text}");
        assert!(
            text.contains(&format!("stdlib (unmanaged: {BINARY})")),
            "{text}"
        );
    }

    // The binary goes: the next check-in resolves its findings (and only
    // those).
    std::fs::remove_file(root.join(&BINARY[1..])).unwrap();
    checkin(&[]);
    let after = findings(true);
    let open = open_set(&after);
    assert_eq!(
        open,
        oracle
            .iter()
            .filter(|r| r.1 == "urllib3")
            .cloned()
            .collect(),
        "only urllib3's findings stay open"
    );
    let resolved = after
        .iter()
        .filter(|f| !f["resolved_at"].is_null() && f["unmanaged_path"] == BINARY)
        .count();
    assert_eq!(resolved, go_expected, "every Go finding resolved");
}
