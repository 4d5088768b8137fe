//! Publisher identification: whether a publication's EVENTs name their publisher.
//!
//! The decision is one function so that authorization can take it over: a role may force
//! disclosure (`disclose = ["publisher"]` in its permission: the Broker passes `asked = true`), and
//! a rule that forbids it would answer `wamp.error.option_disallowed.disclose_me`. Every session may
//! disclose itself today.

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
/// (`disclose_me`) or its role's permission forces it.
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
