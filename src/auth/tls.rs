//! TLS client certificates: the certificate the TLS layer verified names the principal (its subject
//! CN is the authid); a principal's `fingerprint` additionally pins one certificate. No challenge is
//! needed, the TLS handshake was the proof.

use super::{ct_eq, Authenticated, Hello, HelloInfo, Refusal};

pub const METHOD: &str = "tls";

/// A pinned certificate's SHA-256, or none (any certificate the CA vouches for with that CN).
pub(crate) struct Pin(Option<[u8; 32]>);

impl Pin {
    pub(crate) fn parse(spec: &crate::config::file::TlsPrincipalSpec) -> Result<Pin, String> {
        let Some(fp) = &spec.fingerprint else {
            return Ok(Pin(None));
        };
        let clean: String = fp.chars().filter(|c| *c != ':').collect();
        let bytes =
            hex::decode(clean.to_ascii_lowercase()).map_err(|e| format!("tls fingerprint: {e}"))?;
        let pin = bytes
            .try_into()
            .map_err(|_| "tls fingerprint: a SHA-256 fingerprint is 32 bytes".to_string())?;
        Ok(Pin(Some(pin)))
    }
}

/// Decides a `tls` login from what the TLS layer saw.
pub(crate) fn decide(rules: &super::RealmAuth, hello: &HelloInfo<'_>) -> Hello {
    let tls = hello.peer.tls.as_ref();
    let (Some(cn), Some(sha)) = (
        tls.and_then(|t| t.client_cn.as_deref()),
        tls.and_then(|t| t.client_sha256.as_ref()),
    ) else {
        return Hello::Refuse(Refusal::FAILED);
    };
    if hello.authid.is_some_and(|a| a != cn) {
        return Hello::Refuse(Refusal::FAILED);
    }
    let Some(p) = rules.principals.get(cn) else {
        return Hello::Refuse(Refusal::FAILED);
    };
    let pinned_ok = match &p.tls {
        Some(Pin(Some(pin))) => ct_eq(pin, sha),
        Some(Pin(None)) => true,
        None => false,
    };
    if !pinned_ok {
        return Hello::Refuse(Refusal::FAILED);
    }
    Hello::Welcome(Authenticated {
        authid: p.authid.clone(),
        authrole: p.role.clone(),
        authmethod: METHOD.to_string(),
        authprovider: "static".to_string(),
        authextra: Vec::new(),
    })
}
