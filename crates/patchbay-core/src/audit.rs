//! The audit trail's hash chain and its verification.
//!
//! Every audit entry commits to the previous entry's hash:
//! `hash(n) = SHA-256(encoding(entry n) ‖ hash(n − 1))`, with [`GENESIS`] before
//! entry 1. The encoding is explicit and length-prefixed ([`encode`]): a
//! domain tag, the sequence number, the time in milliseconds, then actor,
//! action, target, outcome and the detail exactly as stored (its JSON text), each
//! as a big-endian `u32` length followed by the UTF-8 bytes. Sequence numbers are
//! dense (1, 2, 3, …): the store hands them out under a lock together with the
//! previous hash, so a rolled-back transaction leaves no gap.
//!
//! The server signs `(seq, hash)` of entries with its ed25519 key
//! ([`Signer::sign_head`]); a signature over entry *n* vouches for the whole
//! chain up to *n*. [`Verifier`] walks entries in order and reports the first
//! broken one: edited (its hash does not match its content), deleted (a gap in
//! the sequence), inserted or reordered (its `prev_hash` is not the previous
//! entry's hash, or its sequence number is out of place), or a bad signature.
//! An entry without a signature is trusted only when a later, checked
//! signature covers it: entries after the last signed one (an *unsigned
//! tail*) fail verification unless the caller explicitly allows a bounded
//! number of them ([`Verifier::allow_unsigned_tail`]). Otherwise an attacker
//! with write access could edit an entry, re-hash every later one and drop
//! their signatures. The server, for its part, never signs a new entry on top
//! of a head that its own key has not signed ([`Signer::signed_head`]), so a
//! forged tail is never covered by a real signature later.
//!
//! **Key rotation** ([`KeyAnnouncement`], ADR 0007): the server switches to a
//! new key by appending an entry with action [`ROTATE_ACTION`] whose detail
//! is the announcement — the new public key, signed by the old key. The
//! rotation entry's own head signature and every later one are the new key's.
//! The [`Verifier`] follows announcements: pinned to the old key, it checks
//! the announcement with the key it trusts and from there on trusts only the
//! new one (a retired key's signature after its rotation fails); pinned to a
//! newer key, it accepts the part of the chain before that key's announcement
//! as vouched for by the pinned key's later signatures over the hash chain.
//! An announcement no trusted key signed, after the pinned key is in force,
//! fails verification ([`Break::ForgedAnnouncement`]).
//!
//! What a hash chain cannot show on its own: an attacker with write access who
//! deletes the *last* entries and rewinds the head. Compare the verified head
//! with an external record (the exported segment, the SIEM copy) to rule that
//! out.

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

/// The hash before the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

const ENTRY_TAG: &[u8] = b"patchbay-audit-entry-v1";
const HEAD_TAG: &[u8] = b"patchbay-audit-head-v1";
const ROTATE_TAG: &[u8] = b"patchbay-key-rotation-v1";

/// The audit action of a key rotation entry; its detail is a
/// [`KeyAnnouncement`] as JSON.
pub const ROTATE_ACTION: &str = "server_key.rotate";

/// A key rotation: `new_public_key` announced by (signed with) the key
/// `old_public_key`. Written into the audit chain (the detail of a
/// [`ROTATE_ACTION`] entry) and handed to agents at check-in, so whoever pins
/// the old key can follow to the new one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyAnnouncement {
    /// The retired key (hex).
    pub old_public_key: String,
    /// The key that signs from now on (hex).
    pub new_public_key: String,
    /// When, in milliseconds since the epoch.
    pub at_millis: i64,
    /// The old key's signature over [`announcement_message`] (hex).
    pub signature: String,
}

/// What an announcement's signature signs: the tag, both keys, the time.
pub fn announcement_message(old_hex: &str, new_hex: &str, at_millis: i64) -> Vec<u8> {
    let mut m = Vec::with_capacity(ROTATE_TAG.len() + 150);
    put(&mut m, ROTATE_TAG);
    put(&mut m, old_hex.as_bytes());
    put(&mut m, new_hex.as_bytes());
    m.extend_from_slice(&at_millis.to_be_bytes());
    m
}

impl KeyAnnouncement {
    /// Parses an announcement from a rotation entry's detail.
    pub fn from_detail(detail: &str) -> Result<Self, String> {
        let a: Self =
            serde_json::from_str(detail).map_err(|e| format!("not a key announcement: {e}"))?;
        public_key(&a.new_public_key).map_err(|e| format!("new_public_key: {e}"))?;
        Ok(a)
    }

    /// Whether `key` is the announced old key and signed this announcement.
    pub fn signed_by(&self, key: &VerifyingKey) -> bool {
        self.old_public_key.trim() == hex::encode(key.as_bytes())
            && verify_bytes(
                key,
                &announcement_message(&self.old_public_key, &self.new_public_key, self.at_millis),
                &self.signature,
            )
    }

    /// The announced key, parsed.
    pub fn new_key(&self) -> Result<VerifyingKey, String> {
        public_key(&self.new_public_key)
    }

    /// Follows `announcements` (in order) from the pinned key `pinned` (hex):
    /// each one whose old key is the currently pinned key and that this key
    /// signed moves the pin to its new key; one that claims the pinned key
    /// but is not signed by it is refused (skipped, and described in the
    /// second value); others (older rotations) are skipped. Returns the final
    /// pin and the refusals.
    pub fn follow(pinned: &str, announcements: &[KeyAnnouncement]) -> (String, Vec<String>) {
        let mut pin = pinned.trim().to_string();
        let mut refused = Vec::new();
        for a in announcements {
            if a.old_public_key.trim() != pin {
                continue;
            }
            let signed = public_key(&pin).is_ok_and(|k| a.signed_by(&k));
            match a.new_key() {
                Ok(_) if signed => pin = a.new_public_key.trim().to_string(),
                Ok(_) => refused.push(format!(
                    "the announcement of key {} claims to come from the pinned key {pin} but is not signed by it (forged)",
                    a.new_public_key
                )),
                Err(e) => refused.push(format!(
                    "the announcement of key {:?} from the pinned key {pin} is malformed: {e}",
                    a.new_public_key
                )),
            }
        }
        (pin, refused)
    }
}

/// The hashed fields of one entry, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryFields<'a> {
    /// Sequence number (1, 2, …).
    pub seq: i64,
    /// Milliseconds since the epoch.
    pub at_millis: i64,
    /// Who.
    pub actor: &'a str,
    /// What.
    pub action: &'a str,
    /// On what.
    pub target: &'a str,
    /// `ok`, `denied`, …
    pub outcome: &'a str,
    /// The detail's JSON text, byte for byte as stored.
    pub detail: &'a str,
}

fn put(out: &mut Vec<u8>, s: &[u8]) {
    // Lengths above u32::MAX cannot be stored; saturating keeps this total.
    let n = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(s);
}

/// The canonical encoding of an entry (without the previous hash).
pub fn encode(e: &EntryFields<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        64 + e.actor.len() + e.action.len() + e.target.len() + e.outcome.len() + e.detail.len(),
    );
    put(&mut out, ENTRY_TAG);
    out.extend_from_slice(&e.seq.to_be_bytes());
    out.extend_from_slice(&e.at_millis.to_be_bytes());
    for f in [e.actor, e.action, e.target, e.outcome, e.detail] {
        put(&mut out, f.as_bytes());
    }
    out
}

/// `SHA-256(encode(e) ‖ prev)`.
pub fn entry_hash(e: &EntryFields<'_>, prev: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(encode(e));
    h.update(prev);
    h.finalize().into()
}

/// What a head signature signs: the tag, `seq` and `hash`.
pub fn head_message(seq: i64, hash: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(HEAD_TAG.len() + 40);
    m.extend_from_slice(HEAD_TAG);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m
}

/// The server's signing key (ed25519).
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("public", &self.public_hex())
            .finish()
    }
}

impl Signer {
    /// A key from its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The public key, hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    /// Signs `(seq, hash)`; the signature as hex.
    pub fn sign_head(&self, seq: i64, hash: &[u8; 32]) -> String {
        hex::encode(self.key.sign(&head_message(seq, hash)).to_bytes())
    }

    /// Whether `sig` is this key's signature over `(seq, hash)`: the check the
    /// store makes on the chain's head before signing an entry on top of it.
    pub fn signed_head(&self, seq: i64, hash: &[u8; 32], sig: Option<&str>) -> bool {
        sig.is_some_and(|sig| {
            verify_bytes(&self.key.verifying_key(), &head_message(seq, hash), sig)
        })
    }

    /// Signs arbitrary bytes (e.g. an evidence manifest); the signature as hex.
    pub fn sign_bytes(&self, msg: &[u8]) -> String {
        hex::encode(self.key.sign(msg).to_bytes())
    }

    /// The public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Announces `next` as the key that replaces this one, signed by this one.
    pub fn announce(&self, next: &Signer, at_millis: i64) -> KeyAnnouncement {
        let (old, new) = (self.public_hex(), next.public_hex());
        let signature = self.sign_bytes(&announcement_message(&old, &new, at_millis));
        KeyAnnouncement {
            old_public_key: old,
            new_public_key: new,
            at_millis,
            signature,
        }
    }
}

/// The key a running server signs with, replaceable while it runs (key
/// rotation). Cloning shares the slot.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    slot: std::sync::Arc<std::sync::RwLock<Option<std::sync::Arc<Signer>>>>,
}

impl Keyring {
    /// A keyring holding `signer`.
    pub fn new(signer: Option<Signer>) -> Self {
        Self {
            slot: std::sync::Arc::new(std::sync::RwLock::new(signer.map(std::sync::Arc::new))),
        }
    }

    /// The current key.
    pub fn current(&self) -> Option<std::sync::Arc<Signer>> {
        match self.slot.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces the current key; returns the previous one.
    pub fn replace(
        &self,
        signer: Option<std::sync::Arc<Signer>>,
    ) -> Option<std::sync::Arc<Signer>> {
        let mut g = match self.slot.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        std::mem::replace(&mut *g, signer)
    }
}

/// Parses a hex public key.
pub fn public_key(hex_key: &str) -> Result<VerifyingKey, String> {
    let bytes = hex::decode(hex_key.trim()).map_err(|e| format!("public key is not hex: {e}"))?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "public key must be 32 bytes".to_string())?;
    VerifyingKey::from_bytes(&arr).map_err(|e| format!("invalid public key: {e}"))
}

/// Checks a hex signature over `msg`.
pub fn verify_bytes(key: &VerifyingKey, msg: &[u8], sig_hex: &str) -> bool {
    let Ok(bytes) = hex::decode(sig_hex.trim()) else {
        return false;
    };
    let Ok(arr) = <[u8; 64]>::try_from(bytes.as_slice()) else {
        return false;
    };
    key.verify(msg, &Signature::from_bytes(&arr)).is_ok()
}

/// One stored entry as the verifier reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Sequence number.
    pub seq: i64,
    /// Milliseconds since the epoch.
    pub at_millis: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// Outcome.
    pub outcome: String,
    /// Detail JSON text.
    pub detail: String,
    /// Stored previous hash (hex), if any.
    pub prev_hash: Option<String>,
    /// Stored hash (hex), if any.
    pub hash: Option<String>,
    /// Stored head signature (hex), if any.
    pub sig: Option<String>,
}

impl StoredEntry {
    fn fields(&self) -> EntryFields<'_> {
        EntryFields {
            seq: self.seq,
            at_millis: self.at_millis,
            actor: &self.actor,
            action: &self.action,
            target: &self.target,
            outcome: &self.outcome,
            detail: &self.detail,
        }
    }
}

/// Why verification failed, naming the first bad entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    /// Entries are missing: the sequence jumps.
    #[error("entry {expected} is missing (the sequence jumps from {} to {found}): deleted", expected - 1)]
    Missing {
        /// The first missing sequence number.
        expected: i64,
        /// The one found instead.
        found: i64,
    },
    /// A sequence number appears out of place (duplicate or reordered).
    #[error("entry {found} appears where entry {expected} belongs: inserted or reordered")]
    OutOfPlace {
        /// Where we are.
        expected: i64,
        /// What was found.
        found: i64,
    },
    /// The content does not match the stored hash.
    #[error("entry {seq} was edited: its content does not match its hash")]
    Edited {
        /// The entry.
        seq: i64,
    },
    /// The stored previous hash is not the previous entry's hash.
    #[error("entry {seq} does not follow entry {}: inserted, deleted or reordered", seq - 1)]
    NotLinked {
        /// The entry.
        seq: i64,
    },
    /// The entry has no hash.
    #[error("entry {seq} has no hash: written outside the chain")]
    Unhashed {
        /// The entry.
        seq: i64,
    },
    /// An entry lies beyond the chain's head.
    #[error("entry {seq} lies beyond the chain head (entry {head}): inserted")]
    BeyondHead {
        /// The entry.
        seq: i64,
        /// The head's sequence number.
        head: i64,
    },
    /// The stored head disagrees with the chain's last entry.
    #[error(
        "the chain head names entry {head_seq} as the last, but the log ends at entry {last_seq}: entries deleted from the end, or the head rewritten"
    )]
    HeadMismatch {
        /// The head's sequence number.
        head_seq: i64,
        /// The last entry's.
        last_seq: i64,
    },
    /// A signature does not verify.
    #[error("entry {seq}: the server signature does not verify (forged or re-signed chain)")]
    BadSignature {
        /// The entry.
        seq: i64,
    },
    /// A key rotation entry no trusted key announced.
    #[error(
        "entry {seq}: key rotation announcing {new_key} is not signed by the key in force (forged announcement)"
    )]
    ForgedAnnouncement {
        /// The entry.
        seq: i64,
        /// The key it announces.
        new_key: String,
    },
    /// A key rotation entry that cannot be read.
    #[error("entry {seq}: malformed key rotation: {why}")]
    BadAnnouncement {
        /// The entry.
        seq: i64,
        /// What is wrong.
        why: String,
    },
    /// The last entries carry no signature, so nothing vouches for them.
    #[error(
        "entries {first} to {last} are not covered by any server signature: the chain was rewritten or extended without the server's key (allowed unsigned entries at the end: {allowed})"
    )]
    Unsigned {
        /// The first unsigned entry of the tail.
        first: i64,
        /// The last entry.
        last: i64,
        /// How many unsigned entries the caller allowed.
        allowed: u64,
    },
}

/// What a successful verification saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Entries checked.
    pub entries: u64,
    /// The last sequence number.
    pub last_seq: i64,
    /// The last hash (hex).
    pub last_hash: String,
    /// Signatures checked.
    pub signatures_checked: u64,
    /// The last signed sequence number.
    pub last_signed: Option<i64>,
    /// Entries after the last signed one (at most the allowed number, else
    /// verification fails).
    pub unsigned_tail: u64,
    /// Key rotations followed: the entry and the key announced there.
    pub rotations: Vec<(i64, String)>,
    /// Whether the pinned key was announced inside the log (then the entries
    /// before that rotation are vouched for by its later signatures).
    pub pinned_key_announced_at: Option<i64>,
}

/// Walks entries in sequence order; feed them with [`Verifier::push`].
#[derive(Debug)]
pub struct Verifier {
    /// The keys in force (after rotations: the last announced key).
    keys: Vec<VerifyingKey>,
    /// Whether a trusted key has verified something yet (before that,
    /// failures are deferred: the pinned key may be announced later).
    anchored: bool,
    /// The first signature (or announcement) that failed before anchoring.
    deferred: Option<i64>,
    every: i64,
    allow_unsigned_tail: u64,
    prev: [u8; 32],
    next_seq: i64,
    summary: Summary,
    /// The last signed entry not yet checked (checked at the end).
    pending: Option<(i64, [u8; 32], String)>,
}

impl Verifier {
    /// A verifier that checks the signature of every `every`-th signed entry
    /// and of the last signed one (`every = 1`: all) against the given key, or
    /// none without a key.
    pub fn new(key: Option<VerifyingKey>, every: i64) -> Self {
        Self::with_keys(key.into_iter().collect(), every)
    }

    /// Like [`Verifier::new`]; a signature passes when any of `keys` verifies
    /// it (keys rotated over the log's life).
    pub fn with_keys(keys: Vec<VerifyingKey>, every: i64) -> Self {
        Self {
            keys,
            anchored: false,
            deferred: None,
            every: every.max(1),
            allow_unsigned_tail: 0,
            prev: GENESIS,
            next_seq: 1,
            summary: Summary::default(),
            pending: None,
        }
    }

    /// Accepts up to `n` unsigned entries at the end of the log (entries a
    /// tool wrote without the key). Default 0: every entry must be covered by
    /// a signature.
    pub fn allow_unsigned_tail(mut self, n: u64) -> Self {
        self.allow_unsigned_tail = n;
        self
    }

    fn check_sig(&mut self, seq: i64, hash: &[u8; 32], sig: &str) -> Result<(), Break> {
        if !self.keys.is_empty() {
            self.summary.signatures_checked += 1;
            let msg = head_message(seq, hash);
            if self.keys.iter().any(|k| verify_bytes(k, &msg, sig)) {
                // A trusted key was in force here: earlier failures are real.
                if let Some(d) = self.deferred {
                    return Err(Break::BadSignature { seq: d });
                }
                self.anchored = true;
            } else if self.anchored {
                return Err(Break::BadSignature { seq });
            } else {
                // Perhaps signed by an older key whose rotation to the pinned
                // one comes later; decided there (or at the end).
                self.deferred.get_or_insert(seq);
            }
        }
        Ok(())
    }

    /// A key rotation entry: checks the announcement against the keys in
    /// force and moves trust to the announced key.
    fn rotation(&mut self, e: &StoredEntry) -> Result<(), Break> {
        // The signature before the rotation is checked with the keys that
        // were in force then.
        if let Some((seq, h, sig)) = self.pending.take() {
            self.check_sig(seq, &h, &sig)?;
        }
        let a = KeyAnnouncement::from_detail(&e.detail)
            .map_err(|why| Break::BadAnnouncement { seq: e.seq, why })?;
        let new_key = a
            .new_key()
            .map_err(|why| Break::BadAnnouncement { seq: e.seq, why })?;
        if self.keys.is_empty() {
            self.summary.rotations.push((e.seq, a.new_public_key));
            return Ok(());
        }
        if self.keys.iter().any(|k| a.signed_by(k)) {
            if let Some(d) = self.deferred {
                return Err(Break::BadSignature { seq: d });
            }
            self.anchored = true;
            self.keys = vec![new_key];
        } else if self.keys.contains(&new_key) && !self.anchored {
            // The pinned key is announced here: what came before is vouched
            // for by its signatures from here on (checked below and later).
            // The announcement must at least be its named old key's.
            let old = public_key(&a.old_public_key)
                .map_err(|why| Break::BadAnnouncement { seq: e.seq, why })?;
            if !a.signed_by(&old) {
                return Err(Break::ForgedAnnouncement {
                    seq: e.seq,
                    new_key: a.new_public_key,
                });
            }
            self.deferred = None;
            self.summary.pinned_key_announced_at = Some(e.seq);
            self.keys = vec![new_key];
        } else if !self.anchored {
            self.deferred.get_or_insert(e.seq);
        } else {
            return Err(Break::ForgedAnnouncement {
                seq: e.seq,
                new_key: a.new_public_key,
            });
        }
        self.summary.rotations.push((e.seq, a.new_public_key));
        Ok(())
    }

    /// Checks the next entry.
    pub fn push(&mut self, e: &StoredEntry) -> Result<(), Break> {
        if e.seq != self.next_seq {
            return Err(if e.seq > self.next_seq {
                Break::Missing {
                    expected: self.next_seq,
                    found: e.seq,
                }
            } else {
                Break::OutOfPlace {
                    expected: self.next_seq,
                    found: e.seq,
                }
            });
        }
        let (Some(hash_hex), Some(prev_hex)) = (&e.hash, &e.prev_hash) else {
            return Err(Break::Unhashed { seq: e.seq });
        };
        if !eq_hex(prev_hex, &self.prev) {
            return Err(Break::NotLinked { seq: e.seq });
        }
        let h = entry_hash(&e.fields(), &self.prev);
        if !eq_hex(hash_hex, &h) {
            return Err(Break::Edited { seq: e.seq });
        }
        let rotation = e.action == ROTATE_ACTION && e.outcome == "ok";
        if rotation {
            self.rotation(e)?;
        }
        match &e.sig {
            Some(sig) => {
                self.summary.last_signed = Some(e.seq);
                self.summary.unsigned_tail = 0;
                // A rotation entry is always checked: it is the new key's first
                // signature.
                if rotation || e.seq % self.every == 0 {
                    self.check_sig(e.seq, &h, sig)?;
                    self.pending = None;
                } else {
                    self.pending = Some((e.seq, h, sig.clone()));
                }
            }
            None if rotation && !self.keys.is_empty() => {
                return Err(Break::BadSignature { seq: e.seq });
            }
            None => self.summary.unsigned_tail += 1,
        }
        self.prev = h;
        self.next_seq += 1;
        self.summary.entries += 1;
        self.summary.last_seq = e.seq;
        Ok(())
    }

    /// Ends the walk: checks the last signed entry's signature, and refuses
    /// an unsigned tail longer than allowed.
    pub fn finish(mut self) -> Result<Summary, Break> {
        if let Some((seq, h, sig)) = self.pending.take() {
            self.check_sig(seq, &h, &sig)?;
        }
        if let Some(seq) = self.deferred {
            return Err(Break::BadSignature { seq });
        }
        let tail = self.summary.unsigned_tail;
        if tail > self.allow_unsigned_tail {
            return Err(Break::Unsigned {
                first: self.summary.last_seq - tail as i64 + 1,
                last: self.summary.last_seq,
                allowed: self.allow_unsigned_tail,
            });
        }
        self.summary.last_hash = hex::encode(self.prev);
        Ok(self.summary)
    }
}

/// Compares a hex string with bytes without allocating.
fn eq_hex(hex_str: &str, bytes: &[u8; 32]) -> bool {
    let s = hex_str.as_bytes();
    if s.len() != 64 {
        return false;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    bytes.iter().enumerate().all(|(i, b)| {
        matches!((nib(s[2 * i]), nib(s[2 * i + 1])), (Some(h), Some(l)) if (h << 4 | l) == *b)
    })
}
