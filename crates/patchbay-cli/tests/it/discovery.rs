//! Discovery end to end (issue 19): real test hosts in network namespaces
//! on one bridge, a real `nmap` scan of them, a real `dnsmasq` handing
//! leases to a real `dhclient`, imported through the real CLI into a real
//! server; and the cloud-inventory fixtures.
//!
//! The oracle is the topology the test builds (which MACs and addresses it
//! gave which namespace, which ones run a service, which records it made),
//! not our parsers.

use crate::support::{Server, ok};
use jiff::SignedDuration;
use patchbay_app::Clock as _;
use patchbay_proto::discovery::DiscoveryOut;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bridge in its own namespace ("lab", where dnsmasq and nmap run) and
/// hosts in theirs, each with a veth into the bridge. Removed on drop.
struct Lab {
    lab: String,
    hosts: Vec<String>,
    children: Vec<Child>,
}

impl Lab {
    fn new(tag: &str, subnet: u8, macs: &[(u8, &str)]) -> Lab {
        let lab = format!("pbd{tag}lab");
        let _ = Command::new("ip").args(["netns", "del", &lab]).output();
        ip(&["netns", "add", &lab]);
        let mut me = Lab {
            lab: lab.clone(),
            hosts: Vec::new(),
            children: Vec::new(),
        };
        me.lab_ip(&["link", "add", "br0", "type", "bridge"]);
        me.lab_ip(&["addr", "add", &format!("10.78.{subnet}.1/24"), "dev", "br0"]);
        me.lab_ip(&["link", "set", "br0", "up"]);
        me.lab_ip(&["link", "set", "lo", "up"]);
        for (n, mac) in macs {
            let host = format!("pbd{tag}h{n}");
            let _ = Command::new("ip").args(["netns", "del", &host]).output();
            ip(&["netns", "add", &host]);
            me.hosts.push(host.clone());
            let outer = format!("pbd{tag}v{n}");
            ip(&[
                "link", "add", &outer, "netns", &lab, "type", "veth", "peer", "name", "eth0",
                "netns", &host,
            ]);
            me.lab_ip(&["link", "set", &outer, "master", "br0"]);
            me.lab_ip(&["link", "set", &outer, "up"]);
            let inside = |args: &[&str]| {
                let mut all = vec!["netns", "exec", host.as_str(), "ip"];
                all.extend(args);
                ip(&all);
            };
            inside(&["link", "set", "eth0", "address", mac]);
            inside(&[
                "addr",
                "add",
                &format!("10.78.{subnet}.1{n}/24"),
                "dev",
                "eth0",
            ]);
            inside(&["link", "set", "eth0", "up"]);
            inside(&["link", "set", "lo", "up"]);
        }
        me
    }

    fn lab_ip(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", self.lab.as_str(), "ip"];
        all.extend(args);
        ip(&all);
    }

    fn exec(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// A small HTTP server (python's) in namespace `ns` on `bind:port`.
    fn serve_http(&mut self, ns: &str, bind: &str, port: u16, dir: &Path) {
        let child = self
            .exec(ns, "python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", bind])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    /// dnsmasq serving DHCP (no DNS) on the lab's bridge into `leases`,
    /// reserving each `(mac, address)`.
    fn dhcp_server(&mut self, subnet: u8, leases: &Path, reserved: &[(&str, String)]) {
        let mut c = self.exec(&self.lab, "dnsmasq");
        c.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--interface=br0",
            "--bind-interfaces",
        ])
        .arg(format!(
            "--dhcp-range=10.78.{subnet}.10,10.78.{subnet}.99,12h"
        ))
        .arg(format!("--dhcp-leasefile={}", leases.display()));
        for (mac, addr) in reserved {
            c.arg(format!("--dhcp-host={mac},{addr}"));
        }
        let child = c
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (dnsmasq-base)");
        self.children.push(child);
    }

    /// Host `n` (1-based) asks for a lease with a real dhclient, sending
    /// host name `name`; its script does nothing (the namespace's addresses
    /// stay as they are), and it is killed once leased (no release).
    fn lease(&self, n: usize, name: &str, dir: &Path) {
        let cf = dir.join(format!("dhclient{n}.conf"));
        let pf = dir.join(format!("dhclient{n}.pid"));
        std::fs::write(&cf, format!("send host-name \"{name}\";\n")).unwrap();
        let out = self
            .exec(&self.hosts[n - 1], "dhclient")
            .args(["-1", "-sf", "/bin/true", "-lf"])
            .arg(dir.join(format!("dhclient{n}.leases")))
            .arg("-pf")
            .arg(&pf)
            .arg("-cf")
            .arg(&cf)
            .arg("eth0")
            .output()
            .expect("dhclient (isc-dhcp-client)");
        assert!(
            out.status.success(),
            "dhclient: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Ok(pid) = std::fs::read_to_string(&pf) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).output();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for h in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", h]).output();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.lab])
            .output();
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn discovery(s: &Server) -> DiscoveryOut {
    s.admin().get("/api/v1/discovery").unwrap()
}

fn import(s: &Server, kind: &str, file: &Path, extra: &[&str]) -> String {
    let mut args = vec!["discovery", "import", "--kind", kind];
    args.extend(extra);
    let f = file.to_str().unwrap();
    args.push(f);
    ok(&s.cli(&args))
}

/// Acceptance: three managed hosts (CMDB records with their MACs and
/// addresses), two unmanaged ones (one running a TCP service), and a
/// leftover record with no host. A real nmap scan of the subnet plus
/// dnsmasq's real lease file yield exactly the two unmanaged hosts as
/// shadows (with MACs and the open port), no false shadow, the leftover
/// record as a ghost only after the threshold (injected clock); a re-scan
/// is idempotent; adopting one and dismissing the other empties the list.
fn scan_and_leases_find_the_unmanaged_hosts(backend: &str) {
    let subnet: u8 =
        20 + (std::process::id() % 100) as u8 + if backend == "sqlite" { 0 } else { 100 };
    let tag = format!("{}{}", &backend[..1], std::process::id() % 10000);
    let macs = [
        (1, "52:54:00:78:00:01"),
        (2, "52:54:00:78:00:02"),
        (3, "52:54:00:78:00:03"),
        (4, "52:54:00:78:00:04"),
        (5, "52:54:00:78:00:05"),
    ];
    let mut lab = Lab::new(&tag, subnet, &macs);
    let dir = tempfile::tempdir().unwrap();
    let addr = |n: u8| format!("10.78.{subnet}.1{n}");

    // The server's clock starts 15 days ago: the records are made then.
    let s = Server::start(backend);
    let start = s.clock.now();
    s.clock.set(start - SignedDuration::from_hours(24 * 15));
    let cmdb: Vec<serde_json::Value> = (1..=3u8)
        .map(|n| {
            serde_json::json!({"name": format!("web-0{n}"), "kind": "server",
                "macs": [macs[usize::from(n) - 1].1], "ips": [addr(n)]})
        })
        .chain(std::iter::once(
            serde_json::json!({"name": "old-db", "kind": "server",
            "ips": ["10.78.250.9"]}),
        ))
        .collect();
    let _: serde_json::Value = s
        .admin()
        .send("POST", "/api/v1/assets/import", &cmdb)
        .unwrap();

    // h5 runs a TCP service; dnsmasq leases h4 and h5 their addresses.
    lab.serve_http(&lab.hosts[4].clone(), &addr(5), 8080, dir.path());
    let leases = dir.path().join("dnsmasq.leases");
    let reserved: Vec<(&str, String)> = macs[3..].iter().map(|(n, m)| (*m, addr(*n))).collect();
    lab.dhcp_server(subnet, &leases, &reserved);
    for n in [4usize, 5] {
        lab.lease(n, &format!("kiosk-{n}"), dir.path());
    }
    wait_for("two leases in dnsmasq's file", || {
        std::fs::read_to_string(&leases).is_ok_and(|t| t.lines().count() >= 2)
    });

    // A real scan of the hosts' addresses, from the bridge.
    let scan = |name: &str| -> PathBuf {
        let xml = dir.path().join(name);
        let out = lab
            .exec(&lab.lab, "nmap")
            .args(["-n", "-T4", "-p", "22,80,443,8080", "-oX"])
            .arg(&xml)
            .arg(format!("10.78.{subnet}.10-20"))
            .output()
            .expect("nmap");
        assert!(
            out.status.success(),
            "nmap: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        xml
    };
    let xml = scan("scan1.xml");
    let text = import(&s, "nmap", &xml, &["--source", "lan"]);
    assert!(
        text.contains("5 machines, 3 matched to assets, 2 shadow candidates (2 new)"),
        "{text}"
    );
    let text = import(&s, "dnsmasq", &leases, &[]);
    assert!(text.contains("2 machines, 0 matched"), "{text}");

    let v = discovery(&s);
    let keys: Vec<&str> = v.shadows.iter().map(|x| x.key.as_str()).collect();
    assert_eq!(
        keys,
        vec!["mac:52:54:00:78:00:04", "mac:52:54:00:78:00:05"],
        "{v:#?}"
    );
    let h5 = &v.shadows[1];
    assert_eq!(h5.ips, vec![addr(5)]);
    assert_eq!(
        h5.ports.iter().map(|p| p.port).collect::<Vec<_>>(),
        vec![8080]
    );
    assert_eq!(h5.host_names, vec!["kiosk-5"]);
    assert_eq!(h5.sources, vec!["dnsmasq:dnsmasq.leases", "nmap:lan"]);
    assert!(
        v.shadows[0].ports.is_empty(),
        "h4 runs nothing: {:?}",
        v.shadows[0].ports
    );
    let mut matched: Vec<(String, String)> = v
        .matched
        .iter()
        .map(|m| (m.asset.clone(), m.rule.clone()))
        .collect();
    matched.sort();
    assert_eq!(
        matched,
        vec![
            ("web-01".into(), "mac".into()),
            ("web-02".into(), "mac".into()),
            ("web-03".into(), "mac".into())
        ]
    );
    assert!(
        v.ghosts.is_empty(),
        "nothing is older than the threshold yet: {:?}",
        v.ghosts
    );
    assert!(v.duplicates.is_empty() && v.conflicts.is_empty(), "{v:#?}");

    // Fifteen days on, a re-scan: the same view, nothing raised again, and
    // the leftover record is a ghost.
    s.clock.set(start);
    let xml = scan("scan2.xml");
    let text = import(&s, "nmap", &xml, &["--source", "lan"]);
    assert!(
        text.contains("5 machines, 3 matched to assets, 2 shadow candidates (0 new)"),
        "{text}"
    );
    let v2 = discovery(&s);
    assert_eq!(
        v2.shadows
            .iter()
            .map(|x| x.key.as_str())
            .collect::<Vec<_>>(),
        keys
    );
    assert_eq!(
        v2.ghosts
            .iter()
            .map(|g| g.asset.as_str())
            .collect::<Vec<_>>(),
        vec!["old-db"]
    );
    let l: Vec<serde_json::Value> = serde_json::from_str(&ok(&s.cli(&[
        "assets",
        "list",
        "--liveness",
        "ghost",
        "--format",
        "json",
    ])))
    .unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["name"], "old-db");
    // Stored, not counted: the observations table holds the latest scan once.
    let audit: patchbay_proto::api::List<serde_json::Value> =
        s.admin().get("/api/v1/audit?limit=500").unwrap();
    let actions: Vec<&str> = audit
        .items
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "asset.shadow_found")
            .count(),
        2
    );
    assert_eq!(actions.iter().filter(|a| **a == "asset.ghost").count(), 1);
    assert_eq!(
        actions.iter().filter(|a| **a == "discovery.import").count(),
        3
    );

    // The coverage report counts them: 4 records (none seen by an agent in
    // 24 h: they are agentless), 2 shadows, 1 ghost; 0 of 6 machines.
    let c: serde_json::Value = s.admin().get("/api/v1/reports/coverage").unwrap();
    assert_eq!(c["known"], 4, "{c}");
    assert_eq!(c["shadows"], 2, "{c}");
    assert_eq!(c["ghosts"], serde_json::json!(["old-db"]), "{c}");
    assert_eq!(c["seen_24h_pct_of_all"], 0.0, "{c}");
    let html = ok(&s.cli(&["report", "coverage", "--format", "html"]));
    assert!(
        html.contains("2 machine(s) with no record (shadow) and 1 record(s)"),
        "{html}"
    );
    // As of a past date there is no discovery count (not kept).
    let past = (start - SignedDuration::from_hours(1)).to_string();
    let c: serde_json::Value = s
        .admin()
        .get(&format!("/api/v1/reports/coverage?as_of={past}"))
        .unwrap();
    assert!(c.get("shadows").is_none(), "{c}");

    // Adopt h5, dismiss h4: nothing left, and the next scan matches h5's record.
    let text = ok(&s.cli(&[
        "discovery",
        "adopt",
        "mac:52:54:00:78:00:05",
        "--owner",
        "facilities",
        "--enroll",
    ]));
    assert!(
        text.contains("adopted mac:52:54:00:78:00:05 as asset kiosk-5"),
        "{text}"
    );
    assert!(text.contains("--enroll-token pbe_"), "{text}");
    let audit: patchbay_proto::api::List<serde_json::Value> =
        s.admin().get("/api/v1/audit?limit=500").unwrap();
    assert!(
        audit
            .items
            .iter()
            .any(|e| e["action"] == "asset.approve_enrollment" && e["target"] == "asset:kiosk-5"),
        "the enrolment task approves kiosk-5's enrolment"
    );
    let out = s.cli(&["discovery", "dismiss", "mac:52:54:00:78:00:04"]);
    assert!(!out.status.success(), "a dismissal needs a reason");
    ok(&s.cli(&[
        "discovery",
        "dismiss",
        "mac:52:54:00:78:00:04",
        "--reason",
        "lab printer, vendor-managed",
    ]));
    let v3 = discovery(&s);
    assert!(v3.shadows.is_empty(), "{:?}", v3.shadows);
    assert_eq!(v3.dismissed.len(), 1);
    assert!(
        v3.dismissed[0]
            .dismissed
            .as_deref()
            .unwrap_or("")
            .contains("vendor-managed")
    );
    let m: Vec<(&str, &str)> = v3
        .matched
        .iter()
        .map(|m| (m.asset.as_str(), m.rule.as_str()))
        .collect();
    assert!(m.contains(&("kiosk-5", "mac")), "{m:?}");
    // A malformed file is refused naming the file and the position; nothing stored.
    let bad = dir.path().join("bad.xml");
    std::fs::write(
        &bad,
        "<nmaprun>\n<host><address addr=\"10.0.0.999\" addrtype=\"ipv4\"/></host></nmaprun>",
    )
    .unwrap();
    let out = s.cli(&[
        "discovery",
        "import",
        "--kind",
        "nmap",
        "--source",
        "lan",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.xml") && err.contains("line 2, column 1"),
        "{err}"
    );
    assert_eq!(
        discovery(&s).matched.len(),
        v3.matched.len(),
        "the refused file replaced nothing"
    );
}

/// Acceptance: the cloud inventories and lease fixtures (in the providers'
/// documented formats; provenance in fixtures/discovery/README.md)
/// reconcile with the expected matches, a duplicate (one MAC on two
/// records) and a conflict (one address, two MACs).
fn cloud_and_lease_fixtures_reconcile(backend: &str) {
    let s = Server::start(backend);
    let fx = crate::support::fixtures().join("discovery");
    let cmdb = serde_json::json!([
        {"name": "billing-api", "kind": "cloud-instance", "cloud_id": "i-0abcd1234ef567890"},
        {"name": "billing-api-old", "kind": "cloud-instance", "macs": ["0e:1a:2b:3c:4d:5e"]},
        {"name": "reporting", "kind": "cloud-instance", "cloud_id": "1f6a3c2e-8d4b-4e6f-9a7b-2c5d8e1f0a3b"},
        {"name": "etl-worker", "kind": "cloud-instance", "cloud_id": "6218317862513456789"},
    ]);
    let _: serde_json::Value = s
        .admin()
        .send("POST", "/api/v1/assets/import", &cmdb)
        .unwrap();
    for (kind, file) in [
        ("aws", "aws-ec2-describe-instances.json"),
        ("azure", "azure-vm-list-d.json"),
        ("gcp", "gcloud-compute-instances-list.json"),
        ("dhcpd", "dhcpd.leases"),
        ("dnsmasq", "dnsmasq.leases"),
    ] {
        import(&s, kind, &fx.join(file), &[]);
    }
    let v = discovery(&s);
    let mut matched: Vec<(String, String, String)> = v
        .matched
        .iter()
        .map(|m| (m.asset.clone(), m.rule.clone(), m.source.clone()))
        .collect();
    matched.sort();
    assert_eq!(
        matched,
        vec![
            (
                "billing-api".into(),
                "cloud-id".into(),
                "aws:aws-ec2-describe-instances.json".into()
            ),
            (
                "etl-worker".into(),
                "cloud-id".into(),
                "gcp:gcloud-compute-instances-list.json".into()
            ),
            (
                "reporting".into(),
                "cloud-id".into(),
                "azure:azure-vm-list-d.json".into()
            ),
        ],
        "{v:#?}"
    );
    // billing-api (by its instance id) and billing-api-old (by the MAC
    // the same instance reports): two records, one machine.
    assert_eq!(v.duplicates.len(), 1, "{:?}", v.duplicates);
    assert_eq!(
        v.duplicates[0].assets,
        vec!["billing-api", "billing-api-old"]
    );
    assert_eq!(v.duplicates[0].by, "mac 0e:1a:2b:3c:4d:5e");
    // 192.168.10.23: dhcpd leased it to one MAC, dnsmasq to another.
    assert_eq!(v.conflicts.len(), 1, "{:?}", v.conflicts);
    assert_eq!(v.conflicts[0].ip, "192.168.10.23");
    assert_eq!(
        v.conflicts[0].macs,
        vec!["00:16:3e:5a:01:23", "00:16:3e:5a:09:99"]
    );
    // `assets list --liveness duplicate|shadow` says the same.
    let l: Vec<serde_json::Value> = serde_json::from_str(&ok(&s.cli(&[
        "assets",
        "list",
        "--liveness",
        "duplicate",
        "--format",
        "json",
    ])))
    .unwrap();
    let names: Vec<&str> = l.iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, vec!["billing-api", "billing-api-old"]);
    let l: Vec<serde_json::Value> = serde_json::from_str(&ok(&s.cli(&[
        "assets",
        "list",
        "--liveness",
        "shadow",
        "--format",
        "json",
    ])))
    .unwrap();
    assert_eq!(l.len(), v.shadows.len());
    // The stopped AWS instance and the deallocated Azure VM are not seen;
    // the other machines are shadows.
    let keys: Vec<&str> = v.shadows.iter().map(|x| x.key.as_str()).collect();
    assert!(!keys.iter().any(|k| k.contains("i-0deadbeef")), "{keys:?}");
    assert!(keys.contains(&"mac:00:16:3e:5a:01:23"), "{keys:?}");
    assert!(keys.contains(&"mac:00:16:3e:5a:09:99"), "{keys:?}");
}

/// Acceptance (passive discovery): the server runs on the bridge's host with
/// an agent of its own, three hosts run real agents (`--host-network`: a
/// fake root, the namespace's own network), two run none; managed hosts
/// talk to the unmanaged ones (a ping, a DHCP lease from the server's
/// host). With no scan at all, the agents' neighbour tables yield exactly
/// the two unmanaged hosts as shadows, every managed host matched by MAC
/// and no false shadow; a real nmap scan then adds the open port to the
/// same candidate.
fn neighbour_tables_reveal_the_unmanaged_hosts(backend: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(patchbay_store::testing::fresh_url(backend));
    let subnet: u8 =
        20 + (std::process::id() % 100) as u8 + if backend == "sqlite" { 50 } else { 130 } % 200;
    let tag = format!("n{}{}", &backend[..1], std::process::id() % 1000);
    let macs = [
        (1, "52:54:00:79:00:01"),
        (2, "52:54:00:79:00:02"),
        (3, "52:54:00:79:00:03"),
        (4, "52:54:00:79:00:04"),
        (5, "52:54:00:79:00:05"),
    ];
    let mut lab = Lab::new(&tag, subnet, &macs);
    let addr = |n: u8| format!("10.78.{subnet}.1{n}");
    let data = tempfile::tempdir().unwrap();
    let server = crate::support::ServeProcess::start_in(
        Some(&lab.lab),
        &format!("10.78.{subnet}.1:0"),
        data.path(),
        &["--db", &db],
        "info",
        &[],
    );
    let admin = std::fs::read_to_string(data.path().join("admin.token")).unwrap();
    let admin = admin.trim().to_string();
    let labns = lab.lab.clone();
    let cli = |args: &[&str]| -> String {
        ok(&Command::new("ip")
            .args(["netns", "exec", &labns, crate::support::PATCHBAY])
            .args(args)
            .env("PATCHBAY_URL", &server.url)
            .env("PATCHBAY_TOKEN", &admin)
            .env_remove("RUST_LOG")
            .output()
            .unwrap())
    };
    let token = cli(&["enroll-token", "create", "--uses", "10"]);
    let token = token
        .split_whitespace()
        .find(|w| w.starts_with("pbe_"))
        .expect("an enrolment token")
        .to_string();
    // h5 serves TCP; dnsmasq on the server's host leases h4 and h5 an address.
    let dir = tempfile::tempdir().unwrap();
    lab.serve_http(&lab.hosts[4].clone(), &addr(5), 8080, dir.path());
    let reserved: Vec<(&str, String)> = macs[3..].iter().map(|(n, m)| (*m, addr(*n))).collect();
    lab.dhcp_server(subnet, &dir.path().join("leases"), &reserved);
    for n in [4usize, 5] {
        lab.lease(n, &format!("kiosk-{n}"), dir.path());
    }
    // h1 talks to h4 and h5 (a TCP connection attempt each: h5 accepts,
    // h4 refuses; either way their MACs land in h1's neighbour table).
    for n in [4u8, 5] {
        let out = lab
            .exec(&lab.hosts[0], "python3")
            .args([
                "-c",
                &format!(
                    "import socket\ntry:\n socket.create_connection(('{}', 8080), 5).close()\nexcept ConnectionRefusedError:\n pass",
                    addr(n)
                ),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "connecting to {}: {}",
            addr(n),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // h2 offers a service on every address, and one on loopback only.
    let h2 = lab.hosts[1].clone();
    lab.serve_http(&h2, "0.0.0.0", 9090, dir.path());
    lab.serve_http(&h2, "127.0.0.1", 9091, dir.path());
    wait_for("h2's listener", || {
        lab.exec(&h2, "cat")
            .arg("/proc/net/tcp")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(":2382 00000000:0000 0A"))
    });
    // Agents: the server's host (br0's MAC) and h1..h3, each with a root of its own.
    let mut roots = Vec::new();
    let agent_in = |ns: &str, name: &str, roots: &mut Vec<tempfile::TempDir>| {
        let root = crate::support::deb_root(&crate::support::minbase_before());
        std::fs::write(root.path().join("etc/hostname"), format!("{name}\n")).unwrap();
        let state = tempfile::tempdir().unwrap();
        let out = lab
            .exec(ns, crate::support::agent().to_str().unwrap())
            .arg("--server")
            .arg(&server.url)
            .arg("--state-dir")
            .arg(state.path())
            .args([
                "--once",
                "--no-pending-updates",
                "--host-network",
                "--enroll-token",
                &token,
                "--root",
            ])
            .arg(root.path())
            .env_remove("PATCHBAY_ENROLL_TOKEN")
            .output()
            .unwrap();
        ok(&out);
        roots.push(root);
        roots.push(state);
    };
    // The hosts' agents first (their traffic fills the server host's
    // table), then the server host's, then each host's second check-in
    // (its table now holds the server host it talked to).
    for n in 1..=3usize {
        agent_in(&lab.hosts[n - 1].clone(), &format!("agent-{n}"), &mut roots);
    }
    agent_in(&lab.lab.clone(), "patchbay-host", &mut roots);
    for n in 1..=3usize {
        let state = &roots[2 * (n - 1) + 1];
        let root = &roots[2 * (n - 1)];
        ok(&lab
            .exec(&lab.hosts[n - 1], crate::support::agent().to_str().unwrap())
            .arg("--server")
            .arg(&server.url)
            .arg("--state-dir")
            .arg(state.path())
            .args(["--once", "--no-pending-updates", "--host-network", "--root"])
            .arg(root.path())
            .output()
            .unwrap());
    }
    let v: DiscoveryOut = serde_json::from_str(&cli(&[
        "discovery",
        "list",
        "--matched",
        "--format",
        "json",
    ]))
    .unwrap();
    let keys: Vec<&str> = v.shadows.iter().map(|x| x.key.as_str()).collect();
    assert_eq!(
        keys,
        vec!["mac:52:54:00:79:00:04", "mac:52:54:00:79:00:05"],
        "{v:#?}"
    );
    assert!(
        v.shadows[0]
            .sources
            .contains(&"neighbour:agent-1".to_string()),
        "{:?}",
        v.shadows[0].sources
    );
    assert!(
        v.shadows[1]
            .sources
            .contains(&"neighbour:patchbay-host".to_string()),
        "{:?}",
        v.shadows[1].sources
    );
    assert_eq!(v.shadows[1].ips, vec![addr(5)]);
    // Every managed host another one saw is matched to its asset by MAC.
    let mut matched: Vec<&str> = v
        .matched
        .iter()
        .filter(|m| m.rule == "mac")
        .map(|m| m.asset.as_str())
        .collect();
    matched.sort();
    matched.dedup();
    assert_eq!(
        matched,
        vec!["agent-1", "agent-2", "agent-3", "patchbay-host"],
        "{v:#?}"
    );
    assert!(v.duplicates.is_empty() && v.conflicts.is_empty(), "{v:#?}");
    // agent-2 reports its listening socket (not the loopback-only one) and its MAC.
    let d: serde_json::Value =
        serde_json::from_str(&cli(&["assets", "show", "agent-2", "--format", "json"])).unwrap();
    assert_eq!(d["listening"], serde_json::json!(["tcp/9090"]), "{d}");
    assert_eq!(d["macs"], serde_json::json!([macs[1].1]), "{d}");
    // A real scan adds the open port to the same candidate.
    let xml = dir.path().join("scan.xml");
    let out = lab
        .exec(&lab.lab, "nmap")
        .args(["-n", "-T4", "-p", "22,8080", "-oX"])
        .arg(&xml)
        .arg(format!("10.78.{subnet}.10-20"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nmap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cli(&[
        "discovery",
        "import",
        "--kind",
        "nmap",
        "--source",
        "lan",
        xml.to_str().unwrap(),
    ]);
    let v: DiscoveryOut =
        serde_json::from_str(&cli(&["discovery", "list", "--format", "json"])).unwrap();
    assert_eq!(
        v.shadows.iter().map(|x| x.key.as_str()).collect::<Vec<_>>(),
        keys
    );
    assert_eq!(
        v.shadows[1]
            .ports
            .iter()
            .map(|p| p.port)
            .collect::<Vec<_>>(),
        vec![8080]
    );
    assert!(v.shadows[1].sources.contains(&"nmap:lan".to_string()));
    drop(server);
}

/// SQLite only: the server runs inside the lab's namespace, whose loopback
/// is not the one the test PostgreSQL listens on (the other discovery tests
/// cover both engines; the `network` column is written by every check-in).
#[test]
fn neighbour_tables_reveal_the_unmanaged_hosts_sqlite() {
    neighbour_tables_reveal_the_unmanaged_hosts("sqlite")
}

crate::both_backends!(
    scan_and_leases_find_the_unmanaged_hosts,
    cloud_and_lease_fixtures_reconcile,
    external_scan_evidence_re_tiers_the_asset
);

/// Acceptance: a scan marked external that reaches a port on an asset
/// recorded as `internal` raises an exposure mismatch naming the port;
/// accepting it re-tiers that asset's findings. The oracle is the risk
/// model's documented table (docs: "CVSS ≥ p0_cvss_internet on an
/// internet-facing asset → P0", "CVSS ≥ p2_cvss → P2") and its rank
/// formula (exposure weighs 4 when internal, 10 when internet-facing: every
/// score rises by exactly 6).
fn external_scan_evidence_re_tiers_the_asset(backend: &str) {
    let s = Server::start(backend);
    let _root = s.host_with(&crate::support::minbase_before());
    s.import_feeds(&["feeds/osv/Debian-12-derived.osv.zip"]);
    // Debian's records carry no CVSS: with `missing_cvss = "assume"` every
    // finding is "assumed 7.0" (no distribution severity). A policy whose
    // internet-facing P0 threshold is 7.0 makes exposure decide.
    let policy = "version = 1\n[tiers]\np0_cvss_internet = 7.0\nmissing_cvss = \"assume\"\n";
    let _: serde_json::Value = s
        .admin()
        .post_raw("/api/v1/policy", "application/toml", policy.as_bytes())
        .unwrap();
    let assets: patchbay_proto::api::List<patchbay_proto::api::AssetSummary> =
        s.admin().get("/api/v1/assets").unwrap();
    let host = assets.items[0].name.clone();
    assert_eq!(assets.items[0].exposure, "internal");
    // The CMDB knows its public address.
    let cmdb = serde_json::json!([{"name": host, "kind": "server", "ips": ["198.51.100.20"]}]);
    let _: serde_json::Value = s
        .admin()
        .send("POST", "/api/v1/assets/import", &cmdb)
        .unwrap();
    let worklist = |s: &Server| -> Vec<patchbay_proto::api::WorkItem> {
        let l: patchbay_proto::api::List<patchbay_proto::api::WorkItem> =
            s.admin().get("/api/v1/worklist?limit=10000").unwrap();
        l.items
    };
    let before = worklist(&s);
    assert!(!before.is_empty());
    assert!(
        before.iter().all(|w| w.tier == "P2"),
        "{:?}",
        before.iter().map(|w| &w.tier).collect::<Vec<_>>()
    );

    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("outside.xml");
    std::fs::write(
        &xml,
        r#"<?xml version="1.0"?><!DOCTYPE nmaprun><nmaprun scanner="nmap" start="1765000000">
<host><status state="up" reason="syn-ack"/><address addr="198.51.100.20" addrtype="ipv4"/>
<ports><port protocol="tcp" portid="443"><state state="open" reason="syn-ack"/><service name="https"/></port>
<port protocol="tcp" portid="22"><state state="filtered" reason="no-response"/></port></ports></host>
</nmaprun>"#,
    )
    .unwrap();
    // The same scan not marked external is no evidence.
    import(&s, "nmap", &xml, &["--source", "outside"]);
    assert!(discovery(&s).exposure.is_empty());
    import(&s, "nmap", &xml, &["--source", "outside", "--external"]);
    let v = discovery(&s);
    assert_eq!(v.exposure.len(), 1, "{v:#?}");
    assert_eq!(v.exposure[0].asset, host);
    assert_eq!(v.exposure[0].recorded, "internal");
    assert_eq!(v.exposure[0].ports, vec!["443/tcp"]);
    let text = ok(&s.cli(&["discovery", "list"]));
    assert!(text.contains("reached 443/tcp"), "{text}");
    // Findings are unchanged until someone accepts the evidence.
    assert_eq!(
        worklist(&s).iter().map(|w| w.score).collect::<Vec<_>>(),
        before.iter().map(|w| w.score).collect::<Vec<_>>()
    );

    ok(&s.cli(&["discovery", "accept-exposure", &host]));
    let after = worklist(&s);
    assert_eq!(after.len(), before.len());
    let before_by: std::collections::BTreeMap<String, f64> = before
        .iter()
        .map(|w| (w.finding.id.clone(), w.score))
        .collect();
    for w in &after {
        assert_eq!(w.tier, "P0", "{:?}", w.reasons);
        let b = before_by[&w.finding.id];
        assert!(
            (w.score - b - 6.0).abs() < 0.011,
            "score {} after {b}",
            w.score
        );
    }
    assert!(
        discovery(&s).exposure.is_empty(),
        "accepted: no mismatch left"
    );
    let asset: patchbay_proto::api::AssetDetail =
        s.admin().get(&format!("/api/v1/assets/{host}")).unwrap();
    assert_eq!(asset.summary.exposure, "internet-facing");
    // A second accept has nothing to accept.
    assert!(
        !s.cli(&["discovery", "accept-exposure", &host])
            .status
            .success()
    );
}
