//! Roles and permissions: the one table that says who may do what.
//!
//! The service layer asks [`Role::permits`] before every operation; handlers never
//! decide authorization themselves.
//!
//! An API token may also carry [`Scopes`]: a restriction *below* its role. Every
//! [`Action`] belongs to exactly one [`Scope`] ([`Action::scope`]); a scoped
//! token may perform an action only when its role permits it **and** the
//! action's scope is among the token's (role ∩ scopes).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A role carried by an API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The scope this action belongs to (each action has exactly one).
    pub fn scope(self) -> Scope {
        use Action::*;
        match self {
            ReadInventory | ReadTokens | ReadAudit | ReadCalendar => Scope::Read,
            WriteAssets | ImportAssets | ImportFeeds => Scope::Write,
            CreateEnrollToken => Scope::Enrol,
            Approve => Scope::Approve,
            ManageTokens => Scope::Tokens,
        }
    }

    /// Every action.
    pub const ALL: [Action; 10] = [
        Action::ReadInventory,
        Action::ReadTokens,
        Action::ReadAudit,
        Action::WriteAssets,
        Action::ImportAssets,
        Action::ImportFeeds,
        Action::CreateEnrollToken,
        Action::ManageTokens,
        Action::Approve,
        Action::ReadCalendar,
    ];

    /// Whether this action changes state (used for audit and read-only checks).
    pub fn is_write(self) -> bool {
        !matches!(
            self,
            Action::ReadInventory | Action::ReadTokens | Action::ReadAudit | Action::ReadCalendar
        )
    }
}

/// A family of actions an API token can be restricted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every read: inventory, findings, reports, tokens list, audit, calendar.
    Read,
    /// Changes to assets, policy, windows, deployments, lessons; imports.
    Write,
    /// Creating agent enrolment tokens.
    Enrol,
    /// Approvals (deployment rings, blackouts, exceptions, exclusions).
    Approve,
    /// Creating and revoking API tokens.
    Tokens,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 5] = [
        Scope::Read,
        Scope::Write,
        Scope::Enrol,
        Scope::Approve,
        Scope::Tokens,
    ];

    /// The scope's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Enrol => "enrol",
            Scope::Approve => "approve",
            Scope::Tokens => "tokens",
        }
    }

    /// Whether `role` permits any action of this scope (a token of that role
    /// scoped to it could do something).
    pub fn within(self, role: Role) -> bool {
        Action::ALL
            .iter()
            .any(|a| a.scope() == self && role.permits(*a))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                format!("unknown scope {s:?}; expected one of read, write, enrol, approve, tokens")
            })
    }
}

/// A token's restriction: `None` is every scope (what its role permits),
/// `Some(set)` only those.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes(Option<std::collections::BTreeSet<Scope>>);

impl Scopes {
    /// No restriction beyond the role.
    pub const UNRESTRICTED: Scopes = Scopes(None);

    /// Restricted to `set`.
    pub fn only(set: impl IntoIterator<Item = Scope>) -> Self {
        Scopes(Some(set.into_iter().collect()))
    }

    /// Whether these scopes admit `action` (the role is checked separately).
    pub fn admit(&self, action: Action) -> bool {
        self.0.as_ref().is_none_or(|s| s.contains(&action.scope()))
    }

    /// The restriction, if any, in order.
    pub fn list(&self) -> Option<Vec<Scope>> {
        self.0.as_ref().map(|s| s.iter().copied().collect())
    }

    /// The stored form: `None` for unrestricted, else comma-separated names.
    pub fn to_stored(&self) -> Option<String> {
        self.list()
            .map(|l| l.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","))
    }

    /// Parses the stored form.
    pub fn from_stored(s: Option<&str>) -> Result<Self, String> {
        match s {
            None => Ok(Scopes::UNRESTRICTED),
            Some(s) => Ok(Scopes::only(
                s.split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::parse)
                    .collect::<Result<Vec<Scope>, _>>()?,
            )),
        }
    }
}

/// Whether a caller of `role` restricted to `scopes` may perform `action`:
/// role ∩ scopes.
pub fn permits(role: Role, scopes: &Scopes, action: Action) -> bool {
    role.permits(action) && scopes.admit(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_intersect_the_role() {
        let read = Scopes::only([Scope::Read]);
        assert!(permits(Role::Admin, &read, Action::ReadAudit));
        assert!(!permits(Role::Admin, &read, Action::ManageTokens));
        assert!(!permits(Role::Admin, &read, Action::WriteAssets));
        // A scope never widens a role.
        let wide = Scopes::only(Scope::ALL);
        assert!(!permits(Role::Auditor, &wide, Action::WriteAssets));
        for a in Action::ALL {
            assert_eq!(
                permits(Role::Operator, &Scopes::UNRESTRICTED, a),
                Role::Operator.permits(a)
            );
        }
        assert!(Scope::Approve.within(Role::Approver));
        assert!(!Scope::Write.within(Role::Auditor));
        assert!(
            !Scope::Read.within(Role::Calendar) || Role::Calendar.permits(Action::ReadCalendar)
        );
        let stored = Scopes::only([Scope::Approve, Scope::Read]).to_stored();
        assert_eq!(stored.as_deref(), Some("read,approve"));
        assert_eq!(
            Scopes::from_stored(stored.as_deref()).unwrap(),
            Scopes::only([Scope::Read, Scope::Approve])
        );
        assert!(Scopes::from_stored(Some("read,root")).is_err());
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>().unwrap(), s);
        }
    }

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
        for a in Action::ALL
            .into_iter()
            .filter(|a| *a != Action::ReadCalendar)
        {
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
