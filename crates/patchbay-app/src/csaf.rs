//! CSAF 2.0 advisories: storing documents and matching the products of
//! agentless assets (network devices, appliances, applications) against
//! them (issue 20; docs/csaf.md, ADR 0015).
//!
//! # Matching
//! An asset product (vendor, product, version, CPE where known) matches a
//! CSAF product when
//! - both have a CPE and the CPEs name the same part, vendor and product
//!   (case-insensitive; 2.3 formatted strings and 2.2 URIs alike), or the
//!   vendor and product *names* are equal (case-insensitive, trimmed); and
//! - the CSAF product's version equals the asset's (case-insensitive), or
//!   its version range (`vers:<scheme>/…`, or a comparator form such as
//!   `<=1.14.0`) contains it. `vers:rpm` / `vers:deb` / `vers:semver`
//!   compare with those schemes; anything else with rpm's `rpmvercmp`, the
//!   segment-wise order that also orders vendor firmware trains such as
//!   IOS `15.2(4)E6` < `15.2(4)E10`. A CSAF product without version or
//!   range (a product family) matches no asset: a finding needs a version.
//!
//! A vulnerability gives an asset product a finding when a matching product
//! is `known_affected` (or first/last affected) and no exactly-matching
//! product of it is `fixed` or `known_not_affected`. The finding's fixed
//! release is the lowest version among the vulnerability's `fixed` products
//! of the same vendor/product that is above the installed one (none when
//! the document lists none — never a guess). One finding per (document,
//! asset product): its advisory is the document's tracking id, its package
//! `vendor product`, its arch [`CSAF_ARCH`] (so OSV re-assessment leaves it
//! alone), and the document's CVEs, score and remediations (vendor fix with
//! URL, workaround, mitigation, none available) are read with it.
//!
//! The pure part ([`match_products`], [`in_range`], [`cpe_parts`]) takes
//! everything as arguments; [`App::import_csaf`] stores and re-assesses in
//! one audited transaction.

use crate::assess::FindingsDiff;
use crate::change::Change;
use crate::feeds::ImportOutcome;
use crate::{App, AppError, Caller, RequestCtx};
use patchbay_core::auth::Action;
use patchbay_feeds::csaf::{Document, Product, Status};
use patchbay_store::{AdvisoryRow, AssetProductRow, CsafDocumentRow, FindingRow, NewFinding};
use patchbay_version::Scheme;
use serde::Serialize;
use serde_json::json;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use crate::assess::CSAF_ARCH;

/// A VEX statement wanted: (origin, asset, CVE).
type VexKey = (String, String, String);
/// What it says: (justification, reason, publisher, document version).
type VexStatement = (String, String, String, String);

/// One finding of an asset product under a CSAF document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CsafMatch {
    /// The document's tracking id.
    pub document: String,
    /// The CVEs of the vulnerabilities that affect it.
    pub cves: Vec<String>,
    /// `vendor product` of the asset.
    pub package: String,
    /// The installed version.
    pub installed: String,
    /// The lowest fixed release above it that the document lists.
    pub fixed: Option<String>,
    /// Remediations that name the matched CSAF products: (category, details, url).
    pub remediations: Vec<(String, String, Option<String>)>,
}

fn norm(s: &str) -> String {
    s.trim().to_lowercase()
}

/// (part, vendor, product, version) of a CPE 2.3 formatted string
/// (`cpe:2.3:o:cisco:ios:15.2\(4\)e:*:…`) or a 2.2 URI (`cpe:/o:cisco:ios:15.2`),
/// lower-case with CPE escapes removed; `None` when it is neither.
pub fn cpe_parts(cpe: &str) -> Option<(String, String, String, String)> {
    let c = cpe.trim();
    let fields: Vec<String> = if let Some(rest) = c.strip_prefix("cpe:2.3:") {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut esc = false;
        for ch in rest.chars() {
            if esc {
                cur.push(ch);
                esc = false;
            } else if ch == '\\' {
                esc = true;
            } else if ch == ':' {
                out.push(std::mem::take(&mut cur));
            } else {
                cur.push(ch);
            }
        }
        out.push(cur);
        out
    } else if let Some(rest) = c.strip_prefix("cpe:/") {
        rest.split(':').map(str::to_owned).collect()
    } else {
        return None;
    };
    let f = |i: usize| fields.get(i).map(|s| norm(s)).unwrap_or_default();
    let (part, vendor, product) = (f(0), f(1), f(2));
    if part.is_empty() || vendor.is_empty() || product.is_empty() {
        return None;
    }
    Some((part, vendor, product, f(3)))
}

fn cmp_in(scheme: Option<Scheme>, a: &str, b: &str) -> Option<Ordering> {
    match scheme {
        Some(s) => patchbay_version::compare(s, a, b).ok(),
        None => Some(patchbay_version::rpm::rpmvercmp(a, b)),
    }
}

/// Whether `version` is inside `range`: a `vers:<scheme>/<constraints>`
/// range (constraints `|`-separated, comparators `=`, `!=`, `<`, `<=`, `>`,
/// `>=`, or `*`), evaluated as the vers specification says, or the same
/// constraints without the `vers:` prefix (`<=1.14.0`). `None` when the range
/// cannot be read or a version cannot be compared under its scheme.
pub fn in_range(range: &str, version: &str) -> Option<bool> {
    let r = range.trim();
    let (scheme, body) = match r.strip_prefix("vers:") {
        Some(rest) => {
            let (s, b) = rest.split_once('/')?;
            let scheme = match s.to_ascii_lowercase().as_str() {
                "rpm" => Some(Scheme::Rpm),
                "deb" => Some(Scheme::Deb),
                "semver" | "npm" | "cargo" => Some(Scheme::Semver),
                "apk" | "alpine" => Some(Scheme::Apk),
                _ => None,
            };
            (scheme, b)
        }
        None => (None, r),
    };
    if body.trim() == "*" {
        return Some(true);
    }
    let mut cons: Vec<(&str, String)> = Vec::new();
    for c in body.split('|') {
        let c = c.trim();
        let (op, v) = ["<=", ">=", "!=", "<", ">", "="]
            .iter()
            .find_map(|op| c.strip_prefix(op).map(|v| (*op, v.trim())))
            .unwrap_or(("=", c));
        if v.is_empty() {
            return None;
        }
        // An unprefixed range must look like one (a comparator), or it is
        // free text this matcher does not read.
        if !r.starts_with("vers:") && !c.starts_with(['<', '>', '=', '!']) {
            return None;
        }
        cons.push((op, v.to_owned()));
    }
    for (op, v) in &cons {
        if matches!(*op, "=" | "!=") && cmp_in(scheme, version, v)? == Ordering::Equal {
            return Some(*op == "=");
        }
    }
    let mut ord: Vec<(&str, String)> = cons
        .into_iter()
        .filter(|(op, _)| !matches!(*op, "=" | "!="))
        .collect();
    if ord.is_empty() {
        return Some(false);
    }
    let mut bad = false;
    ord.sort_by(|a, b| {
        cmp_in(scheme, &a.1, &b.1).unwrap_or_else(|| {
            bad = true;
            Ordering::Equal
        })
    });
    if bad {
        return None;
    }
    let sat = |op: &str, v: &str| -> Option<bool> {
        let o = cmp_in(scheme, version, v)?;
        Some(match op {
            "<" => o == Ordering::Less,
            "<=" => o != Ordering::Greater,
            ">" => o == Ordering::Greater,
            ">=" => o != Ordering::Less,
            _ => false,
        })
    };
    let (first, last) = (&ord[0], &ord[ord.len() - 1]);
    if matches!(first.0, "<" | "<=") && sat(first.0, &first.1)? {
        return Some(true);
    }
    if matches!(last.0, ">" | ">=") && sat(last.0, &last.1)? {
        return Some(true);
    }
    for w in ord.windows(2) {
        if matches!(w[0].0, ">" | ">=")
            && matches!(w[1].0, "<" | "<=")
            && sat(w[0].0, &w[0].1)?
            && sat(w[1].0, &w[1].1)?
        {
            return Some(true);
        }
    }
    Some(false)
}

/// Whether the CSAF product names the asset product (CPE or names).
fn names_match(p: &Product, a: &AssetProductRow) -> bool {
    if let (Some(pc), false) = (&p.cpe, a.cpe.trim().is_empty())
        && let (Some(x), Some(y)) = (cpe_parts(pc), cpe_parts(&a.cpe))
        && x.0 == y.0
        && x.1 == y.1
        && x.2 == y.2
    {
        return true;
    }
    match (&p.vendor, &p.product) {
        (Some(v), Some(n)) => norm(v) == norm(&a.vendor) && norm(n) == norm(&a.product),
        _ => false,
    }
}

/// The version a CSAF product states: its branch version, else its CPE's.
fn product_version(p: &Product) -> Option<String> {
    p.version.clone().or_else(|| {
        p.cpe
            .as_deref()
            .and_then(cpe_parts)
            .map(|c| c.3)
            .filter(|v| !v.is_empty() && v != "*" && v != "-")
    })
}

/// How a CSAF product relates to an asset product's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hit {
    /// Same version.
    Exact,
    /// Inside its range.
    Range,
}

fn hit(p: &Product, a: &AssetProductRow) -> Option<Hit> {
    if !names_match(p, a) {
        return None;
    }
    if let Some(v) = product_version(p) {
        return (norm(&v) == norm(&a.version)).then_some(Hit::Exact);
    }
    match p.range.as_deref().map(|r| in_range(r, &a.version)) {
        Some(Some(true)) => Some(Hit::Range),
        _ => None,
    }
}

/// The findings of `products` (one asset's, or many) under `doc` (pure).
///
/// Fleets share products: each distinct (vendor, product, version, CPE) is
/// matched once, and product ids are looked up in a map.
pub fn match_products(doc: &Document, products: &[AssetProductRow]) -> Vec<(i64, CsafMatch)> {
    let by_id: HashMap<&str, &Product> = doc.products.iter().map(|p| (p.id.as_str(), p)).collect();
    type Key<'a> = (&'a str, &'a str, &'a str, &'a str);
    let mut memo: HashMap<Key<'_>, Option<CsafMatch>> = HashMap::new();
    let mut out = Vec::new();
    for a in products {
        let key = (
            a.vendor.as_str(),
            a.product.as_str(),
            a.version.as_str(),
            a.cpe.as_str(),
        );
        let m = memo.entry(key).or_insert_with(|| match_one(doc, &by_id, a));
        if let Some(m) = m {
            out.push((a.asset_id, m.clone()));
        }
    }
    out
}

/// The finding of one asset product under `doc`, if any.
fn match_one(
    doc: &Document,
    by_id: &HashMap<&str, &Product>,
    a: &AssetProductRow,
) -> Option<CsafMatch> {
    let mut out: Option<CsafMatch> = None;
    {
        for v in &doc.vulnerabilities {
            let mut affected = false;
            let mut cleared = false;
            let mut matched_ids: BTreeSet<&str> = BTreeSet::new();
            for (status, ids) in &v.status {
                for id in ids {
                    let Some(p) = by_id.get(id.as_str()).copied() else {
                        continue;
                    };
                    match (status, hit(p, a)) {
                        (Status::Affected, Some(_)) => {
                            affected = true;
                            matched_ids.insert(id);
                        }
                        (Status::Fixed | Status::NotAffected, Some(Hit::Exact)) => cleared = true,
                        _ => {}
                    }
                }
            }
            if !affected || cleared {
                continue;
            }
            // The lowest listed fixed release above the installed one.
            let mut fixed: Option<String> = None;
            for id in v.status.get(&Status::Fixed).into_iter().flatten() {
                let Some(p) = by_id.get(id.as_str()).copied() else {
                    continue;
                };
                if !names_match(p, a) {
                    continue;
                }
                let Some(fv) = product_version(p) else {
                    continue;
                };
                if patchbay_version::rpm::rpmvercmp(&fv, &a.version) != Ordering::Greater {
                    continue;
                }
                fixed = match fixed {
                    Some(f) if patchbay_version::rpm::rpmvercmp(&f, &fv) != Ordering::Greater => {
                        Some(f)
                    }
                    _ => Some(fv),
                };
            }
            let m = out.get_or_insert_with(|| CsafMatch {
                document: doc.id.clone(),
                cves: vec![],
                package: format!("{} {}", a.vendor, a.product),
                installed: a.version.clone(),
                fixed: None,
                remediations: vec![],
            });
            if let Some(c) = &v.cve
                && !m.cves.contains(c)
            {
                m.cves.push(c.clone());
            }
            m.fixed = match (m.fixed.take(), fixed) {
                (Some(x), Some(y)) => {
                    // Several vulnerabilities: the release that fixes them all.
                    if patchbay_version::rpm::rpmvercmp(&x, &y) == Ordering::Less {
                        Some(y)
                    } else {
                        Some(x)
                    }
                }
                (x, y) => x.or(y),
            };
            for r in &v.remediations {
                if r.products.iter().any(|p| matched_ids.contains(p.as_str())) {
                    let t = (r.category.clone(), r.details.clone(), r.url.clone());
                    if !m.remediations.contains(&t) {
                        m.remediations.push(t);
                    }
                }
            }
        }
    }
    out
}

/// OS ids whose hosts are matched against Red Hat's CSAF advisories (RHSA):
/// RHEL and its rebuilds, which ship the same package builds.
pub const RPM_FAMILY: [&str; 4] = ["rhel", "almalinux", "rocky", "centos"];

/// Known rpm architectures (the last `.`-segment of a NEVRA).
const RPM_ARCHES: [&str; 10] = [
    "x86_64", "noarch", "aarch64", "ppc64le", "s390x", "i686", "i386", "src", "ppc64", "s390",
];

/// (name, `epoch:version-release`, arch) of an rpm NEVRA such as
/// `telnet-1:0.17-65.el7_6.x86_64` or `zlib-0:1.2.11-40.el9.x86_64`
/// (epoch `0` when absent), or of a purl `pkg:rpm/redhat/telnet@0.17-65.el7_6?arch=x86_64&epoch=1`.
pub fn nevra(s: &str) -> Option<(String, String, String)> {
    if let Some(p) = s.strip_prefix("pkg:rpm/") {
        let (path, query) = p.split_once('?').unwrap_or((p, ""));
        let (name, vr) = path
            .rsplit_once('/')
            .map(|x| x.1)
            .unwrap_or(path)
            .split_once('@')?;
        let mut arch = String::new();
        let mut epoch = "0".to_owned();
        for kv in query.split('&') {
            match kv.split_once('=') {
                Some(("arch", a)) => arch = a.to_owned(),
                Some(("epoch", e)) => epoch = e.to_owned(),
                _ => {}
            }
        }
        if name.is_empty() || !vr.contains('-') {
            return None;
        }
        return Some((name.to_owned(), format!("{epoch}:{vr}"), arch));
    }
    let (rest, arch) = s.rsplit_once('.')?;
    if !RPM_ARCHES.contains(&arch) {
        return None;
    }
    let (rest, release) = rest.rsplit_once('-')?;
    let (name, version) = rest.rsplit_once('-')?;
    if name.is_empty() || version.is_empty() || release.is_empty() {
        return None;
    }
    let evr = if version.contains(':') {
        format!("{version}-{release}")
    } else {
        format!("0:{version}-{release}")
    };
    Some((name.to_owned(), evr, arch.to_owned()))
}

/// Whether a Red Hat platform CPE (`cpe:/o:redhat:enterprise_linux:8`,
/// `cpe:/a:redhat:enterprise_linux:8::appstream`,
/// `cpe:/o:redhat:rhel_aus:7.6::server`) is a stream of the host's release:
/// the main stream of its major version (`enterprise_linux:<major>`), or an
/// extended stream (EUS, AUS, E4S, TUS) of its exact minor release.
pub fn platform_matches(cpe: &str, version_id: &str) -> bool {
    let Some((_, vendor, product, version)) = cpe_parts(cpe) else {
        return false;
    };
    let major = version_id.split('.').next().unwrap_or("");
    let minor: String = version_id.split('.').take(2).collect::<Vec<_>>().join(".");
    vendor == "redhat"
        && !major.is_empty()
        && match product.as_str() {
            "enterprise_linux" => version == major || version == minor,
            "rhel_eus" | "rhel_aus" | "rhel_e4s" | "rhel_tus" => version == minor,
            _ => false,
        }
}

/// The findings of an rpm host (`os`: RHEL, AlmaLinux, Rocky, CentOS) under
/// a Red Hat CSAF document (pure): every `fixed` product that is a
/// component (NEVRA) of a platform of the host's release
/// ([`platform_matches`]) and names an installed package of the same name
/// and architecture whose version is lower in rpm order — the fixed version
/// is the lowest such NEVRA's EVR above the installed one.
pub fn match_rpm_host(
    doc: &Document,
    os: &patchbay_core::inventory::OsRelease,
    packages: &[patchbay_core::inventory::Package],
) -> Vec<CsafMatch> {
    match_rpm_fixes(&doc.id, &rpm_fixes(doc), os, packages)
}

/// One fixed build of a Red Hat document: on the platform with this CPE,
/// package `name` of `arch` is fixed in `evr` (for `cve`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmFix {
    /// The platform's CPE.
    pub platform_cpe: String,
    /// Package name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// `epoch:version-release` of the fixed build.
    pub evr: String,
    /// The vulnerability's CVE.
    pub cve: Option<String>,
}

/// The fixed builds a Red Hat document lists (pure; computed once per
/// document, then matched against every host).
pub fn rpm_fixes(doc: &Document) -> Vec<RpmFix> {
    let by_id: HashMap<&str, &Product> = doc.products.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut out = Vec::new();
    for v in &doc.vulnerabilities {
        for id in v.status.get(&Status::Fixed).into_iter().flatten() {
            let Some(p) = by_id.get(id.as_str()) else {
                continue;
            };
            let Some(r) = &p.relationship else { continue };
            let Some(cpe) = by_id.get(r.platform.as_str()).and_then(|pl| pl.cpe.clone()) else {
                continue;
            };
            let parsed = by_id
                .get(r.component.as_str())
                .and_then(|c| c.purl.as_deref())
                .and_then(nevra)
                .or_else(|| nevra(&r.component));
            let Some((name, evr, arch)) = parsed else {
                continue;
            };
            if arch == "src" {
                continue;
            }
            out.push(RpmFix {
                platform_cpe: cpe,
                name,
                arch,
                evr,
                cve: v.cve.clone(),
            });
        }
    }
    out
}

/// [`match_rpm_host`] over a document's precomputed [`rpm_fixes`].
pub fn match_rpm_fixes(
    document: &str,
    all: &[RpmFix],
    os: &patchbay_core::inventory::OsRelease,
    packages: &[patchbay_core::inventory::Package],
) -> Vec<CsafMatch> {
    if !RPM_FAMILY.contains(&os.id.as_str()) {
        return vec![];
    }
    // (name, arch) -> [(fixed evr, cve)] of the host's streams.
    type Fixes<'a> = HashMap<(&'a str, &'a str), Vec<(&'a String, &'a Option<String>)>>;
    let mut fixes: Fixes<'_> = HashMap::new();
    for f in all {
        if platform_matches(&f.platform_cpe, &os.version_id) {
            fixes
                .entry((f.name.as_str(), f.arch.as_str()))
                .or_default()
                .push((&f.evr, &f.cve));
        }
    }
    if fixes.is_empty() {
        return vec![];
    }
    let mut out: BTreeMap<(String, String), CsafMatch> = BTreeMap::new();
    for pkg in packages {
        let installed = if pkg.version.contains(':') {
            pkg.version.clone()
        } else {
            format!("0:{}", pkg.version)
        };
        for arch in [pkg.arch.as_str(), "noarch"] {
            let Some(list) = fixes.get(&(pkg.name.as_str(), arch)) else {
                continue;
            };
            for (evr, cve) in list {
                let below = patchbay_version::compare(Scheme::Rpm, &installed, evr)
                    .is_ok_and(|o| o == Ordering::Less);
                if !below {
                    continue;
                }
                let m = out
                    .entry((pkg.name.clone(), pkg.arch.clone()))
                    .or_insert_with(|| CsafMatch {
                        document: document.to_owned(),
                        cves: vec![],
                        // `name.arch`: one finding per installed build.
                        package: format!("{}.{}", pkg.name, pkg.arch),
                        installed: pkg.version.clone(),
                        fixed: None,
                        remediations: vec![],
                    });
                if let Some(c) = cve
                    && !m.cves.contains(c)
                {
                    m.cves.push(c.clone());
                }
                m.fixed = match m.fixed.take() {
                    Some(f)
                        if patchbay_version::compare(Scheme::Rpm, &f, evr)
                            .is_ok_and(|o| o != Ordering::Greater) =>
                    {
                        Some(f)
                    }
                    _ => Some((*evr).clone()),
                };
            }
        }
    }
    out.into_values().collect()
}

/// CISA KEV entries whose `vendorProject` and `product` name one of the asset
/// products (case-insensitive) and whose CVE no stored CSAF document
/// addresses for that product (pure). KEV has no versions, so these are not
/// findings: they are listed as *unassessed* exploited vulnerabilities (import
/// the vendor's advisory to decide), with the KEV name and due date.
pub fn kev_unassessed(
    kev: &[patchbay_store::KevRow],
    docs: &[Document],
    products: &[AssetProductRow],
) -> Vec<CsafMatch> {
    let mut out = Vec::new();
    for a in products {
        for k in kev {
            if norm(&k.vendor) != norm(&a.vendor) || norm(&k.product) != norm(&a.product) {
                continue;
            }
            let addressed = docs.iter().any(|d| {
                d.vulnerabilities.iter().any(|v| {
                    v.cve.as_deref() == Some(k.cve.as_str())
                        && v.status
                            .values()
                            .flatten()
                            .any(|id| d.product(id).is_some_and(|p| names_match(p, a)))
                })
            });
            if addressed {
                continue;
            }
            out.push(CsafMatch {
                document: "CISA KEV".into(),
                cves: vec![k.cve.clone()],
                package: format!("{} {}", a.vendor, a.product),
                installed: a.version.clone(),
                fixed: None,
                remediations: vec![(
                    "unassessed".into(),
                    format!(
                        "CISA KEV: {} (due {}); no imported advisory says whether {} is affected: import the vendor's CSAF advisory",
                        k.name, k.due_date, a.version
                    ),
                    None,
                )],
            });
        }
    }
    out
}

/// The stored advisory of a document: its CVEs, best score and title, no
/// OSV affected entries (CSAF findings come from [`match_products`]).
fn advisory_row(d: &Document) -> AdvisoryRow {
    let best = d.best_score();
    let parse = |s: &str| s.parse::<jiff::Timestamp>().ok();
    AdvisoryRow {
        id: d.id.clone(),
        summary: d.title.clone(),
        cves: d.cves(),
        cvss_score: best.as_ref().map(|b| b.0),
        cvss_vector: best.map(|b| b.1),
        published: parse(&d.initial_release_date),
        modified: parse(&d.current_release_date),
        affected: serde_json::Value::Array(vec![]),
        ecosystems: "CSAF".into(),
        severity: d.severity.clone(),
        severity_source: d
            .severity
            .as_ref()
            .map(|_| format!("{} (CSAF)", d.publisher)),
    }
}

impl App {
    /// Stores CSAF documents read from `source` (each replaces the stored
    /// document with its tracking id), then re-matches every asset product
    /// against all stored documents — one audited transaction.
    pub async fn import_csaf(
        &self,
        source: &str,
        docs: &[Document],
        skipped: u64,
        caller: &Caller,
    ) -> Result<ImportOutcome, AppError> {
        let mut tx = self
            .change(caller, Action::ImportFeeds, &RequestCtx::default())
            .await?;
        let by = tx.actor().to_string();
        let now = self.now();
        let mut rows = Vec::new();
        for d in docs {
            let body = serde_json::to_string(d)
                .map_err(|e| AppError::invalid(format!("encoding CSAF {}: {e}", d.id)))?;
            tx.upsert_csaf_document(&CsafDocumentRow {
                id: d.id.clone(),
                publisher: d.publisher.clone(),
                title: d.title.clone(),
                category: d.category.clone(),
                version: d.version.clone(),
                source: source.to_owned(),
                body,
                imported_at: now,
                imported_by: by.clone(),
            })
            .await?;
            rows.push(advisory_row(d));
        }
        tx.upsert_advisories(&rows).await?;
        let stats = self.assess_csaf_in(&mut tx, None).await?;
        let (vex_added, vex_revoked) = self.reconcile_vex(&mut tx).await?;
        let version = docs
            .iter()
            .map(|d| d.current_release_date.as_str())
            .max()
            .unwrap_or_default()
            .to_owned();
        let outcome = ImportOutcome {
            records: docs.len() as u64,
            skipped,
            kev_added: vec![],
            pairs_changed: 0,
        };
        tx.record_feed(&patchbay_store::FeedRow {
            id: 0,
            kind: "csaf".into(),
            source: source.into(),
            version: version.clone(),
            records: outcome.records as i64,
            skipped: outcome.skipped as i64,
            imported_at: now,
            imported_by: by,
        })
        .await?;
        tx.audit(
            "feed.import",
            &format!("feed:csaf:{source}"),
            json!({"version": version, "records": outcome.records, "skipped": outcome.skipped,
                   "documents": docs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
                   "findings_opened": stats.opened, "findings_resolved": stats.resolved,
                   "vex_exceptions_added": vex_added, "vex_exceptions_revoked": vex_revoked}),
        )
        .await?;
        tx.commit().await?;
        if vex_added + vex_revoked > 0 {
            self.rollups.exceptions_changed();
        }
        Ok(outcome)
    }

    /// Brings the VEX exceptions in line with the stored documents (inside
    /// `tx`): every `known_not_affected` statement about a product an asset
    /// runs is an exception of kind `not_affected` for that asset and CVE
    /// (origin `csaf:<tracking id>`, owner the publisher, justification the
    /// statement's flag label, reason its impact statement), created and
    /// audited as the caller's decision; one whose statement is gone (a
    /// re-import without it, the asset's product changed) is revoked, audited.
    /// One an operator revoked is not created again. Returns (created,
    /// revoked).
    pub(crate) async fn reconcile_vex(&self, tx: &mut Change<'_>) -> Result<(u64, u64), AppError> {
        use crate::exceptions::{NOT_AFFECTED, insert_numbered};
        let now = self.now();
        let actor = tx.actor().to_string();
        let docs = self.csaf_documents_in(tx).await?;
        let products = tx.asset_products().await?;
        let names: BTreeMap<i64, String> = tx
            .list_assets()
            .await?
            .into_iter()
            .map(|a| (a.id, a.name))
            .collect();
        // (origin, asset, cve) -> (justification, reason, owner, version)
        let mut desired: BTreeMap<VexKey, VexStatement> = BTreeMap::new();
        for d in &docs {
            for v in &d.vulnerabilities {
                let Some(cve) = &v.cve else { continue };
                for id in v.status.get(&Status::NotAffected).into_iter().flatten() {
                    let Some(p) = d.product(id) else { continue };
                    let justification = v
                        .flags
                        .iter()
                        .find(|f| f.products.contains(id))
                        .map(|f| f.label.clone())
                        .unwrap_or_default();
                    let reason = v
                        .threats
                        .iter()
                        .find(|t| {
                            t.category == "impact"
                                && (t.products.is_empty() || t.products.contains(id))
                        })
                        .map(|t| t.details.clone())
                        .unwrap_or_else(|| {
                            format!("{} states {} not affected", d.publisher, p.name)
                        });
                    for a in products.iter().filter(|a| hit(p, a).is_some()) {
                        let Some(name) = names.get(&a.asset_id) else {
                            continue;
                        };
                        desired
                            .entry((format!("csaf:{}", d.id), name.clone(), cve.clone()))
                            .or_insert((
                                justification.clone(),
                                reason.clone(),
                                d.publisher.clone(),
                                d.version.clone(),
                            ));
                    }
                }
            }
        }
        let rows = tx.list_exceptions().await?;
        let key = |r: &patchbay_store::ExceptionRow| {
            (r.origin.clone(), r.asset.clone(), r.advisory.clone())
        };
        let (mut created, mut revoked) = (0, 0);
        for r in rows.iter().filter(|r| r.origin.starts_with("csaf:")) {
            if !desired.contains_key(&key(r)) && crate::ranking::core_of(r).active_at(now) {
                let reason = format!(
                    "csaf: {} no longer states {} not affected on this asset's products",
                    &r.origin[5..],
                    r.advisory
                );
                if tx.revoke_exception(&r.id, now, &actor, &reason).await? {
                    tx.audit(
                        "exception.revoke",
                        &format!("exception:{}", r.id),
                        json!({"reason": reason, "origin": r.origin, "kind": r.kind}),
                    )
                    .await?;
                    revoked += 1;
                }
            }
        }
        for ((origin, asset, cve), (justification, reason, owner, version)) in desired {
            let k = (origin.clone(), asset.clone(), cve.clone());
            let stands = rows.iter().filter(|r| key(r) == k).any(|r| {
                let core = crate::ranking::core_of(r);
                core.active_at(now)
                    // An operator's revocation sticks.
                    || (r.revoked_at.is_some()
                        && !r
                            .revoke_reason
                            .as_deref()
                            .is_some_and(|x| x.starts_with("csaf:")))
            });
            if stands {
                continue;
            }
            let row = patchbay_store::ExceptionRow {
                id: String::new(),
                advisory: cve,
                package: String::new(),
                asset,
                group: String::new(),
                owner,
                reason: reason.chars().take(2000).collect(),
                compensating_control: String::new(),
                approver: actor.clone(),
                created_at: now,
                created_by: actor.clone(),
                expires_at: now + patchbay_core::exception::MAX_DURATION,
                revoked_at: None,
                revoked_by: None,
                revoke_reason: None,
                expired_noted_at: None,
                kind: NOT_AFFECTED.into(),
                justification,
                origin,
            };
            let row = insert_numbered(tx, row, now).await?;
            // Open SLA breaches of the findings it covers end, as when an
            // operator grants an exception.
            if let Some((&asset_id, _)) = names.iter().find(|(_, n)| **n == row.asset) {
                let open: Vec<FindingRow> = tx
                    .findings_of_asset(asset_id)
                    .await?
                    .into_iter()
                    .filter(|f| f.resolved_at.is_none())
                    .collect();
                let ids: Vec<String> = open.iter().map(|f| f.finding.advisory_id.clone()).collect();
                let advisories = tx.advisories_by_ids(&ids).await?;
                let covered: std::collections::HashSet<String> = open
                    .iter()
                    .filter(|f| {
                        f.finding.advisory_id.eq_ignore_ascii_case(&row.advisory)
                            || advisories.iter().any(|a| {
                                a.id == f.finding.advisory_id
                                    && a.cves.iter().any(|c| c.eq_ignore_ascii_case(&row.advisory))
                            })
                    })
                    .map(|f| {
                        format!(
                            "F-{}-{}-{}",
                            f.asset_name, f.finding.advisory_id, f.finding.package
                        )
                    })
                    .collect();
                crate::breaches::end_breaches(
                    tx,
                    &covered,
                    &crate::breaches::Ended::Exception(row.id.clone()),
                    now,
                )
                .await?;
            }
            tx.audit(
                "exception.add",
                &format!("exception:{}", row.id),
                json!({"advisory": row.advisory, "asset": row.asset, "owner": row.owner,
                       "reason": row.reason, "kind": row.kind, "justification": row.justification,
                       "origin": row.origin, "document_version": version,
                       "expires_at": crate::fmt_ts(row.expires_at)}),
            )
            .await?;
            created += 1;
        }
        Ok((created, revoked))
    }

    /// Every stored CSAF document, decoded (inside `tx`).
    pub(crate) async fn csaf_documents_in(
        &self,
        tx: &mut Change<'_>,
    ) -> Result<Vec<Document>, AppError> {
        let mut out = Vec::new();
        for r in tx.csaf_documents().await? {
            match serde_json::from_str::<Document>(&r.body) {
                Ok(d) => out.push(d),
                Err(e) => {
                    tracing::warn!(document = %r.id, error = %e, "stored CSAF document unreadable; skipped")
                }
            }
        }
        Ok(out)
    }

    /// Re-matches asset products (all assets, or one) against every stored
    /// CSAF document and brings their CSAF findings in line (inside `tx`).
    pub(crate) async fn assess_csaf_in(
        &self,
        tx: &mut Change<'_>,
        only: Option<i64>,
    ) -> Result<crate::assess::SyncStats, AppError> {
        let docs = self.csaf_documents_in(tx).await?;
        let products: Vec<AssetProductRow> = tx
            .asset_products()
            .await?
            .into_iter()
            .filter(|p| only.is_none_or(|id| p.asset_id == id))
            .collect();
        let mut assets: BTreeSet<i64> = products.iter().map(|p| p.asset_id).collect();
        let mut current: BTreeMap<i64, Vec<NewFinding>> = BTreeMap::new();
        // rpm hosts of the RHEL family, matched against Red Hat's documents.
        let redhat: Vec<(&str, Vec<RpmFix>)> = docs
            .iter()
            .map(|d| (d.id.as_str(), rpm_fixes(d)))
            .filter(|(_, f)| {
                f.iter()
                    .any(|f| cpe_parts(&f.platform_cpe).is_some_and(|c| c.1 == "redhat"))
            })
            .collect();
        if !redhat.is_empty() {
            for a in tx.list_assets().await? {
                if only.is_some_and(|id| id != a.id)
                    || !RPM_FAMILY.contains(&a.facts.os.id.as_str())
                {
                    continue;
                }
                assets.insert(a.id);
                let pkgs = tx.packages(a.id).await?;
                for (id, fixes) in &redhat {
                    for m in match_rpm_fixes(id, fixes, &a.facts.os, &pkgs) {
                        current.entry(a.id).or_default().push(NewFinding {
                            advisory_id: m.document,
                            // The rpm name (`name.arch` without its arch).
                            source_package: m
                                .package
                                .rsplit_once('.')
                                .map_or(m.package.as_str(), |x| x.0)
                                .to_owned(),
                            package: m.package,
                            arch: CSAF_ARCH.into(),
                            installed_version: m.installed,
                            fixed_version: m.fixed,
                        });
                    }
                }
            }
        }
        for d in &docs {
            for (asset, m) in match_products(d, &products) {
                current.entry(asset).or_default().push(NewFinding {
                    advisory_id: m.document,
                    // The patch catalog groups by it: `vendor product`.
                    source_package: m.package.clone(),
                    package: m.package,
                    arch: CSAF_ARCH.into(),
                    installed_version: m.installed,
                    fixed_version: m.fixed,
                });
            }
        }
        // Assets that had CSAF findings but no products any more.
        let existing: Vec<FindingRow> = match only {
            Some(id) => {
                assets.insert(id);
                tx.findings_of_asset(id).await?
            }
            None => {
                let all = tx.list_findings(None, true).await?;
                assets.extend(
                    all.iter()
                        .filter(|r| r.finding.arch == CSAF_ARCH)
                        .map(|r| r.asset_id),
                );
                all
            }
        };
        let mut diff = FindingsDiff::csaf();
        for a in assets {
            let mine: Vec<&FindingRow> = existing.iter().filter(|r| r.asset_id == a).collect();
            diff.add(a, &mine, current.remove(&a).unwrap_or_default());
        }
        diff.apply(tx, self.now()).await
    }

    /// What the stored CSAF documents say about one asset's products (CVEs,
    /// fixed release, remediations), and the CISA KEV entries of its products
    /// that no document assesses ([`kev_unassessed`]); for
    /// `GET /api/v1/csaf/matches/{asset}`.
    pub async fn csaf_matches(
        &self,
        caller: &Caller,
        asset: &str,
        ctx: &RequestCtx,
    ) -> Result<Vec<patchbay_proto::api::CsafMatchOut>, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut tx = self.store.read().await?;
        let a = tx
            .asset_by_name(&asset.to_ascii_lowercase())
            .await?
            .ok_or_else(|| AppError::not_found(format!("no asset named {asset:?}")))?;
        let products: Vec<AssetProductRow> = tx
            .asset_products()
            .await?
            .into_iter()
            .filter(|p| p.asset_id == a.id)
            .collect();
        let docs: Vec<Document> = tx
            .csaf_documents()
            .await?
            .iter()
            .filter_map(|r| serde_json::from_str::<Document>(&r.body).ok())
            .collect();
        let kev = tx.all_kev().await?;
        let mut matches: Vec<CsafMatch> = docs
            .iter()
            .flat_map(|d| match_products(d, &products).into_iter().map(|(_, m)| m))
            .collect();
        matches.extend(kev_unassessed(&kev, &docs, &products));
        Ok(matches
            .into_iter()
            .map(|m| patchbay_proto::api::CsafMatchOut {
                document: m.document,
                cves: m.cves,
                package: m.package,
                installed: m.installed,
                fixed: m.fixed,
                remediations: m
                    .remediations
                    .into_iter()
                    .map(
                        |(category, details, url)| patchbay_proto::api::CsafRemediationOut {
                            category,
                            details,
                            url,
                        },
                    )
                    .collect(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vers_ranges_follow_the_spec() {
        assert_eq!(in_range("vers:generic/>=1.0|<2.0", "1.5"), Some(true));
        assert_eq!(in_range("vers:generic/>=1.0|<2.0", "2.0"), Some(false));
        assert_eq!(in_range("vers:generic/<1.0|>=2.0", "2.5"), Some(true));
        assert_eq!(in_range("vers:generic/<1.0|>=2.0", "1.5"), Some(false));
        assert_eq!(in_range("vers:generic/=1.5|=1.7", "1.7"), Some(true));
        assert_eq!(in_range("vers:generic/>=1.0|!=1.5", "1.5"), Some(false));
        assert_eq!(in_range("vers:semver/>=1.2.0|<1.3.0", "1.2.9"), Some(true));
        assert_eq!(in_range("vers:semver/>=1.2.0|<1.3.0", "not-semver"), None);
        assert_eq!(in_range("vers:rpm/<1:1.0-1", "0:9.9-1"), Some(true));
        assert_eq!(in_range("<=1.14.0", "1.14.0"), Some(true));
        assert_eq!(in_range("<=1.14.0", "1.15.0"), Some(false));
        assert_eq!(in_range("all versions", "1.0"), None);
        assert_eq!(in_range("vers:generic/*", "anything"), Some(true));
    }

    #[test]
    fn cpes_of_both_forms_read() {
        assert_eq!(
            cpe_parts("cpe:2.3:o:cisco:ios:15.2\\(4\\)e:*:*:*:*:*:*:*"),
            Some(("o".into(), "cisco".into(), "ios".into(), "15.2(4)e".into()))
        );
        assert_eq!(
            cpe_parts("cpe:/a:csaf-tools:cvrf-csaf-converter:1.0.0-rc2"),
            Some((
                "a".into(),
                "csaf-tools".into(),
                "cvrf-csaf-converter".into(),
                "1.0.0-rc2".into()
            ))
        );
        assert_eq!(cpe_parts("not a cpe"), None);
    }

    fn doc(name: &str) -> Document {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/feeds/csaf")
            .join(name);
        patchbay_feeds::csaf::parse(&std::fs::read(path).unwrap()).unwrap()
    }

    fn product(vendor: &str, product: &str, version: &str, cpe: &str) -> AssetProductRow {
        AssetProductRow {
            asset_id: 1,
            vendor: vendor.into(),
            product: product.into(),
            version: version.into(),
            cpe: cpe.into(),
        }
    }

    #[test]
    fn products_match_by_name_or_cpe_and_exact_version() {
        let d = doc("bsi-2022-0001.json");
        // By names, any case.
        let m = match_products(
            &d,
            &[product(
                "csaf tools",
                "cvrf-csaf-converter",
                "1.0.0-dev2",
                "",
            )],
        );
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].1.fixed.as_deref(), Some("1.0.0-rc2"));
        assert_eq!(m[0].1.remediations[0].0, "vendor_fix");
        // By CPE alone (names differ), 2.3 against the document's 2.2 URI.
        let m = match_products(
            &d,
            &[product(
                "x",
                "y",
                "1.0.0-alpha",
                "cpe:2.3:a:csaf-tools:cvrf-csaf-converter:1.0.0-alpha:*:*:*:*:*:*:*",
            )],
        );
        assert_eq!(m.len(), 1);
        // The fixed version and an unlisted one: nothing.
        for v in ["1.0.0-rc2", "0.9"] {
            assert!(
                match_products(&d, &[product("CSAF Tools", "CVRF-CSAF-Converter", v, "")])
                    .is_empty(),
                "{v}"
            );
        }
        // Another product of the vendor: nothing.
        assert!(match_products(&d, &[product("CSAF Tools", "Other", "1.0.0-dev2", "")]).is_empty());
    }

    #[test]
    fn cisco_releases_match_exactly() {
        let d = doc("cisco-sa-20180328-smi2.json");
        let m = match_products(&d, &[product("Cisco", "IOS", "15.2(4)E", "")]);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].1.cves, ["CVE-2018-0171"]);
        assert_eq!(m[0].1.fixed, None);
        // A prefix or a neighbour is not the release.
        for v in ["15.2(4)", "15.2(4)E99", "15.2"] {
            assert!(
                match_products(&d, &[product("Cisco", "IOS", v, "")]).is_empty(),
                "{v}"
            );
        }
    }

    #[test]
    fn rpm_hosts_match_their_streams_only() {
        use patchbay_core::inventory::{OsRelease, Package};
        let d = doc("rhsa-2022_0011.json");
        let os = |id: &str, v: &str| OsRelease {
            id: id.into(),
            version_id: v.into(),
            ..Default::default()
        };
        let pkg = |name: &str, version: &str, arch: &str| Package {
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
            source: None,
            source_version: None,
        };
        let pkgs = [
            pkg("telnet", "1:0.17-64.el7", "x86_64"),
            pkg("telnet-server", "1:0.17-65.el7_6", "x86_64"),
            pkg("telnet-debuginfo", "1:0.17-64.el7", "ppc64le"),
        ];
        let m = match_rpm_host(&d, &os("rhel", "7.6"), &pkgs);
        let got: Vec<(&str, &str)> = m
            .iter()
            .map(|m| (m.package.as_str(), m.fixed.as_deref().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("telnet.x86_64", "1:0.17-65.el7_6"),
                ("telnet-debuginfo.ppc64le", "1:0.17-65.el7_6")
            ]
        );
        assert!(match_rpm_host(&d, &os("rhel", "7.9"), &pkgs).is_empty());
        assert!(match_rpm_host(&d, &os("debian", "7.6"), &pkgs).is_empty());
        // An epoch decides: 0:0.18 is older than 1:0.17.
        let m = match_rpm_host(
            &d,
            &os("rocky", "7.6"),
            &[pkg("telnet", "0:0.18-1.el7", "x86_64")],
        );
        assert_eq!(m.len(), 1);
        // The wrong arch: nothing.
        assert!(
            match_rpm_host(
                &d,
                &os("rhel", "7.6"),
                &[pkg("telnet", "1:0.17-64.el7", "aarch64")]
            )
            .is_empty()
        );
    }

    #[test]
    fn nevras_and_platforms_read() {
        assert_eq!(
            nevra("telnet-1:0.17-65.el7_6.x86_64"),
            Some(("telnet".into(), "1:0.17-65.el7_6".into(), "x86_64".into()))
        );
        assert_eq!(
            nevra("python3-libs-3.6.8-45.el8.noarch"),
            Some((
                "python3-libs".into(),
                "0:3.6.8-45.el8".into(),
                "noarch".into()
            ))
        );
        assert_eq!(
            nevra("pkg:rpm/redhat/telnet@0.17-65.el7_6?arch=x86_64&epoch=1"),
            Some(("telnet".into(), "1:0.17-65.el7_6".into(), "x86_64".into()))
        );
        assert_eq!(nevra("telnet"), None);
        assert_eq!(nevra("telnet-0.17.weird"), None);
        assert!(platform_matches("cpe:/o:redhat:enterprise_linux:8", "8.6"));
        assert!(platform_matches(
            "cpe:/a:redhat:enterprise_linux:8::appstream",
            "8.10"
        ));
        assert!(platform_matches(
            "cpe:/o:redhat:rhel_eus:8.6::baseos",
            "8.6"
        ));
        assert!(!platform_matches(
            "cpe:/o:redhat:rhel_eus:8.6::baseos",
            "8.8"
        ));
        assert!(!platform_matches("cpe:/o:redhat:enterprise_linux:9", "8.6"));
        assert!(!platform_matches("cpe:/o:redhat:openshift:4.13", "4.13"));
    }

    proptest::proptest! {
        #[test]
        fn ranges_never_panic(r in "\\PC{0,40}", v in "\\PC{0,20}") {
            let _ = in_range(&r, &v);
            let _ = cpe_parts(&r);
            let _ = nevra(&r);
            let _ = platform_matches(&r, &v);
        }
    }
}
