//! Helpers shared by the test modules.

use patchbay_feeds::source::{Collect, ImportSummary};
use std::path::{Path, PathBuf};

/// `fixtures/feeds/<rel>` of the workspace.
pub fn fixture_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/feeds")
        .join(rel)
}

/// The bytes of `fixtures/feeds/<rel>`.
pub fn fixture(rel: &str) -> Vec<u8> {
    let path = fixture_path(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The decompressed bytes of a gzip fixture.
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

/// Imports `fixtures/feeds/<rel>` into a [`Collect`] sink.
pub fn import(rel: &str) -> (ImportSummary, Collect) {
    import_path(&fixture_path(rel))
}

/// Imports a path into a [`Collect`] sink; the import itself must succeed.
pub fn import_path(path: &Path) -> (ImportSummary, Collect) {
    let mut sink = Collect::default();
    let summary = patchbay_feeds::read_path(path, &mut sink)
        .unwrap_or_else(|e| panic!("importing {}: {e}", path.display()));
    assert_eq!(
        summary.errors as usize,
        sink.errors.len(),
        "summary.errors counts the errors reported"
    );
    (summary, sink)
}
