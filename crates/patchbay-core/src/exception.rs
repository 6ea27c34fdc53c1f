//! The exception register: findings deferred on purpose, with an owner, a
//! reason, a compensating control, an approver and an expiry.
//!
//! An exception (`EXC-<yyyy>-<nnnn>`) names *what* — an advisory or CVE, a
//! package, or both — and *where* — one asset or one policy group. It covers a
//! finding when both hold: the finding's advisory id or one of its CVEs is the
//! named one (when one is named), its binary or source package is the named
//! one (when one is named), and the finding's asset is the named asset or a
//! member of the named group. It is in force from its creation until it expires
//! or is revoked, whichever comes first.
//!
//! Excepted findings leave the worklist and the plan but stay in reports as
//! *excepted*. Nothing about the finding changes: when the exception ends, the
//! finding is back with its original SLA clock (first seen, published), so it
//! is usually overdue at once — the point of an expiry.

use jiff::{SignedDuration, Timestamp};

/// Longest an exception may run.
pub const MAX_DURATION: SignedDuration = SignedDuration::from_hours(366 * 24);

/// Exceptions expiring within this long are listed by a review.
pub const REVIEW_HORIZON: SignedDuration = SignedDuration::from_hours(7 * 24);

/// Where an exception applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One asset (by name).
    Asset(String),
    /// The members of a policy group.
    Group(String),
}

/// The matching-relevant part of an exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// `EXC-…`.
    pub id: String,
    /// Advisory or CVE id; empty: any.
    pub advisory: String,
    /// Package (binary or source); empty: any.
    pub package: String,
    /// Where.
    pub scope: Scope,
    /// When it started.
    pub created_at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// The facts of a finding an exception is matched against.
#[derive(Debug, Clone, Copy)]
pub struct FindingFacts<'a> {
    /// Asset name.
    pub asset: &'a str,
    /// The asset's policy groups.
    pub groups: &'a [String],
    /// Advisory id.
    pub advisory: &'a str,
    /// CVE aliases.
    pub cves: &'a [String],
    /// Binary package.
    pub package: &'a str,
    /// Source package.
    pub source_package: &'a str,
}

/// Where an exception stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not yet created.
    Future,
    /// In force.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked.
    Revoked,
}

impl Exception {
    /// The instant it stops being in force.
    pub fn ends_at(&self) -> Timestamp {
        match self.revoked_at {
            Some(r) => r.min(self.expires_at),
            None => self.expires_at,
        }
    }

    /// Its status at `t`.
    pub fn status(&self, t: Timestamp) -> Status {
        if t < self.created_at {
            Status::Future
        } else if self
            .revoked_at
            .is_some_and(|r| r <= t && r < self.expires_at)
        {
            Status::Revoked
        } else if t >= self.expires_at {
            Status::Expired
        } else {
            Status::Active
        }
    }

    /// Whether it is in force at `t`.
    pub fn active_at(&self, t: Timestamp) -> bool {
        self.status(t) == Status::Active
    }

    /// Whether it names this finding (regardless of time).
    pub fn covers(&self, f: &FindingFacts<'_>) -> bool {
        let where_ok = match &self.scope {
            Scope::Asset(a) => a.eq_ignore_ascii_case(f.asset),
            Scope::Group(g) => f.groups.iter().any(|x| x == g),
        };
        let what_ok = (self.advisory.is_empty()
            || self.advisory.eq_ignore_ascii_case(f.advisory)
            || f.cves
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&self.advisory)))
            && (self.package.is_empty()
                || self.package == f.package
                || self.package == f.source_package);
        where_ok && what_ok
    }
}

/// The first exception in force at `t` that covers the finding.
pub fn excepting<'a>(
    exceptions: &'a [Exception],
    f: &FindingFacts<'_>,
    t: Timestamp,
) -> Option<&'a Exception> {
    exceptions.iter().find(|e| e.active_at(t) && e.covers(f))
}

/// Validates a new exception's times: it must end after `now` and run at most
/// [`MAX_DURATION`]. The error names the field.
pub fn check_expiry(now: Timestamp, expires_at: Timestamp) -> Result<(), String> {
    if expires_at <= now {
        return Err(format!(
            "expires: {expires_at} is not in the future (now {now})"
        ));
    }
    if expires_at.duration_since(now) > MAX_DURATION {
        return Err(format!(
            "expires: {expires_at} is more than 366 days away; exceptions must be reviewed at least yearly"
        ));
    }
    Ok(())
}

/// What a review lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Review {
    /// Ids of exceptions in force that expire within [`REVIEW_HORIZON`].
    pub expiring: Vec<String>,
    /// Ids of expired (not revoked) exceptions.
    pub expired: Vec<String>,
    /// Ids of exceptions in force whose owner owns none of the assets in
    /// their scope any more (or that have no owner).
    pub ownerless: Vec<String>,
}

/// Sorts exceptions into the review lists. `owner_of_scope(e)` gives the
/// current owners of the assets in the exception's scope.
pub fn review<'a>(
    exceptions: impl IntoIterator<Item = (&'a Exception, &'a str)>,
    now: Timestamp,
    owners_in_scope: impl Fn(&Exception) -> Vec<String>,
) -> Review {
    let mut r = Review::default();
    for (e, owner) in exceptions {
        match e.status(now) {
            Status::Active => {
                if e.expires_at.duration_since(now) <= REVIEW_HORIZON {
                    r.expiring.push(e.id.clone());
                }
                let owner = owner.trim();
                if owner.is_empty() || !owners_in_scope(e).iter().any(|o| o == owner) {
                    r.ownerless.push(e.id.clone());
                }
            }
            Status::Expired => r.expired.push(e.id.clone()),
            Status::Revoked | Status::Future => {}
        }
    }
    r
}
