//! Integration tests of patchbay-version: upstream test vectors
//! (`fixtures/version-vectors/`), differential tests against the real dpkg and rpm
//! of the Debian 12 build machines, OSV evaluation, and property tests.

mod api;
mod apk_vectors;
mod common;
mod deb_vectors;
mod lang;
mod oracle_dpkg;
mod oracle_rpm;
mod osv;
mod props;
mod rpm_vectors;
