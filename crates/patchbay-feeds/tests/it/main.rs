//! Integration tests of the feed readers: the real feed files copied into
//! `fixtures/feeds/` (provenance in `fixtures/README.md`), malformed inputs that must
//! be skipped alone, a full-size synthetic EPSS file, the CVSS scores against an
//! independent implementation (PyPI `cvss`, Red Hat's), and property tests (no
//! panic on any input).
//!
//! `full_data` re-checks the record counts of the whole shared data set; it is
//! ignored unless asked for (`PATCHBAY_SHARED_DATA=/work/shared/data cargo test -p
//! patchbay-feeds -- --ignored`).

mod common;
mod csaf;
mod cvss;
mod epss;
mod full_data;
mod kev;
mod osv;
mod props;
mod scores;
mod source;
