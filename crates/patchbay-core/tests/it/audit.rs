//! The audit hash chain: an untouched chain verifies; editing, deleting,
//! inserting or reordering one entry, or forging a signature, fails and names
//! the first bad entry; any single-byte change anywhere is caught (proptest).

use patchbay_core::audit::EntryFields;
use patchbay_core::audit::{Break, GENESIS, Signer, StoredEntry, Verifier, entry_hash, public_key};
use proptest::prelude::*;

fn signer() -> Signer {
    Signer::from_seed(&[7; 32])
}

/// A chain of `n` entries, every one signed when `sign` holds.
fn chain(n: i64, sign: bool) -> Vec<StoredEntry> {
    let s = signer();
    let mut prev = GENESIS;
    let mut out = Vec::new();
    for seq in 1..=n {
        let detail = format!("{{\"n\":{seq},\"note\":\"é\"}}");
        let actor = format!("token:{}:admin", seq % 3);
        let f = EntryFields {
            seq,
            at_millis: 1_790_000_000_000 + seq * 1000,
            actor: &actor,
            action: "window.add",
            target: "window:nightly",
            outcome: "ok",
            detail: &detail,
        };
        let h = entry_hash(&f, &prev);
        out.push(StoredEntry {
            seq,
            at_millis: f.at_millis,
            actor: actor.clone(),
            action: f.action.into(),
            target: f.target.into(),
            outcome: f.outcome.into(),
            detail,
            prev_hash: Some(hex::encode(prev)),
            hash: Some(hex::encode(h)),
            sig: sign.then(|| s.sign_head(seq, &h)),
        });
        prev = h;
    }
    out
}

fn verify(entries: &[StoredEntry], every: i64) -> Result<patchbay_core::audit::Summary, Break> {
    let key = public_key(&signer().public_hex()).unwrap();
    let mut v = Verifier::new(Some(key), every);
    for e in entries {
        v.push(e)?;
    }
    v.finish()
}

#[test]
fn untouched_chain_verifies() {
    let c = chain(100, true);
    let s = verify(&c, 10).unwrap();
    assert_eq!(s.entries, 100);
    assert_eq!(s.last_seq, 100);
    assert_eq!(s.last_hash, c[99].hash.clone().unwrap());
    assert_eq!(s.signatures_checked, 10);
    assert_eq!(s.unsigned_tail, 0);
    assert_eq!(verify(&c, 1).unwrap().signatures_checked, 100);
    // Without a key only the chain is checked.
    let mut v = Verifier::new(None, 1);
    for e in &c {
        v.push(e).unwrap();
    }
    assert_eq!(v.finish().unwrap().signatures_checked, 0);
    // An empty log verifies.
    assert_eq!(verify(&[], 1).unwrap().entries, 0);
}

#[test]
fn an_edit_is_named() {
    let mut c = chain(50, true);
    c[20].detail = c[20].detail.replace("é", "e");
    assert_eq!(verify(&c, 10), Err(Break::Edited { seq: 21 }));
    let mut c = chain(50, true);
    c[0].outcome = "denied".into();
    assert_eq!(verify(&c, 10), Err(Break::Edited { seq: 1 }));
    let mut c = chain(50, true);
    c[49].at_millis += 1;
    assert_eq!(verify(&c, 10), Err(Break::Edited { seq: 50 }));
}

#[test]
fn a_deletion_is_named() {
    let mut c = chain(50, true);
    c.remove(30);
    assert_eq!(
        verify(&c, 10),
        Err(Break::Missing {
            expected: 31,
            found: 32
        })
    );
    // Deleting and renumbering the rest breaks the link at the renumbered entry.
    let mut c = chain(50, true);
    c.remove(30);
    for e in &mut c[30..] {
        e.seq -= 1;
    }
    assert_eq!(verify(&c, 10), Err(Break::NotLinked { seq: 31 }));
}

#[test]
fn an_insertion_is_named() {
    let mut c = chain(50, true);
    let mut forged = c[10].clone();
    forged.seq = 11;
    forged.detail = "{}".into();
    c.insert(10, forged);
    for e in &mut c[11..] {
        e.seq += 1;
    }
    assert_eq!(verify(&c, 10), Err(Break::Edited { seq: 11 }));
    // A forged entry whose hash is recomputed correctly is caught by the
    // signature of the next checkpoint.
    let mut c = chain(50, true);
    let prev = hex::decode(c[9].hash.as_ref().unwrap()).unwrap();
    let prev: [u8; 32] = prev.try_into().unwrap();
    let f = EntryFields {
        seq: 11,
        at_millis: 1,
        actor: "evil",
        action: "x",
        target: "y",
        outcome: "ok",
        detail: "{}",
    };
    let h = entry_hash(&f, &prev);
    let forged = StoredEntry {
        seq: 11,
        at_millis: 1,
        actor: "evil".into(),
        action: "x".into(),
        target: "y".into(),
        outcome: "ok".into(),
        detail: "{}".into(),
        prev_hash: c[9].hash.clone(),
        hash: Some(hex::encode(h)),
        sig: None,
    };
    c.truncate(10);
    c.push(forged);
    // Unsigned: refused unless the caller allows (and bounds) an unsigned tail.
    assert_eq!(
        verify(&c, 10),
        Err(Break::Unsigned {
            first: 11,
            last: 11,
            allowed: 0
        })
    );
    let allowing = |n: u64| {
        let key = public_key(&signer().public_hex()).unwrap();
        let mut v = Verifier::new(Some(key), 10).allow_unsigned_tail(n);
        for e in &c {
            v.push(e)?;
        }
        v.finish()
    };
    assert_eq!(allowing(1).unwrap().unsigned_tail, 1);
    assert!(allowing(0).is_err());
    // Signed with another key: refused.
    c[10].sig = Some(Signer::from_seed(&[9; 32]).sign_head(11, &h));
    assert_eq!(verify(&c, 10), Err(Break::BadSignature { seq: 11 }));
}

#[test]
fn a_reordering_is_named() {
    let mut c = chain(50, true);
    c.swap(20, 21);
    assert_eq!(
        verify(&c, 10),
        Err(Break::Missing {
            expected: 21,
            found: 22
        })
    );
    // Swapping the contents but keeping the numbers.
    let mut c = chain(50, true);
    let (a, b) = (c[20].clone(), c[21].clone());
    c[20] = StoredEntry { seq: 21, ..b };
    c[21] = StoredEntry { seq: 22, ..a };
    assert_eq!(verify(&c, 10), Err(Break::NotLinked { seq: 21 }));
}

#[test]
fn a_rewritten_chain_fails_on_signatures() {
    // Edit entry 5 and recompute every later hash: the chain is consistent
    // again, but the signatures no longer match.
    let mut c = chain(30, true);
    c[4].actor = "someone-else".into();
    let mut prev: [u8; 32] = hex::decode(c[3].hash.as_ref().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    for e in &mut c[4..] {
        let f = EntryFields {
            seq: e.seq,
            at_millis: e.at_millis,
            actor: &e.actor,
            action: &e.action,
            target: &e.target,
            outcome: &e.outcome,
            detail: &e.detail,
        };
        let h = entry_hash(&f, &prev);
        e.prev_hash = Some(hex::encode(prev));
        e.hash = Some(hex::encode(h));
        prev = h;
    }
    // Every 10th signature is checked: the first checked one is entry 10.
    assert_eq!(verify(&c, 10), Err(Break::BadSignature { seq: 10 }));
    assert_eq!(verify(&c, 1), Err(Break::BadSignature { seq: 5 }));
}

#[test]
fn the_encoding_is_unambiguous() {
    // Moving a byte between adjacent fields changes the hash.
    let a = EntryFields {
        seq: 1,
        at_millis: 0,
        actor: "ab",
        action: "c",
        target: "",
        outcome: "",
        detail: "",
    };
    let b = EntryFields {
        actor: "a",
        action: "bc",
        ..a
    };
    assert_ne!(entry_hash(&a, &GENESIS), entry_hash(&b, &GENESIS));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn any_single_byte_change_is_caught(entry in 0usize..20, field in 0usize..9, pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut c = chain(20, true);
        let e = &mut c[entry];
        let mutate = |s: &mut String| {
            let mut b = s.clone().into_bytes();
            if b.is_empty() { b.push(byte) } else { let i = pos.index(b.len()); b[i] ^= byte.max(1) }
            *s = String::from_utf8_lossy(&b).into_owned();
        };
        match field {
            0 => e.seq += 1 + i64::from(byte % 3),
            1 => e.at_millis ^= i64::from(byte.max(1)),
            2 => mutate(&mut e.actor),
            3 => mutate(&mut e.action),
            4 => mutate(&mut e.target),
            5 => mutate(&mut e.outcome),
            6 => mutate(&mut e.detail),
            7 => mutate(e.prev_hash.as_mut().unwrap()),
            _ => mutate(e.hash.as_mut().unwrap()),
        }
        let changed = *e != chain(20, true)[entry];
        prop_assume!(changed);
        prop_assert!(verify(&c, 1).is_err());
    }
}

/// The attack the security review found: edit an entry, re-hash every later
/// one and drop their signatures. The rewritten tail is covered by no
/// signature, so verification fails naming it, with or without the
/// checkpoint spacing.
#[test]
fn a_rewritten_tail_without_signatures_is_refused() {
    let mut c = chain(50, true);
    c[19].actor = "mallory".into();
    let mut prev = hex::decode(c[18].hash.as_ref().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    for e in c.iter_mut().skip(19) {
        let h = entry_hash(
            &EntryFields {
                seq: e.seq,
                at_millis: e.at_millis,
                actor: &e.actor,
                action: &e.action,
                target: &e.target,
                outcome: &e.outcome,
                detail: &e.detail,
            },
            &prev,
        );
        e.prev_hash = Some(hex::encode(prev));
        e.hash = Some(hex::encode(h));
        e.sig = None;
        prev = h;
    }
    for every in [1, 10, 1024] {
        assert_eq!(
            verify(&c, every),
            Err(Break::Unsigned {
                first: 20,
                last: 50,
                allowed: 0
            }),
            "every {every}"
        );
    }
    // Garbage signatures instead of none: the last one is always checked.
    for e in c.iter_mut().skip(19) {
        e.sig = Some("00".repeat(64));
    }
    assert_eq!(verify(&c, 1024), Err(Break::BadSignature { seq: 50 }));
}

#[test]
fn the_server_checks_its_own_head_signature() {
    let s = signer();
    let c = chain(3, true);
    let h: [u8; 32] = hex::decode(c[2].hash.as_ref().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    assert!(s.signed_head(3, &h, c[2].sig.as_deref()));
    assert!(!s.signed_head(3, &h, None));
    assert!(!s.signed_head(2, &h, c[2].sig.as_deref()));
    assert!(!Signer::from_seed(&[8; 32]).signed_head(3, &h, c[2].sig.as_deref()));
}

/// A chain of `n` entries rotating from key `[1; 32]` to `[2; 32]` at entry
/// `r1` and on to `[3; 32]` at `r2` (announcements signed by `forger` when
/// given, else by the key in force), each entry signed by the key in force.
fn rotated_chain(n: i64, r1: i64, r2: i64, forger: Option<&Signer>) -> Vec<StoredEntry> {
    use patchbay_core::audit::ROTATE_ACTION;
    let keys = [1u8, 2, 3].map(|b| Signer::from_seed(&[b; 32]));
    let mut k = 0;
    let mut prev = GENESIS;
    let mut out = Vec::new();
    for seq in 1..=n {
        let at = 1_790_000_000_000 + seq * 1000;
        let (action, detail) = if seq == r1 || seq == r2 {
            let by = forger.unwrap_or(&keys[k]);
            let mut a = by.announce(&keys[k + 1], at);
            a.old_public_key = keys[k].public_hex();
            k += 1;
            (ROTATE_ACTION, serde_json::to_string(&a).unwrap())
        } else {
            ("window.add", format!("{{\"n\":{seq}}}"))
        };
        let f = EntryFields {
            seq,
            at_millis: at,
            actor: "token:1:admin",
            action,
            target: "t",
            outcome: "ok",
            detail: &detail,
        };
        let h = entry_hash(&f, &prev);
        out.push(StoredEntry {
            seq,
            at_millis: at,
            actor: f.actor.into(),
            action: action.into(),
            target: "t".into(),
            outcome: "ok".into(),
            detail,
            prev_hash: Some(hex::encode(prev)),
            hash: Some(hex::encode(h)),
            sig: Some(keys[k].sign_head(seq, &h)),
        });
        prev = h;
    }
    out
}

fn verify_pinned(
    entries: &[StoredEntry],
    pin: u8,
    every: i64,
) -> Result<patchbay_core::audit::Summary, Break> {
    let key = Signer::from_seed(&[pin; 32]).verifying_key();
    let mut v = Verifier::new(Some(key), every);
    for e in entries {
        v.push(e)?;
    }
    v.finish()
}

/// Two rotations: any key of the three, pinned, verifies the whole chain
/// with every signature checked or sampled; a fourth key does not; a forged
/// second announcement fails from the keys in force before it.
#[test]
fn rotations_are_followed_from_any_pinned_key_and_forgeries_fail() {
    let c = rotated_chain(40, 11, 27, None);
    for every in [1, 4, 1024] {
        let s = verify_pinned(&c, 1, every).unwrap();
        assert_eq!(s.rotations.len(), 2, "every {every}");
        assert_eq!(s.pinned_key_announced_at, None);
        let s = verify_pinned(&c, 2, every).unwrap();
        assert_eq!(s.pinned_key_announced_at, Some(11), "every {every}");
        let s = verify_pinned(&c, 3, every).unwrap();
        assert_eq!(s.pinned_key_announced_at, Some(27), "every {every}");
        assert!(matches!(
            verify_pinned(&c, 9, every),
            Err(Break::BadSignature { .. })
        ));
    }
    let mallory = Signer::from_seed(&[9; 32]);
    let forged = rotated_chain(40, 11, 27, Some(&mallory));
    assert!(
        matches!(
            verify_pinned(&forged, 1, 1),
            Err(Break::ForgedAnnouncement { seq: 11, .. })
        ),
        "{:?}",
        verify_pinned(&forged, 1, 1)
    );
    // A retired key's signature after its rotation fails.
    let mut late = c.clone();
    let h: [u8; 32] = hex::decode(late[30].hash.as_ref().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    late[30].sig = Some(Signer::from_seed(&[2; 32]).sign_head(31, &h));
    assert_eq!(
        verify_pinned(&late, 1, 1),
        Err(Break::BadSignature { seq: 31 })
    );
}
