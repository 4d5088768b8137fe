//! Cryptosign: the client proves it holds the Ed25519 key named in HELLO.authextra.pubkey by signing
//! 32 random bytes. Its answer is hex(signature ‖ signed data), as autobahn sends it. With TLS channel
//! binding (`channel_binding: "tls-unique"`) the signed data is the challenge XOR the channel's
//! binding, so a signature cannot be relayed to another TLS connection.

use ed25519_dalek::{Signature, VerifyingKey};

use super::{
    ct_eq, dict, random_bytes, sha256, text, Hello, HelloInfo, Pending, Principal, Refusal, Step,
};
use crate::transport::PeerInfo;

pub const METHOD: &str = "cryptosign";

/// A configured public key: 32 bytes of hex.
pub(crate) fn parse_key(hex_key: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(hex_key.trim()).map_err(|e| format!("cryptosign key: {e}"))?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "cryptosign key: an Ed25519 public key is 32 bytes".to_string())?;
    VerifyingKey::from_bytes(&key).map_err(|e| format!("cryptosign key: {e}"))?;
    Ok(key)
}

/// What the CHALLENGE fixed.
pub(crate) struct Sent {
    pubkey: Option<[u8; 32]>,
    /// The data the client must sign: the challenge, XOR the channel binding when bound.
    expected: [u8; 32],
}

/// HELLO asked for cryptosign: challenge (also for a key the realm does not know, which then fails).
pub(crate) fn challenge(rules: &super::RealmAuth, hello: &HelloInfo<'_>) -> Hello {
    let pubkey = hello.extra_str("pubkey").and_then(|k| parse_key(&k).ok());
    let owner = pubkey.and_then(|k| rules.by_pubkey.get(&k));
    let authid = hello
        .authid
        .map(str::to_string)
        .or_else(|| owner.cloned())
        .unwrap_or_default();
    challenge_as(authid, hello)
}

/// The challenge for the key HELLO names, the login to be known as `authid`.
pub(crate) fn challenge_as(authid: String, hello: &HelloInfo<'_>) -> Hello {
    let pubkey = hello.extra_str("pubkey").and_then(|k| parse_key(&k).ok());
    let binding = match hello.extra_str("channel_binding") {
        None => None,
        // The transport's binding is RFC 9266 `tls-exporter` (rustls exposes no `tls-unique`, and
        // TLS 1.3 has none); a client asking for `tls-unique` gets the same value under its name.
        Some(kind) if kind == "tls-unique" || kind == "tls-exporter" => {
            match channel_binding(hello.peer) {
                Some(b) => Some((b, kind)),
                None => return Hello::Refuse(Refusal::FAILED),
            }
        }
        Some(_) => return Hello::Refuse(Refusal::FAILED),
    };
    let challenge = random_bytes::<32>();
    let mut expected = challenge;
    let mut extra = vec![("challenge", text(&hex::encode(challenge)))];
    if let Some((b, kind)) = binding {
        expected.iter_mut().zip(b).for_each(|(e, b)| *e ^= b);
        extra.push(("channel_binding", text(&kind)));
    }
    Hello::Challenge {
        authmethod: METHOD,
        extra: dict(extra),
        pending: Pending {
            realm: hello.realm.to_string(),
            authid,
            step: Step::Cryptosign(Sent { pubkey, expected }),
            granted: None,
        },
    }
}

/// The connection's binding as 32 bytes (hashed when the transport's is another length).
fn channel_binding(peer: &PeerInfo) -> Option<[u8; 32]> {
    let raw = peer.tls.as_ref()?.channel_binding.as_ref()?;
    Some(match <[u8; 32]>::try_from(raw.as_slice()) {
        Ok(b) => b,
        Err(_) => sha256(raw),
    })
}

pub(crate) fn verify(
    p: &Principal,
    sent: &Sent,
    signature: &str,
) -> Option<Vec<(&'static str, String)>> {
    let pubkey = sent.pubkey.filter(|k| p.cryptosign.contains(k))?;
    let bytes = hex::decode(signature.trim()).ok()?;
    if bytes.len() != 96 || !ct_eq(&bytes[64..], &sent.expected) {
        return None;
    }
    let sig = Signature::from_slice(&bytes[..64]).ok()?;
    let key = VerifyingKey::from_bytes(&pubkey).ok()?;
    key.verify_strict(&bytes[64..], &sig)
        .ok()
        .map(|_| Vec::new())
}
