//! Roles and permissions: the one table that says who may do what.
//!
//! The service layer asks [`Role::permits`] before every operation; handlers never
//! decide authorization themselves.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A role carried by an API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including token management.
    Admin,
    /// Day-to-day operations: assets, imports, enrolment tokens.
    Operator,
    /// Approves changes; otherwise read-only.
    Approver,
    /// Read-only, including the audit trail.
    Auditor,
    /// Only the subscribable calendar feed (`/calendar.ics?token=…`): a token
    /// that ends up in calendar URLs must open nothing else. The feed takes no
    /// other token in its query.
    Calendar,
}

impl Role {
    /// All roles, in order of decreasing power.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Operator,
        Role::Approver,
        Role::Auditor,
        Role::Calendar,
    ];

    /// The role's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
            Role::Calendar => "calendar",
        }
    }

    /// Whether this role may perform `action`.
    pub fn permits(self, action: Action) -> bool {
        use Action::*;
        match action {
            // Every role reads the calendar; every role but the calendar's reads
            // the rest.
            ReadCalendar => true,
            ReadInventory | ReadTokens | ReadAudit => self != Role::Calendar,
            WriteAssets | ImportAssets | ImportFeeds | CreateEnrollToken => {
                matches!(self, Role::Admin | Role::Operator)
            }
            ManageTokens => self == Role::Admin,
            Approve => matches!(self, Role::Admin | Role::Approver),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "approver" => Ok(Role::Approver),
            "auditor" => Ok(Role::Auditor),
            "calendar" => Ok(Role::Calendar),
            other => Err(format!(
                "unknown role {other:?}; expected one of admin, operator, approver, auditor, calendar"
            )),
        }
    }
}

/// An operation that needs a permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// List and show assets and their packages.
    ReadInventory,
    /// List tokens (never their secrets).
    ReadTokens,
    /// Read audit events.
    ReadAudit,
    /// Edit asset attributes.
    WriteAssets,
    /// Import agentless assets.
    ImportAssets,
    /// Import advisory, KEV and EPSS feeds.
    ImportFeeds,
    /// Create agent enrolment tokens.
    CreateEnrollToken,
    /// Create and revoke API tokens.
    ManageTokens,
    /// Record approvals.
    Approve,
    /// Read the maintenance calendar (windows and blackouts as iCalendar).
    ReadCalendar,
}

impl Action {
    /// Whether this action changes state (used for audit and read-only checks).
    pub fn is_write(self) -> bool {
        !matches!(
            self,
            Action::ReadInventory | Action::ReadTokens | Action::ReadAudit | Action::ReadCalendar
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auditor_never_writes() {
        for a in [
            Action::WriteAssets,
            Action::ImportAssets,
            Action::ImportFeeds,
            Action::CreateEnrollToken,
            Action::ManageTokens,
            Action::Approve,
        ] {
            assert!(a.is_write());
            assert!(!Role::Auditor.permits(a), "{a:?}");
        }
        assert!(Role::Auditor.permits(Action::ReadAudit));
    }

    #[test]
    fn calendar_tokens_read_only_the_calendar() {
        for a in [
            Action::ReadInventory,
            Action::ReadTokens,
            Action::ReadAudit,
            Action::WriteAssets,
            Action::ImportAssets,
            Action::ImportFeeds,
            Action::CreateEnrollToken,
            Action::ManageTokens,
            Action::Approve,
        ] {
            assert!(!Role::Calendar.permits(a), "{a:?}");
        }
        for r in Role::ALL {
            assert!(r.permits(Action::ReadCalendar), "{r}");
        }
    }

    #[test]
    fn only_admin_manages_tokens() {
        for r in Role::ALL {
            assert_eq!(r.permits(Action::ManageTokens), r == Role::Admin);
        }
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
