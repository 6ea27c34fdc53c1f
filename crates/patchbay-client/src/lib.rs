//! A small blocking JSON-over-HTTP client (ureq), used by the agent (enrolment,
//! check-ins) and the CLI (every client command, the simulator, the benchmarks).
//!
//! It lives in its own crate so that neither side pulls in the other: the agent
//! binary stays free of the server's stack (sqlx, axum, hyper), and the CLI does not
//! need the agent library to talk to a server. It depends on `patchbay-proto` only
//! for the error body ([`patchbay_proto::error::ErrorBody`]), which it decodes into
//! [`HttpError::Api`] with the stable error code.
//!
//! Every call is blocking and bounded by the client's global timeout; response
//! bodies are read up to 256 MiB.
#![forbid(unsafe_code)]

use patchbay_proto::error::ErrorBody;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Largest response body read (a large asset with its packages is a few MB).
const MAX_RESPONSE: u64 = 256 * 1024 * 1024;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The server answered with an error body.
    #[error("{message} (HTTP {status}, {code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code, e.g. `unauthenticated`.
        code: String,
        /// Human message.
        message: String,
    },
    /// The server could not be reached or the answer could not be read.
    #[error("{0}")]
    Transport(String),
}

impl HttpError {
    /// The stable error code, if the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            HttpError::Api { code, .. } => Some(code),
            HttpError::Transport(_) => None,
        }
    }
}

/// A client for one server.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
    timeout: Duration,
    roots: Option<std::sync::Arc<Vec<ureq::tls::Certificate<'static>>>>,
    client_cert: Option<ureq::tls::ClientCert>,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8080` or `https://…`), with an
    /// optional bearer token. HTTPS servers are checked against Mozilla's roots
    /// unless [`Client::with_ca_file`] pins a CA.
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> Self {
        let mut c = Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent: ureq::Agent::new_with_defaults(),
            timeout,
            roots: None,
            client_cert: None,
        };
        c.rebuild();
        c
    }

    /// A new connection pool with the current TLS settings.
    fn rebuild(&mut self) {
        let mut tls = ureq::tls::TlsConfig::builder().client_cert(self.client_cert.clone());
        if let Some(roots) = &self.roots {
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(roots.clone()));
        }
        self.agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(self.timeout))
                .http_status_as_error(false)
                .tls_config(tls.build())
                .build(),
        );
    }

    /// Trusts only the CA certificates in this PEM file for HTTPS (a private CA
    /// or the server's self-signed certificate). Errors name the file.
    pub fn with_ca_file(mut self, path: &std::path::Path) -> Result<Self, HttpError> {
        let pem = std::fs::read(path).map_err(|e| {
            HttpError::Transport(format!(
                "reading the CA certificate {}: {e}",
                path.display()
            ))
        })?;
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(HttpError::Transport(format!(
                "{}: no PEM certificate in the file",
                path.display()
            )));
        }
        self.roots = Some(std::sync::Arc::new(certs));
        self.rebuild();
        Ok(self)
    }

    /// [`Client::with_ca_file`] when a path is given.
    pub fn with_ca(self, path: Option<&std::path::Path>) -> Result<Self, HttpError> {
        match path {
            Some(p) => self.with_ca_file(p),
            None => Ok(self),
        }
    }

    /// Presents this client certificate (PEM chain, leaf first) and private
    /// key (PEM) in TLS handshakes: mutual TLS, for agents of a server that
    /// asks for their certificates. `what` names the source in errors.
    pub fn with_client_cert(
        mut self,
        cert_pem: &str,
        key_pem: &str,
        what: &str,
    ) -> Result<Self, HttpError> {
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(cert_pem.as_bytes())
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(HttpError::Transport(format!("{what}: no PEM certificate")));
        }
        let key = ureq::tls::PrivateKey::from_pem(key_pem.as_bytes())
            .map_err(|e| HttpError::Transport(format!("{what}: the private key: {e}")))?;
        self.client_cert = Some(ureq::tls::ClientCert::new_with_certs(&certs, key));
        self.rebuild();
        Ok(self)
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn finish<T: DeserializeOwned>(
        &self,
        what: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, HttpError> {
        let mut resp = r.map_err(|e| {
            HttpError::Transport(format!("{what}: cannot reach {}: {e}", self.base))
        })?;
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .map_err(|e| HttpError::Transport(format!("{what}: reading the answer: {e}")))?;
        if (200..300).contains(&status) {
            let bytes = if bytes.is_empty() {
                b"null".to_vec()
            } else {
                bytes
            };
            return serde_json::from_slice(&bytes)
                .map_err(|e| HttpError::Transport(format!("{what}: unexpected answer: {e}")));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => Err(HttpError::Api {
                status,
                code: b.error.code.as_str().to_string(),
                message: b.error.message,
            }),
            Err(_) => Err(HttpError::Api {
                status,
                code: "http".into(),
                message: format!("{what}: {}", String::from_utf8_lossy(&bytes).trim()),
            }),
        }
    }

    /// GET a JSON document.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, HttpError> {
        let mut req = self.agent.get(self.url(path));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.finish(&format!("GET {path}"), req.call())
    }

    /// Sends a JSON body with `method` (POST, PATCH).
    pub fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
    ) -> Result<T, HttpError> {
        self.send_dated(method, path, body).map(|(t, _)| t)
    }

    /// [`Client::send`], also returning the answer's `Date` header (the
    /// server's clock, to the second), when it has one.
    pub fn send_dated<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
    ) -> Result<(T, Option<String>), HttpError> {
        let url = self.url(path);
        let mut req = match method {
            "PATCH" => self.agent.patch(url),
            "PUT" => self.agent.put(url),
            _ => self.agent.post(url),
        };
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let r = req.send_json(body);
        let date = r.as_ref().ok().and_then(|resp| {
            resp.headers()
                .get("date")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
        let t = self.finish(&format!("{method} {path}"), r)?;
        Ok((t, date))
    }

    /// POSTs raw bytes with a content type (CSV imports).
    pub fn post_raw<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<T, HttpError> {
        let mut req = self
            .agent
            .post(self.url(path))
            .header("Content-Type", content_type);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.finish(&format!("POST {path}"), req.send(body))
    }

    /// POSTs a body streamed from `body` (a feed file upload): never read
    /// into memory; `len`, when known, is sent as `Content-Length`.
    ///
    /// The request says `Expect: 100-continue` and the body goes only after
    /// the server's `100 Continue`: a server that refuses the upload (a role
    /// without the permission, a body over its limit) answers before reading
    /// it, and closes the connection with the body unread. Without the wait,
    /// a body larger than the socket buffers met that close mid-write, and the
    /// caller saw "Broken pipe" instead of the server's 403 or 413 (found by
    /// CI, whose buffers were smaller than a 137 KB KEV file).
    pub fn post_stream<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &str,
        body: &mut dyn std::io::Read,
        len: Option<u64>,
    ) -> Result<T, HttpError> {
        let mut req = self
            .agent
            .post(self.url(path))
            .header("Content-Type", content_type)
            .header("Expect", "100-continue");
        if let Some(n) = len {
            req = req.header("Content-Length", n.to_string());
        }
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.finish(
            &format!("POST {path}"),
            req.send(ureq::SendBody::from_reader(body)),
        )
    }

    /// GET a text document (e.g. `text/calendar`).
    pub fn get_text(&self, path: &str) -> Result<String, HttpError> {
        let bytes = self.get_bytes(path)?;
        String::from_utf8(bytes)
            .map_err(|e| HttpError::Transport(format!("GET {path}: not UTF-8: {e}")))
    }

    /// GET a binary document (e.g. a zip archive).
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>, HttpError> {
        let what = format!("GET {path}");
        let mut req = self.agent.get(self.url(path));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req.call().map_err(|e| {
            HttpError::Transport(format!("{what}: cannot reach {}: {e}", self.base))
        })?;
        if resp.status().is_success() {
            return resp
                .body_mut()
                .with_config()
                .limit(MAX_RESPONSE)
                .read_to_vec()
                .map_err(|e| HttpError::Transport(format!("{what}: reading the answer: {e}")));
        }
        // Errors are JSON: decode them the usual way.
        self.finish::<serde_json::Value>(&what, Ok(resp))
            .map(|_| Vec::new())
    }

    /// DELETE.
    pub fn delete(&self, path: &str) -> Result<(), HttpError> {
        let mut req = self.agent.delete(self.url(path));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.finish::<serde_json::Value>(&format!("DELETE {path}"), req.call())
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// Serves one canned answer on 127.0.0.1 and returns the base URL and the
    /// request line and headers that reached it.
    fn serve_once(
        status: &str,
        content_type: &str,
        body: &'static str,
    ) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let status = status.to_string();
        let content_type = content_type.to_string();
        let h = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut head = Vec::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end().to_string();
                if line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                head.push(line);
            }
            let mut req_body = vec![0; len];
            reader.read_exact(&mut req_body).unwrap();
            head.push(String::from_utf8(req_body).unwrap());
            let mut stream = reader.into_inner();
            write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            head
        });
        (base, h)
    }

    fn client(base: &str) -> Client {
        Client::new(
            &format!("{base}/"),
            Some("s3cret".into()),
            Duration::from_secs(10),
        )
    }

    #[test]
    fn get_decodes_json_and_sends_the_bearer_token() {
        let (base, h) = serve_once("200 OK", "application/json", r#"{"a":[1,2]}"#);
        let c = client(&base);
        assert_eq!(c.base(), base, "the trailing slash is dropped");
        let v: serde_json::Value = c.get("/api/v1/x").unwrap();
        assert_eq!(v, serde_json::json!({"a": [1, 2]}));
        let head = h.join().unwrap();
        assert_eq!(head[0], "GET /api/v1/x HTTP/1.1");
        assert!(
            head.iter()
                .any(|l| l.eq_ignore_ascii_case("authorization: Bearer s3cret")),
            "{head:?}"
        );
    }

    #[test]
    fn send_posts_a_json_body_and_reads_an_empty_answer_as_null() {
        let (base, h) = serve_once("204 No Content", "application/json", "");
        let v: Option<u32> = client(&base)
            .send("PATCH", "/api/v1/y", &serde_json::json!({"k": "v"}))
            .unwrap();
        assert_eq!(v, None);
        let head = h.join().unwrap();
        assert_eq!(head[0], "PATCH /api/v1/y HTTP/1.1");
        let sent: serde_json::Value = serde_json::from_str(head.last().unwrap()).unwrap();
        assert_eq!(sent, serde_json::json!({"k": "v"}));
    }

    #[test]
    fn an_error_body_becomes_an_api_error_with_its_code() {
        let (base, h) = serve_once(
            "401 Unauthorized",
            "application/json",
            r#"{"error":{"code":"unauthenticated","message":"token revoked"}}"#,
        );
        let e = client(&base).get::<serde_json::Value>("/z").unwrap_err();
        h.join().unwrap();
        assert_eq!(e.code(), Some("unauthenticated"));
        assert!(
            matches!(&e, HttpError::Api { status: 401, message, .. } if message == "token revoked"),
            "{e:?}"
        );
    }

    #[test]
    fn a_non_json_error_keeps_its_text() {
        let (base, h) = serve_once("502 Bad Gateway", "text/plain", "upstream down\n");
        let e = client(&base).get_bytes("/b").unwrap_err();
        h.join().unwrap();
        match e {
            HttpError::Api {
                status,
                code,
                message,
            } => {
                assert_eq!((status, code.as_str()), (502, "http"));
                assert_eq!(message, "GET /b: upstream down");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unreachable_server_is_a_transport_error() {
        // Bind and drop: nothing listens on that port any more.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = client(&format!("http://127.0.0.1:{port}"))
            .delete("/gone")
            .unwrap_err();
        assert!(
            matches!(&e, HttpError::Transport(m) if m.starts_with("DELETE /gone: cannot reach")),
            "{e:?}"
        );
        assert_eq!(e.code(), None);
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_named() {
        let c = Client::new("https://x", None, Duration::from_secs(1));
        let missing = std::path::Path::new("/nonexistent/ca.pem");
        let e = c.clone().with_ca_file(missing).err().unwrap();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let dir = std::env::temp_dir().join(format!("pb-client-ca-{}", std::process::id()));
        std::fs::write(&dir, "not a certificate\n").unwrap();
        let e = c.with_ca(Some(&dir)).err().unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }
}
