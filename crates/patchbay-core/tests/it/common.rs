//! Helpers shared by the test modules.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `fixtures/inventories/<rel>` of the workspace.
pub fn fixture_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/inventories")
        .join(rel)
}

/// The text of `fixtures/inventories/<rel>`.
pub fn fixture(rel: &str) -> String {
    let path = fixture_path(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// `text` cut at the char boundary at or before byte `at`.
pub fn cut(text: &str, at: usize) -> &str {
    let mut i = at.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    &text[..i]
}

/// `text` without the lines whose indices (modulo the line count) are in `lines`.
pub fn delete_lines(text: &str, lines: &[prop::sample::Index]) -> String {
    let all: Vec<&str> = text.split_inclusive('\n').collect();
    if all.is_empty() {
        return String::new();
    }
    let drop: Vec<usize> = lines.iter().map(|i| i.index(all.len())).collect();
    all.iter()
        .enumerate()
        .filter(|(i, _)| !drop.contains(i))
        .map(|(_, l)| *l)
        .collect()
}

/// `text` with the char at (about) byte `at` replaced by `with`.
pub fn replace_char(text: &str, at: usize, with: char) -> String {
    let head = cut(text, at);
    let mut rest = text[head.len()..].chars();
    rest.next();
    format!("{head}{with}{}", rest.as_str())
}

/// One way of damaging a real file.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Cut at a byte position (moved back to a char boundary).
    Truncate(prop::sample::Index),
    /// Delete some lines.
    DeleteLines(Vec<prop::sample::Index>),
    /// Replace one character.
    Replace(prop::sample::Index, char),
}

impl Mutation {
    pub fn apply(&self, text: &str) -> String {
        match self {
            Mutation::Truncate(i) => cut(text, i.index(text.len() + 1)).to_owned(),
            Mutation::DeleteLines(l) => delete_lines(text, l),
            Mutation::Replace(i, c) => replace_char(text, i.index(text.len() + 1), *c),
        }
    }
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        prop::collection::vec(any::<prop::sample::Index>(), 1..6).prop_map(Mutation::DeleteLines),
        (
            any::<prop::sample::Index>(),
            prop_oneof![
                Just('\n'),
                Just(' '),
                Just(':'),
                Just('\t'),
                Just('('),
                Just('"'),
                Just('\''),
                Just('\\'),
                Just('é'),
                any::<char>()
            ]
        )
            .prop_map(|(i, c)| Mutation::Replace(i, c)),
    ]
}

/// Arbitrary text: any string, or lines built from `fragments` and random
/// printable noise, joined with newlines (so the structure of the format is hit).
pub fn noisy_text(fragments: &'static [&'static str]) -> impl Strategy<Value = String> {
    let line = prop_oneof![
        3 => prop::sample::select(fragments).prop_map(str::to_owned),
        1 => "[ -~\t]{0,16}",
        1 => "\\PC{0,8}",
        1 => Just(String::new()),
    ];
    prop_oneof![
        any::<String>(),
        prop::collection::vec(line, 0..40).prop_map(|v| v.join("\n")),
        (
            prop::collection::vec(line_pair(fragments), 0..20),
            any::<bool>()
        )
            .prop_map(|(v, nl)| {
                let mut s = v.join("\n");
                if nl {
                    s.push('\n');
                }
                s
            }),
    ]
}

fn line_pair(fragments: &'static [&'static str]) -> impl Strategy<Value = String> {
    (prop::sample::select(fragments), "[ -~]{0,6}").prop_map(|(f, s)| format!("{f}{s}"))
}

/// Whether an external program can be started (`prog --help`).
pub fn have(prog: &str) -> bool {
    Command::new(prog)
        .arg("--help")
        .output()
        .map(|_| true)
        .unwrap_or(false)
}

/// A fresh, empty scratch directory under the system temp dir.
pub fn scratch_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "patchbay-core-it-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating scratch dir");
    dir
}
