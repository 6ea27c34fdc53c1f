//! Connecting to the server: the API token, the CA, and URL encoding.
//!
//! Shared by every command module that talks to the server, so none of them
//! depends on another for it (`client` and `evidence` used to import each
//! other; the module graph is checked to be a DAG by `tests::module_graph`).

use anyhow::bail;
use patchbay_client::Client;
use std::path::PathBuf;
use std::time::Duration;

/// Where `patchbay dev` and a first `patchbay serve` write the admin token.
pub const DEFAULT_TOKEN_FILE: &str = "./patchbay-data/admin.token";

/// The CA certificate given with `--ca-cert` / `PATCHBAY_CA_CERT`, set once by
/// [`crate::run`] for every client command.
pub static CA_CERT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// A client for `url` with the API token (from `--token`, `PATCHBAY_TOKEN` or
/// ./patchbay-data/admin.token) and the CA given, if any.
pub fn connect(url: &str, token: Option<String>) -> anyhow::Result<Client> {
    let token = match token {
        Some(t) => t,
        None => match std::fs::read_to_string(DEFAULT_TOKEN_FILE) {
            Ok(t) => t.trim().to_string(),
            Err(_) => bail!(
                "no API token: pass --token or set PATCHBAY_TOKEN (a first server start writes one to DATA_DIR/admin.token)"
            ),
        },
    };
    Ok(Client::new(url, Some(token), Duration::from_secs(300))
        .with_ca(CA_CERT.get().map(PathBuf::as_path))?)
}

/// Percent-encodes a path segment or query value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
