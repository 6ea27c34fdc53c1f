//! CSAF 2.0 advisories (OASIS Common Security Advisory Framework): the product
//! tree and the vulnerabilities of one document, validated into a [`Document`].
//!
//! # What is read
//! - `document`: `csaf_version` (`2.0`, or `2.1`), `category` (`csaf_vex`,
//!   `csaf_security_advisory`, …), `title`, `publisher` (name, namespace),
//!   `tracking` (id, version, status, release dates) and the `self` reference.
//! - `product_tree`: `branches` (recursively; a leaf's product gets the names of
//!   the `vendor`, `product_family`, `product_name`, `architecture` branches
//!   above it and its own `product_version` / `service_pack` / `patch_level` name
//!   as its version, or a `product_version_range` name as its range),
//!   `full_product_names`, `relationships` (component `product_reference` of
//!   platform `relates_to_product_reference`), `product_groups`, and each
//!   product's identification helper (`cpe`, `purl`, `model_numbers`,
//!   `serial_numbers`, `skus`).
//! - `vulnerabilities`: `cve`, `ids`, `title`, `product_status`
//!   (`known_affected`, `first_affected`, `last_affected`, `fixed`,
//!   `first_fixed`, `known_not_affected`, `under_investigation`,
//!   `recommended`), `flags` (VEX justification labels), `threats` (an `impact`
//!   threat's details is a VEX impact statement), `remediations` (`vendor_fix`,
//!   `workaround`, `mitigation`, `none_available`, `no_fix_planned` with details
//!   and URL) and `scores` (`cvss_v3`, `cvss_v4`; the score is computed from the
//!   vector, never read from `baseScore`). Group ids are expanded to product ids.
//!
//! # Refusal
//! A document that does not follow the schema's shape, names a product id it
//! never defines (CSAF mandatory test 6.1.1), defines one twice (6.1.2), or has
//! an invalid CVE id or CVSS vector is refused whole: [`parse`] returns an error
//! naming the **JSON path** (`vulnerabilities[0].product_status.fixed[2]`), and
//! nothing of it is kept. Unknown keys are ignored (later minor versions).
//!
//! Pure: bytes in, values out; never panics (property-tested, fuzzed as
//! `csaf`).

use crate::cve;
use crate::cvss;
use crate::error::FeedError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Branches nested deeper than this are refused (the spec sets no bound;
/// real trees are 3–5 deep, and the recursion must not exhaust the stack).
pub const MAX_BRANCH_DEPTH: usize = 32;

/// A validated CSAF document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// `document.tracking.id`, e.g. `cisco-sa-20180328-smi2`, `RHSA-2021:5217`.
    pub id: String,
    /// `document.title`.
    pub title: String,
    /// `document.category`, e.g. `csaf_vex`.
    pub category: String,
    /// `document.publisher.name`.
    pub publisher: String,
    /// `document.publisher.namespace`.
    pub namespace: String,
    /// `document.tracking.version`.
    pub version: String,
    /// `document.tracking.status` (`final`, `interim`, `draft`).
    pub status: String,
    /// `document.tracking.initial_release_date` as written.
    pub initial_release_date: String,
    /// `document.tracking.current_release_date` as written.
    pub current_release_date: String,
    /// The document's `self` reference URL (else its first reference), when it has one.
    pub url: Option<String>,
    /// `document.aggregate_severity.text`, when given.
    pub severity: Option<String>,
    /// Every product the tree defines, in document order.
    pub products: Vec<Product>,
    /// The vulnerabilities.
    pub vulnerabilities: Vec<Vulnerability>,
}

/// One product of the tree (a branch leaf, a full product name, or a
/// relationship's product).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Product {
    /// `product_id`.
    pub id: String,
    /// Its full product name.
    pub name: String,
    /// The `vendor` branch above it.
    pub vendor: Option<String>,
    /// The `product_family` branch above it.
    pub family: Option<String>,
    /// The `product_name` branch above it (or its own name when it is one).
    pub product: Option<String>,
    /// Its version: the `product_version` / `service_pack` / `patch_level` leaf name.
    pub version: Option<String>,
    /// Its version range: a `product_version_range` leaf name (`vers:…` or a
    /// comparator form such as `<=1.14.0`).
    pub range: Option<String>,
    /// The `architecture` branch above it.
    pub arch: Option<String>,
    /// `product_identification_helper.cpe`.
    pub cpe: Option<String>,
    /// `product_identification_helper.purl`.
    pub purl: Option<String>,
    /// `product_identification_helper.model_numbers`.
    pub models: Vec<String>,
    /// `product_identification_helper.serial_numbers`.
    pub serials: Vec<String>,
    /// `product_identification_helper.skus`.
    pub skus: Vec<String>,
    /// For a relationship's product: (category, component id, platform id).
    pub relationship: Option<Relationship>,
}

/// A relationship: `component` is a `category` of `platform`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relationship {
    /// `default_component_of`, `installed_on`, …
    pub category: String,
    /// `product_reference`.
    pub component: String,
    /// `relates_to_product_reference`.
    pub platform: String,
}

/// A product status (CSAF `product_status` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// `known_affected`, `first_affected`, `last_affected`.
    Affected,
    /// `fixed`, `first_fixed`.
    Fixed,
    /// `known_not_affected`.
    NotAffected,
    /// `under_investigation`.
    UnderInvestigation,
    /// `recommended`.
    Recommended,
}

impl Status {
    /// The name used in stored data and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Affected => "known_affected",
            Status::Fixed => "fixed",
            Status::NotAffected => "known_not_affected",
            Status::UnderInvestigation => "under_investigation",
            Status::Recommended => "recommended",
        }
    }
}

/// One vulnerability of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vulnerability {
    /// The CVE id, upper-case, when it has one.
    pub cve: Option<String>,
    /// Other ids (`system_name: text`), e.g. Cisco bug ids.
    pub ids: Vec<String>,
    /// `title`.
    pub title: Option<String>,
    /// Product ids by status (groups expanded).
    pub status: BTreeMap<Status, BTreeSet<String>>,
    /// VEX justification labels per product (`component_not_present`, …).
    pub flags: Vec<Flag>,
    /// Threats (`impact`, `exploit_status`, `target_set`).
    pub threats: Vec<Threat>,
    /// Remediations.
    pub remediations: Vec<Remediation>,
    /// Scores.
    pub scores: Vec<Score>,
}

impl Vulnerability {
    /// The status a product has in this vulnerability, when it is listed.
    pub fn status_of(&self, product: &str) -> Option<Status> {
        self.status
            .iter()
            .find(|(_, ids)| ids.contains(product))
            .map(|(s, _)| *s)
    }
}

/// A flag: the machine-readable VEX justification of `known_not_affected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// `component_not_present`, `vulnerable_code_not_present`,
    /// `vulnerable_code_cannot_be_controlled_by_adversary`,
    /// `vulnerable_code_not_in_execute_path`, `inline_mitigations_already_exist`.
    pub label: String,
    /// Products (groups expanded).
    pub products: BTreeSet<String>,
}

/// A threat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threat {
    /// `impact`, `exploit_status` or `target_set`.
    pub category: String,
    /// `details`.
    pub details: String,
    /// Products (groups expanded; empty: the whole vulnerability).
    pub products: BTreeSet<String>,
}

/// A remediation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remediation {
    /// `vendor_fix`, `workaround`, `mitigation`, `none_available`, `no_fix_planned`.
    pub category: String,
    /// `details`.
    pub details: String,
    /// `url`.
    pub url: Option<String>,
    /// Products (groups expanded).
    pub products: BTreeSet<String>,
}

/// A CVSS score and the products it applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// The vector (`CVSS:3.1/…`, `CVSS:4.0/…`).
    pub vector: String,
    /// The base score computed from the vector.
    pub base_score: f64,
    /// Products.
    pub products: BTreeSet<String>,
}

impl Document {
    /// The product with this id.
    pub fn product(&self, id: &str) -> Option<&Product> {
        self.products.iter().find(|p| p.id == id)
    }

    /// Every CVE the document names, sorted, once each.
    pub fn cves(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self
            .vulnerabilities
            .iter()
            .filter_map(|v| v.cve.as_ref())
            .collect();
        set.into_iter().cloned().collect()
    }

    /// The highest base score of any vulnerability, with its vector.
    pub fn best_score(&self) -> Option<(f64, String)> {
        self.vulnerabilities
            .iter()
            .flat_map(|v| &v.scores)
            .max_by(|a, b| a.base_score.total_cmp(&b.base_score))
            .map(|s| (s.base_score, s.vector.clone()))
    }
}

// ---- raw (serde) shapes -----------------------------------------------------

#[derive(Deserialize)]
struct RawDoc {
    document: RawMeta,
    #[serde(default)]
    product_tree: Option<RawTree>,
    #[serde(default)]
    vulnerabilities: Vec<RawVuln>,
}

#[derive(Deserialize)]
struct RawMeta {
    category: String,
    csaf_version: String,
    title: String,
    publisher: RawPublisher,
    tracking: RawTracking,
    #[serde(default)]
    references: Vec<RawReference>,
    #[serde(default)]
    aggregate_severity: Option<RawSeverity>,
}

#[derive(Deserialize)]
struct RawPublisher {
    name: String,
    namespace: String,
}

#[derive(Deserialize)]
struct RawTracking {
    id: String,
    version: String,
    status: String,
    initial_release_date: String,
    current_release_date: String,
}

#[derive(Deserialize)]
struct RawReference {
    #[serde(default)]
    category: Option<String>,
    url: String,
}

#[derive(Deserialize)]
struct RawSeverity {
    text: String,
}

#[derive(Deserialize, Default)]
struct RawTree {
    #[serde(default)]
    branches: Vec<RawBranch>,
    #[serde(default)]
    full_product_names: Vec<RawFullName>,
    #[serde(default)]
    relationships: Vec<RawRelationship>,
    #[serde(default)]
    product_groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
struct RawBranch {
    category: BranchCategory,
    name: String,
    #[serde(default)]
    branches: Vec<RawBranch>,
    #[serde(default)]
    product: Option<RawFullName>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum BranchCategory {
    Architecture,
    HostName,
    Language,
    Legacy,
    PatchLevel,
    ProductFamily,
    ProductName,
    ProductVersion,
    ProductVersionRange,
    ServicePack,
    Specification,
    Vendor,
}

#[derive(Deserialize)]
struct RawFullName {
    name: String,
    product_id: String,
    #[serde(default)]
    product_identification_helper: Option<RawHelper>,
}

#[derive(Deserialize, Default)]
struct RawHelper {
    #[serde(default)]
    cpe: Option<String>,
    #[serde(default)]
    purl: Option<String>,
    #[serde(default)]
    model_numbers: Vec<String>,
    #[serde(default)]
    serial_numbers: Vec<String>,
    #[serde(default)]
    skus: Vec<String>,
}

#[derive(Deserialize)]
struct RawRelationship {
    category: String,
    full_product_name: RawFullName,
    product_reference: String,
    relates_to_product_reference: String,
}

#[derive(Deserialize)]
struct RawGroup {
    group_id: String,
    product_ids: Vec<String>,
}

#[derive(Deserialize)]
struct RawVuln {
    #[serde(default)]
    cve: Option<String>,
    #[serde(default)]
    ids: Vec<RawId>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    product_status: Option<RawStatus>,
    #[serde(default)]
    flags: Vec<RawFlag>,
    #[serde(default)]
    threats: Vec<RawThreat>,
    #[serde(default)]
    remediations: Vec<RawRemediation>,
    #[serde(default)]
    scores: Vec<RawScore>,
}

#[derive(Deserialize)]
struct RawId {
    system_name: String,
    text: String,
}

#[derive(Deserialize, Default)]
struct RawStatus {
    #[serde(default)]
    first_affected: Vec<String>,
    #[serde(default)]
    first_fixed: Vec<String>,
    #[serde(default)]
    fixed: Vec<String>,
    #[serde(default)]
    known_affected: Vec<String>,
    #[serde(default)]
    known_not_affected: Vec<String>,
    #[serde(default)]
    last_affected: Vec<String>,
    #[serde(default)]
    recommended: Vec<String>,
    #[serde(default)]
    under_investigation: Vec<String>,
}

#[derive(Deserialize)]
struct RawFlag {
    label: FlagLabel,
    #[serde(default)]
    product_ids: Vec<String>,
    #[serde(default)]
    group_ids: Vec<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum FlagLabel {
    ComponentNotPresent,
    InlineMitigationsAlreadyExist,
    VulnerableCodeCannotBeControlledByAdversary,
    VulnerableCodeNotInExecutePath,
    VulnerableCodeNotPresent,
}

impl FlagLabel {
    fn as_str(self) -> &'static str {
        match self {
            FlagLabel::ComponentNotPresent => "component_not_present",
            FlagLabel::InlineMitigationsAlreadyExist => "inline_mitigations_already_exist",
            FlagLabel::VulnerableCodeCannotBeControlledByAdversary => {
                "vulnerable_code_cannot_be_controlled_by_adversary"
            }
            FlagLabel::VulnerableCodeNotInExecutePath => "vulnerable_code_not_in_execute_path",
            FlagLabel::VulnerableCodeNotPresent => "vulnerable_code_not_present",
        }
    }
}

#[derive(Deserialize)]
struct RawThreat {
    category: ThreatCategory,
    details: String,
    #[serde(default)]
    product_ids: Vec<String>,
    #[serde(default)]
    group_ids: Vec<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum ThreatCategory {
    ExploitStatus,
    Impact,
    TargetSet,
}

#[derive(Deserialize)]
struct RawRemediation {
    category: RemediationCategory,
    details: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    product_ids: Vec<String>,
    #[serde(default)]
    group_ids: Vec<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RemediationCategory {
    Mitigation,
    NoFixPlanned,
    NoneAvailable,
    VendorFix,
    Workaround,
    /// CSAF 2.1.
    OptionalPatch,
    /// CSAF 2.1.
    FixPlanned,
}

impl RemediationCategory {
    fn as_str(self) -> &'static str {
        match self {
            RemediationCategory::Mitigation => "mitigation",
            RemediationCategory::NoFixPlanned => "no_fix_planned",
            RemediationCategory::NoneAvailable => "none_available",
            RemediationCategory::VendorFix => "vendor_fix",
            RemediationCategory::Workaround => "workaround",
            RemediationCategory::OptionalPatch => "optional_patch",
            RemediationCategory::FixPlanned => "fix_planned",
        }
    }
}

#[derive(Deserialize)]
struct RawScore {
    products: Vec<String>,
    #[serde(default)]
    cvss_v3: Option<RawCvss>,
    #[serde(default)]
    cvss_v4: Option<RawCvss>,
}

#[derive(Deserialize)]
struct RawCvss {
    #[serde(rename = "vectorString")]
    vector_string: String,
}

// ---- parsing ----------------------------------------------------------------

/// Parses and validates one CSAF document. The error names the JSON path of
/// the first problem.
pub fn parse(bytes: &[u8]) -> Result<Document, FeedError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let raw: RawDoc = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let line = inner.line() as u64;
        let msg = strip_position(&inner.to_string());
        let err = FeedError::malformed(format!("{}: {msg}", shown_path(&path)));
        if line > 0 { err.at_line(line) } else { err }
    })?;
    de.end()
        .map_err(|e| FeedError::malformed(format!("trailing data after the document: {e}")))?;
    let id = raw.document.tracking.id.trim().to_owned();
    build(raw).map_err(|e| e.with_record(Some(id).filter(|s| !s.is_empty())))
}

/// serde_json appends " at line L column C"; the line is reported apart.
fn strip_position(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

fn shown_path(p: &str) -> &str {
    if p.is_empty() || p == "." {
        "(document)"
    } else {
        p
    }
}

fn bad(path: impl AsRef<str>, msg: impl AsRef<str>) -> FeedError {
    FeedError::malformed(format!("{}: {}", path.as_ref(), msg.as_ref()))
}

struct Ctx {
    products: Vec<Product>,
    defined: HashMap<String, String>,
}

impl Ctx {
    fn define(&mut self, p: Product, path: &str) -> Result<(), FeedError> {
        if p.id.trim().is_empty() {
            return Err(bad(path, "empty product_id"));
        }
        if let Some(first) = self.defined.get(&p.id) {
            return Err(bad(
                path,
                format!(
                    "product_id {:?} is defined twice (first at {first}; CSAF test 6.1.2)",
                    p.id
                ),
            ));
        }
        self.defined.insert(p.id.clone(), path.to_owned());
        self.products.push(p);
        Ok(())
    }
}

#[derive(Default, Clone)]
struct Trail {
    vendor: Option<String>,
    family: Option<String>,
    product: Option<String>,
    arch: Option<String>,
}

fn helper(p: &mut Product, h: Option<RawHelper>) {
    let h = h.unwrap_or_default();
    p.cpe = h.cpe.filter(|s| !s.trim().is_empty());
    p.purl = h.purl.filter(|s| !s.trim().is_empty());
    p.models = h.model_numbers;
    p.serials = h.serial_numbers;
    p.skus = h.skus;
}

fn walk(
    ctx: &mut Ctx,
    branches: Vec<RawBranch>,
    trail: &Trail,
    path: &str,
    depth: usize,
) -> Result<(), FeedError> {
    if depth > MAX_BRANCH_DEPTH {
        return Err(bad(
            path,
            format!("branches nested deeper than {MAX_BRANCH_DEPTH}"),
        ));
    }
    for (i, b) in branches.into_iter().enumerate() {
        let here = format!("{path}[{i}]");
        let mut t = trail.clone();
        let mut version = None;
        let mut range = None;
        match b.category {
            BranchCategory::Vendor => t.vendor = Some(b.name.clone()),
            BranchCategory::ProductFamily => t.family = Some(b.name.clone()),
            BranchCategory::ProductName => t.product = Some(b.name.clone()),
            BranchCategory::Architecture => t.arch = Some(b.name.clone()),
            BranchCategory::ProductVersion
            | BranchCategory::ServicePack
            | BranchCategory::PatchLevel => version = Some(b.name.clone()),
            BranchCategory::ProductVersionRange => range = Some(b.name.clone()),
            _ => {}
        }
        if b.branches.is_empty() && b.product.is_none() {
            return Err(bad(&here, "a branch with neither branches nor product"));
        }
        if let Some(fp) = b.product {
            let mut p = Product {
                id: fp.product_id,
                name: fp.name,
                vendor: t.vendor.clone(),
                family: t.family.clone(),
                product: t.product.clone(),
                version,
                range,
                arch: t.arch.clone(),
                ..Default::default()
            };
            helper(&mut p, fp.product_identification_helper);
            ctx.define(p, &format!("{here}.product.product_id"))?;
        }
        walk(ctx, b.branches, &t, &format!("{here}.branches"), depth + 1)?;
    }
    Ok(())
}

fn build(raw: RawDoc) -> Result<Document, FeedError> {
    let m = raw.document;
    if !matches!(m.csaf_version.as_str(), "2.0" | "2.1") {
        return Err(bad(
            "document.csaf_version",
            format!("{:?} is not 2.0 (or 2.1)", m.csaf_version),
        ));
    }
    if m.tracking.id.trim().is_empty() {
        return Err(bad("document.tracking.id", "empty"));
    }
    let mut ctx = Ctx {
        products: Vec::new(),
        defined: HashMap::new(),
    };
    let tree = raw.product_tree.unwrap_or_default();
    walk(
        &mut ctx,
        tree.branches,
        &Trail::default(),
        "product_tree.branches",
        0,
    )?;
    for (i, f) in tree.full_product_names.into_iter().enumerate() {
        let mut p = Product {
            id: f.product_id,
            name: f.name,
            ..Default::default()
        };
        helper(&mut p, f.product_identification_helper);
        ctx.define(
            p,
            &format!("product_tree.full_product_names[{i}].product_id"),
        )?;
    }
    let mut rels = Vec::new();
    for (i, r) in tree.relationships.into_iter().enumerate() {
        rels.push((
            i,
            r.product_reference.clone(),
            r.relates_to_product_reference.clone(),
        ));
        let mut p = Product {
            id: r.full_product_name.product_id,
            name: r.full_product_name.name,
            relationship: Some(Relationship {
                category: r.category,
                component: r.product_reference,
                platform: r.relates_to_product_reference,
            }),
            ..Default::default()
        };
        helper(&mut p, r.full_product_name.product_identification_helper);
        ctx.define(
            p,
            &format!("product_tree.relationships[{i}].full_product_name.product_id"),
        )?;
    }
    // Relationship references are checked once every product is defined.
    for (i, component, platform) in rels {
        for (key, id) in [
            ("product_reference", component),
            ("relates_to_product_reference", platform),
        ] {
            if !ctx.defined.contains_key(&id) {
                return Err(undefined(
                    &format!("product_tree.relationships[{i}].{key}"),
                    &id,
                ));
            }
        }
    }
    // Complete relationship products from their component and platform, so
    // an RHSA's `AppStream-8.5.0.Z.MAIN:openssl-1:1.1.1k-5.el8_5.x86_64` has
    // the component's version and the platform's CPE at hand.
    let snapshot: HashMap<String, Product> = ctx
        .products
        .iter()
        .map(|p| (p.id.clone(), p.clone()))
        .collect();
    for p in &mut ctx.products {
        if let Some(r) = &p.relationship
            && let Some(c) = snapshot.get(&r.component)
        {
            p.version = p.version.take().or_else(|| c.version.clone());
            p.product = p.product.take().or_else(|| c.product.clone());
            p.vendor = p.vendor.take().or_else(|| c.vendor.clone());
            p.arch = p.arch.take().or_else(|| c.arch.clone());
            p.purl = p.purl.take().or_else(|| c.purl.clone());
        }
    }
    let mut groups: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (i, g) in tree.product_groups.into_iter().enumerate() {
        let mut set = BTreeSet::new();
        for (j, id) in g.product_ids.into_iter().enumerate() {
            if !ctx.defined.contains_key(&id) {
                return Err(undefined(
                    &format!("product_tree.product_groups[{i}].product_ids[{j}]"),
                    &id,
                ));
            }
            set.insert(id);
        }
        groups.insert(g.group_id, set);
    }
    let expand =
        |ids: Vec<String>, gids: Vec<String>, path: &str| -> Result<BTreeSet<String>, FeedError> {
            let mut out = BTreeSet::new();
            for (j, id) in ids.into_iter().enumerate() {
                if !ctx.defined.contains_key(&id) {
                    return Err(undefined(&format!("{path}.product_ids[{j}]"), &id));
                }
                out.insert(id);
            }
            for (j, g) in gids.into_iter().enumerate() {
                match groups.get(&g) {
                    Some(set) => out.extend(set.iter().cloned()),
                    None => {
                        return Err(bad(
                            format!("{path}.group_ids[{j}]"),
                            format!("group id {g:?} is not defined in product_tree.product_groups"),
                        ));
                    }
                }
            }
            Ok(out)
        };
    let mut vulns = Vec::with_capacity(raw.vulnerabilities.len());
    for (i, v) in raw.vulnerabilities.into_iter().enumerate() {
        let vp = format!("vulnerabilities[{i}]");
        let cve = match v.cve {
            None => None,
            Some(c) => Some(
                cve::normalize(c.trim())
                    .ok_or_else(|| bad(format!("{vp}.cve"), format!("{c:?} is not a CVE id")))?,
            ),
        };
        let mut status: BTreeMap<Status, BTreeSet<String>> = BTreeMap::new();
        let s = v.product_status.unwrap_or_default();
        for (key, st, ids) in [
            ("first_affected", Status::Affected, s.first_affected),
            ("known_affected", Status::Affected, s.known_affected),
            ("last_affected", Status::Affected, s.last_affected),
            ("first_fixed", Status::Fixed, s.first_fixed),
            ("fixed", Status::Fixed, s.fixed),
            (
                "known_not_affected",
                Status::NotAffected,
                s.known_not_affected,
            ),
            (
                "under_investigation",
                Status::UnderInvestigation,
                s.under_investigation,
            ),
            ("recommended", Status::Recommended, s.recommended),
        ] {
            for (j, id) in ids.into_iter().enumerate() {
                let path = format!("{vp}.product_status.{key}[{j}]");
                if !ctx.defined.contains_key(&id) {
                    return Err(undefined(&path, &id));
                }
                // CSAF test 6.1.6: one product, contradicting statuses.
                if let Some((other, _)) = status.iter().find(|(o, set)| {
                    **o != st
                        && *o != &Status::Recommended
                        && st != Status::Recommended
                        && set.contains(&id)
                }) {
                    return Err(bad(
                        &path,
                        format!(
                            "product {id:?} is also {} (contradicting product status, CSAF test 6.1.6)",
                            other.as_str()
                        ),
                    ));
                }
                status.entry(st).or_default().insert(id);
            }
        }
        let mut flags = Vec::new();
        for (j, f) in v.flags.into_iter().enumerate() {
            let products = expand(f.product_ids, f.group_ids, &format!("{vp}.flags[{j}]"))?;
            flags.push(Flag {
                label: f.label.as_str().to_owned(),
                products,
            });
        }
        let mut threats = Vec::new();
        for (j, t) in v.threats.into_iter().enumerate() {
            let products = expand(t.product_ids, t.group_ids, &format!("{vp}.threats[{j}]"))?;
            threats.push(Threat {
                category: match t.category {
                    ThreatCategory::ExploitStatus => "exploit_status",
                    ThreatCategory::Impact => "impact",
                    ThreatCategory::TargetSet => "target_set",
                }
                .to_owned(),
                details: t.details,
                products,
            });
        }
        let mut remediations = Vec::new();
        for (j, r) in v.remediations.into_iter().enumerate() {
            let rp = format!("{vp}.remediations[{j}]");
            let products = expand(r.product_ids, r.group_ids, &rp)?;
            if products.is_empty() {
                return Err(bad(
                    &rp,
                    "names no product_ids or group_ids (CSAF requires one)",
                ));
            }
            remediations.push(Remediation {
                category: r.category.as_str().to_owned(),
                details: r.details,
                url: r.url.filter(|u| !u.trim().is_empty()),
                products,
            });
        }
        let mut scores = Vec::new();
        for (j, sc) in v.scores.into_iter().enumerate() {
            let sp = format!("{vp}.scores[{j}]");
            let products = expand(sc.products, vec![], &sp)?;
            for (key, c) in [("cvss_v3", sc.cvss_v3), ("cvss_v4", sc.cvss_v4)] {
                if let Some(c) = c {
                    let s = cvss::score(&c.vector_string)
                        .map_err(|e| bad(format!("{sp}.{key}.vectorString"), e.message()))?;
                    scores.push(Score {
                        vector: s.vector,
                        base_score: s.base_score,
                        products: products.clone(),
                    });
                }
            }
        }
        vulns.push(Vulnerability {
            cve,
            ids: v
                .ids
                .into_iter()
                .map(|x| format!("{}: {}", x.system_name, x.text))
                .collect(),
            title: v.title,
            status,
            flags,
            threats,
            remediations,
            scores,
        });
    }
    let url = m
        .references
        .iter()
        .find(|r| r.category.as_deref() == Some("self"))
        .or_else(|| m.references.first())
        .map(|r| r.url.clone());
    Ok(Document {
        id: m.tracking.id.trim().to_owned(),
        title: m.title,
        category: m.category,
        publisher: m.publisher.name,
        namespace: m.publisher.namespace,
        version: m.tracking.version,
        status: m.tracking.status,
        initial_release_date: m.tracking.initial_release_date,
        current_release_date: m.tracking.current_release_date,
        url,
        severity: m.aggregate_severity.map(|s| s.text),
        products: ctx.products,
        vulnerabilities: vulns,
    })
}

fn undefined(path: &str, id: &str) -> FeedError {
    bad(
        path,
        format!("product id {id:?} is not defined in the product tree (CSAF test 6.1.1)"),
    )
}

/// Whether a JSON object's top-level keys look like a CSAF document (a
/// `document` object with `csaf_version`).
pub fn sniff(value_keys: &serde_json::Value) -> bool {
    value_keys
        .get("document")
        .and_then(|d| d.get("csaf_version"))
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"{"document":{"category":"csaf_vex","csaf_version":"2.0","title":"t",
      "publisher":{"category":"vendor","name":"Example","namespace":"https://example.com"},
      "tracking":{"id":"EX-1","version":"1","status":"final","initial_release_date":"2022-01-01T00:00:00Z",
      "current_release_date":"2022-01-01T00:00:00Z","revision_history":[]}},
      "product_tree":{"branches":[{"category":"vendor","name":"Example","branches":[{"category":"product_name","name":"ABC",
        "branches":[{"category":"product_version","name":"4.2","product":{"name":"Example ABC 4.2","product_id":"P1",
        "product_identification_helper":{"cpe":"cpe:2.3:a:example:abc:4.2:*:*:*:*:*:*:*"}}}]}]}]},
      "vulnerabilities":[{"cve":"CVE-2021-44228","product_status":{"known_not_affected":["P1"]},
        "flags":[{"label":"component_not_present","product_ids":["P1"]}]}]}"#;

    #[test]
    fn a_minimal_vex_document_reads() {
        let d = parse(MIN.as_bytes()).unwrap();
        assert_eq!(d.id, "EX-1");
        let p = d.product("P1").unwrap();
        assert_eq!(p.vendor.as_deref(), Some("Example"));
        assert_eq!(p.product.as_deref(), Some("ABC"));
        assert_eq!(p.version.as_deref(), Some("4.2"));
        assert_eq!(
            d.vulnerabilities[0].status_of("P1"),
            Some(Status::NotAffected)
        );
        assert_eq!(d.vulnerabilities[0].flags[0].label, "component_not_present");
    }

    #[test]
    fn an_undefined_product_is_refused_with_its_path() {
        let doc = MIN.replace(
            r#""known_not_affected":["P1"]"#,
            r#""known_not_affected":["P1","P9"]"#,
        );
        let e = parse(doc.as_bytes()).unwrap_err();
        assert!(
            e.message().starts_with(
                "vulnerabilities[0].product_status.known_not_affected[1]: product id \"P9\""
            ),
            "{e}"
        );
        assert_eq!(e.record(), Some("EX-1"));
    }

    #[test]
    fn a_shape_error_names_the_json_path() {
        let doc = MIN.replace(
            r#""label":"component_not_present""#,
            r#""label":"not_a_label""#,
        );
        let e = parse(doc.as_bytes()).unwrap_err();
        assert!(
            e.message()
                .starts_with("vulnerabilities[0].flags[0].label: unknown variant"),
            "{e}"
        );
        let doc = MIN.replace(r#""csaf_version":"2.0","#, "");
        let e = parse(doc.as_bytes()).unwrap_err();
        assert!(
            e.message()
                .contains("document: missing field `csaf_version`"),
            "{e}"
        );
    }

    #[test]
    fn contradicting_statuses_and_double_definitions_are_refused() {
        let doc = MIN.replace(
            r#""known_not_affected":["P1"]"#,
            r#""known_not_affected":["P1"],"known_affected":["P1"]"#,
        );
        let e = parse(doc.as_bytes()).unwrap_err();
        assert!(e.message().contains("contradicting product status"), "{e}");
        let doc = MIN.replace(
            r#""product_tree":{"#,
            r#""product_tree":{"full_product_names":[{"name":"x","product_id":"P1"}],"#,
        );
        let e = parse(doc.as_bytes()).unwrap_err();
        assert!(e.message().contains("defined twice"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_documents(at in 0usize..1400, byte in proptest::num::u8::ANY) {
            let mut doc = MIN.as_bytes().to_vec();
            let at = at % doc.len();
            doc[at] = byte;
            let _ = parse(&doc);
        }
    }
}
