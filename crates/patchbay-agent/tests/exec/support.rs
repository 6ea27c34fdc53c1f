//! Test support: tools, the cached debootstrap base, the local apt repository
//! and its HTTP server, per-test roots, and running the agent as a process.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The shipped `patchbay-agent` binary of this package (cargo builds it before
/// the tests that use it).
pub const AGENT: &str = env!("CARGO_BIN_EXE_patchbay-agent");

/// The workspace root.
pub fn workspace() -> PathBuf {
    let w = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    w.canonicalize().unwrap_or(w)
}

/// Runs a command, panicking with its output unless it succeeds.
pub fn run(cmd: &mut Command) -> Output {
    let desc = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    assert!(
        out.status.success(),
        "{desc} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn have(bin: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .any(|d| d.join(bin).is_file())
    })
}

/// Makes sure every `(program, Debian package)` is installed, installing missing
/// ones with apt-get. Fails (never skips) when that is impossible.
pub fn ensure_tools(tools: &[(&str, &str)]) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(bin, _)| !have(bin))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return;
    }
    let is_root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    assert!(
        is_root,
        "these tests need the Debian packages {missing:?} and root to install them (apt-get); run as root or install them"
    );
    eprintln!("installing test tools with apt-get: {missing:?}");
    let update = Command::new("apt-get").args(["update", "-qq"]).status();
    assert!(
        update.is_ok_and(|s| s.success()),
        "apt-get update failed while installing test tools {missing:?}"
    );
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing));
    for (bin, pkg) in tools {
        assert!(have(bin), "{bin} still missing after installing {pkg}");
    }
}

/// The test cache directory (`$PATCHBAY_TEST_CACHE`, default
/// `<workspace>/target/test-cache`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("PATCHBAY_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/test-cache"))
}

/// The cached `debootstrap --variant=minbase bookworm` tree, built on first use
/// under an exclusive file lock (parallel tests and test processes build it
/// once). The mirror is `$PATCHBAY_DEBIAN_MIRROR` (default deb.debian.org).
pub fn base_root() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        ensure_tools(&[("debootstrap", "debootstrap")]);
        let cache = cache_dir();
        std::fs::create_dir_all(&cache).unwrap();
        let base = cache.join("debootstrap-bookworm");
        let lock = File::create(cache.join("debootstrap-bookworm.lock")).unwrap();
        lock.lock().unwrap();
        let stamp = base.join(".patchbay-complete");
        if stamp.is_file() {
            eprintln!(
                "debootstrap base: cached at {} (first build took {} s)",
                base.display(),
                std::fs::read_to_string(&stamp).unwrap_or_default().trim()
            );
            return base;
        }
        let tmp = cache.join("debootstrap-bookworm.partial");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).unwrap();
        }
        if base.exists() {
            std::fs::remove_dir_all(&base).unwrap();
        }
        let mirror = std::env::var("PATCHBAY_DEBIAN_MIRROR")
            .unwrap_or_else(|_| "http://deb.debian.org/debian".into());
        eprintln!("debootstrap base: building {} from {mirror} (once)", base.display());
        let start = Instant::now();
        // A network hiccup should not fail the suite: up to three attempts.
        let mut out = None;
        for attempt in 1..=3 {
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp).unwrap();
            }
            let o = Command::new("debootstrap")
                .args(["--variant=minbase", "bookworm"])
                .arg(&tmp)
                .arg(&mirror)
                .stdin(Stdio::null())
                .output()
                .expect("running debootstrap");
            let ok = o.status.success();
            out = Some(o);
            if ok {
                break;
            }
            eprintln!("debootstrap attempt {attempt} failed; retrying");
            std::thread::sleep(std::time::Duration::from_secs(5 * attempt));
        }
        let out = out.expect("at least one attempt");
        assert!(
            out.status.success(),
            "debootstrap --variant=minbase bookworm failed ({}); these tests need a Debian root and cannot run without one:\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let secs = start.elapsed().as_secs_f64();
        eprintln!("debootstrap base: built in {secs:.1} s");
        run(Command::new("chroot").arg(&tmp).args(["apt-get", "clean"]));
        std::fs::write(tmp.join(".patchbay-complete"), format!("{secs:.1}\n")).unwrap();
        std::fs::rename(&tmp, &base).unwrap();
        base
    })
}

/// Serves the files of `dir` over HTTP/1.1 (GET and HEAD, `Connection: close`)
/// on 127.0.0.1; returns the base URL. The server lives as long as the process.
pub fn serve_dir(dir: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let _ = serve_one(stream, &dir);
            });
        }
    });
    url
}

fn serve_one(stream: TcpStream, dir: &Path) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let mut parts = request.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("/");
    let path = path
        .split('?')
        .next()
        .unwrap_or("/")
        .trim_start_matches('/');
    let mut out = stream;
    let file = if path.split('/').any(|c| c == "..") {
        None
    } else {
        std::fs::read(dir.join(path))
            .ok()
            .filter(|_| dir.join(path).is_file())
    };
    match file {
        Some(body) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            if method != "HEAD" {
                out.write_all(&body)?;
            }
        }
        None => {
            write!(
                out,
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
        }
    }
    out.flush()
}

/// The local apt repository: `pb-demo` 1.0–1.3 (and 1.2.1, whose postinst
/// fails), `pb-extra`, `pb-lib` 1.0/2.0, `pb-tool`, `pb-conflict` (conflicts
/// with pb-extra), `pb-suid` (a setuid file), `pb-perms` (chmods /srv 0777); flat layout with a Release file (`Label: Patchbay-Security`,
/// `Suite: bookworm-security`), served over HTTP.
pub struct DebRepo {
    /// `deb [trusted=yes] URL ./` base.
    pub url: String,
    _dir: tempfile::TempDir,
}

struct DebSpec {
    name: &'static str,
    version: &'static str,
    depends: Option<&'static str>,
    postinst: Option<&'static str>,
}

/// The postinst of pb-demo 1.2.1: prints why and exits 7 (a rehearsal must
/// report it with this output). Not 1.2: the rollout, jobs and apt tests
/// install 1.2 successfully and rely on its failing only the `web` check.
pub const FAILING_POSTINST: &str = "#!/bin/sh\nset -e\necho 'pb-demo: cannot migrate /var/lib/pb-demo (schema 3 expected)' >&2\nexit 7\n";

/// pb-perms' postinst: makes `/srv` world-writable (a directory's mode change
/// the privilege check must report).
const PERMS_POSTINST: &str = "#!/bin/sh\nset -e\nchmod 0777 /srv\n";

/// pb-svc's postinst: restarts its service through invoke-rc.d, as
/// debhelper's generated scripts do (a rehearsal's policy-rc.d refuses and
/// records it).
const SVC_POSTINST: &str = "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n  invoke-rc.d pb-svc restart || true\nfi\n";

/// The postinst of pb-demo 1.3: on its first configure it leaves a marker and
/// sleeps for a long time (the test SIGKILLs the agent then); later runs (the
/// repair) finish at once.
const SLOW_POSTINST: &str = "#!/bin/sh\nset -e\nif [ \"$1\" = configure ] && [ ! -e /var/lib/pb-demo-slept ]; then\n  touch /var/lib/pb-demo-slept\n  sleep 600\nfi\n";

/// Builds and serves the repository once per process.
pub fn deb_repo() -> &'static DebRepo {
    static REPO: OnceLock<DebRepo> = OnceLock::new();
    REPO.get_or_init(|| {
        ensure_tools(&[("dpkg-deb", "dpkg"), ("apt-ftparchive", "apt-utils")]);
        let dir = tempfile::tempdir().unwrap();
        let pool = dir.path().join("repo");
        std::fs::create_dir_all(&pool).unwrap();
        let specs = [
            DebSpec { name: "pb-demo", version: "1.0", depends: None, postinst: None },
            DebSpec { name: "pb-demo", version: "1.1", depends: Some("pb-extra"), postinst: None },
            DebSpec { name: "pb-demo", version: "1.2", depends: Some("pb-extra"), postinst: None },
            DebSpec { name: "pb-demo", version: "1.3", depends: Some("pb-extra"), postinst: Some(SLOW_POSTINST) },
            DebSpec { name: "pb-extra", version: "1.0", depends: None, postinst: None },
            DebSpec { name: "pb-lib", version: "1.0", depends: None, postinst: None },
            DebSpec { name: "pb-lib", version: "2.0", depends: None, postinst: None },
            DebSpec { name: "pb-tool", version: "1.0", depends: Some("pb-lib (>= 2.0)"), postinst: None },
            DebSpec { name: "pb-demo", version: "1.2.1", depends: Some("pb-extra"), postinst: Some(FAILING_POSTINST) },
            // Conflicts: pb-extra (installed with pb-demo >= 1.1).
            DebSpec { name: "pb-conflict", version: "1.0", depends: None, postinst: None },
            // Ships /usr/bin/pb-suid-helper with mode 4755.
            DebSpec { name: "pb-suid", version: "1.0", depends: None, postinst: None },
            // Ships /srv/pb-perms/ and chmods /srv 0777.
            DebSpec { name: "pb-perms", version: "1.0", depends: None, postinst: Some(PERMS_POSTINST) },
            // Ships /etc/init.d/pb-svc; its postinst restarts it (invoke-rc.d).
            DebSpec { name: "pb-svc", version: "1.0", depends: None, postinst: None },
            DebSpec { name: "pb-svc", version: "1.1", depends: None, postinst: Some(SVC_POSTINST) },
        ];
        for s in &specs {
            let b = dir.path().join(format!("build/{}-{}", s.name, s.version));
            std::fs::create_dir_all(b.join("DEBIAN")).unwrap();
            std::fs::create_dir_all(b.join(format!("usr/share/{}", s.name))).unwrap();
            std::fs::create_dir_all(b.join("usr/bin")).unwrap();
            std::fs::write(b.join(format!("usr/share/{}/version", s.name)), format!("{}\n", s.version)).unwrap();
            let script = b.join(format!("usr/bin/{}", s.name));
            std::fs::write(&script, format!("#!/bin/sh\necho {} {}\n", s.name, s.version)).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            let mut control = format!(
                "Package: {}\nVersion: {}\nArchitecture: all\nMaintainer: Patchbay Tests <tests@example.invalid>\nInstalled-Size: 8\nSection: misc\nPriority: optional\n",
                s.name, s.version
            );
            if let Some(d) = s.depends {
                control.push_str(&format!("Depends: {d}\n"));
            }
            if s.name == "pb-conflict" {
                control.push_str("Conflicts: pb-extra\n");
            }
            if s.name == "pb-suid" {
                let helper = b.join("usr/bin/pb-suid-helper");
                std::fs::write(&helper, "#!/bin/sh\nid -u\n").unwrap();
                std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o4755)).unwrap();
            }
            if s.name == "pb-svc" {
                std::fs::create_dir_all(b.join("etc/init.d")).unwrap();
                let init = b.join("etc/init.d/pb-svc");
                std::fs::write(&init, "#!/bin/sh\n# pb-svc test service\necho \"pb-svc $1\" >> /var/log/pb-svc.log\n").unwrap();
                std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            if s.name == "pb-perms" {
                std::fs::create_dir_all(b.join("srv/pb-perms")).unwrap();
                std::fs::write(b.join("srv/pb-perms/data"), "data\n").unwrap();
            }
            control.push_str(&format!("Description: Patchbay test package {} {}\n", s.name, s.version));
            std::fs::write(b.join("DEBIAN/control"), control).unwrap();
            if let Some(p) = s.postinst {
                let pi = b.join("DEBIAN/postinst");
                std::fs::write(&pi, p).unwrap();
                std::fs::set_permissions(&pi, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            run(Command::new("dpkg-deb")
                .args(["--root-owner-group", "-Zgzip", "--build"])
                .arg(&b)
                .arg(pool.join(format!("{}_{}_all.deb", s.name, s.version))));
        }
        let packages = run(Command::new("apt-ftparchive").args(["packages", "."]).current_dir(&pool));
        std::fs::write(pool.join("Packages"), &packages.stdout).unwrap();
        let release = run(Command::new("apt-ftparchive")
            .args([
                "-o", "APT::FTPArchive::Release::Origin=Patchbay",
                "-o", "APT::FTPArchive::Release::Label=Patchbay-Security",
                "-o", "APT::FTPArchive::Release::Suite=bookworm-security",
                "-o", "APT::FTPArchive::Release::Codename=bookworm-security",
                "release", ".",
            ])
            .current_dir(&pool));
        std::fs::write(pool.join("Release"), &release.stdout).unwrap();
        let url = serve_dir(pool);
        DebRepo { url, _dir: dir }
    })
}

/// A copy-on-write clone of a cached base root: an overlayfs mount whose lower
/// layer is the base (never written) and whose upper and work layers live in
/// the test's own directory, so a test host costs only what it changes
/// instead of a full copy of the base (175 MB for Debian; a rollout test runs
/// ten hosts at once, and CI once ran out of disk copying them). Unmounted on
/// drop, before the directory is deleted. Where overlayfs cannot be mounted
/// (not root, an upper file system overlayfs refuses), it falls back to a full
/// `cp -a` copy and says so: the test is the same either way, only its disk
/// use differs.
pub struct RootClone {
    merged: PathBuf,
    mounted: bool,
}

impl RootClone {
    /// Clones `base` into `dir/root` (with `dir/upper` and `dir/work` beside it).
    pub fn of(base: &Path, dir: &Path) -> RootClone {
        let merged = dir.join("root");
        let upper = dir.join("upper");
        let work = dir.join("work");
        for d in [&merged, &upper, &work] {
            std::fs::create_dir(d).unwrap();
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            base.display(),
            upper.display(),
            work.display()
        );
        let mount = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(&merged)
            .stdin(Stdio::null())
            .output();
        match mount {
            Ok(o) if o.status.success() => RootClone {
                merged,
                mounted: true,
            },
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                eprintln!(
                    "note: overlayfs clone of {} failed ({why}); copying it instead",
                    base.display()
                );
                run(Command::new("cp")
                    .arg("-a")
                    .arg(format!("{}/.", base.display()))
                    .arg(&merged));
                RootClone {
                    merged,
                    mounted: false,
                }
            }
        }
    }

    /// The merged root.
    pub fn path(&self) -> &Path {
        &self.merged
    }
}

impl Drop for RootClone {
    fn drop(&mut self) {
        if self.mounted {
            // Lazy, so a process still inside the root (a killed agent's
            // child) cannot make the unmount fail and leak the mount.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.merged)
                .stdin(Stdio::null())
                .status();
        }
    }
}

/// A per-test copy of the Debian base with the local repository as its only
/// source, and a state directory for the agent.
pub struct Root {
    /// The root file system.
    pub path: PathBuf,
    /// The agent's state directory.
    pub state: PathBuf,
    /// Scratch space (configuration files).
    pub scratch: PathBuf,
    // Declared before the directory: fields drop in order, so the overlay is
    // unmounted before its layers are deleted.
    _clone: RootClone,
    _dir: tempfile::TempDir,
}

/// A fresh root with `initial` (`PKG=VER`) installed by plain apt-get.
pub fn debian_root(initial: &[&str]) -> Root {
    let base = base_root();
    let repo = deb_repo();
    let dir = tempfile::Builder::new()
        .prefix("pb-exec-")
        .tempdir()
        .unwrap();
    let clone = RootClone::of(base, dir.path());
    let path = clone.path().to_path_buf();
    std::fs::write(
        path.join("etc/apt/sources.list"),
        format!("deb [trusted=yes] {} ./\n", repo.url),
    )
    .unwrap();
    if let Ok(rd) = std::fs::read_dir(path.join("etc/apt/sources.list.d")) {
        for e in rd.flatten() {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let root = Root {
        state: dir.path().join("state"),
        scratch: dir.path().to_path_buf(),
        path,
        _clone: clone,
        _dir: dir,
    };
    root.chroot(&["apt-get", "-q", "update"]);
    if !initial.is_empty() {
        let mut args = vec!["apt-get", "install", "-y", "-q", "--no-install-recommends"];
        args.extend(initial);
        root.chroot(&args);
    }
    root
}

/// The result of one agent run.
#[derive(Debug)]
pub struct AgentRun {
    /// Exit code.
    pub code: i32,
    /// The JSON object printed on stdout.
    pub json: Value,
    /// stderr, for messages.
    pub stderr: String,
}

/// A command that runs the real `patchbay-agent` binary.
pub fn agent_command() -> Command {
    let mut c = Command::new(AGENT);
    c.env_remove("PATCHBAY_SERVER").env("RUST_LOG", "warn");
    c
}

/// Runs the agent with `args` and parses its JSON output.
pub fn agent(args: &[&str]) -> AgentRun {
    let out = agent_command()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "agent {args:?} printed no JSON (exit {:?}):\n--- stdout\n{stdout}\n--- stderr\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            )
        });
    AgentRun {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(line).unwrap(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Root {
    /// Runs a command inside the root.
    pub fn chroot(&self, args: &[&str]) -> Output {
        run(Command::new("chroot").arg(&self.path).args(args).env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ))
    }

    /// The full `dpkg-query -W` of the root: `name:arch` → `version status`.
    pub fn packages(&self) -> BTreeMap<String, String> {
        let out = self.chroot(&[
            "dpkg-query",
            "-W",
            "-f",
            "${Package}:${Architecture}\\t${Version} ${db:Status-Abbrev}\\n",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect()
    }

    /// The installed version of `pkg` (`None`: not installed).
    pub fn version(&self, pkg: &str) -> Option<String> {
        self.packages()
            .get(&format!("{pkg}:all"))
            .filter(|v| v.ends_with("ii"))
            .map(|v| v.split_whitespace().next().unwrap().to_owned())
    }

    /// Runs the agent subcommand `sub` on this root with this state directory.
    pub fn agent(&self, sub: &str, args: &[&str]) -> AgentRun {
        let root = self.path.to_str().unwrap();
        let state = self.state.to_str().unwrap();
        let mut all = vec![sub, "--root", root, "--state-dir", state];
        all.extend(args);
        agent(&all)
    }

    /// Writes an agent configuration into the scratch directory; returns its path.
    pub fn config(&self, text: &str) -> String {
        let p = self.scratch.join("agent.toml");
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    }

    /// `dpkg --audit` output inside the root.
    pub fn audit(&self) -> String {
        String::from_utf8_lossy(&self.chroot(&["dpkg", "--audit"]).stdout).into_owned()
    }
}

/// Reads the journal of a state directory as JSON values (complete lines only).
pub fn journal(state: &Path) -> Vec<Value> {
    let mut text = String::new();
    File::open(state.join("journal.jsonl"))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// SIGKILLs `pid` and all its descendants (found through /proc), as a crash or
/// an OOM kill of the agent's cgroup would.
pub fn kill_tree(pid: u32) -> Vec<u32> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let mut killed = Vec::new();
    for _ in 0..3 {
        let mut parents: BTreeMap<u32, u32> = BTreeMap::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(e.path().join("stat"))
                && let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r)
                && let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok())
            {
                parents.insert(p, ppid);
            }
        }
        let mut tree = vec![pid];
        let mut i = 0;
        while i < tree.len() {
            let p = tree[i];
            tree.extend(parents.iter().filter(|(_, pp)| **pp == p).map(|(c, _)| *c));
            i += 1;
        }
        for p in &tree {
            if kill(Pid::from_raw(*p as i32), Signal::SIGKILL).is_ok() && !killed.contains(p) {
                killed.push(*p);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    killed
}

/// Waits until `cond` holds, up to `limit`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `make(1)` … `make(n)`, each on a thread of its own (a test host takes
/// seconds to prepare), in order; a panic in one is raised here.
pub fn in_parallel<T: Send>(n: u8, make: impl Fn(u8) -> T + Sync) -> Vec<T> {
    let make = &make;
    std::thread::scope(|sc| {
        let handles: Vec<_> = (1..=n).map(|i| sc.spawn(move || make(i))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Drops every item at once (removing a test host's root and namespace is
/// slow on some disks).
pub fn drop_in_parallel<T: Send>(items: Vec<T>) {
    std::thread::scope(|sc| {
        for it in items {
            sc.spawn(move || drop(it));
        }
    });
}
