//! The SIEM encoding (`patchbay_core::siem`): the parsers of octet-counted
//! streams, RFC 5424 messages and CEF lines must answer or fail, never panic,
//! on any bytes; and any text, escaped into a CEF header field and an
//! extension value and framed, must read back (control characters other
//! than line breaks become spaces; the header also flattens line breaks).
#![no_main]
use patchbay_core::siem::{
    cef_header, cef_value, deframe, frame_octet_counted, parse_5424, parse_cef, truncate_datagram,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = deframe(data);
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_5424(s);
    let _ = parse_cef(s);
    let _ = truncate_datagram(s, data.len() / 2);
    let line = format!("CEF:0|V|P|1|100|{}|5|k={} j=x", cef_header(s), cef_value(s));
    let c = parse_cef(&line).expect("an encoded line parses");
    let flat: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    assert_eq!(c.header[5], flat);
    let kept: String = s
        .chars()
        .map(|c| if c.is_control() && c != '\n' && c != '\r' { ' ' } else { c })
        .collect();
    assert_eq!(c.get("k"), Some(kept.as_str()));
    assert_eq!(c.get("j"), Some("x"));
    let framed = frame_octet_counted(&line);
    let (frames, rest) = deframe(&framed).expect("a framed message splits back");
    assert_eq!(frames, vec![line.as_bytes()]);
    assert!(rest.is_empty());
});
