//! Embedded, append-only migrations, one directory per engine.
//!
//! Versions must be identical in both lists (a unit test checks it), so that a
//! feature lands on both engines at once. Applied with sqlx's `Migrator`, which
//! records each migration's checksum and refuses a database whose applied
//! migrations were edited.

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr};
use std::borrow::Cow;

/// (version, description, SQLite SQL, PostgreSQL SQL)
type Entry = (i64, &'static str, &'static str, &'static str);

const MIGRATIONS: &[Entry] = &[
    (
        1,
        "foundation",
        include_str!("../migrations/sqlite/0001_foundation.sql"),
        include_str!("../migrations/postgres/0001_foundation.sql"),
    ),
    (
        2,
        "assessment",
        include_str!("../migrations/sqlite/0002_assessment.sql"),
        include_str!("../migrations/postgres/0002_assessment.sql"),
    ),
    (
        3,
        "prioritisation",
        include_str!("../migrations/sqlite/0003_prioritisation.sql"),
        include_str!("../migrations/postgres/0003_prioritisation.sql"),
    ),
    (
        4,
        "schedule",
        include_str!("../migrations/sqlite/0004_schedule.sql"),
        include_str!("../migrations/postgres/0004_schedule.sql"),
    ),
    (
        5,
        "audit chain",
        include_str!("../migrations/sqlite/0005_audit_chain.sql"),
        include_str!("../migrations/postgres/0005_audit_chain.sql"),
    ),
    (
        6,
        "exceptions",
        include_str!("../migrations/sqlite/0006_exceptions.sql"),
        include_str!("../migrations/postgres/0006_exceptions.sql"),
    ),
    (
        7,
        "changes",
        include_str!("../migrations/sqlite/0007_changes.sql"),
        include_str!("../migrations/postgres/0007_changes.sql"),
    ),
    (
        8,
        "findings writes",
        include_str!("../migrations/sqlite/0008_findings_writes.sql"),
        include_str!("../migrations/postgres/0008_findings_writes.sql"),
    ),
    (
        9,
        "enrollment approvals",
        include_str!("../migrations/sqlite/0009_enrollment_approvals.sql"),
        include_str!("../migrations/postgres/0009_enrollment_approvals.sql"),
    ),
    (
        10,
        "leases",
        include_str!("../migrations/sqlite/0010_leases.sql"),
        include_str!("../migrations/postgres/0010_leases.sql"),
    ),
    (
        11,
        "events",
        include_str!("../migrations/sqlite/0011_events.sql"),
        include_str!("../migrations/postgres/0011_events.sql"),
    ),
    (
        12,
        "rollouts",
        include_str!("../migrations/sqlite/0012_rollouts.sql"),
        include_str!("../migrations/postgres/0012_rollouts.sql"),
    ),
    (
        20,
        "token expiry and scopes",
        include_str!("../migrations/sqlite/0020_token_expiry_scopes.sql"),
        include_str!("../migrations/postgres/0020_token_expiry_scopes.sql"),
    ),
    (
        21,
        "delta assessment",
        include_str!("../migrations/sqlite/0021_delta_assessment.sql"),
        include_str!("../migrations/postgres/0021_delta_assessment.sql"),
    ),
    (
        30,
        "agent certificates",
        include_str!("../migrations/sqlite/0030_agent_certificates.sql"),
        include_str!("../migrations/postgres/0030_agent_certificates.sql"),
    ),
    (
        40,
        "webhooks",
        include_str!("../migrations/sqlite/0040_webhooks.sql"),
        include_str!("../migrations/postgres/0040_webhooks.sql"),
    ),
    (
        41,
        "siem cursors",
        include_str!("../migrations/sqlite/0041_siem_cursors.sql"),
        include_str!("../migrations/postgres/0041_siem_cursors.sql"),
    ),
    (
        45,
        "escalations",
        include_str!("../migrations/sqlite/0045_escalations.sql"),
        include_str!("../migrations/postgres/0045_escalations.sql"),
    ),
    (
        46,
        "webhook links",
        include_str!("../migrations/sqlite/0046_webhook_links.sql"),
        include_str!("../migrations/postgres/0046_webhook_links.sql"),
    ),
    (
        50,
        "webhook auth headers",
        include_str!("../migrations/sqlite/0050_webhook_auth_headers.sql"),
        include_str!("../migrations/postgres/0050_webhook_auth_headers.sql"),
    ),
    (
        51,
        "notice detail",
        include_str!("../migrations/sqlite/0051_notice_detail.sql"),
        include_str!("../migrations/postgres/0051_notice_detail.sql"),
    ),
    (
        55,
        "feed sync",
        include_str!("../migrations/sqlite/0055_feed_sync.sql"),
        include_str!("../migrations/postgres/0055_feed_sync.sql"),
    ),
    (
        65,
        "cvss scores",
        include_str!("../migrations/sqlite/0065_cvss_scores.sql"),
        include_str!("../migrations/postgres/0065_cvss_scores.sql"),
    ),
    (
        70,
        "discovery",
        include_str!("../migrations/sqlite/0070_discovery.sql"),
        include_str!("../migrations/postgres/0070_discovery.sql"),
    ),
    (
        71,
        "asset network facts",
        include_str!("../migrations/sqlite/0071_asset_network.sql"),
        include_str!("../migrations/postgres/0071_asset_network.sql"),
    ),
    (
        75,
        "csaf documents and asset products",
        include_str!("../migrations/sqlite/0075_csaf.sql"),
        include_str!("../migrations/postgres/0075_csaf.sql"),
    ),
    (
        76,
        "exception kind (VEX)",
        include_str!("../migrations/sqlite/0076_exception_kind.sql"),
        include_str!("../migrations/postgres/0076_exception_kind.sql"),
    ),
    (
        80,
        "asset unmanaged software",
        include_str!("../migrations/sqlite/0080_asset_unmanaged.sql"),
        include_str!("../migrations/postgres/0080_asset_unmanaged.sql"),
    ),
    (
        90,
        "dashboard users and sessions",
        include_str!("../migrations/sqlite/0090_users.sql"),
        include_str!("../migrations/postgres/0090_users.sql"),
    ),
    (
        105,
        "drift golden hosts",
        include_str!("../migrations/sqlite/0105_drift_golden.sql"),
        include_str!("../migrations/postgres/0105_drift_golden.sql"),
    ),
    (
        110,
        "open findings by advisory",
        include_str!("../migrations/sqlite/0110_findings_by_advisory.sql"),
        include_str!("../migrations/postgres/0110_findings_by_advisory.sql"),
    ),
    (
        115,
        "backup verifications",
        include_str!("../migrations/sqlite/0115_backup_verifications.sql"),
        include_str!("../migrations/postgres/0115_backup_verifications.sql"),
    ),
    (
        120,
        "impact notices",
        include_str!("../migrations/sqlite/0120_impact_notices.sql"),
        include_str!("../migrations/postgres/0120_impact_notices.sql"),
    ),
    (
        125,
        "findings flips: advisory index without predicate",
        include_str!("../migrations/sqlite/0125_findings_flips.sql"),
        include_str!("../migrations/postgres/0125_findings_flips.sql"),
    ),
    (
        130,
        "findings change sequence",
        include_str!("../migrations/sqlite/0130_findings_seq.sql"),
        include_str!("../migrations/postgres/0130_findings_seq.sql"),
    ),
    (
        135,
        "findings change stamps per asset",
        include_str!("../migrations/sqlite/0135_findings_asset_seq.sql"),
        include_str!("../migrations/postgres/0135_findings_asset_seq.sql"),
    ),
];

/// The versions of all migrations.
pub const MIGRATION_VERSIONS: &[i64] = &[
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 20, 21, 30, 40, 41, 45, 46, 50, 51, 55, 65, 70, 71, 75,
    76, 80, 90, 105, 110, 115, 120, 125, 130, 135,
];

fn build(pick: fn(&Entry) -> &'static str) -> Migrator {
    let list = MIGRATIONS
        .iter()
        .map(|m| {
            Migration::new(
                m.0,
                Cow::Borrowed(m.1),
                MigrationType::Simple,
                AssertSqlSafe(pick(m)).into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(list)
}

pub(crate) fn sqlite() -> Migrator {
    build(|m| m.2)
}

pub(crate) fn postgres() -> Migrator {
    build(|m| m.3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_in_lock_step_and_files_exist() {
        let v: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).collect();
        assert_eq!(v, MIGRATION_VERSIONS);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        for engine in ["sqlite", "postgres"] {
            let mut files: Vec<String> = std::fs::read_dir(dir.join(engine))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            files.sort();
            let versions: Vec<i64> = files.iter().map(|f| f[..4].parse().unwrap()).collect();
            assert_eq!(
                versions, MIGRATION_VERSIONS,
                "{engine}: every migration file must be embedded"
            );
        }
    }
}
