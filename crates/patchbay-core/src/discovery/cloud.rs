//! Cloud inventories from the providers' own CLIs, as JSON:
//! `aws ec2 describe-instances` (`Reservations[].Instances[]`), `az vm list
//! -d` (an array of VMs with comma-separated `privateIps`, `publicIps` and
//! `macAddresses`) and `gcloud compute instances list --format=json` (an
//! array of instances with `networkInterfaces[].networkIP` and
//! `accessConfigs[].natIP`; GCP reports no MACs). Terminated or deallocated
//! machines are not observations. Errors name the JSON path (and, for
//! syntax, the line and column).

use super::{Interface, Mac, Observation, ParseError, SourceKind, clean_host_name, clean_label};
use serde_json::Value;
use std::net::IpAddr;

fn json(kind: SourceKind, text: &str) -> Result<Value, ParseError> {
    serde_json::from_str(text).map_err(|e| {
        ParseError::new(
            kind,
            format!("line {}, column {}", e.line(), e.column()),
            format!("not JSON: {e}"),
        )
    })
}

/// A string field at `path` (absent or null: `None`; another type: an error).
fn opt_str<'a>(
    kind: SourceKind,
    v: &'a Value,
    field: &str,
    path: &str,
) -> Result<Option<&'a str>, ParseError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ParseError::new(
            kind,
            format!("{path}.{field}"),
            "expected a string",
        )),
    }
}

fn array<'a>(
    kind: SourceKind,
    v: &'a Value,
    field: &str,
    path: &str,
) -> Result<&'a [Value], ParseError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(ParseError::new(
            kind,
            format!("{path}.{field}"),
            "expected an array",
        )),
    }
}

fn ip(kind: SourceKind, s: &str, path: &str) -> Result<IpAddr, ParseError> {
    s.trim()
        .parse()
        .map_err(|_| ParseError::new(kind, path, format!("{s:?} is not an IP address")))
}

fn push_ip(ips: &mut Vec<IpAddr>, ip: IpAddr) {
    if !ips.contains(&ip) {
        ips.push(ip);
    }
}

/// Parses `aws ec2 describe-instances` output.
pub fn parse_aws(text: &str) -> Result<Vec<Observation>, ParseError> {
    const K: SourceKind = SourceKind::Aws;
    let v = json(K, text)?;
    if !v.is_object() || v.get("Reservations").is_none() {
        return Err(ParseError::new(
            K,
            "the document",
            "expected {\"Reservations\": [...]} (aws ec2 describe-instances output)",
        ));
    }
    let mut out = Vec::new();
    for (r, res) in array(K, &v, "Reservations", "")?.iter().enumerate() {
        let rpath = format!("Reservations[{r}]");
        for (i, inst) in array(K, res, "Instances", &rpath)?.iter().enumerate() {
            let path = format!("{rpath}.Instances[{i}]");
            let id = opt_str(K, inst, "InstanceId", &path)?
                .ok_or_else(|| ParseError::new(K, &path, "an instance without InstanceId"))?;
            let state = inst
                .get("State")
                .map(|s| opt_str(K, s, "Name", &format!("{path}.State")))
                .transpose()?
                .flatten();
            if matches!(state, Some("terminated" | "shutting-down")) {
                continue;
            }
            let mut interfaces = Vec::new();
            for (n, nic) in array(K, inst, "NetworkInterfaces", &path)?
                .iter()
                .enumerate()
            {
                let npath = format!("{path}.NetworkInterfaces[{n}]");
                let mac = opt_str(K, nic, "MacAddress", &npath)?
                    .map(|m| {
                        m.parse::<Mac>()
                            .map_err(|e| ParseError::new(K, format!("{npath}.MacAddress"), e))
                    })
                    .transpose()?;
                let mut ips = Vec::new();
                for (a, addr) in array(K, nic, "PrivateIpAddresses", &npath)?
                    .iter()
                    .enumerate()
                {
                    let apath = format!("{npath}.PrivateIpAddresses[{a}]");
                    if let Some(s) = opt_str(K, addr, "PrivateIpAddress", &apath)? {
                        push_ip(&mut ips, ip(K, s, &apath)?);
                    }
                    if let Some(assoc) = addr.get("Association")
                        && let Some(s) = opt_str(K, assoc, "PublicIp", &apath)?
                    {
                        push_ip(&mut ips, ip(K, s, &apath)?);
                    }
                }
                for (a, addr) in array(K, nic, "Ipv6Addresses", &npath)?.iter().enumerate() {
                    let apath = format!("{npath}.Ipv6Addresses[{a}]");
                    if let Some(s) = opt_str(K, addr, "Ipv6Address", &apath)? {
                        push_ip(&mut ips, ip(K, s, &apath)?);
                    }
                }
                interfaces.push(Interface { mac, ips });
            }
            // Without NetworkInterfaces (older output, filters): the top-level addresses.
            if interfaces.is_empty() {
                let mut ips = Vec::new();
                for f in ["PrivateIpAddress", "PublicIpAddress"] {
                    if let Some(s) = opt_str(K, inst, f, &path)? {
                        push_ip(&mut ips, ip(K, s, &format!("{path}.{f}"))?);
                    }
                }
                interfaces.push(Interface { mac: None, ips });
            }
            let mut host_names = Vec::new();
            for f in ["PrivateDnsName", "PublicDnsName"] {
                if let Some(h) = opt_str(K, inst, f, &path)?.and_then(clean_host_name) {
                    host_names.push(h);
                }
            }
            for (t, tag) in array(K, inst, "Tags", &path)?.iter().enumerate() {
                let tpath = format!("{path}.Tags[{t}]");
                if opt_str(K, tag, "Key", &tpath)? == Some("Name")
                    && let Some(h) = opt_str(K, tag, "Value", &tpath)?.and_then(clean_host_name)
                {
                    host_names.push(h);
                }
            }
            host_names.sort();
            host_names.dedup();
            out.push(Observation {
                interfaces,
                host_names,
                cloud_id: Some(id.to_string()),
                os_guess: opt_str(K, inst, "PlatformDetails", &path)?.and_then(clean_label),
                ..Default::default()
            });
        }
    }
    Ok(out)
}

fn top_array(kind: SourceKind, v: &Value, what: &str) -> Result<Vec<Value>, ParseError> {
    match v {
        Value::Array(a) => Ok(a.clone()),
        _ => Err(ParseError::new(
            kind,
            "the document",
            format!("expected a JSON array ({what} output)"),
        )),
    }
}

/// Parses `az vm list -d` output (`--show-details`: the addresses and power state).
pub fn parse_azure(text: &str) -> Result<Vec<Observation>, ParseError> {
    const K: SourceKind = SourceKind::Azure;
    let v = json(K, text)?;
    let mut out = Vec::new();
    for (i, vm) in top_array(K, &v, "az vm list -d")?.iter().enumerate() {
        let path = format!("[{i}]");
        let id = opt_str(K, vm, "vmId", &path)?
            .or(opt_str(K, vm, "id", &path)?)
            .ok_or_else(|| ParseError::new(K, &path, "a VM without vmId or id"))?;
        if let Some(p) = opt_str(K, vm, "powerState", &path)?
            && p.contains("deallocated")
        {
            continue;
        }
        let list = |field: &str| -> Result<Vec<String>, ParseError> {
            Ok(opt_str(K, vm, field, &path)?
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect())
        };
        let mut ips = Vec::new();
        for f in ["privateIps", "publicIps"] {
            for s in list(f)? {
                push_ip(&mut ips, ip(K, &s, &format!("{path}.{f}"))?);
            }
        }
        let macs = list("macAddresses")?
            .iter()
            .map(|m| {
                m.parse::<Mac>()
                    .map_err(|e| ParseError::new(K, format!("{path}.macAddresses"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The CLI does not pair addresses with NICs: with one NIC they are
        // its; with several, the addresses stand alone.
        let interfaces = match macs.as_slice() {
            [] => vec![Interface { mac: None, ips }],
            [m] => vec![Interface { mac: Some(*m), ips }],
            many => many
                .iter()
                .map(|m| Interface {
                    mac: Some(*m),
                    ips: vec![],
                })
                .chain(std::iter::once(Interface { mac: None, ips }))
                .collect(),
        };
        let mut host_names: Vec<String> = [
            opt_str(K, vm, "name", &path)?,
            vm.get("osProfile")
                .map(|o| opt_str(K, o, "computerName", &format!("{path}.osProfile")))
                .transpose()?
                .flatten(),
            opt_str(K, vm, "fqdns", &path)?,
        ]
        .into_iter()
        .flatten()
        .flat_map(|s| s.split(','))
        .filter_map(clean_host_name)
        .collect();
        host_names.sort();
        host_names.dedup();
        let os_guess = vm
            .get("storageProfile")
            .and_then(|s| s.get("osDisk"))
            .and_then(|d| d.get("osType"))
            .and_then(Value::as_str)
            .and_then(clean_label);
        out.push(Observation {
            interfaces,
            host_names,
            cloud_id: Some(id.to_string()),
            os_guess,
            ..Default::default()
        });
    }
    Ok(out)
}

/// Parses `gcloud compute instances list --format=json` output.
pub fn parse_gcp(text: &str) -> Result<Vec<Observation>, ParseError> {
    const K: SourceKind = SourceKind::Gcp;
    let v = json(K, text)?;
    let mut out = Vec::new();
    for (i, inst) in top_array(K, &v, "gcloud compute instances list --format=json")?
        .iter()
        .enumerate()
    {
        let path = format!("[{i}]");
        let id = match inst.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(ParseError::new(K, &path, "an instance without id")),
        };
        if matches!(
            opt_str(K, inst, "status", &path)?,
            Some("TERMINATED" | "STOPPING" | "SUSPENDED")
        ) {
            continue;
        }
        let mut ips = Vec::new();
        for (n, nic) in array(K, inst, "networkInterfaces", &path)?
            .iter()
            .enumerate()
        {
            let npath = format!("{path}.networkInterfaces[{n}]");
            for f in ["networkIP", "ipv6Address"] {
                if let Some(s) = opt_str(K, nic, f, &npath)? {
                    push_ip(&mut ips, ip(K, s, &format!("{npath}.{f}"))?);
                }
            }
            for (a, ac) in array(K, nic, "accessConfigs", &npath)?.iter().enumerate() {
                let apath = format!("{npath}.accessConfigs[{a}]");
                if let Some(s) = opt_str(K, ac, "natIP", &apath)? {
                    push_ip(&mut ips, ip(K, s, &format!("{apath}.natIP"))?);
                }
            }
        }
        let mut host_names: Vec<String> = [
            opt_str(K, inst, "name", &path)?,
            opt_str(K, inst, "hostname", &path)?,
        ]
        .into_iter()
        .flatten()
        .filter_map(clean_host_name)
        .collect();
        host_names.sort();
        host_names.dedup();
        out.push(Observation {
            interfaces: vec![Interface { mac: None, ips }],
            host_names,
            cloud_id: Some(id),
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_path() {
        let e = parse_aws(r#"{"Reservations":[{"Instances":[{"InstanceId":"i-1","NetworkInterfaces":[{"MacAddress":"nope"}]}]}]}"#).unwrap_err();
        assert_eq!(
            e.position,
            "Reservations[0].Instances[0].NetworkInterfaces[0].MacAddress"
        );
        let e = parse_aws("{\n\"Reservations\": [,]}").unwrap_err();
        assert_eq!(e.position, "line 2, column 18");
        let e = parse_azure(r#"[{"vmId":"x","privateIps":"10.0.0.4,10.0.0.999"}]"#).unwrap_err();
        assert_eq!(e.position, "[0].privateIps");
        let e = parse_gcp(r#"{"items":[]}"#).unwrap_err();
        assert!(e.message.contains("JSON array"), "{e}");
        let e = parse_gcp(r#"[{"name":"x"}]"#).unwrap_err();
        assert!(e.message.contains("without id"), "{e}");
    }
}
