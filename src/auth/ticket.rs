//! Ticket: the client sends a shared secret in AUTHENTICATE (only sensible over TLS).

use super::{ct_eq, dict, sha256, Hello, HelloInfo, Pending, Principal, Refusal, Step};

pub const METHOD: &str = "ticket";

/// What is kept of a ticket: its SHA-256, so that the comparison takes the same time whatever the
/// length or content of the guess.
pub(crate) fn digest(ticket: &str) -> [u8; 32] {
    sha256(ticket.as_bytes())
}

/// HELLO asked for ticket: challenge for it (also for an authid the realm does not know).
pub(crate) fn challenge(hello: &HelloInfo<'_>) -> Hello {
    let Some(authid) = hello.authid else {
        return Hello::Refuse(Refusal::FAILED);
    };
    Hello::Challenge {
        authmethod: METHOD,
        extra: dict(Vec::new()),
        pending: Pending {
            realm: hello.realm.to_string(),
            authid: authid.to_string(),
            step: Step::Ticket,
            granted: None,
        },
    }
}

/// AUTHENTICATE.signature is the ticket.
pub(crate) fn verify(p: &Principal, signature: &str) -> Option<Vec<(&'static str, String)>> {
    let expected = p.ticket.as_ref()?;
    ct_eq(&digest(signature), expected).then(Vec::new)
}
