//! A WELCOME that fits the client's announced maximum message length.
//!
//! A RawSocket client may accept as little as 512 bytes, and a WELCOME listing every feature of
//! the Broker and the Dealer is longer than that; the router must never send a message longer than
//! the client accepts, and a client without its WELCOME has no session. So when the full WELCOME
//! does not fit, ever smaller ones are tried: the feature lists cut down to the features the client
//! announced itself (the ones it can make use of), then the roles without their feature lists (a
//! valid Basic Profile WELCOME), then without the informative attributes. Every client accepts
//! 512 bytes at least, and the smallest form is far below that.

use std::borrow::Cow;

use crate::protocol::features::ClientFeatures;
use crate::protocol::{Message, Val};
use crate::router::session::Peer;
use crate::router::wire::{frame, FrameError};
use crate::router::Router;

/// The forms of WELCOME.Details, largest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Full,
    /// Feature lists cut down to what the client announced.
    Announced,
    /// Roles without feature lists.
    BareRoles,
    /// Bare roles plus what a client needs to know who it is and to check its authentication.
    Minimal,
}

const FORMS: [Form; 4] = [Form::Full, Form::Announced, Form::BareRoles, Form::Minimal];

/// Details attributes that the minimal form keeps: the spec requires `roles`, and a client that
/// authenticated may need to check `authextra` (a SCRAM verifier, say).
const MINIMAL_KEYS: &[&str] = &["roles", "authid", "authrole", "authmethod", "authextra"];

impl Router {
    /// Queues `session`'s WELCOME with `details`, in the largest form that fits the peer's maximum
    /// message length.
    pub(crate) fn send_welcome(
        &self,
        peer: &Peer,
        session: u64,
        details: &Val<'_>,
        announced: ClientFeatures,
    ) {
        for form in FORMS {
            let msg = Message::Welcome {
                session,
                details: compact(details, form, announced),
            };
            match frame(peer.enc, &msg) {
                Ok(b) if b.len() <= peer.outbox.max_frame() => {
                    if form != Form::Full {
                        tracing::debug!(session, ?form, "WELCOME compacted to fit the client");
                    }
                    self.push(peer, b);
                    return;
                }
                Ok(_) | Err(FrameError::TooLarge(_)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot encode WELCOME");
                    return;
                }
            }
        }
        tracing::warn!(
            session,
            "even the minimal WELCOME is longer than the client accepts"
        );
    }
}

/// WELCOME.Details in `form`. Details not built as a dictionary are left as they are.
fn compact<'a>(details: &'a Val<'a>, form: Form, announced: ClientFeatures) -> Val<'a> {
    let Val::Dict(entries) = details else {
        return details.clone();
    };
    let kept = entries
        .iter()
        .filter(|(k, _)| form != Form::Minimal || MINIMAL_KEYS.contains(&k.as_ref()))
        .map(|(k, v)| {
            let v = if k == "roles" {
                compact_roles(v, form, announced)
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect();
    Val::Dict(kept)
}

/// `roles` in `form`: every role stays (the client must learn them), its feature list shrinks.
fn compact_roles<'a>(roles: &Val<'a>, form: Form, announced: ClientFeatures) -> Val<'a> {
    let Val::Dict(roles) = roles else {
        return roles.clone();
    };
    let role = |features: &Val<'a>| -> Val<'a> {
        match (form, features.get("features")) {
            (Form::Full, _) => features.clone(),
            (Form::Announced, Some(Val::Dict(list))) => {
                let kept: Vec<(Cow<'a, str>, Val<'a>)> = list
                    .into_iter()
                    .filter(|(name, _)| announced.announced_name(name.as_ref()))
                    .collect();
                Val::Dict(vec![(Cow::Borrowed("features"), Val::Dict(kept))])
            }
            _ => Val::empty_dict(),
        }
    };
    Val::Dict(roles.iter().map(|(k, v)| (k.clone(), role(v))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details() -> Val<'static> {
        let features = |names: &[&'static str]| {
            Val::Dict(vec![(
                Cow::Borrowed("features"),
                Val::Dict(
                    names
                        .iter()
                        .map(|n| (Cow::Borrowed(*n), Val::Bool(true)))
                        .collect(),
                ),
            )])
        };
        Val::Dict(vec![
            (Cow::Borrowed("realm"), Val::Str("realm1".into())),
            (Cow::Borrowed("authid"), Val::Str("a".into())),
            (Cow::Borrowed("authprovider"), Val::Str("static".into())),
            (
                Cow::Borrowed("roles"),
                Val::Dict(vec![
                    (
                        Cow::Borrowed("broker"),
                        features(&["publisher_exclusion", "event_retention"]),
                    ),
                    (
                        Cow::Borrowed("dealer"),
                        features(&["call_canceling", "call_timeout"]),
                    ),
                ]),
            ),
        ])
    }

    fn features_of(d: &Val<'_>, role: &str) -> Option<Vec<String>> {
        let f = d.get("roles")?.get(role)?.get("features")?;
        match f {
            Val::Dict(list) => Some(list.iter().map(|(k, _)| k.to_string()).collect()),
            _ => None,
        }
    }

    #[test]
    fn each_form_keeps_less() {
        let d = details();
        let announced = ClientFeatures::with(ClientFeatures::CALLER_CALL_CANCELING);
        let full = compact(&d, Form::Full, announced);
        assert_eq!(
            features_of(&full, "dealer"),
            Some(vec!["call_canceling".into(), "call_timeout".into()])
        );
        let cut = compact(&d, Form::Announced, announced);
        assert_eq!(
            features_of(&cut, "dealer"),
            Some(vec!["call_canceling".into()])
        );
        assert_eq!(features_of(&cut, "broker"), Some(vec![]));
        let bare = compact(&d, Form::BareRoles, announced);
        assert!(bare.get("roles").unwrap().get("broker").unwrap().is_dict());
        assert_eq!(features_of(&bare, "broker"), None);
        assert!(bare.get("authprovider").is_some());
        let min = compact(&d, Form::Minimal, announced);
        assert!(min.get("authprovider").is_none() && min.get("realm").is_none());
        assert!(min.get("authid").is_some());
        assert_eq!(min.get("roles").unwrap().dict_len(), Some(2));
    }
}
