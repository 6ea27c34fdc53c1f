//! Property tests of the SIEM encoding (`patchbay_core::siem`): CEF header
//! and extension escaping, RFC 5424 headers and RFC 6587 octet counting read
//! back exactly what was encoded, and the parsers never panic on any input
//! (the fuzz-style robustness property).

use patchbay_core::siem::{
    self, Entry, Format, Origin, cef_header, cef_value, deframe, frame_octet_counted, parse_5424,
    parse_cef, syslog_5424, to_cef,
};
use proptest::prelude::*;
use serde_json::json;

/// Text rich in what CEF and syslog must escape or frame: `|`, `=`, `\`,
/// line breaks, spaces, `"`, `]`, non-ASCII and the BOM.
fn nasty() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('|'),
            Just('='),
            Just('\\'),
            Just('\n'),
            Just('\r'),
            Just(' '),
            Just('"'),
            Just(']'),
            Just('é'),
            Just('\u{FEFF}'),
            Just('n'),
            any::<char>().prop_filter("no other control characters", |c| !c.is_control()),
        ],
        0..40,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        0i64..i64::MAX,
        0i64..4_000_000_000_000,
        nasty(),
        prop_oneof![
            Just("token.create".to_string()),
            Just("request.denied".to_string()),
            Just("deployment.halted".to_string()),
            "[a-z_.]{1,40}",
        ],
        nasty(),
        prop_oneof![Just("ok".to_string()), Just("denied".to_string())],
        nasty(),
        proptest::option::of(nasty()),
    )
        .prop_map(
            |(seq, ms, actor, action, target, outcome, note, message)| Entry {
                seq,
                at: jiff::Timestamp::from_millisecond(ms).unwrap(),
                actor,
                action,
                target,
                outcome,
                detail: match message {
                    Some(m) => json!({"message": m, "note": note}),
                    None => json!({"note": note}),
                },
            },
        )
}

fn flatten(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every field of a CEF line reads back: header fields with `|` and `\`
    /// (line breaks flattened: the spec has no header escape for them), and
    /// every extension value exactly, `=`, `\` and line breaks included.
    #[test]
    fn cef_round_trips(e in entry(), version in nasty()) {
        let line = to_cef(&e, &version);
        prop_assert!(!line.contains('\n') && !line.contains('\r'), "one line: {line:?}");
        let p = parse_cef(&line).unwrap();
        let sig = siem::signature(&e.action, &e.outcome);
        prop_assert_eq!(&p.header[0], "0");
        prop_assert_eq!(&p.header[3], &flatten(&version));
        prop_assert_eq!(&p.header[4], &sig.id.to_string());
        prop_assert_eq!(&p.header[5], &flatten(&siem::summary(&e)));
        prop_assert_eq!(&p.header[6], &sig.severity.to_string());
        prop_assert_eq!(p.get("suser"), Some(e.actor.as_str()));
        prop_assert_eq!(p.get("cs1"), Some(e.target.as_str()));
        prop_assert_eq!(p.get("act"), Some(e.action.as_str()));
        let summary = siem::summary(&e);
        let seq = e.seq.to_string();
        prop_assert_eq!(p.get("msg"), Some(summary.as_str()));
        prop_assert_eq!(p.get("externalId"), Some(seq.as_str()));
        let detail: serde_json::Value = serde_json::from_str(p.get("cs2").unwrap()).unwrap();
        prop_assert_eq!(&detail, &e.detail);
        if let Some(m) = e.detail.get("message").and_then(|m| m.as_str()) {
            prop_assert_eq!(p.get("cs3Label"), Some("message"));
            prop_assert_eq!(p.get("cs3"), Some(m));
        } else {
            prop_assert_eq!(p.get("cs3"), None);
        }
    }

    /// Escaped text has no unescaped separator: a header field never has a
    /// bare `|`, a value never a bare `=` (each is preceded by an odd run
    /// of backslashes).
    #[test]
    fn escaped_separators_are_always_escaped(s in nasty()) {
        for (escaped, sep) in [(cef_header(&s), '|'), (cef_value(&s), '=')] {
            let b: Vec<char> = escaped.chars().collect();
            for (i, c) in b.iter().enumerate() {
                if *c == sep {
                    let run = b[..i].iter().rev().take_while(|c| **c == '\\').count();
                    prop_assert!(run % 2 == 1, "bare {sep:?} in {escaped:?}");
                }
            }
            prop_assert!(!escaped.chars().any(char::is_control));
        }
    }

    /// A stream of octet-counted syslog messages splits back into exactly
    /// those messages, whose headers and MSG read back; any prefix of the
    /// stream yields a prefix of the messages and a remainder.
    #[test]
    fn syslog_frames_round_trip(
        entries in proptest::collection::vec(entry(), 1..6),
        host in nasty(),
        json_format in any::<bool>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let origin = Origin { facility: 13, hostname: host.clone(), app_name: "patchbay".into(), procid: "1234".into() };
        let format = if json_format { Format::Json } else { Format::Cef };
        let msgs: Vec<String> = entries
            .iter()
            .map(|e| syslog_5424(&origin, e, &siem::message(e, format, "0.1.0")))
            .collect();
        let stream: Vec<u8> = msgs.iter().flat_map(|m| frame_octet_counted(m)).collect();
        let (frames, rest) = deframe(&stream).unwrap();
        prop_assert!(rest.is_empty());
        prop_assert_eq!(frames.len(), msgs.len());
        for ((f, m), e) in frames.iter().zip(&msgs).zip(&entries) {
            prop_assert_eq!(*f, m.as_bytes());
            let p = parse_5424(std::str::from_utf8(f).unwrap()).unwrap();
            let sig = siem::signature(&e.action, &e.outcome);
            prop_assert_eq!(u32::from(p.pri), 13 * 8 + u32::from(siem::syslog_severity(sig.severity)));
            prop_assert!(p.hostname.bytes().all(|b| (33..=126).contains(&b)) && p.hostname.len() <= 255);
            prop_assert_eq!(&p.msgid, &siem::header_field(siem::msgid(e), 32));
            prop_assert_eq!(&p.structured_data, "-");
            prop_assert_eq!(p.timestamp.parse::<jiff::Timestamp>().unwrap(), e.at);
            match format {
                Format::Cef => {
                    let c = parse_cef(&p.msg).unwrap();
                    prop_assert_eq!(c.get("cs1"), Some(e.target.as_str()));
                }
                Format::Json => {
                    let v: serde_json::Value = serde_json::from_str(&p.msg).unwrap();
                    prop_assert_eq!(v["target"].as_str(), Some(e.target.as_str()));
                    prop_assert_eq!(&v["detail"], &e.detail);
                }
            }
        }
        let at = cut.index(stream.len() + 1);
        let (some, rest) = deframe(&stream[..at]).unwrap();
        prop_assert!(some.len() <= msgs.len());
        for (f, m) in some.iter().zip(&msgs) {
            prop_assert_eq!(*f, m.as_bytes());
        }
        let used: usize = some.iter().zip(&msgs).map(|(_, m)| frame_octet_counted(m).len()).sum();
        prop_assert_eq!(used + rest.len(), at);
    }

    /// UDP: a datagram cut to size is valid UTF-8, within the limit, and
    /// still parses as CEF (no escape cut in half).
    #[test]
    fn cut_datagrams_still_parse(e in entry(), max in 60usize..400) {
        let line = to_cef(&e, "0.1.0");
        let (cut, was_cut) = siem::truncate_datagram(&line, max);
        prop_assert!(cut.len() <= max);
        prop_assert_eq!(was_cut, line.len() > max);
        prop_assert!(line.starts_with(cut));
        if cut.matches('|').count() >= 7 {
            // Past the header: the extension is a prefix and still parses
            // (a key cut before its '=' is a value's tail, which is fine).
            let _ = parse_cef(cut);
        }
        let trailing = cut.bytes().rev().take_while(|b| *b == b'\\').count();
        prop_assert!(trailing % 2 == 0, "a lone trailing backslash in {cut:?}");
    }

    /// Robustness: the parsers never panic on arbitrary bytes or text.
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), s in ".{0,300}", t in nasty()) {
        let _ = deframe(&bytes);
        let _ = parse_5424(&s);
        let _ = parse_cef(&s);
        let _ = parse_cef(&format!("CEF:{t}"));
        let _ = parse_5424(&format!("<13>1 {t}"));
        let _ = deframe(format!("12 {t}").as_bytes());
        let _ = siem::truncate_datagram(&t, 5);
    }
}

/// Hand-picked frames the parser must refuse rather than misread.
#[test]
fn malformed_frames_are_refused() {
    assert!(deframe(b"x1 abc").is_err());
    assert!(deframe(b"01 a").is_err());
    assert!(deframe(b" a").is_err());
    assert!(deframe(b"99999999999 a").is_err());
    let (f, rest) = deframe(b"3 abc5 ab").unwrap();
    assert_eq!(f, vec![&b"abc"[..]]);
    assert_eq!(rest, b"5 ab");
    assert!(parse_5424("<192>1 - - - - - -").is_err());
    assert!(parse_5424("<13>2 - - - - - -").is_err());
    assert!(parse_cef("CEF:0|a|b|c|d|e").is_err());
    assert!(parse_cef("CEF:0|a|b|c|d|e|f|k=v\\").is_err());
}

/// docs/siem.md's signature table and its example line are the code's.
#[test]
fn the_documentation_matches_the_code() {
    let doc = include_str!("../../../../docs/siem.md");
    for (class, id, severity) in siem::SIGNATURES {
        let row = format!("| {id} | `{class}`");
        let line = doc
            .lines()
            .find(|l| l.starts_with(&row))
            .unwrap_or_else(|| panic!("docs/siem.md has no row for {id} {class}"));
        assert!(line.ends_with(&format!("| {severity} |")), "{line}");
    }
    let e = Entry {
        seq: 9,
        at: "2026-12-08T22:00:00Z".parse().unwrap(),
        actor: "token:2:ci|deploy=x\\y".into(),
        action: "change.lesson".into(),
        target: "change:CHG-0001".into(),
        outcome: "ok".into(),
        detail: json!({"lesson": 1, "text": "restart the pool\nthen check"}),
    };
    let line = to_cef(&e, "0.1.0");
    assert!(
        doc.lines().any(|l| l == line),
        "docs/siem.md lacks the example line:\n{line}"
    );
}
