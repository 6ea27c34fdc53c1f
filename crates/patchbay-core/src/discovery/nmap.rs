//! nmap's XML output (`nmap -oX`): the hosts that are up, with their
//! addresses (IPv4/IPv6 and, on the local link, the MAC), PTR and user
//! host names, open ports with the service nmap named, and its best OS match.
//!
//! The document is parsed with `roxmltree` (a DTD is allowed, as nmap writes
//! `<!DOCTYPE nmaprun>`; entity loops and documents over a node limit are
//! refused by the parser). Errors name the line and column.

use super::{Interface, Observation, ParseError, Port, SourceKind, clean_host_name, clean_label};
use jiff::Timestamp;
use std::net::IpAddr;

/// The most XML nodes a scan file may have.
const MAX_NODES: u32 = 20_000_000;

fn err(pos: roxmltree::TextPos, message: impl Into<String>) -> ParseError {
    ParseError::new(
        SourceKind::Nmap,
        format!("line {}, column {}", pos.row, pos.col),
        message,
    )
}

fn epoch(s: Option<&str>) -> Option<Timestamp> {
    let n: i64 = s?.trim().parse().ok()?;
    (n > 0).then(|| Timestamp::from_second(n).ok()).flatten()
}

/// Parses an nmap XML document.
pub fn parse(text: &str) -> Result<Vec<Observation>, ParseError> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        nodes_limit: MAX_NODES,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, opts).map_err(|e| {
        let pos = e.pos();
        err(pos, format!("not XML: {e}"))
    })?;
    let root = doc.root_element();
    if !root.has_tag_name("nmaprun") {
        return Err(err(
            doc.text_pos_at(root.range().start),
            format!(
                "the document is <{}>, not an nmap scan (<nmaprun>)",
                root.tag_name().name()
            ),
        ));
    }
    let run_start = epoch(root.attribute("start"));
    let mut out = Vec::new();
    for host in root.children().filter(|n| n.has_tag_name("host")) {
        let pos = doc.text_pos_at(host.range().start);
        let up = host
            .children()
            .find(|n| n.has_tag_name("status"))
            .and_then(|s| s.attribute("state"));
        if up.is_some_and(|s| s != "up") {
            continue;
        }
        let mut mac = None;
        let mut ips = Vec::new();
        for a in host.children().filter(|n| n.has_tag_name("address")) {
            let addr = a.attribute("addr").unwrap_or_default();
            match a.attribute("addrtype") {
                Some("ipv4" | "ipv6") => {
                    let ip: IpAddr = addr
                        .parse()
                        .map_err(|_| err(pos, format!("address {addr:?} is not an IP address")))?;
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
                Some("mac") => {
                    mac = Some(
                        addr.parse()
                            .map_err(|e: String| err(pos, format!("address: {e}")))?,
                    )
                }
                _ => {}
            }
        }
        if ips.is_empty() && mac.is_none() {
            return Err(err(pos, "a host with no address"));
        }
        let mut host_names: Vec<String> = host
            .descendants()
            .filter(|n| n.has_tag_name("hostname"))
            .filter_map(|n| n.attribute("name").and_then(clean_host_name))
            .collect();
        host_names.sort();
        host_names.dedup();
        let mut ports = Vec::new();
        for p in host
            .children()
            .filter(|n| n.has_tag_name("ports"))
            .flat_map(|ps| ps.children().filter(|n| n.has_tag_name("port")))
        {
            let ppos = doc.text_pos_at(p.range().start);
            let open = p
                .children()
                .find(|n| n.has_tag_name("state"))
                .and_then(|s| s.attribute("state"))
                == Some("open");
            if !open {
                continue;
            }
            let proto = p.attribute("protocol").unwrap_or("tcp");
            if !matches!(proto, "tcp" | "udp" | "sctp") {
                return Err(err(
                    ppos,
                    format!("protocol {proto:?} is not tcp, udp or sctp"),
                ));
            }
            let id = p.attribute("portid").unwrap_or_default();
            let port: u16 = id
                .parse()
                .map_err(|_| err(ppos, format!("portid {id:?} is not a port number")))?;
            let service = p
                .children()
                .find(|n| n.has_tag_name("service"))
                .and_then(|s| {
                    let name = s.attribute("name").unwrap_or_default();
                    let detail: Vec<&str> = [s.attribute("product"), s.attribute("version")]
                        .into_iter()
                        .flatten()
                        .collect();
                    let text = if detail.is_empty() {
                        name.to_string()
                    } else {
                        format!("{name} ({})", detail.join(" "))
                    };
                    clean_label(&text)
                });
            ports.push(Port {
                proto: proto.to_string(),
                port,
                service,
            });
        }
        ports.sort();
        ports.dedup_by(|a, b| a.proto == b.proto && a.port == b.port);
        let os_guess = host
            .children()
            .filter(|n| n.has_tag_name("os"))
            .flat_map(|o| o.children().filter(|n| n.has_tag_name("osmatch")))
            .max_by_key(|m| {
                m.attribute("accuracy")
                    .and_then(|a| a.parse::<u32>().ok())
                    .unwrap_or(0)
            })
            .and_then(|m| m.attribute("name"))
            .and_then(clean_label);
        let seen_at = epoch(host.attribute("endtime"))
            .or_else(|| epoch(host.attribute("starttime")))
            .or(run_start);
        out.push(Observation {
            interfaces: vec![Interface { mac, ips }],
            host_names,
            machine_id: None,
            cloud_id: None,
            ports,
            os_guess,
            seen_at,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCAN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<nmaprun scanner="nmap" args="nmap -oX - 10.9.0.0/24" start="1765000000" version="7.93">
<host starttime="1765000001" endtime="1765000009"><status state="up" reason="arp-response"/>
<address addr="10.9.0.12" addrtype="ipv4"/>
<address addr="0A:58:0A:09:00:0C" addrtype="mac"/>
<hostnames><hostname name="Printer.lan" type="PTR"/></hostnames>
<ports><extraports state="closed" count="998"/>
<port protocol="tcp" portid="8080"><state state="open" reason="syn-ack"/><service name="http-proxy" product="tiny" version="1.0"/></port>
<port protocol="tcp" portid="23"><state state="filtered" reason="no-response"/></port>
</ports>
<os><osmatch name="Linux 4.15 - 5.8" accuracy="96"/><osmatch name="Linux 2.6" accuracy="90"/></os>
</host>
<host><status state="down" reason="no-response"/><address addr="10.9.0.13" addrtype="ipv4"/></host>
</nmaprun>"#;

    #[test]
    fn hosts_up_with_open_ports_mac_names_and_os() {
        let obs = parse(SCAN).unwrap();
        assert_eq!(obs.len(), 1);
        let o = &obs[0];
        assert_eq!(
            o.interfaces[0].mac.unwrap().to_string(),
            "0a:58:0a:09:00:0c"
        );
        assert_eq!(
            o.interfaces[0].ips,
            vec!["10.9.0.12".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(o.host_names, vec!["printer.lan"]);
        assert_eq!(o.ports.len(), 1);
        assert_eq!(o.ports[0].port, 8080);
        assert_eq!(o.ports[0].service.as_deref(), Some("http-proxy (tiny 1.0)"));
        assert_eq!(o.os_guess.as_deref(), Some("Linux 4.15 - 5.8"));
        assert_eq!(o.seen_at, Some(Timestamp::from_second(1765000009).unwrap()));
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse(
            "<nmaprun>\n<host><address addr=\"10.0.0.999\" addrtype=\"ipv4\"/></host></nmaprun>",
        )
        .unwrap_err();
        assert_eq!(e.position, "line 2, column 1");
        assert!(e.message.contains("10.0.0.999"), "{e}");
        let e = parse("<html/>").unwrap_err();
        assert!(e.message.contains("not an nmap scan"), "{e}");
        let e = parse("<nmaprun><host>").unwrap_err();
        assert!(e.position.starts_with("line 1"), "{e}");
        // An entity loop is refused, not expanded.
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "&b;"><!ENTITY b "&a;">]><nmaprun>&a;</nmaprun>"#;
        assert!(parse(bomb).is_err());
    }
}
