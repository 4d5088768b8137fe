//! Publisher identification: whether a publication's EVENTs name their publisher.
//!
//! The decision is one function so that authorization can take it over: a role may forbid
//! disclosure (the publisher then gets `wamp.error.option_disallowed.disclose_me`) or force it.
//! Today every session may disclose itself and none is disclosed unless it asks.

use std::sync::Arc;

use crate::router::session::Session;
use crate::router::wire::EventDetails;

/// What the router does with a publisher's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disclosure {
    Hidden,
    Disclosed,
    /// The publisher asked, and may not: the publication is refused with this error (the spec's
    /// is `wamp.error.option_disallowed.disclose_me`).
    Refused(&'static str),
}

/// Whether the EVENTs of a publication by `publisher` name it, given whether it asked
/// (`disclose_me`). The hook for role-based rules; currently: disclosed exactly when asked.
pub fn publisher_disclosure(publisher: &Session, asked: bool) -> Disclosure {
    let _ = publisher;
    if asked {
        Disclosure::Disclosed
    } else {
        Disclosure::Hidden
    }
}

/// The EVENT Details that name `publisher` (session `sid`).
pub fn publisher_details(sid: u64, publisher: &Session) -> Arc<EventDetails> {
    Arc::new(EventDetails {
        publisher: Some((
            sid,
            publisher.identity.authid.clone(),
            publisher.identity.authrole.clone(),
        )),
        retained: false,
    })
}
