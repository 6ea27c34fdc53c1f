//! Acceptance (issue 20, items 1–2): CSAF 2.0 documents import through
//! `patchbay feeds import` (local and upload) and agentless assets with
//! vendor products are matched against them, on both engines.
//!
//! Real data: the OASIS examples in `fixtures/feeds/csaf/` (provenance in its
//! README). The Cisco document lists 259 affected IOS / IOS XE releases and a
//! workaround, but no fixed release; the fixed-release case is the same real
//! document with one release added to its tree as `fixed` and a `vendor_fix`
//! remediation (built in [`cisco_with_fix`], said so there), and the BSI
//! example, which has a real `fixed` release and `vendor_fix` URL.

use crate::support::{Server, db_text, fixtures, ok};
use patchbay_proto::api::{FindingOut, List};
use serde_json::{Value, json};

fn findings(s: &Server, asset: &str) -> Vec<FindingOut> {
    let l: List<FindingOut> = s
        .admin()
        .get(&format!("/api/v1/findings?asset={asset}"))
        .unwrap();
    l.items
}

fn import_assets(s: &Server, body: Value) {
    let _: Value = s
        .admin()
        .send("POST", "/api/v1/assets/import", &body)
        .unwrap();
}

/// Every `service_pack` / `product_version` leaf name under vendor Cisco,
/// product IOS, read from the raw JSON (independently of the parser), with
/// the status lists of vulnerability 0.
fn ios_releases(doc: &Value) -> (Vec<(String, String)>, Vec<String>) {
    fn walk(b: &Value, ios: bool, out: &mut Vec<(String, String)>) {
        for x in b.as_array().into_iter().flatten() {
            let here = ios || (x["category"] == "product_name" && x["name"] == "IOS");
            if here && let Some(id) = x["product"]["product_id"].as_str() {
                out.push((x["name"].as_str().unwrap().to_owned(), id.to_owned()));
            }
            walk(&x["branches"], here, out);
        }
    }
    let mut out = Vec::new();
    walk(&doc["product_tree"]["branches"], false, &mut out);
    let affected = doc["vulnerabilities"][0]["product_status"]["known_affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    (out, affected)
}

/// The real Cisco document plus release `15.2(7)E` of train `15.2E` as
/// `fixed`, and a `vendor_fix` remediation naming every affected release
/// (derived for this test: the published document has no fixed release).
fn cisco_with_fix(doc: &Value) -> Value {
    let mut d = doc.clone();
    let ios = d["product_tree"]["branches"][0]["branches"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|b| b["name"] == "IOS")
        .unwrap();
    let train = ios["branches"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|b| b["name"] == "15.2E")
        .unwrap();
    train["branches"].as_array_mut().unwrap().push(json!({
        "category": "service_pack", "name": "15.2(7)E",
        "product": {"name": "Cisco IOS 15.2(7)E", "product_id": "TEST-FIXED-1527E"}
    }));
    let v = &mut d["vulnerabilities"][0];
    v["product_status"]["fixed"] = json!(["TEST-FIXED-1527E"]);
    let affected = v["product_status"]["known_affected"].clone();
    v["remediations"].as_array_mut().unwrap().push(json!({
        "category": "vendor_fix",
        "details": "Upgrade to a fixed release.",
        "url": "https://tools.cisco.com/security/center/content/CiscoSecurityAdvisory/cisco-sa-20180328-smi2",
        "product_ids": affected
    }));
    d["document"]["tracking"]["version"] = json!("3.0.1-test");
    d
}

fn agentless_cisco_devices_are_matched(backend: &str) {
    let s = Server::start(backend);
    let path = fixtures().join("feeds/csaf/cisco-sa-20180328-smi2.json");
    let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let (releases, affected) = ios_releases(&doc);
    let id_of = |r: &str| {
        releases
            .iter()
            .find(|(n, _)| n == r)
            .map(|(_, i)| i.clone())
    };
    // Independent facts about the real document.
    let vulnerable = "15.2(4)E";
    assert!(affected.contains(&id_of(vulnerable).unwrap()));
    let unlisted = "15.2(7)E";
    assert_eq!(id_of(unlisted), None, "15.2(7)E is not in the document");

    import_assets(
        &s,
        json!([
            {"name": "sw-access-1", "kind": "network-device",
             "products": [{"vendor": "Cisco", "product": "IOS", "version": vulnerable}]},
            {"name": "sw-access-2", "kind": "network-device",
             "products": [{"vendor": "cisco", "product": "ios", "version": unlisted}]},
            {"name": "conv-app", "kind": "application",
             "products": [{"vendor": "CSAF Tools", "product": "CVRF-CSAF-Converter", "version": "1.0.0-dev1",
                           "cpe": "cpe:2.3:a:csaf-tools:cvrf-csaf-converter:1.0.0-dev1:*:*:*:*:*:*:*"}]},
            {"name": "conv-app-fixed", "kind": "application",
             "products": [{"vendor": "CSAF Tools", "product": "CVRF-CSAF-Converter", "version": "1.0.0-rc2"}]}
        ]),
    );
    assert!(
        findings(&s, "sw-access-1").is_empty(),
        "nothing before the import"
    );

    // Local import of the real documents.
    let out = s.import_feeds(&[
        "feeds/csaf/cisco-sa-20180328-smi2.json",
        "feeds/csaf/bsi-2022-0001.json",
    ]);
    assert!(out.contains("CSAF: 1 documents stored"), "{out}");
    let f = findings(&s, "sw-access-1");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].advisory, "cisco-sa-20180328-smi2");
    assert_eq!(f[0].package, "Cisco IOS");
    assert_eq!(f[0].installed_version, vulnerable);
    assert_eq!(f[0].cves, ["CVE-2018-0171"]);
    assert_eq!(f[0].cvss, Some(9.8));
    assert_eq!(
        f[0].fixed_version, None,
        "the published document lists no fixed release"
    );
    assert!(findings(&s, "sw-access-2").is_empty());
    // The remediation: the real document's workaround.
    let m: Value = s.admin().get("/api/v1/csaf/matches/sw-access-1").unwrap();
    assert_eq!(
        m["items"][0]["remediations"][0]["category"], "workaround",
        "{m}"
    );
    assert!(
        m["items"][0]["remediations"][0]["details"]
            .as_str()
            .unwrap()
            .contains("no vstack")
    );

    // KEV's vendor/product entries: exploited vulnerabilities of "Cisco IOS"
    // that no imported advisory assesses are listed (KEV has no versions, so
    // they are not findings). Expected set read from the raw catalog.
    let kev_rel = "feeds/kev/known_exploited_vulnerabilities-2026.08.07.json.gz";
    s.import_feeds(&[kev_rel]);
    let raw: Value = {
        let gz = std::fs::read(fixtures().join(kev_rel)).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text)
            .unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let mut want: Vec<String> = raw["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| {
            v["vendorProject"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case("cisco")
                && v["product"].as_str().unwrap().eq_ignore_ascii_case("ios")
                && v["cveID"] != "CVE-2018-0171"
        })
        .map(|v| v["cveID"].as_str().unwrap().to_owned())
        .collect();
    want.sort();
    assert!(!want.is_empty());
    let m: Value = s.admin().get("/api/v1/csaf/matches/sw-access-1").unwrap();
    let mut got: Vec<String> = m["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["document"] == "CISA KEV")
        .map(|i| i["cves"][0].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(
        findings(&s, "sw-access-1").len(),
        1,
        "KEV entries are not findings"
    );

    // The same through the CLI, as a table.
    let text = ok(&s.cli(&["csaf", "matches", "sw-access-1"]));
    assert!(
        text.contains("cisco-sa-20180328-smi2") && text.contains("workaround: "),
        "{text}"
    );
    assert!(
        text.contains("CISA KEV") && text.contains("unassessed: "),
        "{text}"
    );

    // BSI: a real fixed release with its vendor-fix URL, matched by CPE.
    let f = findings(&s, "conv-app");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].fixed_version.as_deref(), Some("1.0.0-rc2"));
    assert!(findings(&s, "conv-app-fixed").is_empty());
    let m: Value = s.admin().get("/api/v1/csaf/matches/conv-app").unwrap();
    let rem = &m["items"][0]["remediations"][0];
    assert_eq!(rem["category"], "vendor_fix");
    assert_eq!(
        rem["url"],
        "https://github.com/csaf-tools/CVRF-CSAF-Converter/releases/tag/1.0.0-rc2"
    );

    // The CSV form of an asset import: the vendor/product/version/cpe columns.
    let csv = "name,kind,vendor,product,version,cpe\nsw-csv,network-device,Cisco,IOS,15.2(4)E,\n";
    let _: Value = s
        .admin()
        .post_raw("/api/v1/assets/import", "text/csv", csv.as_bytes())
        .unwrap();
    let f = findings(&s, "sw-csv");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].advisory, "cisco-sa-20180328-smi2");

    // An appliance with an OS and packages too: its OSV assessment (on
    // every import) leaves the CSAF finding alone, and vice versa.
    let appliance = json!([{"name": "fw-debian", "os": "debian:12",
        "packages": [{"name": "zlib1g", "version": "1:1.2.13.dfsg-1"}],
        "products": [{"vendor": "Cisco", "product": "IOS", "version": vulnerable}]}]);
    import_assets(&s, appliance.clone());
    import_assets(&s, appliance);
    let f = findings(&s, "fw-debian");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].advisory, "cisco-sa-20180328-smi2");

    // The worklist carries it like any other finding.
    let w: Value = s.admin().get("/api/v1/worklist?limit=100").unwrap();
    let line = w["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["asset"] == "sw-access-1")
        .unwrap_or_else(|| panic!("{w}"));
    assert_eq!(line["advisory"], "cisco-sa-20180328-smi2");
    // CVE-2018-0171 is in KEV: the CSAF finding is P0 like any other.
    assert_eq!(line["tier"], "P0", "{line}");
    assert_eq!(line["kev"], true);
    assert_eq!(line["cvss_source"], "advisory cisco-sa-20180328-smi2, v3.0");

    // A new version of the document (uploaded through the API) with a fixed
    // release: the finding now carries it; the device moved to it has none.
    let dir = tempfile::tempdir().unwrap();
    let fixed = dir.path().join("cisco-sa-20180328-smi2-fix.json");
    std::fs::write(&fixed, serde_json::to_vec(&cisco_with_fix(&doc)).unwrap()).unwrap();
    let out = ok(&s.cli(&["feeds", "import", fixed.to_str().unwrap()]));
    assert!(out.contains("CSAF: 1 documents stored"), "{out}");
    let f = findings(&s, "sw-access-1");
    assert_eq!(f[0].fixed_version.as_deref(), Some("15.2(7)E"), "{f:?}");
    // The patch catalog: a network-device patch to the fixed release.
    let p: Value = s.admin().get("/api/v1/patches").unwrap();
    let patch = p["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["package"] == "Cisco IOS")
        .unwrap_or_else(|| panic!("{p}"));
    assert_eq!(patch["family"], "network-device", "{patch}");
    assert_eq!(patch["fixed_version"], "15.2(7)E");
    assert!(
        patch["assets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "sw-access-1")
    );
    import_assets(
        &s,
        json!([{"name": "sw-access-1", "kind": "network-device",
                "products": [{"vendor": "Cisco", "product": "IOS", "version": "15.2(7)E"}]}]),
    );
    let all: List<FindingOut> = s
        .admin()
        .get("/api/v1/findings?asset=sw-access-1&all=true")
        .unwrap();
    assert_eq!(all.items.len(), 1);
    assert!(
        findings(&s, "sw-access-1").is_empty(),
        "upgraded to the fixed release: resolved"
    );

    // A malformed document: refused naming the file and the JSON path;
    // nothing of it stored.
    let text = std::fs::read_to_string(&path).unwrap();
    let broken = dir.path().join("cisco-broken.json");
    std::fs::write(
        &broken,
        text.replacen(
            "\"known_affected\": [",
            "\"known_affected\": [\"NOPE-1\",",
            1,
        )
        .replace("cisco-sa-20180328-smi2", "cisco-sa-broken"),
    )
    .unwrap();
    let before = db_text(&s.db_url, "SELECT id FROM csaf_documents ORDER BY id");
    let feeds_before = db_text(&s.db_url, "SELECT source FROM feeds");
    for out in [
        s.cli(&["feeds", "import", broken.to_str().unwrap()]),
        std::process::Command::new(env!("CARGO_BIN_EXE_patchbay"))
            .args(["feeds", "import", "--db", &s.db_url, "--data-dir"])
            .arg(&s.data_dir)
            .arg(&broken)
            .output()
            .unwrap(),
    ] {
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cisco-broken.json"), "{err}");
        assert!(
            err.contains("vulnerabilities[0].product_status.known_affected[0]"),
            "{err}"
        );
    }
    assert_eq!(
        db_text(&s.db_url, "SELECT id FROM csaf_documents ORDER BY id"),
        before
    );
    assert_eq!(db_text(&s.db_url, "SELECT source FROM feeds"), feeds_before);
}

fn worklist_assets(s: &Server) -> Vec<String> {
    let w: Value = s.admin().get("/api/v1/worklist?limit=1000").unwrap();
    let mut out: Vec<String> = w["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["asset"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

/// The real VEX use-case document for DEF 1.0 (`known_affected`), turned
/// into a coordinator's statement about ABC 4.0 to 4.2 (derived for this
/// test: product renamed to ABC, its version a `vers` range, a new tracking
/// id), so that ABC devices have a finding the vendor's VEX then answers.
fn coordinator_abc(a001: &Value) -> Value {
    let mut d = a001.clone();
    d["document"]["tracking"]["id"] = json!("TEST-COORD-ABC-LOG4J");
    let name = &mut d["product_tree"]["branches"][0]["branches"][0];
    name["name"] = json!("ABC");
    let leaf = &mut name["branches"][0];
    leaf["category"] = json!("product_version_range");
    leaf["name"] = json!("vers:generic/>=4.0|<=4.2");
    leaf["product"]["name"] = json!("Example Company ABC 4.0 - 4.2");
    d
}

fn exceptions(s: &Server) -> Vec<Value> {
    let l: Value = s.admin().get("/api/v1/exceptions?all=true").unwrap();
    l["items"].as_array().unwrap().clone()
}

/// Acceptance (issue 20, item 3): a CSAF `known_not_affected` statement
/// removes exactly the findings of its product and CVE, as an audited
/// `not_affected` exception shown in triage, the audit log and the evidence
/// bundle; a re-import without it, or an operator's revocation, brings them
/// back; an operator VEX needs the approve permission and a justification.
fn vex_statements_suppress_exactly_their_findings(backend: &str) {
    let s = Server::start(backend);
    let read = |p: &str| -> Value {
        serde_json::from_slice(&std::fs::read(fixtures().join(p)).unwrap()).unwrap()
    };
    let a001 = read("feeds/csaf/vex/2022-evd-uc-01-a-001.json");
    let na001 = read("feeds/csaf/vex/2022-evd-uc-01-na-001.json");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, v: &Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let coord = write("coord.json", &coordinator_abc(&a001));
    import_assets(
        &s,
        json!([
            {"name": "abc-42", "products": [{"vendor": "Example Company", "product": "ABC", "version": "4.2"}]},
            {"name": "abc-41", "products": [{"vendor": "Example Company", "product": "ABC", "version": "4.1"}]},
            {"name": "def-10", "products": [{"vendor": "Example Company", "product": "DEF", "version": "1.0"}]}
        ]),
    );
    ok(&s.cli(&["feeds", "import", &coord]));
    // Uploaded (the server's clock decides when an exception starts).
    let upload =
        |rel: &str| ok(&s.cli(&["feeds", "import", fixtures().join(rel).to_str().unwrap()]));
    upload("feeds/csaf/vex/2022-evd-uc-01-a-001.json");
    assert_eq!(worklist_assets(&s), ["abc-41", "abc-42", "def-10"]);

    // The three findings pass their SLA: breaches raised by the SLA watch.
    let audit_of = |action: &str| -> Vec<Value> {
        let a = ok(&s.cli(&["audit", "list", "--limit", "10000", "--format", "json"]));
        let a: Value = serde_json::from_str(&a).unwrap();
        a.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action)
            .cloned()
            .collect()
    };
    s.clock.advance(jiff::SignedDuration::from_hours(24 * 60));
    s.run_duties();
    assert_eq!(
        audit_of("sla.breached").len(),
        3,
        "{:?}",
        audit_of("sla.breached")
    );
    assert!(audit_of("sla.resolved").is_empty());

    // The vendor's VEX: ABC 4.2 is not affected.
    let out = upload("feeds/csaf/vex/2022-evd-uc-01-na-001.json");
    assert!(out.contains("CSAF: 1 documents stored"), "{out}");
    assert_eq!(
        worklist_assets(&s),
        ["abc-41", "def-10"],
        "exactly abc-42's"
    );
    let ex = exceptions(&s);
    assert_eq!(ex.len(), 1, "{ex:?}");
    let e = &ex[0];
    assert_eq!(e["kind"], "not_affected");
    assert_eq!(e["origin"], "csaf:2022-EVD-UC-01-NA-001");
    assert_eq!(e["asset"], "abc-42");
    assert_eq!(e["advisory"], "CVE-2021-44228");
    assert_eq!(e["owner"], "Example Company ProductCERT");
    assert_eq!(
        e["reason"],
        "Class with vulnerable code was removed before shipping."
    );
    assert_eq!(e["covers"].as_array().unwrap().len(), 1, "{e}");
    let id = e["id"].as_str().unwrap().to_owned();
    // abc-42's breach ends with it, in the import's transaction; the others stay.
    let resolved = audit_of("sla.resolved");
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert!(
        resolved[0]["target"].as_str().unwrap().contains("abc-42"),
        "{resolved:?}"
    );
    assert_eq!(
        resolved[0]["detail"]["exception"],
        id.as_str(),
        "{resolved:?}"
    );
    // Triage shows it, with the statement and who made it.
    let t: Value = s.admin().get("/api/v1/triage/CVE-2021-44228").unwrap();
    let line = t["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["asset"] == "abc-42")
        .unwrap_or_else(|| panic!("{t}"));
    assert_eq!(line["exception"], id.as_str());
    let vex = line["vex"].as_str().unwrap();
    assert!(vex.starts_with("not affected"), "{vex}");
    assert!(
        vex.contains("Class with vulnerable code was removed"),
        "{vex}"
    );
    assert!(vex.contains("csaf:2022-EVD-UC-01-NA-001"), "{vex}");
    let text = ok(&s.cli(&["triage", "CVE-2021-44228"]));
    assert!(text.contains("not affected"), "{text}");
    // The audit log: the decision, attributed.
    let audit = ok(&s.cli(&["audit", "list", "--limit", "10000", "--format", "json"]));
    let audit: Value = serde_json::from_str(&audit).unwrap();
    let add = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "exception.add")
        .unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(
        add["detail"]["origin"], "csaf:2022-EVD-UC-01-NA-001",
        "{add}"
    );
    assert_eq!(add["detail"]["kind"], "not_affected");
    assert!(
        add["actor"].as_str().unwrap().starts_with("token:"),
        "attributed to the importer: {add}"
    );
    // The evidence bundle's exception register.
    let zip_path = dir.path().join("evidence.zip");
    ok(&s.cli(&["evidence", "export", "--out", zip_path.to_str().unwrap()]));
    let mut z = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let mut reg = String::new();
    std::io::Read::read_to_string(&mut z.by_name("exceptions.json").unwrap(), &mut reg).unwrap();
    assert!(
        reg.contains("\"not_affected\"") && reg.contains(&id),
        "{reg}"
    );

    // A new version of the VEX document without the statement (ABC 4.2 now
    // under investigation): the exception is revoked, the finding is back.
    let mut v2 = na001.clone();
    v2["document"]["tracking"]["version"] = json!("2");
    let st = &mut v2["vulnerabilities"][0]["product_status"];
    st["under_investigation"] = st["known_not_affected"].take();
    st.as_object_mut().unwrap().remove("known_not_affected");
    v2["vulnerabilities"][0]
        .as_object_mut()
        .unwrap()
        .remove("threats");
    let v2 = write("na-v2.json", &v2);
    ok(&s.cli(&["feeds", "import", &v2]));
    assert_eq!(worklist_assets(&s), ["abc-41", "abc-42", "def-10"]);
    let e = exceptions(&s)
        .into_iter()
        .find(|e| e["id"] == id.as_str())
        .unwrap();
    assert_eq!(e["status"], "revoked");
    assert!(
        e["revoke_reason"].as_str().unwrap().starts_with("csaf:"),
        "{e}"
    );

    // Stated again: a new exception; an operator revokes it: back, and a
    // re-import does not override the operator.
    upload("feeds/csaf/vex/2022-evd-uc-01-na-001.json");
    assert_eq!(worklist_assets(&s), ["abc-41", "def-10"]);
    let again = exceptions(&s)
        .into_iter()
        .find(|e| e["status"] == "active")
        .unwrap();
    let again = again["id"].as_str().unwrap().to_owned();
    assert_ne!(again, id);
    ok(&s.cli(&[
        "exceptions",
        "revoke",
        &again,
        "--reason",
        "we ship log4j in 4.2 after all",
    ]));
    assert_eq!(worklist_assets(&s), ["abc-41", "abc-42", "def-10"]);
    upload("feeds/csaf/vex/2022-evd-uc-01-na-001.json");
    assert_eq!(
        worklist_assets(&s),
        ["abc-41", "abc-42", "def-10"],
        "the operator's revocation stands"
    );

    // An operator's VEX: not_affected with a justification, approve permission.
    let add = |token: &str, kind: &str, justification: Option<&str>| {
        s.client(Some(token)).send::<_, Value>(
            "POST",
            "/api/v1/exceptions",
            &json!({"advisory": "CVE-2021-44228", "asset": "abc-41", "owner": "ops",
                    "reason": "log4j removed from our 4.1 build", "expires": "90d",
                    "compensating_control": "", "kind": kind, "justification": justification}),
        )
    };
    let operator: Value = s
        .admin()
        .send(
            "POST",
            "/api/v1/tokens",
            &json!({"name": "ops", "role": "operator"}),
        )
        .unwrap();
    let operator = operator["token"].as_str().unwrap().to_owned();
    match add(&operator, "not_affected", Some("component_not_present")) {
        Err(patchbay_client::HttpError::Api { status, .. }) => assert_eq!(status, 403),
        other => panic!("an operator may not state VEX alone: {other:?}"),
    }
    match add(&s.admin, "not_affected", Some("because")) {
        Err(patchbay_client::HttpError::Api {
            status, message, ..
        }) => {
            assert_eq!(status, 400);
            assert!(message.starts_with("justification:"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    match add(&s.admin, "deferred", None) {
        Err(patchbay_client::HttpError::Api {
            status, message, ..
        }) => {
            assert_eq!(status, 400);
            assert!(message.starts_with("compensating_control:"), "{message}");
        }
        other => panic!("a deferral still needs its control: {other:?}"),
    }
    let e = add(&s.admin, "not_affected", Some("component_not_present")).unwrap();
    assert_eq!(e["kind"], "not_affected");
    assert_eq!(e["justification"], "component_not_present");
    assert_eq!(
        e["origin"].as_str().unwrap_or(""),
        "",
        "an operator's: no origin"
    );
    assert_eq!(worklist_assets(&s), ["abc-42", "def-10"]);
    let t: Value = s.admin().get("/api/v1/triage/CVE-2021-44228").unwrap();
    let line = t["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["asset"] == "abc-41")
        .unwrap();
    assert!(
        line["vex"]
            .as_str()
            .unwrap()
            .starts_with("not affected (component_not_present): log4j removed"),
        "{line}"
    );
}

crate::both_backends!(
    agentless_cisco_devices_are_matched,
    vex_statements_suppress_exactly_their_findings,
    rhsa_matches_rpm_hosts_as_librpm_does
);

/// Enrols an agent for `host` and checks in `packages` (from an `rpm -qa`
/// style list) on os-release `rhel` `version_id`.
fn rpm_host(
    s: &Server,
    host: &str,
    version_id: &str,
    list: &str,
) -> (patchbay_client::Client, patchbay_core::inventory::Inventory) {
    use patchbay_core::inventory::{HostFacts, Inventory, OsRelease, Package, PackageFormat};
    let t: Value = s
        .admin()
        .send("POST", "/api/v1/enroll-tokens", &json!({"uses": 1}))
        .unwrap();
    let machine_id = format!(
        "{:032x}",
        host.bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
    );
    let e: Value = s
        .client(None)
        .send(
            "POST",
            "/agent/v1/enroll",
            &json!({"protocol": 1, "enroll_token": t["token"], "hostname": host, "machine_id": machine_id}),
        )
        .unwrap();
    let agent = s.client(Some(e["agent_secret"].as_str().unwrap()));
    let mut packages: Vec<Package> = list
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Package {
                name: f[0].into(),
                version: f[1].into(),
                arch: f[2].into(),
                source: f.get(3).map(|s| s.trim_end_matches(".src.rpm").to_string()),
                source_version: None,
            }
        })
        .collect();
    packages.sort();
    let inv = Inventory {
        facts: HostFacts {
            hostname: host.into(),
            machine_id,
            os: OsRelease {
                id: "rhel".into(),
                version_id: version_id.into(),
                ..Default::default()
            },
            arch: "x86_64".into(),
            ..Default::default()
        },
        format: Some(PackageFormat::Rpm),
        packages,
        pending_updates: vec![],
    };
    crate::support::full_checkin(&agent, &inv).unwrap();
    (agent, inv)
}

/// Acceptance (issue 20, item 4): an rpm host's packages matched through a
/// Red Hat CSAF advisory (RHSA-2022:0011, the OASIS example: telnet for RHEL
/// 7.6 AUS / E4S / TUS) agree with an independent computation
/// (`csaf_rhsa.py`: the json module and librpm's `rpm.labelCompare`).
///
/// The rpm list is the repository's real UBI 7 list
/// (`fixtures/inventories/rhel-family/ubi-7.rpm-qa.txt`, 162 packages, no
/// telnet) plus three lines this test adds so that the advisory applies:
/// telnet one release below the fix (affected), telnet-server at the fixed
/// build and telnet-debuginfo above it (neither affected). A 7.6 host is on
/// the advisory's streams; a 7.9 host is not (no finding), and the findings
/// follow the host's inventory (an update resolves them).
fn rhsa_matches_rpm_hosts_as_librpm_does(backend: &str) {
    let s = Server::start(backend);
    let real = std::fs::read_to_string(fixtures().join("inventories/rhel-family/ubi-7.rpm-qa.txt"))
        .unwrap();
    let added = "telnet\t1:0.17-64.el7\tx86_64\ttelnet-0.17-64.el7.src.rpm\n\
                 telnet-server\t1:0.17-65.el7_6\tx86_64\ttelnet-0.17-65.el7_6.src.rpm\n\
                 telnet-debuginfo\t1:0.17-66.el7\tx86_64\ttelnet-0.17-66.el7.src.rpm\n";
    let list = format!("{real}{added}");
    let (agent, mut inv) = rpm_host(&s, "rhel76-a", "7.6", &list);
    rpm_host(&s, "rhel79-a", "7.9", &list);
    rpm_host(&s, "rhel76-real", "7.6", &real);
    let doc = fixtures().join("feeds/csaf/rhsa-2022_0011.json");
    ok(&s.cli(&["feeds", "import", doc.to_str().unwrap()]));

    let dir = tempfile::tempdir().unwrap();
    let oracle = |list: &str, version: &str| -> Vec<(String, String, String)> {
        let p = dir.path().join("list.txt");
        std::fs::write(&p, list).unwrap();
        let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/csaf_rhsa.py");
        let out = std::process::Command::new("/usr/bin/python3")
            .arg(&here)
            .arg(&doc)
            .arg(&p)
            .arg(version)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "reference failed (needs python3-rpm — scripts/test installs it):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let ours = |host: &str| -> Vec<(String, String, String)> {
        let mut v: Vec<(String, String, String)> = findings(&s, host)
            .into_iter()
            .filter(|f| f.advisory == "RHSA-2022:0011")
            .map(|f| {
                (
                    f.package,
                    f.installed_version,
                    f.fixed_version.unwrap_or_default(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let expected = oracle(&list, "7.6");
    assert_eq!(
        expected,
        [(
            "telnet.x86_64".to_string(),
            "1:0.17-64.el7".to_string(),
            "1:0.17-65.el7_6".to_string()
        )],
        "the reference itself"
    );
    assert_eq!(ours("rhel76-a"), expected);
    assert_eq!(ours("rhel79-a"), oracle(&list, "7.9"));
    assert!(ours("rhel79-a").is_empty());
    assert_eq!(ours("rhel76-real"), oracle(&real, "7.6"));
    let f = findings(&s, "rhel76-a");
    let f = f.iter().find(|f| f.advisory == "RHSA-2022:0011").unwrap();
    assert_eq!(f.cves, ["CVE-2020-10188"]);
    // The host installs the fix: the next check-in resolves the finding.
    let telnet = inv
        .packages
        .iter_mut()
        .find(|p| p.name == "telnet")
        .unwrap();
    telnet.version = "1:0.17-65.el7_6".into();
    crate::support::full_checkin(&agent, &inv).unwrap();
    assert!(ours("rhel76-a").is_empty());
    let all: List<FindingOut> = s
        .admin()
        .get("/api/v1/findings?asset=rhel76-a&all=true")
        .unwrap();
    assert!(
        all.items
            .iter()
            .any(|f| f.advisory == "RHSA-2022:0011" && f.resolved_at.is_some())
    );
}
