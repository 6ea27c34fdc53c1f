//! The server configuration file (`patchbay serve --config FILE`, TOML):
//! the receivers — the SIEM sink (`[syslog]`) and the mail relay (`[smtp]`;
//! parsed and validated here, used by email delivery).
//!
//! **Precedence**: command-line flags > `PATCHBAY_<SECTION>_<KEY>`
//! environment variables > the file > defaults. (No flag sets a key of the
//! file today; `PATCHBAY_DB` and the other flags' variables are the flags'
//! own.) Environment variables alone configure a section too, without a
//! file. An unknown `PATCHBAY_SYSLOG_*` / `PATCHBAY_SMTP_*` variable is an
//! error, as is an unknown key in the file (typos do not pass silently).
//!
//! **Errors** name the file, line, column, section and key
//! (`patchbay.toml:4:8: [syslog] port: invalid value: integer `70000`,
//! expected u16`), or the environment variable that set the bad value.
//!
//! **Secrets** (`smtp.password`) are [`Secret`]s: `Debug` prints
//! `<redacted>`, nothing serialises them, and an error about one never
//! echoes its value.

use crate::siem::{Overflow, SinkConfig, Transport};
use patchbay_core::siem::Format;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;

/// A secret value: never printed (`Debug` redacts), never serialised.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The SIEM sink.
    pub syslog: Option<SyslogConfig>,
    /// The mail relay.
    pub smtp: Option<SmtpConfig>,
    /// Feed settings (`[feeds]`).
    pub feeds: Option<FeedsConfig>,
    /// Feed sync sources (`[[feed_source]]`, one table per source).
    #[serde(default)]
    pub feed_source: Vec<FeedSourceConfig>,
    /// Network scans the discovery-scan duty runs (`[[discovery_scan]]`;
    /// none by default).
    #[serde(default)]
    pub discovery_scan: Vec<DiscoveryScanConfig>,
}

/// `[[discovery_scan]]`: an nmap scan Patchbay runs from the server's host
/// and imports as the discovery source `nmap:NAME`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryScanConfig {
    /// Its name: letters, digits, `-`, `_`.
    pub name: String,
    /// Addresses and CIDR ranges (`10.0.0.0/24`).
    pub ranges: Vec<String>,
    /// nmap's `-p` list (`22,80,443,8000-8100`; default: nmap's top ports).
    pub ports: Option<String>,
    /// How often (default 1d).
    pub every: Option<Interval>,
    /// Taken from outside the network: its open ports are exposure evidence.
    #[serde(default)]
    pub external: bool,
    /// The nmap program (default `nmap` on the PATH).
    pub nmap: Option<PathBuf>,
    /// The longest one scan may run (default 1h).
    pub timeout: Option<Interval>,
}

/// `[feeds]`: where synced feeds are kept, and the upload limit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedsConfig {
    /// Directory of the last good copies (default: DATA_DIR/feeds).
    pub dir: Option<PathBuf>,
    /// The largest file `POST /api/v1/feeds/import` accepts, bytes
    /// (default 1 GiB).
    pub max_upload: Option<u64>,
}

/// `[[feed_source]]`: one feed source the feed-sync duty fetches.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSourceConfig {
    /// Its name: letters, digits, `-`, `_` (the metrics label, the mirror
    /// entry, the last good copy's file name).
    pub name: String,
    /// `osv`, `kev` or `epss`.
    pub kind: FeedKindName,
    /// Fetch from this `http://` or `https://` URL (conditional GET) …
    pub url: Option<String>,
    /// … or read this local file …
    pub path: Option<PathBuf>,
    /// … or take the entry `name` of this air-gap mirror directory
    /// (`patchbay feeds mirror`), checked with `mirror_key`.
    pub mirror: Option<PathBuf>,
    /// The mirror's Ed25519 public key (hex; printed by `patchbay feeds mirror`).
    pub mirror_key: Option<String>,
    /// How often (default 6h).
    pub every: Option<Interval>,
    /// Largest download, bytes (default 1 GiB).
    pub max_bytes: Option<u64>,
    /// The SHA-256 (hex) the file must have (pins one file).
    pub sha256: Option<String>,
    /// `feed.stale` past this long without current data (default 2d).
    pub stale_after: Option<Interval>,
    /// Download timeout (default 10m).
    pub timeout: Option<Interval>,
}

impl ServerConfig {
    /// The `[[discovery_scan]]`s, checked: each error names the scan.
    pub fn discovery_scans(&self) -> Result<Vec<patchbay_app::discovery::ScanConfig>, ConfigError> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for d in &self.discovery_scan {
            let at = |m: String| ConfigError(format!("[[discovery_scan]] {:?}: {m}", d.name));
            if !seen.insert(d.name.clone()) {
                return Err(at("name: used by another [[discovery_scan]]".into()));
            }
            let every = match &d.every {
                Some(e) => {
                    jiff::SignedDuration::try_from(e.0).map_err(|e| at(format!("every: {e}")))?
                }
                None => jiff::SignedDuration::from_hours(24),
            };
            let scan = patchbay_app::discovery::ScanConfig {
                name: d.name.clone(),
                ranges: d.ranges.clone(),
                ports: d.ports.clone(),
                every,
                external: d.external,
                nmap: d.nmap.clone().unwrap_or_else(|| PathBuf::from("nmap")),
                timeout: d
                    .timeout
                    .as_ref()
                    .map_or(Duration::from_secs(3600), |t| t.0),
            };
            patchbay_app::discovery::check_scan(&scan).map_err(at)?;
            out.push(scan);
        }
        Ok(out)
    }

    /// The feed sync settings of the file (`[feeds]`, `[[feed_source]]`),
    /// checked: each error names the source.
    pub fn feed_sync(&self) -> Result<patchbay_app::feed_sync::FeedSyncConfig, ConfigError> {
        use patchbay_app::feed_sync::{FeedSource, FeedSyncConfig, Origin, valid_source_name};
        let mut out = FeedSyncConfig::default();
        if let Some(f) = &self.feeds {
            out.dir = f.dir.clone();
            if let Some(m) = f.max_upload {
                out.max_upload = m;
            }
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.feed_source {
            let at = |m: String| ConfigError(format!("[[feed_source]] {:?}: {m}", s.name));
            if !valid_source_name(&s.name) {
                return Err(at("name: expected 1–64 letters, digits, '-' or '_'".into()));
            }
            if !seen.insert(s.name.clone()) {
                return Err(at("name: used by another [[feed_source]]".into()));
            }
            let origin = match (&s.url, &s.path, &s.mirror) {
                (Some(u), None, None) => {
                    if !(u.starts_with("http://") || u.starts_with("https://")) {
                        return Err(at(format!("url {u:?}: expected http:// or https://")));
                    }
                    Origin::Url(u.clone())
                }
                (None, Some(p), None) => Origin::Path(p.clone()),
                (None, None, Some(d)) => {
                    let Some(k) = &s.mirror_key else {
                        return Err(at(
                            "mirror needs mirror_key (the public key `patchbay feeds mirror` prints)".into(),
                        ));
                    };
                    let key = patchbay_core::audit::public_key(k)
                        .map_err(|e| at(format!("mirror_key: {e}")))?;
                    Origin::Mirror {
                        dir: d.clone(),
                        key,
                    }
                }
                _ => return Err(at("give exactly one of url, path or mirror".into())),
            };
            if s.mirror_key.is_some() && s.mirror.is_none() {
                return Err(at("mirror_key goes with mirror".into()));
            }
            let mut src = FeedSource::new(&s.name, s.kind.0, origin);
            if let Some(e) = s.every {
                src.every =
                    jiff::SignedDuration::try_from(e.0).map_err(|e| at(format!("every: {e}")))?;
            }
            if let Some(m) = s.max_bytes {
                if m == 0 {
                    return Err(at("max_bytes: must be positive".into()));
                }
                src.max_bytes = m;
            }
            if let Some(h) = &s.sha256 {
                if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(at(format!("sha256 {h:?}: expected 64 hex digits")));
                }
                src.sha256 = Some(h.to_ascii_lowercase());
            }
            if let Some(e) = s.stale_after {
                src.stale_after = jiff::SignedDuration::try_from(e.0)
                    .map_err(|e| at(format!("stale_after: {e}")))?;
            }
            if let Some(t) = s.timeout {
                src.timeout = t.0;
            }
            out.sources.push(src);
        }
        Ok(out)
    }
}

/// `[syslog]`: the SIEM sink.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `udp`, `tcp` or `tls`.
    pub transport: TransportName,
    /// Receiver host name or address.
    pub host: Host,
    /// Receiver port (default 514 for udp/tcp, 6514 for tls).
    pub port: Option<Port>,
    /// `cef` (default) or `json`.
    #[serde(default)]
    pub format: FormatName,
    /// PEM file of the CA that signed the receiver's certificate (tls; required).
    pub ca: Option<PathBuf>,
    /// The name the receiver's certificate must carry (default: `host`).
    pub server_name: Option<Host>,
    /// Syslog facility name (default `audit`, 13).
    pub facility: Option<FacilityName>,
    /// HOSTNAME of the messages (default: this machine's name).
    pub hostname: Option<Host>,
    /// Entries the queue holds (default 10000; 1–1000000).
    pub queue: Option<QueueSize>,
    /// `drop` (default: bounded, counted) or `wait` (drop nothing).
    pub overflow: Option<OverflowName>,
    /// First reconnect delay (default 500ms).
    pub backoff_base: Option<Interval>,
    /// Longest reconnect delay (default 60s).
    pub backoff_max: Option<Interval>,
}

/// `[smtp]`: the mail relay.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Relay host.
    pub host: Host,
    /// Port (default 587 for starttls, 465 for implicit, 25 for none).
    pub port: Option<Port>,
    /// `starttls`, `implicit` or `none`.
    pub tls: SmtpTls,
    /// User name (with `password`).
    pub username: Option<String>,
    /// Password (with `username`); never printed.
    pub password: Option<Secret>,
    /// Sender mailbox: `addr@example.net` or `Name <addr@example.net>`.
    pub from: Mailbox,
}

impl SmtpConfig {
    /// The port, or the TLS mode's default.
    pub fn port(&self) -> u16 {
        self.port.map(|p| p.0).unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        })
    }
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587); refused if the
    /// server does not offer it.
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS (a relay on the same host only).
    None,
}

macro_rules! parsed {
    ($(#[$m:meta])* $name:ident($t:ty), $expect:literal, $parse:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct $name(pub $t);
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                let f: fn(&str) -> Option<$t> = $parse;
                f(&s).map($name).ok_or_else(|| {
                    serde::de::Error::custom(format!("{s:?}: expected {}", $expect))
                })
            }
        }
    };
}

parsed!(
    /// `udp`, `tcp` or `tls`.
    TransportName(Transport), "udp, tcp or tls", Transport::parse);
parsed!(
    /// `cef` or `json`.
    FormatName(Format), "cef or json", Format::parse);
parsed!(
    /// A syslog facility name.
    FacilityName(u8), "a syslog facility (audit, authpriv, local0 … local7, …)", patchbay_core::siem::facility);
parsed!(
/// `drop` or `wait`.
OverflowName(Overflow), "drop or wait", |s| match s {
    "drop" => Some(Overflow::Drop),
    "wait" => Some(Overflow::Wait),
    _ => None,
});
parsed!(
/// An interval (`500ms`, `30s`, `5m`).
Interval(Duration), "an interval such as 500ms, 30s or 5m", |s| {
    patchbay_core::when::fine_interval("", s).ok().filter(|d| !d.is_zero())
});

parsed!(
/// `osv`, `kev`, `epss`, `cvss` or `csaf`.
FeedKindName(patchbay_app::feed_sync::FeedKind), "osv, kev, epss, cvss or csaf", patchbay_app::feed_sync::FeedKind::parse);

impl Default for FormatName {
    fn default() -> Self {
        FormatName(Format::Cef)
    }
}

/// A port, 1–65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        u16::try_from(n)
            .ok()
            .filter(|p| *p != 0)
            .map(Port)
            .ok_or_else(|| serde::de::Error::custom(format!("{n}: expected a port, 1–65535")))
    }
}

/// Queue size, 1–1,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSize(pub usize);

impl<'de> Deserialize<'de> for QueueSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        if (1..=1_000_000).contains(&n) {
            Ok(QueueSize(n as usize))
        } else {
            Err(serde::de::Error::custom(format!(
                "{n}: expected a queue size, 1–1000000"
            )))
        }
    }
}

/// A host name or address: 1–253 characters, no spaces or control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host(pub String);

impl<'de> Deserialize<'de> for Host {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.len() > 253 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(serde::de::Error::custom(format!(
                "{s:?}: expected a host name or address (1–253 characters, no spaces)"
            )));
        }
        Ok(Host(s))
    }
}

/// A sender mailbox: `local@domain` or `Display Name <local@domain>`; no
/// line breaks (they would inject mail headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox(pub String);

impl<'de> Deserialize<'de> for Mailbox {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let addr = match (s.rfind('<'), s.ends_with('>')) {
            (Some(i), true) => &s[i + 1..s.len() - 1],
            _ => s.as_str(),
        };
        let ok = !s.chars().any(char::is_control)
            && match addr.split_once('@') {
                Some((l, dom)) => {
                    !l.is_empty()
                        && !dom.is_empty()
                        && !dom.contains('@')
                        && !addr
                            .chars()
                            .any(|c| c.is_whitespace() || "<>,;\"".contains(c))
                }
                None => false,
            };
        if !ok {
            return Err(serde::de::Error::custom(format!(
                "{s:?}: expected a mailbox, addr@example.net or Name <addr@example.net>"
            )));
        }
        Ok(Mailbox(s))
    }
}

/// The keys of each section, for environment overrides: (section, key,
/// integer?).
const KEYS: &[(&str, &str, bool)] = &[
    ("syslog", "transport", false),
    ("syslog", "host", false),
    ("syslog", "port", true),
    ("syslog", "format", false),
    ("syslog", "ca", false),
    ("syslog", "server_name", false),
    ("syslog", "facility", false),
    ("syslog", "hostname", false),
    ("syslog", "queue", true),
    ("syslog", "overflow", false),
    ("syslog", "backoff_base", false),
    ("syslog", "backoff_max", false),
    ("smtp", "host", false),
    ("smtp", "port", true),
    ("smtp", "tls", false),
    ("smtp", "username", false),
    ("smtp", "password", false),
    ("smtp", "from", false),
];

/// Keys whose values are never echoed in an error.
const SECRET_KEYS: &[&str] = &["password"];

/// A configuration error: what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// `at` moved down to a character boundary of `text` (never slices inside
/// a character, whatever span an error carries).
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = boundary(text, at);
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|i| at - i).unwrap_or(at + 1);
    (line, col)
}

/// The section and key at byte `at`: the key of the `key = …` line there,
/// and the last `[section]` header above it.
fn key_at(text: &str, at: usize) -> (Option<String>, Option<String>) {
    let at = boundary(text, at);
    let start = text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let section = text[..start].lines().rev().find_map(|l| {
        let l = l.trim();
        l.strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
            .map(|s| s.trim().to_string())
    });
    let section = section.or_else(|| {
        let l = line.trim();
        l.strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
            .map(|s| s.trim().to_string())
    });
    (section, key)
}

fn file_error(file: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let Some(span) = e.span() else {
        return ConfigError(format!("{file}: {}", e.message()));
    };
    let (line, col) = line_col(text, span.start);
    let (section, key) = key_at(text, span.start);
    let secret = key.as_deref().is_some_and(|k| SECRET_KEYS.contains(&k));
    let message = if secret {
        "invalid value (not shown: it is a secret)".to_string()
    } else {
        e.message().trim().to_string()
    };
    let place = match (section, key) {
        (Some(s), Some(k)) => format!(" [{s}] {k}:"),
        (Some(s), None) => format!(" [{s}]:"),
        (None, Some(k)) => format!(" {k}:"),
        (None, None) => String::new(),
    };
    ConfigError(format!("{file}:{line}:{col}:{place} {message}"))
}

/// An error of the file with the environment's overrides applied: names
/// the variable whose key it is about, else every variable applied.
fn env_error(overrides: &[(String, String)], e: &toml::de::Error) -> ConfigError {
    let shown = e.to_string();
    let culprit = overrides.iter().find_map(|(var, _)| {
        let rest = var.trim_start_matches("PATCHBAY_").to_ascii_lowercase();
        let &(section, key, _) = KEYS.iter().find(|(s, k, _)| rest == format!("{s}_{k}"))?;
        shown
            .contains(&format!("`{section}.{key}`"))
            .then_some((var.as_str(), section, key))
    });
    match culprit {
        Some((var, section, key)) => {
            let msg = if SECRET_KEYS.contains(&key) {
                "invalid value (not shown: it is a secret)".to_string()
            } else {
                e.message().trim().to_string()
            };
            ConfigError(format!(
                "{var} (environment, overriding [{section}] {key}): {msg}"
            ))
        }
        None => {
            let vars: Vec<&str> = overrides.iter().map(|(v, _)| v.as_str()).collect();
            ConfigError(format!(
                "with the environment's {}: {}",
                vars.join(", "),
                e.message().trim()
            ))
        }
    }
}

fn section_line(text: &str, section: &str) -> String {
    text.lines()
        .position(|l| l.trim() == format!("[{section}]"))
        .map(|i| format!(":{}", i + 1))
        .unwrap_or_default()
}

/// Reads `path` (if given) and applies the `PATCHBAY_…` overrides in
/// `env` (pass `std::env::vars()`).
pub fn load(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<ServerConfig, ConfigError> {
    let (name, text) = match path {
        Some(p) => (
            p.display().to_string(),
            std::fs::read_to_string(p).map_err(|e| ConfigError(format!("{}: {e}", p.display())))?,
        ),
        None => ("(no configuration file)".to_string(), String::new()),
    };
    parse(&name, &text, env)
}

/// [`load`] on text already read; `file` names it in errors.
pub fn parse(
    file: &str,
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<ServerConfig, ConfigError> {
    // The file alone first: its errors carry line and key.
    let mut cfg: ServerConfig = toml::from_str(text).map_err(|e| file_error(file, text, &e))?;
    let mut table: toml::Table = toml::from_str(text).map_err(|e| file_error(file, text, &e))?;
    let mut overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("PATCHBAY_SYSLOG_") || k.starts_with("PATCHBAY_SMTP_"))
        .collect();
    overrides.sort();
    for (var, value) in &overrides {
        let rest = var.trim_start_matches("PATCHBAY_").to_ascii_lowercase();
        let Some(&(section, key, int)) = KEYS.iter().find(|(s, k, _)| rest == format!("{s}_{k}"))
        else {
            return Err(ConfigError(format!(
                "{var}: not a setting (the [syslog] and [smtp] keys are listed in docs/configuration.md)"
            )));
        };
        let v =
            if int {
                toml::Value::Integer(value.trim().parse().map_err(|_| {
                    ConfigError(format!("{var}: {value:?}: expected a whole number"))
                })?)
            } else {
                toml::Value::String(value.clone())
            };
        let sec = table
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(sec) = sec.as_table_mut() else {
            return Err(ConfigError(format!("{file}: {section} must be a table")));
        };
        sec.insert(key.to_string(), v);
    }
    if !overrides.is_empty() {
        cfg = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| env_error(&overrides, &e))?;
    }
    validate(file, text, &cfg)?;
    Ok(cfg)
}

/// `:LINE` of the `name = "…"` line of the table (`[[feed_source]]`,
/// `[[discovery_scan]]`) error `e` names, or nothing when it names none.
fn name_line<'a>(text: &str, mut names: impl Iterator<Item = &'a str>, e: &ConfigError) -> String {
    names
        .find(|n| e.0.contains(&format!("{n:?}")))
        .and_then(|n| {
            text.lines().position(|l| {
                l.split_once('=')
                    .is_some_and(|(k, v)| k.trim() == "name" && v.trim().trim_matches('"') == n)
            })
        })
        .map(|i| format!(":{}", i + 1))
        .unwrap_or_default()
}

/// Checks across keys.
fn validate(file: &str, text: &str, cfg: &ServerConfig) -> Result<(), ConfigError> {
    if let Err(e) = cfg.discovery_scans() {
        let names = cfg.discovery_scan.iter().map(|s| s.name.as_str());
        let line = name_line(text, names, &e);
        return Err(ConfigError(format!("{file}{line}: {}", e.0)));
    }
    if let Err(e) = cfg.feed_sync() {
        let names = cfg.feed_source.iter().map(|s| s.name.as_str());
        let line = name_line(text, names, &e);
        return Err(ConfigError(format!("{file}{line}: {}", e.0)));
    }
    if let Some(s) = &cfg.syslog {
        let at = || format!("{file}{}: [syslog]", section_line(text, "syslog"));
        if s.transport.0 == Transport::Tls && s.ca.is_none() {
            return Err(ConfigError(format!(
                "{}: transport \"tls\" needs ca (the PEM file of the CA that signed the receiver's certificate)",
                at()
            )));
        }
        if s.transport.0 != Transport::Tls && (s.ca.is_some() || s.server_name.is_some()) {
            return Err(ConfigError(format!(
                "{}: ca and server_name are for transport \"tls\"",
                at()
            )));
        }
        if let (Some(b), Some(m)) = (s.backoff_base, s.backoff_max)
            && b.0 > m.0
        {
            return Err(ConfigError(format!(
                "{}: backoff_base is longer than backoff_max",
                at()
            )));
        }
    }
    if let Some(m) = &cfg.smtp
        && m.username.is_some() != m.password.is_some()
    {
        return Err(ConfigError(format!(
            "{file}{}: [smtp]: username and password go together",
            section_line(text, "smtp")
        )));
    }
    Ok(())
}

impl SyslogConfig {
    /// The sink's settings; reads the CA file (errors name it).
    pub fn sink(&self) -> Result<SinkConfig, ConfigError> {
        let t = self.transport.0;
        let port = self
            .port
            .map(|p| p.0)
            .unwrap_or(if t == Transport::Tls { 6514 } else { 514 });
        let mut c = SinkConfig::new(t, &self.host.0, port, self.format.0);
        if let Some(ca) = &self.ca {
            c.tls = Some(client_config(ca)?);
        }
        c.server_name = self.server_name.as_ref().map(|h| h.0.clone());
        if let Some(f) = self.facility {
            c.facility = f.0;
        }
        if let Some(h) = &self.hostname {
            c.hostname = h.0.clone();
        }
        if let Some(q) = self.queue {
            c.queue = q.0;
        }
        if let Some(o) = self.overflow {
            c.overflow = o.0;
        }
        if let Some(b) = self.backoff_base {
            c.backoff_base = b.0;
        }
        if let Some(m) = self.backoff_max {
            c.backoff_max = m.0;
        }
        Ok(c)
    }
}

/// A TLS client configuration trusting the CA certificates in `ca` (PEM).
pub fn client_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    let err = |m: String| ConfigError(format!("[syslog] ca: {}: {m}", ca.display()));
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| err(e.to_string()))? {
        let c = c.map_err(|e| err(format!("not a PEM certificate: {e}")))?;
        roots.add(c).map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err("no certificate in the file".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<ServerConfig, ConfigError> {
        parse("pb.toml", text, Vec::new())
    }

    const FULL: &str = r#"
[syslog]
transport = "tcp"
host = "siem.example.net"
port = 1514
format = "json"
facility = "local3"
queue = 500
overflow = "wait"
backoff_base = "250ms"
backoff_max = "30s"

[smtp]
host = "smtp.example.net"
tls = "starttls"
username = "patchbay"
password = "hunter2-very-secret"
from = "Patchbay <patchbay@example.net>"
"#;

    #[test]
    fn a_full_file_parses() {
        let c = p(FULL).unwrap();
        let s = c.syslog.as_ref().unwrap().sink().unwrap();
        assert_eq!(s.transport, Transport::Tcp);
        assert_eq!((s.host.as_str(), s.port), ("siem.example.net", 1514));
        assert_eq!(s.format, Format::Json);
        assert_eq!(s.facility, 19);
        assert_eq!(s.queue, 500);
        assert_eq!(s.overflow, Overflow::Wait);
        assert_eq!(s.backoff_base, Duration::from_millis(250));
        let m = c.smtp.as_ref().unwrap();
        assert_eq!(m.port(), 587);
        assert_eq!(m.password.as_ref().unwrap().expose(), "hunter2-very-secret");
    }

    #[test]
    fn debug_redacts_the_password() {
        let c = p(FULL).unwrap();
        let d = format!("{c:?} {:#?}", c.smtp);
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("<redacted>"), "{d}");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = p("[syslog]\ntransport = \"tcp\"\nhost = \"h\"\nport = 70000\n").unwrap_err();
        assert!(e.0.starts_with("pb.toml:4:8: [syslog] port: "), "{e}");
        assert!(e.0.contains("70000"), "{e}");
        let e = p("[syslog]\ntransport = \"smoke\"\nhost = \"h\"\n").unwrap_err();
        assert!(e.0.starts_with("pb.toml:2:13: [syslog] transport: "), "{e}");
        assert!(e.0.contains("udp, tcp or tls"), "{e}");
        let e =
            p("[smtp]\nhost = \"h\"\ntls = \"starttls\"\nfrom = \"a@b\"\nprot = 25\n").unwrap_err();
        assert!(e.0.starts_with("pb.toml:5:1: [smtp] prot: "), "{e}");
        assert!(e.0.contains("unknown field"), "{e}");
        let e = p("[smtp]\nhost = \"h\"\ntls = \"maybe\"\nfrom = \"a@b\"\n").unwrap_err();
        assert!(e.0.starts_with("pb.toml:3:7: [smtp] tls: "), "{e}");
        let e = p("[smtp]\nhost = \"h\"\ntls = \"none\"\nfrom = \"x\\r\\nBcc: all@evil\"\n")
            .unwrap_err();
        assert!(e.0.starts_with("pb.toml:4:8: [smtp] from: "), "{e}");
        let e = p("[syslog]\ntransport = \"tls\"\nhost = \"h\"\n").unwrap_err();
        assert!(
            e.0.starts_with("pb.toml:1: [syslog]: transport \"tls\" needs ca"),
            "{e}"
        );
        let e = p("[syslog]\ntransport = \"udp\"\n").unwrap_err();
        assert!(e.0.starts_with("pb.toml:1:1: [syslog]"), "{e}");
        assert!(e.0.contains("missing field `host`"), "{e}");
        let e = p("[syslog\n").unwrap_err();
        assert!(e.0.starts_with("pb.toml:1:"), "{e}");
    }

    #[test]
    fn a_bad_secret_is_not_echoed() {
        let e = p("[smtp]\nhost = \"h\"\ntls = \"none\"\nfrom = \"a@b\"\nusername = \"u\"\npassword = 123456789\n").unwrap_err();
        assert!(e.0.starts_with("pb.toml:6:12: [smtp] password: "), "{e}");
        assert!(!e.0.contains("123456789"), "{e}");
        let e =
            p("[smtp]\nhost = \"h\"\ntls = \"none\"\nfrom = \"a@b\"\npassword = \"pw-secret\"\n")
                .unwrap_err();
        assert!(e.0.contains("username and password go together"), "{e}");
        assert!(!e.0.contains("pw-secret"), "{e}");
    }

    #[test]
    fn environment_overrides_the_file_and_names_itself() {
        let env = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        let c = parse(
            "pb.toml",
            FULL,
            env(&[
                ("PATCHBAY_SYSLOG_PORT", "2514"),
                ("PATCHBAY_SMTP_PASSWORD", "from-env"),
                ("PATCHBAY_DB", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.syslog.as_ref().unwrap().port, Some(Port(2514)));
        assert_eq!(
            c.smtp.as_ref().unwrap().password.as_ref().unwrap().expose(),
            "from-env"
        );
        // Environment alone, without a file.
        let c = parse(
            "(none)",
            "",
            env(&[
                ("PATCHBAY_SYSLOG_TRANSPORT", "udp"),
                ("PATCHBAY_SYSLOG_HOST", "127.0.0.1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.syslog.unwrap().sink().unwrap().port, 514);
        let e = parse("pb.toml", FULL, env(&[("PATCHBAY_SYSLOG_PORT", "many")])).unwrap_err();
        assert!(e.0.starts_with("PATCHBAY_SYSLOG_PORT: "), "{e}");
        let e = parse("pb.toml", FULL, env(&[("PATCHBAY_SYSLOG_FORMAT", "xml")])).unwrap_err();
        assert!(
            e.0.starts_with("PATCHBAY_SYSLOG_FORMAT (environment, overriding [syslog] format): "),
            "{e}"
        );
        let e = parse("pb.toml", FULL, env(&[("PATCHBAY_SYSLOG_PROT", "1")])).unwrap_err();
        assert!(e.0.contains("not a setting"), "{e}");
    }

    #[test]
    fn never_panics_on_odd_text() {
        for t in [
            "é = 1",
            "[syslog]\nhost = \"é\"\u{0}",
            "[[syslog]]",
            "syslog = 3",
            "[smtp]\nport = \"ü\"",
            "[syslog]\ntransport = \"tcp\"\nhost = \"h\"\nport = -1\n",
            "\u{FEFF}[syslog]",
        ] {
            let _ = p(t);
        }
        assert_eq!(boundary("aé", 2), 1);
    }

    #[test]
    fn discovery_scans_are_read_and_checked() {
        let f = p(
            "[[discovery_scan]]\nname = \"lan\"\nranges = [\"10.0.0.0/24\", \"192.0.2.7\"]\n\
                   ports = \"22,80,8000-8100\"\nevery = \"6h\"\nexternal = true\n",
        )
        .unwrap()
        .discovery_scans()
        .unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].every, jiff::SignedDuration::from_hours(6));
        assert!(f[0].external);
        assert_eq!(f[0].nmap, PathBuf::from("nmap"));
        assert!(
            p("").unwrap().discovery_scans().unwrap().is_empty(),
            "none by default"
        );
        let bad = |body: &str, want: &str| {
            let e = p(&format!("\n[[discovery_scan]]\n{body}")).unwrap_err();
            assert!(e.0.contains(want), "{want}: {e}");
            e
        };
        // An option where a range goes: refused, never passed to nmap.
        let e = bad(
            "name = \"lan\"\nranges = [\"-oN/tmp/x\"]\n",
            "not an address or CIDR range",
        );
        assert!(
            e.0.starts_with("pb.toml:3: [[discovery_scan]] \"lan\""),
            "{e}"
        );
        bad(
            "name = \"lan\"\nranges = [\"10.0.0.0/33\"]\n",
            "prefix must be 0–32",
        );
        bad("name = \"lan\"\nranges = []\n", "at least one");
        bad(
            "name = \"lan\"\nranges = [\"10.0.0.1\"]\nports = \"22;rm\"\n",
            "digits, ',' and '-' only",
        );
        bad(
            "name = \"a b\"\nranges = [\"10.0.0.1\"]\n",
            "name: expected",
        );
        bad(
            "name = \"lan\"\nranges = [\"10.0.0.1\"]\nevery = \"10s\"\n",
            "at least 1m",
        );
    }

    #[test]
    fn feed_sources_are_read_and_checked() {
        let key = patchbay_core::audit::Signer::from_seed(&[1u8; 32]).public_hex();
        let text = format!(
            "[feeds]\nmax_upload = 1000\n\n[[feed_source]]\nname = \"kev\"\nkind = \"kev\"\n\
             url = \"https://example.net/kev.json\"\nevery = \"1h\"\nstale_after = \"1d\"\n\
             max_bytes = 5000\n\n[[feed_source]]\nname = \"osv\"\nkind = \"osv\"\n\
             mirror = \"/srv/m\"\nmirror_key = \"{key}\"\n"
        );
        let f = p(&text).unwrap().feed_sync().unwrap();
        assert_eq!(f.max_upload, 1000);
        assert_eq!(f.sources.len(), 2);
        let k = &f.sources[0];
        assert_eq!(
            k.origin,
            patchbay_app::feed_sync::Origin::Url("https://example.net/kev.json".into())
        );
        assert_eq!(k.every, jiff::SignedDuration::from_hours(1));
        assert_eq!(k.stale_after, jiff::SignedDuration::from_hours(24));
        assert_eq!(k.max_bytes, 5000);
        assert!(matches!(
            f.sources[1].origin,
            patchbay_app::feed_sync::Origin::Mirror { .. }
        ));
        let bad = |body: &str, want: &str| {
            let e = p(&format!("\n[[feed_source]]\n{body}")).unwrap_err();
            assert!(e.0.contains(want), "{want}: {e}");
            e
        };
        let e = bad(
            "name = \"kev\"\nkind = \"kev\"\n",
            "give exactly one of url, path or mirror",
        );
        assert!(e.0.starts_with("pb.toml:3: [[feed_source]] \"kev\""), "{e}");
        bad(
            "name = \"kev\"\nkind = \"rss\"\npath = \"/x\"\n",
            "osv, kev, epss, cvss or csaf",
        );
        bad(
            "name = \"../x\"\nkind = \"kev\"\npath = \"/x\"\n",
            "name: expected",
        );
        bad(
            "name = \"k\"\nkind = \"kev\"\nurl = \"ftp://x\"\n",
            "expected http:// or https://",
        );
        bad(
            "name = \"k\"\nkind = \"kev\"\nmirror = \"/m\"\n",
            "mirror needs mirror_key",
        );
        bad(
            "name = \"k\"\nkind = \"kev\"\nmirror = \"/m\"\nmirror_key = \"zz\"\n",
            "mirror_key: ",
        );
        bad(
            "name = \"k\"\nkind = \"kev\"\npath = \"/x\"\nsha256 = \"abc\"\n",
            "64 hex digits",
        );
        bad(
            "name = \"k\"\nkind = \"kev\"\npath = \"/x\"\nevery = \"soon\"\n",
            "an interval",
        );
        bad(
            "name = \"k\"\nkind = \"kev\"\npath = \"/x\"\nurl2 = \"x\"\n",
            "unknown field",
        );
        bad(
            "name = \"k\"\nkind = \"kev\"\npath = \"/x\"\n[[feed_source]]\nname = \"k\"\nkind = \"kev\"\npath = \"/y\"\n",
            "used by another",
        );
    }

    #[test]
    fn the_ca_file_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ca.pem");
        std::fs::write(&f, "not a certificate").unwrap();
        let text = format!(
            "[syslog]\ntransport = \"tls\"\nhost = \"h\"\nca = {:?}\n",
            f.display().to_string()
        );
        let c = p(&text).unwrap();
        let e = c.syslog.unwrap().sink().unwrap_err();
        assert!(e.0.contains("ca.pem: no certificate"), "{e}");
    }
}
