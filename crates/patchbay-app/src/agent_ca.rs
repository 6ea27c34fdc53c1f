//! Mutual TLS for agents: Patchbay's own agent CA, the client certificates it
//! issues, and the rule that binds a presented certificate to an agent.
//!
//! With agent mutual TLS on (`patchbay serve --agent-mtls optional|required`),
//! an agent makes its own key, sends a certificate signing request with its
//! enrolment (or later to `POST /agent/v1/certificate`) and gets a short-lived
//! client certificate signed by the agent CA. Only the request's public key is
//! used: the server writes every other field (subject = agent id, client-auth
//! only, not a CA, the validity it chooses), so a request cannot ask for more.
//!
//! The TLS layer accepts only certificates that chain to the agent CA and are
//! within their validity. The service layer then requires the certificate to be
//! the one issued to the agent whose credential the request carries (its
//! SHA-256 is stored with the agent): a stolen credential is useless without
//! the agent's private key, which never leaves the host, and a certificate of
//! one agent does not serve another. Revoking an agent (re-enrolment,
//! decommissioning) revokes its certificate with it, so no revocation list is
//! needed. See ADR 0008.

use jiff::{SignedDuration, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::Digest;

/// How agent mutual TLS is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MtlsMode {
    /// No client certificates are asked for or issued.
    #[default]
    Off,
    /// Certificates are issued and, when presented, must be the agent's own;
    /// agents without one are still served (the way from off to required:
    /// agents pick theirs up at their next check-in).
    Optional,
    /// Every agent request must present the agent's own certificate.
    Required,
}

impl MtlsMode {
    /// Parses `off`, `optional`, `required`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Self::Off),
            "optional" => Ok(Self::Optional),
            "required" => Ok(Self::Required),
            _ => Err(format!(
                "agent mTLS mode {s:?}: expected off, optional or required"
            )),
        }
    }

    /// The name [`MtlsMode::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Optional => "optional",
            Self::Required => "required",
        }
    }
}

/// Agent mutual TLS settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentMtls {
    /// Enforcement.
    pub mode: MtlsMode,
    /// Validity of an issued client certificate.
    pub validity: SignedDuration,
}

/// Default validity of agent client certificates (90 days; agents renew in
/// the last third, so an agent offline for up to 60 days renews unaided).
pub const DEFAULT_CERT_VALIDITY: SignedDuration = SignedDuration::from_hours(90 * 24);

/// How far back an issued certificate's validity starts (agents' clocks may
/// run behind the server's).
pub const BACKDATE: SignedDuration = SignedDuration::from_mins(5);

/// Longest certificate signing request accepted (PEM, bytes).
pub const MAX_CSR_PEM: usize = 8 * 1024;

/// Validity of the agent CA created on first start (10 years).
pub const CA_VALIDITY: SignedDuration = SignedDuration::from_hours(10 * 365 * 24);

impl Default for AgentMtls {
    fn default() -> Self {
        Self {
            mode: MtlsMode::Off,
            validity: DEFAULT_CERT_VALIDITY,
        }
    }
}

/// A certificate issued to an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// PEM.
    pub pem: String,
    /// SHA-256 of the DER (hex).
    pub sha256: String,
    /// End of validity.
    pub not_after: Timestamp,
}

/// The agent CA: its certificate and signing key.
pub struct AgentCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for AgentCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentCa").finish_non_exhaustive()
    }
}

/// A new CA's certificate and key, both PEM.
#[derive(Debug)]
pub struct NewCa {
    /// The CA certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

fn to_time(t: Timestamp) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::from_unix_timestamp(t.as_second())
        .map_err(|e| format!("time {t} out of range: {e}"))
}

fn random_serial() -> SerialNumber {
    let mut b = crate::random32();
    // Positive, at most 20 bytes (RFC 5280).
    b[0] &= 0x7f;
    b[0] |= 0x01;
    SerialNumber::from_slice(&b[..16])
}

/// SHA-256 of a DER encoding, hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(der))
}

impl AgentCa {
    /// Makes a new CA (ECDSA P-256) valid from `now` for [`CA_VALIDITY`].
    pub fn generate(now: Timestamp) -> Result<NewCa, String> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| format!("making the agent CA key: {e}"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            format!("Patchbay agent CA {}", &hex::encode(crate::random32())[..8]),
        );
        dn.push(DnType::OrganizationName, "Patchbay");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = to_time(now - BACKDATE)?;
        params.not_after = to_time(now + CA_VALIDITY)?;
        params.serial_number = Some(random_serial());
        let cert = params
            .self_signed(&key)
            .map_err(|e| format!("making the agent CA certificate: {e}"))?;
        Ok(NewCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Loads a CA from its certificate and key (PEM). `what` names the
    /// source in errors.
    pub fn from_pem(cert_pem: &str, key_pem: &str, what: &str) -> Result<Self, String> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| format!("{what}: the CA key: {e}"))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(|e| format!("{what}: the CA certificate: {e}"))?;
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            issuer,
        })
    }

    /// The CA certificate (PEM): what the TLS layer trusts for clients.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a client certificate for `agent_id` to the public key of a
    /// certificate signing request, valid from `now` (less [`BACKDATE`]) for
    /// `validity`. The request must be well formed and self-signed with a
    /// P-256, P-384 or Ed25519 key; nothing else of it is used.
    pub fn issue(
        &self,
        csr: &Csr,
        agent_id: &str,
        now: Timestamp,
        validity: SignedDuration,
    ) -> Result<Issued, String> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, agent_id);
        dn.push(DnType::OrganizationName, "Patchbay agent");
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(
            format!("urn:patchbay:agent:{agent_id}")
                .try_into()
                .map_err(|e| format!("agent id {agent_id:?}: {e}"))?,
        )];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = to_time(now - BACKDATE)?;
        let not_after = now + validity;
        params.not_after = to_time(not_after)?;
        params.serial_number = Some(random_serial());
        let cert = params
            .signed_by(&csr.0.public_key, &self.issuer)
            .map_err(|e| format!("signing the agent certificate: {e}"))?;
        Ok(Issued {
            pem: cert.pem(),
            sha256: fingerprint(cert.der()),
            // The certificate holds whole seconds.
            not_after: Timestamp::from_second(not_after.as_second()).map_err(|e| e.to_string())?,
        })
    }
}

/// A parsed, signature-checked certificate signing request.
#[derive(Debug)]
pub struct Csr(CertificateSigningRequestParams);

impl Csr {
    /// Parses a PEM request and checks its self-signature and key type; the
    /// error says what is wrong (the request is the agent's, untrusted).
    pub fn parse(pem: &str) -> Result<Self, String> {
        if pem.len() > MAX_CSR_PEM {
            return Err(format!(
                "certificate signing request of {} bytes; at most {MAX_CSR_PEM}",
                pem.len()
            ));
        }
        let params = CertificateSigningRequestParams::from_pem(pem)
            .map_err(|e| format!("not a valid PEM certificate signing request (PKCS#10): {e}"))?;
        let alg = params.public_key.algorithm();
        let allowed = [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ];
        if !allowed.contains(&alg) {
            return Err(format!(
                "certificate signing request for a {alg:?} key; P-256, P-384 or Ed25519 expected"
            ));
        }
        Ok(Self(params))
    }
}

/// Whether an agent's check-in should be told to get a client certificate:
/// mutual TLS is on, and the request came without the agent's certificate
/// or with one in its last third of validity.
pub fn certificate_wanted(
    mtls: &AgentMtls,
    presented_own: bool,
    not_after: Option<Timestamp>,
    now: Timestamp,
) -> bool {
    if mtls.mode == MtlsMode::Off {
        return false;
    }
    match (presented_own, not_after) {
        (true, Some(end)) => end.duration_since(now) < mtls.validity / 3,
        _ => true,
    }
}

/// Why a request's client certificate does not let it act as an agent, or
/// `None` when it does. `presented`: the SHA-256 of the certificate the TLS
/// layer verified (chained to the agent CA, within validity), if any;
/// `issued`: the one the server issued to this agent last.
pub fn certificate_refusal(
    mode: MtlsMode,
    presented: Option<&str>,
    issued: Option<&str>,
) -> Option<&'static str> {
    match (mode, presented) {
        (MtlsMode::Off, _) => None,
        (_, Some(p)) if Some(p) == issued => None,
        (_, Some(_)) => Some("the client certificate is not the one issued to this agent"),
        (MtlsMode::Required, None) => {
            Some("no client certificate (this server requires agent mutual TLS)")
        }
        (MtlsMode::Optional, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-12-06T12:00:00Z".parse().unwrap()
    }

    fn csr_for(key: &KeyPair) -> String {
        CertificateParams::default()
            .serialize_request(key)
            .unwrap()
            .pem()
            .unwrap()
    }

    #[test]
    fn issues_a_client_certificate_for_the_request_key_only() {
        let ca = AgentCa::generate(now()).unwrap();
        let ca = AgentCa::from_pem(&ca.cert_pem, &ca.key_pem, "test").unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        // A request asking to be a CA for a server name gets none of it.
        let mut greedy = CertificateParams::new(vec!["patchbay.example".into()]).unwrap();
        greedy.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = greedy.serialize_request(&key).unwrap().pem().unwrap();
        let csr = Csr::parse(&pem).unwrap();
        let issued = ca
            .issue(&csr, "agt_0123", now(), SignedDuration::from_hours(24))
            .unwrap();
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(issued.pem.as_bytes())
            .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
            .unwrap();
        assert_eq!(issued.sha256, fingerprint(&der));
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(
            cert.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "agt_0123"
        );
        assert!(!cert.is_ca());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        assert_eq!(san.general_names.len(), 1);
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
        assert_eq!(
            cert.validity().not_after.timestamp(),
            (now() + SignedDuration::from_hours(24)).as_second()
        );
        assert_eq!(
            issued.not_after.as_second(),
            cert.validity().not_after.timestamp()
        );
    }

    #[test]
    fn refuses_bad_requests_with_a_reason() {
        assert!(Csr::parse("nonsense").unwrap_err().contains("PKCS#10"));
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let good = csr_for(&key);
        // A flipped byte in the signed part breaks the self-signature.
        use base64::Engine;
        let b64: String = good.lines().filter(|l| !l.starts_with("-----")).collect();
        let mut der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let i = der.len() / 2;
        der[i] ^= 0x01;
        let bad = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        assert!(Csr::parse(&bad).is_err());
        assert!(
            Csr::parse(&"A".repeat(MAX_CSR_PEM + 1))
                .unwrap_err()
                .contains("at most")
        );
        assert!(Csr::parse(&good).is_ok());
    }

    #[test]
    fn binding_rule() {
        use MtlsMode::*;
        assert_eq!(certificate_refusal(Off, None, None), None);
        assert_eq!(certificate_refusal(Optional, None, Some("a")), None);
        assert_eq!(certificate_refusal(Optional, Some("a"), Some("a")), None);
        assert!(certificate_refusal(Optional, Some("b"), Some("a")).is_some());
        assert!(certificate_refusal(Optional, Some("b"), None).is_some());
        assert!(certificate_refusal(Required, None, Some("a")).is_some());
        assert!(certificate_refusal(Required, Some("b"), Some("a")).is_some());
        assert_eq!(certificate_refusal(Required, Some("a"), Some("a")), None);
    }

    #[test]
    fn renewal_in_the_last_third() {
        let m = AgentMtls {
            mode: MtlsMode::Required,
            validity: SignedDuration::from_hours(90 * 24),
        };
        let end = now() + SignedDuration::from_hours(31 * 24);
        assert!(!certificate_wanted(&m, true, Some(end), now()));
        let end = now() + SignedDuration::from_hours(29 * 24);
        assert!(certificate_wanted(&m, true, Some(end), now()));
        assert!(certificate_wanted(&m, false, None, now()));
        let off = AgentMtls::default();
        assert!(!certificate_wanted(&off, false, None, now()));
    }
}
