//! SIEM encoding: audit entries as CEF or JSON inside RFC 5424 syslog
//! messages, framed for UDP (RFC 5426), TCP (RFC 6587 octet counting) and
//! TLS (RFC 5425, the same framing).
//!
//! Everything here is pure: the server's sink (`patchbay_server::siem`)
//! reads audit entries, encodes them with [`encode`], frames them with
//! [`frame_octet_counted`] (or [`truncate_datagram`] for UDP) and writes the
//! bytes. The parsers ([`parse_cef`], [`parse_5424`], [`deframe`]) are the
//! other half of the property tests — whatever is encoded reads back — and a
//! receiver's-eye view for the integration tests; they never panic on any
//! input.
//!
//! **CEF** (ArcSight Common Event Format, "Implementing ArcSight CEF",
//! revision 25): `CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|Extension`.
//! In header fields a backslash and a pipe are escaped (`\\`, `\|`); in
//! extension values a backslash, an equals sign and line breaks are escaped
//! (`\\`, `\=`, `\n`, `\r`). The spec defines no escape for a line break in
//! the header, so there one becomes a space (the exact text is also in the
//! `msg` extension). Other control characters become spaces everywhere, so
//! a message is always one line. Each kind of entry has its own signature id
//! ([`signature`], the table in `docs/siem.md`).
//!
//! **RFC 5424**: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - BOM MSG`.
//! Header fields are printable US-ASCII without spaces and within the RFC's
//! lengths ([`header_field`]); MSG is UTF-8 with the BOM the RFC asks for.

use jiff::Timestamp;
use serde_json::{Value, json};

/// The CEF `Device Vendor` and `Device Product`.
pub const VENDOR: &str = "Patchbay";
/// The CEF `Device Product`.
pub const PRODUCT: &str = "Patchbay";
/// The UTF-8 byte order mark that starts an RFC 5424 UTF-8 MSG.
pub const BOM: &str = "\u{FEFF}";
/// Largest datagram sent over UDP by default: RFC 5426 asks receivers for at
/// least 2048 octets and recommends more; 8 KiB is what rsyslog accepts by
/// default (`$MaxMessageSize`).
pub const DEFAULT_UDP_MAX: usize = 8192;

/// The message format inside the syslog message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ArcSight Common Event Format.
    Cef,
    /// One JSON object ([`to_json`]).
    Json,
}

impl Format {
    /// `cef` or `json`.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "cef" => Some(Format::Cef),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Cef => "cef",
            Format::Json => "json",
        }
    }
}

/// An audit entry as the SIEM gets it (the server reads them from the audit
/// log, so refused requests are included, not only the outbox's events).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The audit sequence number (unique, increasing; `externalId`).
    pub seq: i64,
    /// When it was recorded.
    pub at: Timestamp,
    /// Who (`token:1:ops`, `anonymous`, `system:duties`).
    pub actor: String,
    /// The audit action (`deployment.created`, `request.denied`, …).
    pub action: String,
    /// What it concerns.
    pub target: String,
    /// `ok` or `denied`.
    pub outcome: String,
    /// The audit detail.
    pub detail: Value,
}

/// A signature: the CEF `Signature ID`, its `Name` class and `Severity`
/// (0–10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// Stable id (the table in `docs/siem.md`); never reused.
    pub id: u32,
    /// The event class (`deployment.created`, `request.denied`, …).
    pub class: &'static str,
    /// CEF severity, 0 (lowest) to 10.
    pub severity: u8,
}

/// The signature table: (event class, id, severity). Event kinds of the typed
/// schema ([`crate::event::Kind`]) first, then security-relevant audit actions
/// that have no kind of their own, then the catch-all.
pub const SIGNATURES: &[(&str, u32, u8)] = &[
    ("deployment.created", 100, 3),
    ("deployment.started", 101, 3),
    ("deployment.ring_passed", 102, 3),
    ("deployment.paused", 103, 5),
    ("deployment.resumed", 104, 3),
    ("deployment.halted", 105, 7),
    ("deployment.aborted", 106, 6),
    ("deployment.completed", 107, 3),
    ("deployment.rolled_back", 108, 7),
    ("deployment.rollback_failed", 109, 9),
    ("approval.granted", 110, 5),
    ("exception.added", 111, 5),
    ("exception.revoked", 112, 4),
    ("exception.expired", 113, 4),
    ("feed.imported", 114, 2),
    ("webhook.test", 115, 1),
    ("approval.requested", 116, 5),
    ("escalation.notified", 117, 5),
    ("escalation.acknowledged", 118, 4),
    ("exception.review", 119, 3),
    ("sla.at_risk", 120, 6),
    ("sla.breached", 121, 8),
    ("feed.stale", 122, 6),
    ("sla.resolved", 123, 3),
    ("asset.shadow_found", 124, 5),
    ("asset.ghost", 125, 4),
    ("deployment.rehearsal_failed", 130, 6),
    ("deployment.impact_notice", 135, 2),
    ("deployment.impact_summary", 136, 2),
    ("deployment.test_report", 131, 3),
    ("request.denied", 200, 5),
    ("request.denied.suppressed", 201, 6),
    ("request.throttled", 202, 6),
    ("token.create", 210, 6),
    ("token.revoke", 211, 5),
    ("enroll_token.create", 212, 5),
    ("agent.enroll", 213, 4),
    ("agent.certificate", 214, 4),
    ("agent.key_announcement_refused", 215, 8),
    ("server_key.rotate", 220, 7),
    ("policy.apply", 230, 5),
    ("evidence.export", 231, 4),
    ("webhook.add", 232, 5),
    ("webhook.remove", 233, 5),
    ("contact.add", 234, 5),
    ("contact.remove", 235, 5),
    ("escalation.add", 236, 5),
    ("escalation.remove", 237, 5),
    ("duties.leader", 240, 2),
    ("audit.recorded", 199, 3),
];

/// The signature of an audit action: its event kind's, else the action's own
/// (security-relevant actions), else `audit.recorded` (199). A `denied`
/// outcome is at least severity 5.
pub fn signature(action: &str, outcome: &str) -> Signature {
    let kind = crate::event::Kind::from_action(action);
    let class = if kind == crate::event::Kind::AuditRecorded {
        action
    } else {
        kind.as_str()
    };
    let found = SIGNATURES
        .iter()
        .find(|(c, _, _)| *c == class)
        .or_else(|| SIGNATURES.iter().find(|(c, _, _)| *c == "audit.recorded"));
    let (class, id, severity) = found.copied().unwrap_or(("audit.recorded", 199, 3));
    let severity = if outcome == "ok" {
        severity
    } else {
        severity.max(5)
    };
    Signature {
        id,
        class,
        severity,
    }
}

/// The syslog severity (RFC 5424 §6.2.1) of a CEF severity: 0–3 info (6),
/// 4–6 notice (5), 7–8 warning (4), 9–10 critical (2).
pub fn syslog_severity(cef: u8) -> u8 {
    match cef {
        0..=3 => 6,
        4..=6 => 5,
        7..=8 => 4,
        _ => 2,
    }
}

/// The syslog facilities by name (RFC 5424 §6.2.1), for configuration.
pub const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("ntp", 12),
    ("audit", 13),
    ("alert", 14),
    ("clock", 15),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// The facility code of `name`.
pub fn facility(name: &str) -> Option<u8> {
    FACILITIES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

/// One line of human text about an entry (the CEF `Name` and `msg`).
pub fn summary(e: &Entry) -> String {
    if let Some(m) = e.detail.get("message").and_then(Value::as_str) {
        return m.to_string();
    }
    let verb = if e.outcome == "ok" { "" } else { " (denied)" };
    format!("{} {} by {}{verb}", e.action, e.target, e.actor)
}

fn control_to_space(c: char) -> char {
    if c.is_control() { ' ' } else { c }
}

/// Escapes a CEF header field: `\` → `\\`, `|` → `\|`; line breaks and other
/// control characters become spaces (the spec has no header escape for
/// them).
pub fn cef_header(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            c => out.push(control_to_space(c)),
        }
    }
    out
}

/// Escapes a CEF extension value: `\` → `\\`, `=` → `\=`, LF → `\n`,
/// CR → `\r`; other control characters become spaces.
pub fn cef_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(control_to_space(c)),
        }
    }
    out
}

/// Free-text fields of an audit detail a SIEM analyst reads first, in order:
/// the first present becomes `cs3` (labelled with its name), unescaped by
/// any JSON (a lesson's line breaks arrive as line breaks).
pub const FREE_TEXT: [&str; 4] = ["text", "reason", "comment", "message"];

/// The CEF line of an entry (`version` is Patchbay's, the `Device Version`).
///
/// Extension: `rt` (milliseconds since the epoch), `externalId` (the audit
/// sequence number), `act` (the audit action), `suser` (the actor), `outcome`,
/// `msg` (the summary, exact), `cs1` (the target, labelled `target`), `cs2`
/// (the audit detail as JSON, labelled `detail`), `cs3` (the detail's first
/// [`FREE_TEXT`] field as text, labelled with its name) and `src` when the
/// detail names the client address (`remote`).
pub fn to_cef(e: &Entry, version: &str) -> String {
    let sig = signature(&e.action, &e.outcome);
    let name = summary(e);
    let mut ext: Vec<(&str, String)> = vec![
        ("rt", e.at.as_millisecond().to_string()),
        ("externalId", e.seq.to_string()),
        ("act", e.action.clone()),
        ("suser", e.actor.clone()),
        ("outcome", e.outcome.clone()),
        ("msg", name.clone()),
        ("cs1Label", "target".into()),
        ("cs1", e.target.clone()),
        ("cs2Label", "detail".into()),
        ("cs2", e.detail.to_string()),
    ];
    if let Some((field, text)) = FREE_TEXT
        .iter()
        .find_map(|f| e.detail.get(*f).and_then(Value::as_str).map(|t| (*f, t)))
    {
        ext.push(("cs3Label", field.to_string()));
        ext.push(("cs3", text.to_string()));
    }
    if let Some(ip) = e
        .detail
        .get("remote")
        .and_then(Value::as_str)
        .and_then(|r| {
            r.parse::<std::net::SocketAddr>()
                .map(|a| a.ip())
                .or_else(|_| r.parse::<std::net::IpAddr>())
                .ok()
        })
    {
        ext.push(("src", ip.to_string()));
    }
    let mut out = format!(
        "CEF:0|{}|{}|{}|{}|{}|{}|",
        cef_header(VENDOR),
        cef_header(PRODUCT),
        cef_header(version),
        sig.id,
        cef_header(&name),
        sig.severity
    );
    for (i, (k, v)) in ext.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(&cef_value(v));
    }
    out
}

/// The JSON form of an entry: one object on one line (serde_json escapes
/// every control character), with the signature's id, class and severity.
pub fn to_json(e: &Entry) -> String {
    let sig = signature(&e.action, &e.outcome);
    json!({
        "seq": e.seq,
        "at": e.at.to_string(),
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "outcome": e.outcome,
        "class": sig.class,
        "signature": sig.id,
        "severity": sig.severity,
        "summary": summary(e),
        "detail": e.detail,
    })
    .to_string()
}

/// The message of an entry in `format`.
pub fn message(e: &Entry, format: Format, version: &str) -> String {
    match format {
        Format::Cef => to_cef(e, version),
        Format::Json => to_json(e),
    }
}

/// An RFC 5424 header field: printable US-ASCII without spaces (anything
/// else becomes `_`), at most `max` octets, `-` (the nil value) when empty.
pub fn header_field(s: &str, max: usize) -> String {
    let v: String = s
        .chars()
        .map(|c| if ('!'..='~').contains(&c) { c } else { '_' })
        .take(max)
        .collect();
    if v.is_empty() { "-".into() } else { v }
}

/// Where the syslog header's fields come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Facility code (0–23).
    pub facility: u8,
    /// HOSTNAME (this server's name).
    pub hostname: String,
    /// APP-NAME (`patchbay`).
    pub app_name: String,
    /// PROCID (the process id).
    pub procid: String,
}

/// The MSGID of an entry: its signature's class (`deployment.rolled_back`,
/// `request.denied`), or for the catch-all (199) the audit action itself
/// (`window.add`), so receivers can filter on it.
pub fn msgid(e: &Entry) -> &str {
    let sig = signature(&e.action, &e.outcome);
    if sig.class == "audit.recorded" {
        &e.action
    } else {
        sig.class
    }
}

/// An RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID -
/// BOM MSG`. MSGID is [`msgid`] (at most 32 printable characters), the
/// timestamp UTC with milliseconds.
pub fn syslog_5424(origin: &Origin, e: &Entry, msg: &str) -> String {
    let sig = signature(&e.action, &e.outcome);
    let pri = u32::from(origin.facility.min(23)) * 8 + u32::from(syslog_severity(sig.severity));
    format!(
        "<{pri}>1 {} {} {} {} {} - {BOM}{msg}",
        e.at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
        header_field(&origin.hostname, 255),
        header_field(&origin.app_name, 48),
        header_field(&origin.procid, 128),
        header_field(msgid(e), 32),
    )
}

/// RFC 6587 octet counting: `MSG-LEN SP SYSLOG-MSG`.
pub fn frame_octet_counted(msg: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 8);
    out.extend_from_slice(msg.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(msg.as_bytes());
    out
}

/// Cuts a message to at most `max` bytes for one UDP datagram, at a
/// character boundary and never in the middle of a CEF escape (a trailing
/// lone backslash is dropped). Returns the message and whether it was cut.
pub fn truncate_datagram(msg: &str, max: usize) -> (&str, bool) {
    if msg.len() <= max {
        return (msg, false);
    }
    let mut end = max;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = &msg[..end];
    let trailing = cut.bytes().rev().take_while(|b| *b == b'\\').count();
    if trailing % 2 == 1 {
        cut = &cut[..cut.len() - 1];
    }
    (cut, true)
}

/// Errors of the parsers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Malformed input; says what.
    #[error("{0}")]
    Bad(String),
}

fn bad<T>(m: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError::Bad(m.into()))
}

/// Splits an octet-counted stream into its messages; an incomplete last
/// frame is returned as the remainder.
pub fn deframe(mut buf: &[u8]) -> Result<(Vec<&[u8]>, &[u8]), ParseError> {
    let mut out = Vec::new();
    loop {
        if buf.is_empty() {
            return Ok((out, buf));
        }
        let Some(sp) = buf.iter().position(|b| *b == b' ') else {
            if buf.len() > 10 || !buf.iter().all(u8::is_ascii_digit) {
                return bad("frame length: not a number");
            }
            return Ok((out, buf));
        };
        let digits = &buf[..sp];
        if digits.is_empty()
            || digits.len() > 10
            || digits[0] == b'0'
            || !digits.iter().all(u8::is_ascii_digit)
        {
            return bad("frame length: not a number");
        }
        let len: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| ParseError::Bad("frame length: not a number".into()))?;
        let rest = &buf[sp + 1..];
        if rest.len() < len {
            return Ok((out, buf));
        }
        out.push(&rest[..len]);
        buf = &rest[len..];
    }
}

/// An RFC 5424 message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syslog {
    /// PRI.
    pub pri: u8,
    /// TIMESTAMP.
    pub timestamp: String,
    /// HOSTNAME.
    pub hostname: String,
    /// APP-NAME.
    pub app_name: String,
    /// PROCID.
    pub procid: String,
    /// MSGID.
    pub msgid: String,
    /// STRUCTURED-DATA (as is).
    pub structured_data: String,
    /// MSG without the BOM.
    pub msg: String,
}

/// Parses an RFC 5424 message whose STRUCTURED-DATA is the nil value `-`
/// (what [`syslog_5424`] writes).
pub fn parse_5424(s: &str) -> Result<Syslog, ParseError> {
    let Some(rest) = s.strip_prefix('<') else {
        return bad("no PRI");
    };
    let Some((pri, rest)) = rest.split_once('>') else {
        return bad("PRI not closed");
    };
    if pri.is_empty() || pri.len() > 3 || !pri.bytes().all(|b| b.is_ascii_digit()) {
        return bad("PRI: not a number");
    }
    let pri: u8 = match pri.parse::<u8>() {
        Ok(p) if p <= 191 => p,
        _ => return bad("PRI out of range"),
    };
    let Some(rest) = rest.strip_prefix("1 ") else {
        return bad("VERSION is not 1");
    };
    let mut parts = rest.splitn(7, ' ');
    let mut next = |what: &str| {
        parts
            .next()
            .map(str::to_string)
            .ok_or_else(|| ParseError::Bad(format!("no {what}")))
    };
    let timestamp = next("TIMESTAMP")?;
    let hostname = next("HOSTNAME")?;
    let app_name = next("APP-NAME")?;
    let procid = next("PROCID")?;
    let msgid = next("MSGID")?;
    let structured_data = next("STRUCTURED-DATA")?;
    let msg = parts.next().unwrap_or("");
    Ok(Syslog {
        pri,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        structured_data,
        msg: msg.strip_prefix(BOM).unwrap_or(msg).to_string(),
    })
}

/// A CEF line, parsed and unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cef {
    /// The seven header fields after `CEF:`: version, vendor, product,
    /// device version, signature id, name, severity.
    pub header: [String; 7],
    /// The extension's key–value pairs, in order.
    pub extension: Vec<(String, String)>,
}

impl Cef {
    /// The value of extension key `k`.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.extension
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a CEF line (unescaping header and extension).
pub fn parse_cef(line: &str) -> Result<Cef, ParseError> {
    let Some(rest) = line.strip_prefix("CEF:") else {
        return bad("no CEF: prefix");
    };
    let mut header: Vec<String> = Vec::with_capacity(7);
    let mut cur = String::new();
    let mut chars = rest.char_indices();
    let mut ext_start = None;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e @ ('\\' | '|'))) => cur.push(e),
                Some((_, e)) => {
                    cur.push('\\');
                    cur.push(e);
                }
                None => return bad("header ends in a lone backslash"),
            },
            '|' => {
                header.push(std::mem::take(&mut cur));
                if header.len() == 7 {
                    ext_start = Some(i + 1);
                    break;
                }
            }
            c => cur.push(c),
        }
    }
    let Some(start) = ext_start else {
        return bad("fewer than 7 header fields");
    };
    let header: [String; 7] = header
        .try_into()
        .map_err(|_| ParseError::Bad("header".into()))?;
    Ok(Cef {
        header,
        extension: parse_extension(&rest[start..])?,
    })
}

/// Parses a CEF extension: `k=v` pairs separated by spaces, where a value
/// runs to the space before the next unescaped `=`'s key.
fn parse_extension(s: &str) -> Result<Vec<(String, String)>, ParseError> {
    // Split on unescaped '='; each piece but the first ends with " key".
    let mut pieces: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some(e) => {
                    cur.push('\\');
                    cur.push(e);
                }
                None => return bad("extension ends in a lone backslash"),
            },
            '=' => pieces.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    pieces.push(cur);
    if pieces.len() == 1 {
        return if pieces[0].trim().is_empty() {
            Ok(Vec::new())
        } else {
            bad("extension without key=value")
        };
    }
    let mut out = Vec::new();
    let mut key = pieces[0].trim().to_string();
    for (i, p) in pieces.iter().enumerate().skip(1) {
        let last = i == pieces.len() - 1;
        let (value, next_key) = if last {
            (p.as_str(), "")
        } else {
            match p.rfind(' ') {
                Some(sp) => (&p[..sp], &p[sp + 1..]),
                None => return bad("extension: no space before a key"),
            }
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return bad(format!("extension: bad key {key:?}"));
        }
        out.push((key, unescape_value(value)?));
        key = next_key.to_string();
    }
    Ok(out)
}

fn unescape_value(s: &str) -> Result<String, ParseError> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('\\') => out.push('\\'),
            Some('=') => out.push('='),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(e) => {
                out.push('\\');
                out.push(e);
            }
            None => return bad("value ends in a lone backslash"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(actor: &str, target: &str, detail: Value) -> Entry {
        Entry {
            seq: 42,
            at: "2026-12-06T17:02:11.204Z".parse().unwrap(),
            actor: actor.into(),
            action: "token.create".into(),
            target: target.into(),
            outcome: "ok".into(),
            detail,
        }
    }

    #[test]
    fn escapes_per_the_cef_spec() {
        assert_eq!(cef_header(r"a|b\c"), r"a\|b\\c");
        assert_eq!(cef_header("a=b\nc"), "a=b c");
        assert_eq!(cef_value("a=b\\c\nd\re|f"), r"a\=b\\c\nd\re|f");
    }

    #[test]
    fn a_known_line() {
        let e = entry(
            "token:1:admin",
            "token:2:ci|deploy=x\\y",
            json!({"role": "operator"}),
        );
        let cef = to_cef(&e, "0.1.0");
        assert_eq!(
            cef,
            r#"CEF:0|Patchbay|Patchbay|0.1.0|210|token.create token:2:ci\|deploy=x\\y by token:1:admin|6|rt=1796576531204 externalId=42 act=token.create suser=token:1:admin outcome=ok msg=token.create token:2:ci|deploy\=x\\y by token:1:admin cs1Label=target cs1=token:2:ci|deploy\=x\\y cs2Label=detail cs2={"role":"operator"}"#
        );
        let p = parse_cef(&cef).unwrap();
        assert_eq!(p.get("cs1"), Some("token:2:ci|deploy=x\\y"));
        assert_eq!(
            p.header[5],
            "token.create token:2:ci|deploy=x\\y by token:1:admin"
        );
        let origin = Origin {
            facility: 13,
            hostname: "nms 1".into(),
            app_name: "patchbay".into(),
            procid: "77".into(),
        };
        let line = syslog_5424(&origin, &e, &cef);
        assert!(
            line.starts_with(
                "<109>1 2026-12-06T17:02:11.204Z nms_1 patchbay 77 token.create - \u{FEFF}CEF:0|"
            ),
            "{line}"
        );
    }

    #[test]
    fn signatures_are_unique_and_cover_every_kind() {
        let mut ids = std::collections::HashSet::new();
        let mut classes = std::collections::HashSet::new();
        for (c, id, sev) in SIGNATURES {
            assert!(ids.insert(id), "{id} twice");
            assert!(classes.insert(c), "{c} twice");
            assert!(*sev <= 10);
        }
        for k in crate::event::Kind::ALL {
            assert!(
                SIGNATURES.iter().any(|(c, _, _)| *c == k.as_str()),
                "{k} has no signature"
            );
        }
        assert_eq!(signature("request.denied", "denied").id, 200);
        assert_eq!(signature("deployment.rollback", "ok").id, 108);
        assert_eq!(signature("window.add", "ok").id, 199);
        assert_eq!(signature("window.add", "denied").severity, 5);
    }

    #[test]
    fn source_address_from_the_detail() {
        let e = entry("anonymous", "/api/v1/x", json!({"remote": "10.1.2.3:4567"}));
        assert_eq!(
            parse_cef(&to_cef(&e, "1")).unwrap().get("src"),
            Some("10.1.2.3")
        );
    }

    #[test]
    fn datagrams_are_cut_at_safe_places() {
        assert_eq!(truncate_datagram("abc", 8), ("abc", false));
        assert_eq!(truncate_datagram("ab\\\\cd", 3), ("ab", true));
        assert_eq!(truncate_datagram("ab\\\\cd", 4), ("ab\\\\", true));
        assert_eq!(truncate_datagram("aé", 2), ("a", true));
    }
}
