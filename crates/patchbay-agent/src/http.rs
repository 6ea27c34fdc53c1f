//! A small blocking JSON-over-HTTP client (ureq), used by the agent and the CLI.

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
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8080` or `https://…`), with an
    /// optional bearer token. HTTPS servers are checked against Mozilla's roots
    /// unless [`Client::with_ca_file`] pins a CA.
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> Self {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(timeout))
                .http_status_as_error(false)
                .build(),
        );
        Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent,
            timeout,
        }
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
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
            .build();
        self.agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(self.timeout))
                .http_status_as_error(false)
                .tls_config(tls)
                .build(),
        );
        Ok(self)
    }

    /// [`Client::with_ca_file`] when a path is given.
    pub fn with_ca(self, path: Option<&std::path::Path>) -> Result<Self, HttpError> {
        match path {
            Some(p) => self.with_ca_file(p),
            None => Ok(self),
        }
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
        let url = self.url(path);
        let mut req = match method {
            "PATCH" => self.agent.patch(url),
            "PUT" => self.agent.put(url),
            _ => self.agent.post(url),
        };
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.finish(&format!("{method} {path}"), req.send_json(body))
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
