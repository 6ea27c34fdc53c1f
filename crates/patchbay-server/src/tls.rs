//! TLS for the server: a PEM certificate chain and private key, served with
//! rustls (ring provider, TLS 1.2 and 1.3) through an `axum::serve::Listener`
//! that completes each handshake before handing the connection to axum.
//!
//! A failed handshake (a plain-HTTP client, an untrusted certificate on the
//! other side) is logged and that connection dropped; the listener goes on.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Loads a server configuration from PEM files; errors name the file.
pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    load_with_client_ca(cert, key, None)
}

/// [`load`], and with `client_ca` (PEM) agent mutual TLS: a client may
/// present a certificate, which must then chain to that CA and be within its
/// validity, or the handshake fails. Clients without one (operators,
/// browsers, enrolling agents) still connect; which requests need a
/// certificate, and whose, the service layer decides
/// ([`patchbay_app::agent_ca`]).
pub fn load_with_client_ca(
    cert: &Path,
    key: &Path,
    client_ca: Option<&str>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: not a PEM certificate chain", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{}: no certificate in the file", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("{}: not a PEM private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots
                    .add(c.context("the agent CA certificate is not PEM")?)
                    .context("the agent CA certificate")?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .context("the agent CA certificate")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not go together")?;
    Ok(Arc::new(config))
}

/// Most TLS handshakes in progress at once; beyond that, accepting waits.
pub const MAX_HANDSHAKES: usize = 1024;

type Handshake = Option<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>;

/// A TCP listener that serves TLS. Handshakes run concurrently (each bounded
/// by [`HANDSHAKE_TIMEOUT`]), so a client that stalls its handshake delays
/// nobody else.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: tokio::task::JoinSet<Handshake>,
}

impl TlsListener {
    /// Wraps a bound listener.
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> Self {
        Self {
            tcp,
            acceptor: TlsAcceptor::from(config),
            handshakes: tokio::task::JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // Both branches are cancel-safe: handshakes in progress stay in the set.
        loop {
            tokio::select! {
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(conn)) = done {
                        return conn;
                    }
                }
                accepted = self.tcp.accept(), if self.handshakes.len() < MAX_HANDSHAKES => {
                    let (stream, addr) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(error = %e, "accepting a connection failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let acceptor = self.acceptor.clone();
                    self.handshakes.spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => Some((tls, addr)),
                            Ok(Err(e)) => {
                                tracing::debug!(%addr, error = %e, "TLS handshake failed");
                                None
                            }
                            Err(_) => {
                                tracing::debug!(%addr, "TLS handshake timed out");
                                None
                            }
                        }
                    });
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// The SHA-256 (hex) of the client certificate a connection's TLS handshake
/// verified, if any; put in every request of the connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCert(pub Option<String>);

/// What a connection knows of its client's certificate.
pub trait PeerCert {
    /// SHA-256 (hex) of the verified client certificate (the leaf), if any.
    fn client_cert_sha256(&self) -> Option<String>;
}

impl PeerCert for TcpStream {
    fn client_cert_sha256(&self) -> Option<String> {
        None
    }
}

impl PeerCert for tokio_rustls::server::TlsStream<TcpStream> {
    fn client_cert_sha256(&self) -> Option<String> {
        self.get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| patchbay_app::agent_ca::fingerprint(leaf.as_ref()))
    }
}

/// The peer's address, for plain and TLS listeners alike (recorded with
/// refused requests and enrolments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

impl std::fmt::Display for RemoteAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>>
    for RemoteAddr
{
    fn connect_info(s: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        RemoteAddr(*s.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for RemoteAddr
{
    fn connect_info(s: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        RemoteAddr(*s.remote_addr())
    }
}
