//! Token format and hashing.
//!
//! Tokens are 32 random bytes (supplied by the caller, so this module stays pure)
//! rendered as `pb<kind>_<64 hex>`. Only the SHA-256 of a token is stored. A fast
//! hash is enough here because the secret has 256 bits of entropy: unlike a
//! password, it cannot be guessed from a dictionary, so a slow KDF would only cost
//! latency on every request.

use sha2::{Digest, Sha256};

/// What a token is for; the prefix makes leaked tokens recognisable by scanners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A person's or script's API token.
    Api,
    /// An agent enrolment token (one or N uses).
    Enroll,
    /// An enrolled agent's own credential.
    Agent,
    /// A calendar-feed token (an API token of role `calendar`).
    Calendar,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Api => "pbt_",
            TokenKind::Enroll => "pbe_",
            TokenKind::Agent => "pba_",
            TokenKind::Calendar => "pbc_",
        }
    }
}

/// Renders a token secret from 32 random bytes.
pub fn render(kind: TokenKind, random: &[u8; 32]) -> String {
    format!("{}{}", kind.prefix(), hex::encode(random))
}

/// The stored form of a token: lowercase hex SHA-256 of the whole token string.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The first characters of a token, safe to show in listings and logs.
pub fn display_prefix(token: &str) -> String {
    token.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_and_hash_stably() {
        let t = render(TokenKind::Api, &[7u8; 32]);
        assert!(t.starts_with("pbt_"));
        assert_eq!(t.len(), 4 + 64);
        assert_eq!(hash(&t), hash(&t));
        assert_ne!(hash(&t), hash(&render(TokenKind::Api, &[8u8; 32])));
        assert_eq!(hash(&t).len(), 64);
        assert_eq!(display_prefix(&t), &t[..12]);
    }
}
