//! Regression (issue 15): a handler that ignores the request body must not
//! make the server close a keep-alive connection after answering.
//!
//! hyper keeps a connection alive only if the request body was read; a
//! handler without a body extractor dropped it unread, and when the body's
//! bytes came after the head had been handled, hyper closed the connection
//! once it had answered. A pooling client (ureq, as the CLI and the tests
//! use) then sent its next request on the closing connection: an
//! intermittent "Peer disconnected" on `POST /api/v1/webhooks/{name}/test`
//! in the kill -9 webhook test under load. Here a raw socket sends the
//! head, waits, sends the body, then a second request on the same
//! connection, which must be answered. (The wait lets the server handle the
//! head before the body arrives; a slower server only makes the test pass
//! without proving anything, never fail wrongly.)

use crate::support::Server;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Reads one response; its status, or `None` if the connection closed
/// first.
fn response(s: &mut TcpStream) -> Option<u16> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some(status)
}

fn a_body_a_handler_ignores_does_not_close_the_connection(backend: &str) {
    let server = Server::start(backend);
    let _: serde_json::Value = server
        .admin()
        .send(
            "POST",
            "/api/v1/webhooks",
            &serde_json::json!({"name": "noc", "url": "http://127.0.0.1:9/hook"}),
        )
        .unwrap();
    let addr = server.url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST /api/v1/webhooks/noc/test HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\n\r\n",
        server.admin
    );
    s.write_all(head.as_bytes()).unwrap();
    s.flush().unwrap();
    // The head alone: the server handles it (the body is late).
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(b"{}").unwrap();
    assert_eq!(response(&mut s), Some(202), "the first request");
    // The same connection, reused as a pooling client does.
    let sent = s.write_all(format!("{head}{{}}").as_bytes()).is_ok();
    assert!(
        sent && response(&mut s) == Some(202),
        "the server closed the keep-alive connection after a body it did not read"
    );
}

crate::both_backends!(a_body_a_handler_ignores_does_not_close_the_connection);
