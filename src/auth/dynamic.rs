//! The dynamic authenticator: for authids a realm does not list, the router calls a procedure that a
//! trusted session registered (in the realm the config names), as Crossbar does:
//! `authenticate(realm, authid, details)`, `details` carrying `authmethod`, `ticket`, `session` and
//! `transport.peer`. The answer is a role string, or a dict with `role` and optionally `authid`;
//! an ERROR (or no callee, or no answer in time) refuses the login with
//! `wamp.error.authentication_failed`. Implemented for ticket.

use std::borrow::Cow;

use super::{dict, text, Authenticated, Refusal};
use crate::config::file::ProcedureRef;
use crate::protocol::Val;
use crate::transport::PeerInfo;

/// How long a login waits for the authenticator's answer unless the config says otherwise.
pub const ANSWER_TIMEOUT: std::time::Duration = crate::config::file::DEFAULT_ANSWER_TIMEOUT;

/// A call the router must make before it can decide.
pub struct Ask {
    /// The realm where the procedure is registered.
    pub realm: String,
    pub procedure: String,
    /// `[realm, authid, details]`.
    pub args: Val<'static>,
    pub ctx: AskCtx,
    /// How long the login waits for the answer.
    pub timeout: std::time::Duration,
}

/// What the answer is judged against.
pub struct AskCtx {
    pub(crate) realm: String,
    pub(crate) authid: String,
    pub(crate) method: &'static str,
}

/// The authenticator call for a ticket login.
pub(crate) fn ask_ticket(
    target: &ProcedureRef,
    realm: &str,
    authid: &str,
    ticket: &str,
    session: u64,
    peer: &PeerInfo,
) -> Ask {
    let transport = dict(vec![(
        "peer",
        text(
            &peer
                .addr
                .map_or_else(|| "unix".to_string(), |a| format!("tcp:{a}")),
        ),
    )]);
    let details = dict(vec![
        ("authmethod", text(super::ticket::METHOD)),
        ("ticket", text(ticket)),
        ("session", Val::UInt(session)),
        ("transport", transport),
    ]);
    Ask {
        realm: target.realm.clone(),
        procedure: target.procedure.clone(),
        args: Val::List(vec![text(realm), text(authid), details]),
        ctx: AskCtx {
            realm: realm.to_string(),
            authid: authid.to_string(),
            method: super::ticket::METHOD,
        },
        timeout: target.answer_timeout(),
    }
}

/// Reads the authenticator's RESULT arguments (None for an ERROR).
pub(crate) fn judge(ctx: &AskCtx, args: Option<&Val<'_>>) -> Result<Authenticated, Refusal> {
    let first = match args {
        Some(Val::List(items)) => items.first(),
        _ => None,
    };
    let (role, authid) = match first {
        Some(Val::Str(role)) => (role.clone(), None),
        Some(d @ Val::Dict(_)) => (
            d.get("role")
                .and_then(|r| r.as_str())
                .ok_or(Refusal::FAILED)?,
            d.get("authid").and_then(|a| a.as_str()),
        ),
        _ => return Err(Refusal::FAILED),
    };
    if role.is_empty() {
        return Err(Refusal::FAILED);
    }
    Ok(Authenticated {
        authid: authid.unwrap_or(Cow::Borrowed(&ctx.authid)).into_owned(),
        authrole: role.into_owned(),
        authmethod: ctx.method.to_string(),
        authprovider: "dynamic".to_string(),
        authextra: Vec::new(),
    })
}
