//! The package rules of check-ins (`inventory::rules`) accept every package of
//! every real package database in `fixtures/`: a rule that refused a real host
//! would stop its inventory.

use crate::common::fixture;
use patchbay_core::inventory::rules::{valid_arch, valid_name, valid_version};
use patchbay_core::inventory::{Package, PackageFormat, apk, dpkg, rpm};

fn check(rel: &str, format: PackageFormat, ps: &[Package]) {
    assert!(!ps.is_empty(), "{rel}");
    for p in ps {
        assert!(valid_name(format, &p.name), "{rel}: name {:?}", p.name);
        assert!(
            valid_version(format, &p.version),
            "{rel}: {} version {:?}",
            p.name,
            p.version
        );
        assert!(valid_arch(&p.arch), "{rel}: {} arch {:?}", p.name, p.arch);
        if let Some(s) = &p.source {
            assert!(valid_name(format, s), "{rel}: {} source {s:?}", p.name);
        }
        if let Some(v) = &p.source_version {
            assert!(
                valid_version(format, v),
                "{rel}: {} source version {v:?}",
                p.name
            );
        }
    }
}

#[test]
fn every_real_package_follows_its_ecosystem_rules() {
    for rel in [
        "debian12/host-ci-image.dpkg-status",
        "debian12/debootstrap-minbase-before-security-upgrade.dpkg-status",
        "debian12/debootstrap-minbase-after-security-upgrade.dpkg-status",
        "ubuntu2404/debootstrap-noble.dpkg-status",
        "ubuntu1804/trivy-valid-txtar.dpkg-status",
    ] {
        check(
            rel,
            PackageFormat::Deb,
            &dpkg::parse_status(&fixture(rel)).unwrap(),
        );
    }
    for rel in [
        "rhel-family/oraclelinux-8-slim.rpm-qa.txt",
        "rhel-family/ubi-7.rpm-qa.txt",
    ] {
        check(
            rel,
            PackageFormat::Rpm,
            &rpm::parse_query_list(&fixture(rel)).unwrap(),
        );
    }
    for rel in [
        "alpine310/lib-apk-db-installed",
        "alpine323/lib-apk-db-installed",
    ] {
        check(
            rel,
            PackageFormat::Apk,
            &apk::parse_installed(&fixture(rel)).unwrap(),
        );
    }
}

#[test]
fn this_machines_packages_follow_the_debian_rules() {
    let text = std::fs::read_to_string("/var/lib/dpkg/status")
        .expect("the Debian test machine has /var/lib/dpkg/status");
    check(
        "/var/lib/dpkg/status",
        PackageFormat::Deb,
        &dpkg::parse_status(&text).unwrap(),
    );
}
