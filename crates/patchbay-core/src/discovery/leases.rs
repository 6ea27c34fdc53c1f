//! DHCP lease files: ISC dhcpd's `dhcpd.leases` (a journal of `lease IP {…}`
//! blocks, the last one for an address wins) and dnsmasq's `dnsmasq.leases`
//! (one line per lease: expiry, MAC, IP, host name, client id). Only leases
//! in use are observations: dhcpd's `binding state active` (or no state
//! given), every dnsmasq line. Errors name the line.

use super::{Interface, Mac, Observation, ParseError, SourceKind, clean_host_name};
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Open,
    Close,
    Semi,
}

fn dhcpd_err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError::new(SourceKind::Dhcpd, format!("line {line}"), message)
}

/// Splits dhcpd's configuration syntax into tokens with their lines.
fn tokens(text: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '{' => out.push((line, Tok::Open)),
            '}' => out.push((line, Tok::Close)),
            ';' => out.push((line, Tok::Semi)),
            '"' => {
                let start = line;
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(dhcpd_err(start, "a string that never ends")),
                        Some('"') => break,
                        Some('\\') => {
                            if let Some(e) = chars.next() {
                                if e == '\n' {
                                    line += 1;
                                }
                                s.push(e);
                            }
                        }
                        Some('\n') => {
                            line += 1;
                            s.push('\n');
                        }
                        Some(c) => s.push(c),
                    }
                }
                out.push((start, Tok::Str(s)));
            }
            c => {
                let mut w = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | '"' | '#') {
                        break;
                    }
                    w.push(n);
                    chars.next();
                }
                out.push((line, Tok::Word(w)));
            }
        }
    }
    Ok(out)
}

/// dhcpd's time: `4 2023/11/02 10:00:00` (weekday, UTC date and time),
/// `epoch 1698919200`, or `never`.
fn dhcpd_time(words: &[String], line: usize) -> Result<Option<Timestamp>, ParseError> {
    match words {
        [w] if w == "never" => Ok(None),
        [e, n] if e == "epoch" => {
            let n: i64 = n
                .parse()
                .map_err(|_| dhcpd_err(line, format!("epoch {n:?} is not a number")))?;
            Timestamp::from_second(n)
                .map(Some)
                .map_err(|_| dhcpd_err(line, format!("epoch {n} is out of range")))
        }
        [_weekday, date, time] => {
            let text = format!("{} {time}", date.replace('/', "-"));
            let dt: jiff::civil::DateTime = text
                .parse()
                .map_err(|_| dhcpd_err(line, format!("{date} {time} is not a date and time")))?;
            dt.to_zoned(jiff::tz::TimeZone::UTC)
                .map(|z| Some(z.timestamp()))
                .map_err(|_| dhcpd_err(line, format!("{date} {time} is out of range")))
        }
        _ => Err(dhcpd_err(
            line,
            format!("{:?} is not a lease time", words.join(" ")),
        )),
    }
}

struct Lease {
    mac: Option<Mac>,
    host: Option<String>,
    active: bool,
    seen: Option<Timestamp>,
}

/// Parses an ISC dhcpd lease file.
pub fn parse_dhcpd(text: &str) -> Result<Vec<Observation>, ParseError> {
    let toks = tokens(text)?;
    let mut i = 0;
    let mut leases: BTreeMap<IpAddr, Lease> = BTreeMap::new();
    // One statement at a time: words up to `;` or a `{ block }`.
    while i < toks.len() {
        let (line, _) = toks[i];
        let mut words = Vec::new();
        while let Some((_, Tok::Word(w) | Tok::Str(w))) = toks.get(i) {
            words.push(w.clone());
            i += 1;
        }
        match toks.get(i) {
            Some((_, Tok::Semi)) => i += 1,
            Some((_, Tok::Open)) => {
                i += 1;
                let body_start = i;
                let mut depth = 1;
                while depth > 0 {
                    match toks.get(i) {
                        None => return Err(dhcpd_err(line, "a block that never closes")),
                        Some((_, Tok::Open)) => depth += 1,
                        Some((_, Tok::Close)) => depth -= 1,
                        _ => {}
                    }
                    i += 1;
                }
                if words.first().map(String::as_str) == Some("lease") {
                    let [_, addr] = words.as_slice() else {
                        return Err(dhcpd_err(line, "a lease names one address: lease IP { … }"));
                    };
                    let ip: IpAddr = addr.parse().map_err(|_| {
                        dhcpd_err(line, format!("lease {addr:?}: not an IP address"))
                    })?;
                    let lease = lease_body(&toks[body_start..i - 1])?;
                    leases.insert(ip, lease);
                }
            }
            Some((l, Tok::Close)) => return Err(dhcpd_err(*l, "a '}' with no block open")),
            None if words.is_empty() => break,
            None => return Err(dhcpd_err(line, "a statement without ';' at the end")),
            Some(_) => unreachable!("words were consumed"),
        }
    }
    Ok(leases
        .into_iter()
        .filter(|(_, l)| l.active)
        .map(|(ip, l)| Observation {
            interfaces: vec![Interface {
                mac: l.mac,
                ips: vec![ip],
            }],
            host_names: l.host.into_iter().collect(),
            seen_at: l.seen,
            ..Default::default()
        })
        .collect())
}

fn lease_body(toks: &[(usize, Tok)]) -> Result<Lease, ParseError> {
    let mut lease = Lease {
        mac: None,
        host: None,
        active: true,
        seen: None,
    };
    let (mut starts, mut cltt) = (None, None);
    let mut i = 0;
    while i < toks.len() {
        let line = toks[i].0;
        let mut words = Vec::new();
        while let Some((_, Tok::Word(w) | Tok::Str(w))) = toks.get(i) {
            words.push(w.clone());
            i += 1;
        }
        match toks.get(i) {
            Some((_, Tok::Semi)) => i += 1,
            Some((_, Tok::Open)) => {
                // `on commit { … }` and the like: skipped.
                let mut depth = 0;
                loop {
                    match toks.get(i) {
                        None => break,
                        Some((_, Tok::Open)) => depth += 1,
                        Some((_, Tok::Close)) => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                continue;
            }
            _ => return Err(dhcpd_err(line, "a statement without ';' at the end")),
        }
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        match w.as_slice() {
            ["starts", ..] => starts = dhcpd_time(&words[1..], line)?,
            ["cltt", ..] => cltt = dhcpd_time(&words[1..], line)?,
            ["binding", "state", s] => lease.active = *s == "active",
            ["hardware", _, m] => {
                lease.mac = Some(
                    m.parse()
                        .map_err(|e: String| dhcpd_err(line, format!("hardware: {e}")))?,
                )
            }
            ["client-hostname", h] => lease.host = clean_host_name(h),
            _ => {}
        }
    }
    lease.seen = cltt.or(starts);
    Ok(lease)
}

fn dnsmasq_err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError::new(SourceKind::Dnsmasq, format!("line {line}"), message)
}

/// Parses a dnsmasq lease file. IPv6 leases (an IAID where the MAC would
/// be) carry no MAC; the `duid` line is skipped.
pub fn parse_dnsmasq(text: &str) -> Result<Vec<Observation>, ParseError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            [] => continue,
            ["duid", ..] => continue,
            [expiry, mac, ip, rest @ ..] if rest.len() <= 2 => {
                expiry
                    .parse::<u64>()
                    .map_err(|_| dnsmasq_err(n, format!("expiry {expiry:?} is not a number")))?;
                let ip: IpAddr = ip
                    .parse()
                    .map_err(|_| dnsmasq_err(n, format!("{ip:?} is not an IP address")))?;
                let mac = match mac.parse::<Mac>() {
                    Ok(m) => Some(m),
                    // IPv6: an IAID (a number) instead of a MAC.
                    Err(_) if ip.is_ipv6() && mac.parse::<u64>().is_ok() => None,
                    Err(e) => return Err(dnsmasq_err(n, e)),
                };
                out.push(Observation {
                    interfaces: vec![Interface { mac, ips: vec![ip] }],
                    host_names: rest
                        .first()
                        .and_then(|h| clean_host_name(h))
                        .into_iter()
                        .collect(),
                    ..Default::default()
                });
            }
            _ => {
                return Err(dnsmasq_err(
                    n,
                    "expected: EXPIRY MAC IP [HOSTNAME [CLIENT-ID]]",
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dhcpd_keeps_the_last_active_lease_per_address() {
        let text = r#"# The format of this file is documented in the dhcpd.leases(5) manual page.
# This lease file was written by isc-dhcp-4.4.3-P1

authoring-byte-order little-endian;

lease 10.9.0.50 {
  starts 4 2026/11/26 10:00:00;
  ends 4 2026/11/26 22:00:00;
  cltt 4 2026/11/26 10:00:00;
  binding state active;
  next binding state free;
  rewind binding state free;
  hardware ethernet 52:54:00:12:34:56;
  uid "\001RT\000\0224V";
  client-hostname "Laptop-7";
}
lease 10.9.0.51 {
  starts epoch 1764151200;
  binding state free;
  hardware ethernet 52:54:00:aa:bb:cc;
}
lease 10.9.0.50 {
  starts 5 2026/11/27 09:00:00;
  cltt 5 2026/11/27 09:30:00;
  binding state active;
  hardware ethernet 52:54:00:12:34:57;
  set vendor-class-identifier = "MSFT 5.0";
}
server-duid "\000\001\000\001,\224\002\346RT\000\0224V";
"#;
        let obs = parse_dhcpd(text).unwrap();
        assert_eq!(obs.len(), 1, "{obs:?}");
        assert_eq!(
            obs[0].interfaces[0].mac.unwrap().to_string(),
            "52:54:00:12:34:57"
        );
        assert!(obs[0].host_names.is_empty());
        assert_eq!(obs[0].seen_at.unwrap().to_string(), "2026-11-27T09:30:00Z");
    }

    #[test]
    fn dhcpd_errors_name_the_line() {
        let e = parse_dhcpd("lease 10.0.0.1 {\n  hardware ethernet zz;\n}\n").unwrap_err();
        assert_eq!(e.position, "line 2", "{e}");
        let e = parse_dhcpd("lease 10.0.0.1 {\n  starts 4 2026/13/45 10:00:00;\n}").unwrap_err();
        assert_eq!(e.position, "line 2", "{e}");
        let e = parse_dhcpd("\n\nlease 10.0.0.1 {\n").unwrap_err();
        assert_eq!(e.position, "line 3", "{e}");
        let e = parse_dhcpd("lease nonsense { }").unwrap_err();
        assert!(e.message.contains("nonsense"), "{e}");
        assert!(parse_dhcpd("}").is_err());
        assert!(parse_dhcpd("lease 10.0.0.1 { uid \"abc").is_err());
    }

    #[test]
    fn dnsmasq_lines_v4_and_v6() {
        let text = "1764237600 52:54:00:12:34:56 10.9.0.60 nas01 01:52:54:00:12:34:56\n\
                    0 52:54:00:de:ad:01 10.9.0.61 * *\n\
                    duid 00:01:00:01:2c:94:02:e6:52:54:00:12:34:56\n\
                    1764237600 305419896 fd00::61 nas01 00:01:00:01\n";
        let obs = parse_dnsmasq(text).unwrap();
        assert_eq!(obs.len(), 3);
        assert_eq!(obs[0].host_names, vec!["nas01"]);
        assert!(obs[1].host_names.is_empty());
        assert_eq!(obs[2].interfaces[0].mac, None);
        let e = parse_dnsmasq("1 52:54:00:12:34:56 10.9.0.60 a b\nx y\n").unwrap_err();
        assert_eq!(e.position, "line 2");
        let e = parse_dnsmasq("1 nonsense 10.9.0.60\n").unwrap_err();
        assert!(e.message.contains("nonsense"), "{e}");
    }
}
