//! Policy files: the example parses; broken policies are rejected with the exact
//! line and field, all errors together; group, ring, exclusion, pin and approval
//! rules behave as documented; the fingerprint ignores form and sees meaning; no
//! text makes the parser panic.

use crate::common::{cut, delete_lines};
use jiff::SignedDuration;
use jiff::civil::date;
use patchbay_core::asset::{AssetKind, BusinessImpact, Exposure};
use patchbay_core::policy::{AssetFacts, Policy, PolicyError, Rule, glob_match, parse};
use patchbay_core::risk::{MissingCvss, RiskModel, Tier};
use proptest::prelude::*;
use std::path::Path;

fn example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/policy/example.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn ok(text: &str) -> Policy {
    parse(text).unwrap_or_else(|errors| {
        panic!(
            "policy rejected:\n{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

fn errors(text: &str) -> Vec<PolicyError> {
    match parse(text) {
        Ok(_) => panic!("policy accepted:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn the_example_parses() {
    let p = ok(&example());
    assert_eq!(
        p.risk,
        RiskModel::default(),
        "the example spells out the defaults"
    );
    let names: Vec<&str> = p.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "staging",
            "web-prod",
            "databases",
            "crown-jewels",
            "not-critical-prod"
        ]
    );
    let web = &p.groups[1];
    assert_eq!(web.rule.os, ["debian:12", "ubuntu"]);
    assert_eq!(web.rule.kind, [AssetKind::CloudInstance, AssetKind::Server]);
    assert_eq!(
        web.description,
        "Production web servers on Debian 12 or Ubuntu"
    );
    assert_eq!(p.approval.always_approve_tiers, [Tier::P0, Tier::P1]);
    assert_eq!(p.approval.auto_approve_security_after_days, Some(7));
    assert_eq!(p.exclusions.len(), 2);
    assert_eq!(p.pins.len(), 2);
    let rings: Vec<(&str, u32, i64)> = p
        .rings
        .iter()
        .map(|r| (r.name.as_str(), r.order, r.soak.as_hours()))
        .collect();
    assert_eq!(
        rings,
        [
            ("ring0-staging", 0, 24),
            ("ring1-pilot", 1, 48),
            ("ring2-broad", 2, 24),
            ("ring3-critical", 3, 0)
        ]
    );
    // A ring without `soak` soaks 24 hours.
    let q = ok("version = 1\n[[rings]]\nname = \"a\"\norder = 0\nmatch = {}\n");
    assert_eq!(q.rings[0].soak, patchbay_core::policy::DEFAULT_SOAK);
}

#[test]
fn version_alone_is_the_default_policy() {
    assert_eq!(ok("version = 1\n"), Policy::default());
    assert_eq!(ok("version = 0x1 # hex is still 1\n"), Policy::default());
}

/// (name, policy text, line, field, part of the message)
const BROKEN: &[(&str, &str, usize, &str, &str)] = &[
    (
        "bad duration",
        "version = 1\n[sla]\nP0 = \"72h\"\nP1 = \"7x\"\n",
        4,
        "sla.P1",
        "invalid duration \"7x\" (use e.g. 72h or 7d)",
    ),
    (
        "zero duration",
        "version = 1\n[sla]\nP0 = \"0h\"\n",
        3,
        "sla.P0",
        "at least 1h",
    ),
    (
        "duration not a string",
        "version = 1\n[sla]\nP3 = 30\n",
        3,
        "sla.P3",
        "expected a string, found an integer",
    ),
    (
        "SLA longer than the next tier's",
        "version = 1\n[sla]\nP2 = \"60d\"\n",
        3,
        "sla.P2",
        "P2's SLA (60d) is longer than P3's (30d)",
    ),
    (
        "SLA shorter than the previous tier's: the later key is blamed",
        "version = 1\n[sla]\nP0 = \"5d\"\nP1 = \"4d\"\n",
        4,
        "sla.P1",
        "P0's SLA (5d) is longer than P1's (4d)",
    ),
    (
        "unknown tier name in [sla]",
        "version = 1\n[sla]\nP5 = \"1d\"\n",
        3,
        "sla.P5",
        "unknown tier `P5` (expected P0, P1, P2, P3 or P4)",
    ),
    (
        "unknown tier name in approval",
        "version = 1\n\n[approval]\nalways_approve_tiers = [\n  \"P0\",\n  \"P9\",\n]\n",
        6,
        "approval.always_approve_tiers[1]",
        "unknown tier \"P9\"",
    ),
    (
        "unknown top-level key",
        "version = 1\n[tier]\np1_cvss = 9.0\n",
        2,
        "tier",
        "unknown key `tier` (expected one of: version, sla, tiers, groups, approval, exclusions, pins, rings)",
    ),
    (
        "unknown key in [tiers]",
        "version = 1\n[tiers]\np1_cvs = 9.0\n",
        3,
        "tiers.p1_cvs",
        "unknown key `p1_cvs`",
    ),
    (
        "unknown key in a group's match",
        "version = 1\n[[groups]]\nname = \"a\"\n[groups.match]\nenvironmnet = \"prod\"\n",
        5,
        "groups[0].match.environmnet",
        "unknown key `environmnet`",
    ),
    (
        "wrong type: threshold",
        "version = 1\n[tiers]\np1_cvss = \"high\"\n",
        3,
        "tiers.p1_cvss",
        "expected a number, found a string",
    ),
    (
        "wrong type: flag",
        "version = 1\n[tiers]\nkev_is_p0 = \"yes\"\n",
        3,
        "tiers.kev_is_p0",
        "expected a boolean (true or false), found a string",
    ),
    (
        "wrong type: days",
        "version = 1\n[approval]\nauto_approve_security_after_days = \"7\"\n",
        3,
        "approval.auto_approve_security_after_days",
        "expected an integer, found a string",
    ),
    (
        "wrong type: table",
        "version = 1\nsla = \"fast\"\n",
        2,
        "sla",
        "expected a table, found a string",
    ),
    (
        "wrong type: datetime",
        "version = 1\n[tiers]\nunknown_cvss = 2026-01-01\n",
        3,
        "tiers.unknown_cvss",
        "expected a number, found a datetime",
    ),
    (
        "groups as a table",
        "version = 1\n[groups]\nname = \"a\"\n",
        2,
        "groups",
        "expected an array of tables ([[groups]]), found a table",
    ),
    (
        "EPSS threshold above 1",
        "version = 1\n[tiers]\np0_epss_internet = 1.5\n",
        3,
        "tiers.p0_epss_internet",
        "1.5 is out of range: must be between 0.0 and 1.0",
    ),
    (
        "EPSS threshold below 0",
        "version = 1\n[tiers]\np1_epss = -0.1\n",
        3,
        "tiers.p1_epss",
        "out of range",
    ),
    (
        "CVSS threshold above 10",
        "version = 1\n[tiers]\np2_cvss = 10.5\n",
        3,
        "tiers.p2_cvss",
        "10.5 is out of range: must be between 0.0 and 10.0",
    ),
    (
        "CVSS threshold NaN",
        "version = 1\n[tiers]\np3_cvss = nan\n",
        3,
        "tiers.p3_cvss",
        "out of range",
    ),
    (
        "assumed CVSS out of range",
        "version = 1\n[tiers.severity_cvss]\nhigh = 12\n",
        3,
        "tiers.severity_cvss.high",
        "12.0 is out of range",
    ),
    (
        "unknown missing-CVSS rule",
        "version = 1\n[tiers]\nmissing_cvss = \"guess\"\n",
        3,
        "tiers.missing_cvss",
        "unknown rule \"guess\"",
    ),
    (
        "days out of range",
        "version = 1\n[approval]\nauto_approve_security_after_days = -1\n",
        3,
        "approval.auto_approve_security_after_days",
        "-1 is out of range: must be between 0 and 3650",
    ),
    (
        "duplicate group name",
        "version = 1\n[[groups]]\nname = \"web\"\nmatch = {}\n[[groups]]\nname = \"web\"\nmatch = {}\n",
        6,
        "groups[1].name",
        "duplicate group name \"web\" (first defined on line 3)",
    ),
    (
        "invalid group name",
        "version = 1\n[[groups]]\nname = \"web servers\"\nmatch = {}\n",
        3,
        "groups[0].name",
        "invalid name \"web servers\"",
    ),
    (
        "group without match",
        "version = 1\n[[groups]]\nname = \"web\"\n",
        2,
        "groups[0].match",
        "missing required key `match` (use `match = {}` for every asset)",
    ),
    (
        "invalid OS pattern",
        "version = 1\n[[groups]]\nname = \"a\"\nmatch = { os = [\"debian:12\", \"Debian 12\"] }\n",
        4,
        "groups[0].match.os[1]",
        "invalid OS pattern \"Debian 12\"",
    ),
    (
        "unknown asset kind",
        "version = 1\n[[groups]]\nname = \"a\"\n[groups.match]\nkind = \"mainframe\"\n",
        5,
        "groups[0].match.kind",
        "unknown AssetKind \"mainframe\"",
    ),
    (
        "empty list",
        "version = 1\n[[groups]]\nname = \"a\"\n[groups.match]\ntags_any = []\n",
        5,
        "groups[0].match.tags_any",
        "empty list",
    ),
    (
        "ring referencing an unknown group",
        "version = 1\n[[groups]]\nname = \"staging\"\nmatch = { environment = \"staging\" }\n\n[[rings]]\nname = \"ring0\"\norder = 0\ngroups = [\"staging\", \"pilot\"]\n",
        9,
        "rings[0].groups[1]",
        "unknown group \"pilot\" (defined groups: staging)",
    ),
    (
        "ring without members",
        "version = 1\n[[rings]]\nname = \"ring0\"\norder = 0\n",
        2,
        "rings[0]",
        "a ring needs `groups` or `match`",
    ),
    (
        "bad ring soak",
        "version = 1\n[[rings]]\nname = \"a\"\norder = 0\nmatch = {}\nsoak = \"2w\"\n",
        6,
        "rings[0].soak",
        "invalid duration \"2w\" (use e.g. 72h or 7d)",
    ),
    (
        "duplicate ring order",
        "version = 1\n[[rings]]\nname = \"a\"\norder = 0\nmatch = {}\n[[rings]]\nname = \"b\"\norder = 0\nmatch = {}\n",
        8,
        "rings[1].order",
        "another ring has order 0 (line 4)",
    ),
    (
        "exclusion without reason",
        "version = 1\n\n[[exclusions]]\npackage = \"linux-image-*\"\n",
        3,
        "exclusions[0].reason",
        "missing required key `reason`",
    ),
    (
        "exclusion of an unknown group",
        "version = 1\n[[exclusions]]\npackage = \"x\"\ngroup = \"dbs\"\nreason = \"r\"\n",
        4,
        "exclusions[0].group",
        "unknown group \"dbs\" (no groups are defined)",
    ),
    (
        "two pins for the same scope",
        "version = 1\n[[pins]]\npackage = \"nginx\"\nmax_version = \"1\"\n[[pins]]\npackage = \"nginx\"\nmax_version = \"2\"\n",
        5,
        "pins[1]",
        "a second pin of \"nginx\" for the same assets (first on line 2)",
    ),
    (
        "a pin with a glob",
        "version = 1\n[[pins]]\npackage = \"nginx*\"\nmax_version = \"1\"\n",
        3,
        "pins[0].package",
        "globs are not allowed",
    ),
    (
        "unknown key in a pin",
        "version = 1\n[[pins]]\npackage = \"nginx\"\nversion = \"1\"\nmax_version = \"1\"\n",
        4,
        "pins[0].version",
        "unknown key `version`",
    ),
    (
        "version 2",
        "version = 2\n[sla]\nP0 = \"1d\"\n",
        1,
        "version",
        "unsupported policy version 2: this build reads version 1",
    ),
    (
        "version as a string",
        "# policy\nversion = \"1\"\n",
        2,
        "version",
        "expected an integer, found a string",
    ),
    (
        "version missing",
        "[sla]\nP0 = \"1d\"\n",
        1,
        "version",
        "missing required key `version`",
    ),
    (
        "syntax error",
        "version = 1\n[sla\nP0 = \"1d\"\n",
        2,
        "",
        "",
    ),
    (
        "duplicate key",
        "version = 1\n[sla]\nP0 = \"1d\"\nP0 = \"2d\"\n",
        4,
        "",
        "duplicate key",
    ),
];

#[test]
fn broken_policies_name_line_and_field() {
    let mut failures = Vec::new();
    for (name, text, line, field, message) in BROKEN {
        let errs = match parse(text) {
            Ok(_) => {
                failures.push(format!("{name}: accepted"));
                continue;
            }
            Err(e) => e,
        };
        let got: Vec<String> = errs.iter().map(ToString::to_string).collect();
        if errs.len() != 1
            || errs[0].line != *line
            || errs[0].field != *field
            || !errs[0].message.contains(message)
        {
            failures.push(format!(
                "{name}: want line {line}, {field:?}, {message:?}; got {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn display_names_line_and_field() {
    let errs = errors("version = 1\n\n[sla]\nP1 = \"7x\"\n");
    assert_eq!(
        errs[0].to_string(),
        "line 4, sla.P1: invalid duration \"7x\" (use e.g. 72h or 7d)"
    );
    assert_eq!(errs[0].column, 6);
    let syntax = errors("version = 1\n[sla\n");
    assert!(
        syntax[0].to_string().starts_with("line 2: "),
        "{}",
        syntax[0]
    );
}

#[test]
fn columns_count_characters() {
    let errs = errors(
        "version = 1\n[[groups]]\nname = \"a\"\nmatch = { owner = \"é\", environmnet = \"x\" }\n",
    );
    assert_eq!(errs[0].field, "groups[0].match.environmnet");
    // 24 characters in, 25 bytes.
    assert_eq!((errs[0].line, errs[0].column), (4, 24));
}

#[test]
fn all_errors_are_reported_together() {
    let text = r#"version = 1

[sla]
P1 = "7x"
P9 = "1d"

[tiers]
p0_epss_internet = 2.0
p2_cvss = "seven"
colour = "red"

[[groups]]
name = "web"
match = { os = "Debian" }

[[groups]]
name = "web"
match = {}

[approval]
always_approve_tiers = ["P0", "PX"]

[[rings]]
name = "ring0"
order = 0
groups = ["nowhere"]
"#;
    let errs = errors(text);
    let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert_eq!(
        got,
        [
            (4, "sla.P1"),
            (5, "sla.P9"),
            (8, "tiers.p0_epss_internet"),
            (9, "tiers.p2_cvss"),
            (10, "tiers.colour"),
            (14, "groups[0].match.os"),
            (17, "groups[1].name"),
            (21, "approval.always_approve_tiers[1]"),
            (26, "rings[0].groups[0]"),
        ],
        "{errs:#?}"
    );
}

struct Asset {
    name: &'static str,
    os: &'static str,
    tags: Vec<String>,
    owner: &'static str,
    environment: &'static str,
    kind: AssetKind,
    impact: BusinessImpact,
    exposure: Exposure,
}

impl Asset {
    fn new(name: &'static str) -> Self {
        Asset {
            name,
            os: "",
            tags: Vec::new(),
            owner: "",
            environment: "",
            kind: AssetKind::Server,
            impact: BusinessImpact::Medium,
            exposure: Exposure::Internal,
        }
    }
    fn os(mut self, os: &'static str) -> Self {
        self.os = os;
        self
    }
    fn tags(mut self, tags: &[&str]) -> Self {
        self.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        self
    }
    fn owner(mut self, owner: &'static str) -> Self {
        self.owner = owner;
        self
    }
    fn env(mut self, environment: &'static str) -> Self {
        self.environment = environment;
        self
    }
    fn kind(mut self, kind: AssetKind) -> Self {
        self.kind = kind;
        self
    }
    fn impact(mut self, impact: BusinessImpact) -> Self {
        self.impact = impact;
        self
    }
    fn exposure(mut self, exposure: Exposure) -> Self {
        self.exposure = exposure;
        self
    }
    fn facts(&self) -> AssetFacts<'_> {
        AssetFacts {
            name: self.name,
            os: self.os,
            tags: &self.tags,
            owner: self.owner,
            environment: self.environment,
            kind: self.kind,
            impact: self.impact,
            exposure: self.exposure,
        }
    }
}

fn rule(toml_match: &str) -> Rule {
    let p = ok(&format!(
        "version = 1\n[[groups]]\nname = \"g\"\nmatch = {toml_match}\n"
    ));
    p.groups[0].rule.clone()
}

#[test]
fn group_rules_match_as_documented() {
    let web = Asset::new("web-01")
        .os("debian:12")
        .tags(&["web", "prod"])
        .owner("team-web")
        .env("prod")
        .exposure(Exposure::InternetFacing);
    let alma = Asset::new("db-01").os("almalinux:9.4");
    let rows: &[(&str, &Asset, bool)] = &[
        ("{}", &web, true),
        // os: ID, ID:VERSION, dotted prefix only.
        ("{ os = \"debian\" }", &web, true),
        ("{ os = \"debian:12\" }", &web, true),
        ("{ os = \"debian:11\" }", &web, false),
        ("{ os = [\"ubuntu\", \"debian:12\"] }", &web, true),
        ("{ os = \"almalinux:9\" }", &alma, true),
        ("{ os = \"almalinux:9.4\" }", &alma, true),
        ("{ os = \"almalinux:9.40\" }", &alma, false),
        ("{ os = \"almalinux:94\" }", &alma, false),
        ("{ os = \"alma\" }", &alma, false),
        ("{ os = \"debian\" }", &Asset::new("unknown-os"), false),
        // name globs.
        ("{ name = \"web-*\" }", &web, true),
        ("{ name = \"web-?\" }", &web, false),
        ("{ name = \"web-??\" }", &web, true),
        ("{ name = \"*-01\" }", &web, true),
        ("{ name = \"db-*\" }", &web, false),
        // tags.
        ("{ tags_any = [\"web\", \"db\"] }", &web, true),
        ("{ tags_any = \"db\" }", &web, false),
        ("{ tags_all = [\"web\", \"prod\"] }", &web, true),
        ("{ tags_all = [\"web\", \"pci\"] }", &web, false),
        // owner, environment: exact.
        ("{ owner = \"team-web\" }", &web, true),
        ("{ owner = \"team\" }", &web, false),
        ("{ environment = [\"staging\", \"prod\"] }", &web, true),
        ("{ environment = \"Prod\" }", &web, false),
        ("{ environment = \"prod\" }", &Asset::new("no-env"), false),
        // kind, impact, exposure.
        ("{ kind = \"server\" }", &web, true),
        ("{ kind = \"desktop\" }", &web, false),
        (
            "{ kind = \"network-device\" }",
            &Asset::new("sw1").kind(AssetKind::NetworkDevice),
            true,
        ),
        ("{ impact = \"critical\" }", &web, false),
        (
            "{ impact = [\"critical\", \"high\"] }",
            &Asset::new("x").impact(BusinessImpact::High),
            true,
        ),
        ("{ exposure = \"internet-facing\" }", &web, true),
        ("{ exposure = \"isolated\" }", &web, false),
        // AND across keys.
        (
            "{ os = \"debian\", environment = \"prod\", tags_any = \"web\" }",
            &web,
            true,
        ),
        (
            "{ os = \"debian\", environment = \"staging\" }",
            &web,
            false,
        ),
    ];
    let mut failures = Vec::new();
    for (m, asset, want) in rows {
        if rule(m).matches(&asset.facts()) != *want {
            failures.push(format!("{m} on {}: want {want}", asset.name));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn glob() {
    for (p, t, want) in [
        ("*", "", true),
        ("*", "anything", true),
        ("", "", true),
        ("", "a", false),
        ("a*b*c", "abc", true),
        ("a*b*c", "aXbYc", true),
        ("a*b*c", "aXbY", false),
        ("linux-image-*", "linux-image-6.1.0-28-amd64", true),
        ("linux-image-*", "linux-headers-6.1", false),
        ("?", "é", true),
        ("**a", "bba", true),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
    ] {
        assert_eq!(glob_match(p, t), want, "{p:?} {t:?}");
    }
}

#[test]
fn groups_rings_exclusions_and_pins_of_the_example() {
    let p = ok(&example());
    let web1 = Asset::new("web-1")
        .os("debian:12")
        .tags(&["web", "prod"])
        .env("prod")
        .impact(BusinessImpact::High)
        .exposure(Exposure::InternetFacing);
    let web2 = Asset::new("web-2")
        .os("ubuntu:24.04")
        .tags(&["web", "pilot"])
        .env("prod")
        .kind(AssetKind::CloudInstance);
    let stg = Asset::new("stg-1").env("staging");
    let db = Asset::new("db-1")
        .tags(&["db", "prod"])
        .owner("team-data")
        .env("prod")
        .impact(BusinessImpact::Critical);
    let dev = Asset::new("dev-1").env("dev");
    let bastion = Asset::new("bastion-1");

    let rows: &[(&Asset, &[&str], Option<&str>)] = &[
        (
            &web1,
            &["web-prod", "not-critical-prod"],
            Some("ring2-broad"),
        ),
        (
            &web2,
            &["web-prod", "not-critical-prod"],
            Some("ring1-pilot"),
        ),
        (&stg, &["staging"], Some("ring0-staging")),
        (&db, &["databases", "crown-jewels"], Some("ring3-critical")),
        (&dev, &[], None),
    ];
    for (asset, groups, ring) in rows {
        let got = p.groups_of(&asset.facts());
        assert_eq!(got, *groups, "{}", asset.name);
        assert_eq!(
            p.ring_of(&asset.facts(), &got).map(|r| r.name.as_str()),
            *ring,
            "{}",
            asset.name
        );
    }

    let groups = |a: &Asset| p.groups_of(&a.facts());
    let kernel = "linux-image-6.1.0-28-amd64";
    assert!(p.is_excluded("db-1", &groups(&db), kernel));
    assert_eq!(
        p.exclusion_for("db-1", &groups(&db), kernel)
            .unwrap()
            .reason,
        "kernel updates of the database hosts are done by the data team"
    );
    assert!(!p.is_excluded("web-1", &groups(&web1), kernel));
    assert!(!p.is_excluded("db-1", &groups(&db), "openssl"));
    assert!(p.is_excluded("bastion-1", &groups(&bastion), "openssh-server"));
    assert!(!p.is_excluded("bastion-10", &[], "openssh-server"));

    let pin = p.pin_for("db-1", &groups(&db), "postgresql-16").unwrap();
    assert_eq!(pin.max_version, "16.4-1.pgdg120+1");
    assert!(
        p.pin_for("web-1", &groups(&web1), "postgresql-16")
            .is_none()
    );
    assert_eq!(
        p.pin_for("web-1", &groups(&web1), "nginx")
            .unwrap()
            .max_version,
        "1.24.0-2"
    );
    assert!(p.pin_for("web-1", &groups(&web1), "nginx-core").is_none());
}

#[test]
fn the_most_specific_pin_wins() {
    let p = ok(r#"version = 1
[[groups]]
name = "dbs"
match = { tags_any = "db" }
[[pins]]
package = "pg"
max_version = "everywhere"
[[pins]]
package = "pg"
max_version = "asset"
asset = "db-1"
[[pins]]
package = "pg"
max_version = "group"
group = "dbs"
"#);
    let dbs = vec!["dbs".to_owned()];
    assert_eq!(p.pin_for("db-1", &dbs, "pg").unwrap().max_version, "asset");
    assert_eq!(p.pin_for("db-2", &dbs, "pg").unwrap().max_version, "group");
    assert_eq!(p.pin_for("db-1", &[], "pg").unwrap().max_version, "asset");
    assert_eq!(
        p.pin_for("web", &[], "pg").unwrap().max_version,
        "everywhere"
    );
}

#[test]
fn a_ring_matches_by_group_or_rule() {
    let p = ok(r#"version = 1
[[groups]]
name = "canaries"
match = { tags_any = "canary" }
[[rings]]
name = "last"
order = 9
match = {}
[[rings]]
name = "first"
order = 1
groups = "canaries"
match = { environment = "staging" }
"#);
    let canary = Asset::new("a").tags(&["canary"]);
    let staging = Asset::new("b").env("staging");
    let other = Asset::new("c");
    let ring = |a: &Asset| {
        let g = p.groups_of(&a.facts());
        p.ring_of(&a.facts(), &g).unwrap().name.clone()
    };
    assert_eq!(ring(&canary), "first");
    assert_eq!(ring(&staging), "first");
    assert_eq!(ring(&other), "last");
}

#[test]
fn approval_rules() {
    let p = ok(&example());
    let released = date(2026, 11, 1);
    let a = p.approval(Tier::P0, released, released);
    assert!(a.approved);
    assert_eq!(a.reason, "P0 patches are always approved");
    assert!(p.approval(Tier::P1, released, released).approved);

    let a = p.approval(Tier::P2, released, date(2026, 11, 7));
    assert!(!a.approved);
    assert_eq!(
        a.reason,
        "released 2026-11-01; auto-approval on 2026-11-08, 7 days after release"
    );
    let a = p.approval(Tier::P4, released, date(2026, 11, 8));
    assert!(a.approved);
    assert_eq!(
        a.reason,
        "released 2026-11-01; auto-approved 7 days after release, on 2026-11-08"
    );

    let manual = Policy::default();
    let a = manual.approval(Tier::P3, released, date(2030, 1, 1));
    assert!(!a.approved);
    assert_eq!(a.reason, "P3 patches need manual approval");
    assert!(manual.approval(Tier::P0, released, released).approved);

    let none = ok(
        "version = 1\n[approval]\nalways_approve_tiers = []\nauto_approve_security_after_days = 0\n",
    );
    let a = none.approval(Tier::P0, released, released);
    assert!(a.approved, "0 days: approved on release day");
    assert!(a.reason.contains("auto-approved 0 days"));
    assert!(
        !none
            .approval(Tier::P0, released, date(2026, 10, 31))
            .approved
    );
}

#[test]
fn the_policy_sets_the_risk_model() {
    let p = ok(r#"version = 1
[sla]
P0 = "24h"
P4 = "180d"
[tiers]
p2_cvss = 6.5
missing_cvss = "assume"
unknown_cvss = 9
isolated_lowers = false
[tiers.severity_cvss]
Untriaged = 8.0
"#);
    let m = p.risk_model();
    assert_eq!(m.sla[0], SignedDuration::from_hours(24));
    assert_eq!(m.sla[1], SignedDuration::from_hours(7 * 24));
    assert_eq!(m.sla[4], SignedDuration::from_hours(180 * 24));
    assert_eq!(m.p2_cvss, 6.5);
    assert_eq!(m.missing_cvss, MissingCvss::Assume);
    assert_eq!(m.unknown_cvss, 9.0);
    assert!(!m.isolated_lowers);
    assert!(m.critical_impact_raises);
    assert_eq!(m.severity_cvss.get("untriaged"), Some(&8.0));
    assert_eq!(
        m.severity_cvss.get("high"),
        Some(&7.5),
        "merged over the defaults"
    );
}

#[test]
fn canonical_text_parses_back_to_the_same_policy() {
    for p in [ok(&example()), Policy::default()] {
        let text = p.to_canonical_toml();
        assert_eq!(ok(&text), p, "{text}");
        assert_eq!(ok(&text).to_canonical_toml(), text);
    }
}

#[test]
fn fingerprint_ignores_form() {
    let original = ok(&example()).fingerprint();
    assert_eq!(original.len(), 64);
    assert_eq!(ok(&example()).fingerprint(), original, "stable");

    // No comments, no blank lines.
    let bare: String = example()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(ok(&bare).fingerprint(), original);

    // Different spacing and an extra comment.
    let spaced = example()
        .replace(" = ", "   =   ")
        .replace("[sla]", "[sla]   # SLAs");
    assert_eq!(ok(&spaced).fingerprint(), original);

    // The canonical form itself.
    assert_eq!(
        ok(&ok(&example()).to_canonical_toml()).fingerprint(),
        original
    );

    // Defaults left out, keys reordered, lists reordered and repeated, inline
    // tables, dotted keys, integers for floats: the same policy.
    let rewritten = r#"
version = 1
tiers.p3_cvss = 4
approval = { auto_approve_security_after_days = 7, always_approve_tiers = ["P1", "P0", "P1"] }

[[groups]]
name = "staging"
description = "Everything in the staging environment"
match.environment = "staging"

[[groups]]
description = "Production web servers on Debian 12 or Ubuntu"
name = "web-prod"
match = { kind = ["cloud-instance", "server"], environment = "prod", tags_any = ["frontend", "web", "web"], name = "web-*", os = ["ubuntu", "debian:12"] }

[[groups]]
name = "databases"
match = { owner = "team-data", tags_all = ["prod", "db"] }

[[groups]]
name = "crown-jewels"
match = { impact = "critical" }

[[groups]]
name = "not-critical-prod"
match = { impact = ["low", "medium", "high"], environment = "prod" }

[[exclusions]]
reason = "kernel updates of the database hosts are done by the data team"
group = "databases"
package = "linux-image-*"

[[exclusions]]
package = "openssh-server"
asset = "bastion-?"
reason = "bastions are rebuilt, not patched"

[[pins]]
package = "postgresql-16"
max_version = "16.4-1.pgdg120+1"
group = "databases"
reason = "16.5 waits for the extension upgrade"

[[pins]]
package = "nginx"
max_version = "1.24.0-2"

[[rings]]
name = "ring3-critical"
rollback = "ring"
order = 3
groups = "crown-jewels"
soak = "0d"
approval = true

[[rings]]
name = "ring2-broad"
order = 2
success_threshold = 0.98
error_budget = " 5% "
max_concurrent = "10%"
groups = ["not-critical-prod"]
soak = "1d"

[[rings]]
name = "ring1-pilot"
soak = "2d"
approval = true
max_concurrent = "2"
error_budget = 1
order = 1
match = { environment = "prod", tags_any = "pilot" }

[[rings]]
name = "ring0-staging"
order = 0
groups = ["staging", "staging"]
health_checks = ["web", "web"]
rollback = "failed-hosts"
approval = false
"#;
    assert_eq!(ok(rewritten).fingerprint(), original);
}

#[test]
fn fingerprint_sees_meaning() {
    let original = ok(&example()).fingerprint();
    let changes: &[(&str, &str)] = &[
        ("P1 = \"7d\"", "P1 = \"6d\""),
        ("p1_epss = 0.1", "p1_epss = 0.11"),
        ("max_concurrent = 2", "max_concurrent = 3"),
        ("error_budget = \"5%\"", "error_budget = \"6%\""),
        ("success_threshold = \"98%\"", "success_threshold = \"97%\""),
        (
            "health_checks = [\"web\"]",
            "health_checks = [\"web\", \"db\"]",
        ),
        ("rollback = \"ring\"", "rollback = \"none\""),
        ("approval = true\nrollback", "approval = false\nrollback"),
        ("kev_is_p0 = true", "kev_is_p0 = false"),
        (
            "missing_cvss = \"distro-severity\"",
            "missing_cvss = \"assume\"",
        ),
        ("important = 7.5", "important = 7.6"),
        (
            "name = \"crown-jewels\"",
            "name = \"crown-jewels\"\ndescription = \"x\"",
        ),
        ("name = [\"web-*\"]", "name = [\"web-*\", \"www-*\"]"),
        (
            "auto_approve_security_after_days = 7",
            "auto_approve_security_after_days = 8",
        ),
        (
            "always_approve_tiers = [\"P0\", \"P1\"]",
            "always_approve_tiers = [\"P0\"]",
        ),
        (
            "reason = \"bastions are rebuilt, not patched\"",
            "reason = \"bastions are rebuilt\"",
        ),
        ("max_version = \"1.24.0-2\"", "max_version = \"1.24.0-3\""),
        ("order = 3", "order = 4"),
    ];
    for (from, to) in changes {
        let text = example();
        assert!(text.contains(from), "{from}");
        let changed = ok(&text.replacen(from, to, 1)).fingerprint();
        assert_ne!(changed, original, "{from} -> {to}");
    }
    // Group order is meaning (groups_of lists in file order).
    let p = ok(&example());
    let mut swapped = p.clone();
    swapped.groups.swap(0, 1);
    assert_ne!(swapped.fingerprint(), p.fingerprint());
}

#[test]
fn strings_are_escaped_in_the_canonical_form() {
    let p = ok(r#"version = 1
[[exclusions]]
package = "x"
reason = "a \"quoted\" \\ back\tslash\nnew line \u0007 bell é"
"#);
    let text = p.to_canonical_toml();
    assert_eq!(ok(&text), p, "{text}");
}

fn example_lines() -> impl Strategy<Value = String> {
    let text = example();
    let n = text.len();
    prop_oneof![
        // Cut anywhere.
        (0..=n).prop_map(move |at| cut(&example(), at).to_owned()),
        // Lines deleted.
        prop::collection::vec(any::<prop::sample::Index>(), 1..8)
            .prop_map(|lines| delete_lines(&example(), &lines)),
        // One byte range replaced by arbitrary text.
        (0..=n, 0usize..20, "\\PC{0,12}").prop_map(|(at, len, insert)| {
            let text = example();
            let start = cut(&text, at).len();
            let end = cut(&text, start + len).len().max(start);
            format!("{}{}{}", &text[..start], insert, &text[end..])
        }),
    ]
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse(&text);
    }

    #[test]
    fn damaged_examples_never_panic_and_errors_have_positions(text in example_lines()) {
        match parse(&text) {
            Ok(p) => {
                // Whatever parsed has a canonical form that parses back to it.
                let canonical = p.to_canonical_toml();
                prop_assert_eq!(parse(&canonical).ok(), Some(p));
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                let lines = text.split('\n').count();
                for e in errors {
                    prop_assert!(e.line >= 1 && e.line <= lines, "{} of {}", e, lines);
                    prop_assert!(e.column >= 1);
                }
            }
        }
    }

    #[test]
    fn toml_shaped_text_never_panics(
        lines in prop::collection::vec(
            prop_oneof![
                Just("version = 1".to_owned()),
                Just("[[groups]]".to_owned()),
                Just("[[rings]]".to_owned()),
                Just("[sla]".to_owned()),
                Just("[tiers]".to_owned()),
                Just("[approval]".to_owned()),
                "[a-z_]{1,8} = (\"[a-zP0-9:*?.-]{0,6}\"|[0-9]{1,3}|true|\\[\\]|\\{\\}|[0-9]\\.[0-9])",
            ],
            0..20,
        )
    ) {
        let _ = parse(&lines.join("\n"));
    }
}

/// The rollout rules of `[[rings]]`: read from the example, each bad value
/// refused with its field and line.
#[test]
fn ring_rollout_rules_are_read_and_bad_ones_named() {
    use patchbay_core::rollout::RollbackPolicy;
    let p = ok(&example());
    let r = |n: &str| p.rings.iter().find(|r| r.name == n).unwrap().clone();
    let stg = r("ring0-staging");
    assert_eq!(stg.health_checks, vec!["web".to_string()]);
    assert_eq!(
        (
            stg.max_concurrent.clone(),
            stg.error_budget.clone(),
            stg.approval
        ),
        (None, None, false)
    );
    assert_eq!(stg.rollback, RollbackPolicy::FailedHosts);
    let pilot = r("ring1-pilot");
    assert_eq!(pilot.max_concurrent.as_deref(), Some("2"));
    assert_eq!(pilot.error_budget.as_deref(), Some("1"));
    assert!(pilot.approval);
    let broad = r("ring2-broad");
    assert_eq!(broad.max_concurrent.as_deref(), Some("10%"));
    assert_eq!(broad.error_budget.as_deref(), Some("5%"));
    assert_eq!(broad.success_threshold, Some(0.98));
    assert_eq!(r("ring3-critical").rollback, RollbackPolicy::Ring);

    let bad: &[(&str, &str, &str)] = &[
        (
            "max_concurrent = 0",
            "rings[0].max_concurrent",
            "at least one",
        ),
        (
            "max_concurrent = \"0%\"",
            "rings[0].max_concurrent",
            "at least one",
        ),
        (
            "max_concurrent = \"150%\"",
            "rings[0].max_concurrent",
            "over 100%",
        ),
        (
            "error_budget = \"1e2%\"",
            "rings[0].error_budget",
            "not a count",
        ),
        ("error_budget = -1", "rings[0].error_budget", "out of range"),
        (
            "success_threshold = 1.5",
            "rings[0].success_threshold",
            "between",
        ),
        (
            "success_threshold = \"x\"",
            "rings[0].success_threshold",
            "not a share",
        ),
        ("health_checks = [\"\"]", "rings[0].health_checks", "empty"),
        (
            "health_checks = [\"a\\u0007b\"]",
            "rings[0].health_checks",
            "character",
        ),
        ("approval = \"yes\"", "rings[0].approval", "boolean"),
        (
            "rollback = \"all\"",
            "rings[0].rollback",
            "unknown rollback",
        ),
        (
            "max_conccurent = 2",
            "rings[0].max_conccurent",
            "unknown key",
        ),
    ];
    for (line, field, says) in bad {
        let text = format!(
            "version = 1\n[[groups]]\nname = \"g\"\nmatch = {{}}\n[[rings]]\nname = \"r\"\norder = 0\ngroups = [\"g\"]\n{line}\n"
        );
        let es = errors(&text);
        assert!(
            es.iter()
                .any(|e| e.field.starts_with(field) && e.line == 9 && e.message.contains(says)),
            "{line}: {es:?}"
        );
    }
}
