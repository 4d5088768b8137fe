//! The dynamic authenticator: for authids a realm does not list, the router calls a procedure that a
//! trusted session registered (in the realm the config names), as Crossbar does:
//! `authenticate(realm, authid, details)`, `details` carrying `authmethod`, `session`,
//! `transport.peer`, `authextra` (HELLO's) and, for ticket, the `ticket`.
//!
//! Ticket is decided after AUTHENTICATE: the answer is a role string, or a dict with `role` and
//! optionally `authid` and `extra`. WAMP-CRA and cryptosign need the secret or key to challenge with,
//! so the authenticator is asked at HELLO and answers a dict with the credentials: `secret` (and
//! `salt`, `iterations`, `keylen`) for WAMP-CRA, `pubkey` (hex, or a list of them) for cryptosign;
//! the router then challenges and verifies exactly as for a listed principal. SCRAM (`wamp-scram`,
//! `scram`) is asked at HELLO too; its answer is a Crossbar credential (salt, KDF parameters,
//! StoredKey, ServerKey) or a password to derive them from ([`super::scram_answer`]). An ERROR, an
//! answer of the wrong shape, no callee, or no answer in time refuse the login with
//! `wamp.error.authentication_failed`.

use std::borrow::Cow;

use super::scram_answer::ScramAnswer;
use super::{dict, text, Authenticated, Principal, Refusal};
use crate::config::file::{ProcedureRef, WampCraSpec};
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
    /// HELLO.Details.authextra (a challenge method needs its `pubkey` and `channel_binding`).
    pub(crate) authextra: Option<Val<'static>>,
}

/// Credentials the authenticator granted to one login, to challenge it with. A salted WAMP-CRA
/// secret or a SCRAM password still needs its key derived (slow by design), which
/// [`Grant::derive`] does off the shard threads.
pub struct Grant {
    pub(crate) principal: Principal,
    /// Credentials whose key is not derived yet.
    underived: Option<Underived>,
    /// The answer's `extra`, for WELCOME.authextra.
    pub(crate) authextra: AuthExtra,
}

impl Grant {
    /// True while the key derivation is still to run.
    pub fn needs_derivation(&self) -> bool {
        self.underived.is_some()
    }

    /// Runs the key derivation; false if the answer's parameters are unusable.
    pub fn derive(&mut self) -> bool {
        match self.underived.take() {
            None => true,
            Some(Underived::WampCra(spec)) => match super::wampcra::Key::derive(&spec) {
                Ok(key) => {
                    self.principal.wampcra = Some(key);
                    true
                }
                Err(_) => false,
            },
            Some(Underived::Scram { password, params }) => {
                match super::scram::Stored::derive_with(password.as_bytes(), params) {
                    Ok(stored) => {
                        self.principal.scram = Some(stored);
                        true
                    }
                    Err(_) => false,
                }
            }
        }
    }
}

/// Granted credentials whose key is still to be derived.
enum Underived {
    WampCra(WampCraSpec),
    Scram {
        password: String,
        params: super::scram::Params,
    },
}

/// WELCOME.authextra entries.
type AuthExtra = Vec<(Cow<'static, str>, Val<'static>)>;

/// What an authenticator's answer leads to.
pub enum Decided {
    /// Ticket: the login is settled.
    Welcome(Authenticated),
    /// A challenge method: challenge with these credentials.
    Challenge(Box<Grant>),
}

/// `details.transport` as Crossbar names it.
fn transport(peer: &PeerInfo) -> Val<'static> {
    dict(vec![(
        "peer",
        text(
            &peer
                .addr
                .map_or_else(|| "unix".to_string(), |a| format!("tcp:{a}")),
        ),
    )])
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
    let details = dict(vec![
        ("authmethod", text(super::ticket::METHOD)),
        ("authid", text(authid)),
        ("ticket", text(ticket)),
        ("session", Val::UInt(session)),
        ("transport", transport(peer)),
    ]);
    Ask {
        realm: target.realm.clone(),
        procedure: target.procedure.clone(),
        args: Val::List(vec![text(realm), text(authid), details]),
        ctx: AskCtx {
            realm: realm.to_string(),
            authid: authid.to_string(),
            method: super::ticket::METHOD,
            authextra: None,
        },
        timeout: target.answer_timeout(),
    }
}

/// The authenticator call at HELLO for a challenge method (`authid` is null when HELLO has none).
pub(crate) fn ask_hello(
    target: &ProcedureRef,
    method: &'static str,
    hello: &super::HelloInfo<'_>,
) -> Ask {
    let authextra = hello.authextra.and_then(|e| match e {
        Val::Raw(p) => Val::decode(*p).ok().map(Val::into_owned),
        other => Some(other.clone().into_owned()),
    });
    let authid = hello.authid.map_or(Val::Null, text);
    let details = dict(vec![
        ("authmethod", text(method)),
        ("authid", authid.clone()),
        (
            "authextra",
            authextra.clone().unwrap_or_else(Val::empty_dict),
        ),
        ("session", Val::UInt(hello.session)),
        ("transport", transport(hello.peer)),
    ]);
    Ask {
        realm: target.realm.clone(),
        procedure: target.procedure.clone(),
        args: Val::List(vec![text(hello.realm), authid, details]),
        ctx: AskCtx {
            realm: hello.realm.to_string(),
            authid: hello.authid.unwrap_or_default().to_string(),
            method,
            authextra,
        },
        timeout: target.answer_timeout(),
    }
}

/// Reads the authenticator's RESULT arguments (None for an ERROR).
pub(crate) fn judge(ctx: &AskCtx, args: Option<&Val<'_>>) -> Result<Decided, Refusal> {
    let first = match args {
        Some(Val::List(items)) => items.first(),
        _ => None,
    };
    let answer = match first {
        Some(Val::Str(role)) if ctx.method == super::ticket::METHOD => {
            let d = dict(vec![("role", text(role))]);
            return Ok(Decided::Welcome(granted(ctx, &d)?.0));
        }
        Some(d @ Val::Dict(_)) => d,
        _ => return Err(Refusal::FAILED),
    };
    let (who, authextra) = granted(ctx, answer)?;
    let principal = Principal {
        authid: who.authid,
        role: who.authrole,
        ticket: None,
        wampcra: None,
        scram: None,
        cryptosign: Vec::new(),
        tls: None,
    };
    let mut grant = Grant {
        principal,
        underived: None,
        authextra,
    };
    match ctx.method {
        super::ticket::METHOD => {
            return Ok(Decided::Welcome(Authenticated {
                authid: grant.principal.authid,
                authrole: grant.principal.role,
                authmethod: ctx.method.to_string(),
                authprovider: PROVIDER.to_string(),
                authextra: grant.authextra,
            }))
        }
        super::wampcra::METHOD => grant.underived = Some(Underived::WampCra(cra_spec(answer)?)),
        super::cryptosign::METHOD => grant.principal.cryptosign = pubkeys(answer)?,
        m if super::scram::Dialect::from_method(m).is_some() => {
            match super::scram_answer::parse(answer)? {
                ScramAnswer::Keys(stored) => grant.principal.scram = Some(stored),
                ScramAnswer::Password { password, params } => {
                    grant.underived = Some(Underived::Scram { password, params })
                }
            }
        }
        _ => return Err(Refusal::FAILED),
    }
    // An unsalted WAMP-CRA secret is its own key: nothing slow to run.
    let unsalted = matches!(&grant.underived, Some(Underived::WampCra(s)) if s.salt.is_none());
    if unsalted && !grant.derive() {
        return Err(Refusal::FAILED);
    }
    Ok(Decided::Challenge(Box::new(grant)))
}

/// WELCOME.authprovider of every login the authenticator decided.
pub const PROVIDER: &str = "dynamic";

/// The role, authid and extra of an answer dict.
fn granted(ctx: &AskCtx, d: &Val<'_>) -> Result<(Authenticated, AuthExtra), Refusal> {
    let role = d
        .get("role")
        .and_then(|r| r.as_str())
        .filter(|r| !r.is_empty())
        .ok_or(Refusal::FAILED)?;
    let authid = match d.get("authid").filter(|a| !a.is_null()) {
        Some(a) => a.as_str().ok_or(Refusal::FAILED)?.into_owned(),
        None => ctx.authid.clone(),
    };
    if authid.is_empty() {
        return Err(Refusal::FAILED);
    }
    let authextra = match d.get("extra").filter(|e| !e.is_null()) {
        None => Vec::new(),
        Some(Val::Dict(entries)) => entries
            .into_iter()
            .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
            .collect(),
        Some(_) => return Err(Refusal::FAILED),
    };
    let who = Authenticated {
        authid,
        authrole: role.into_owned(),
        authmethod: ctx.method.to_string(),
        authprovider: PROVIDER.to_string(),
        authextra: Vec::new(),
    };
    Ok((who, authextra))
}

/// An optional unsigned attribute that must fit in u32.
pub(super) fn opt_u32(d: &Val<'_>, key: &str) -> Result<Option<u32>, Refusal> {
    match d.get(key).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or(Refusal::FAILED),
    }
}

/// A WAMP-CRA answer's credentials, checked for shape (the key is derived later).
fn cra_spec(d: &Val<'_>) -> Result<WampCraSpec, Refusal> {
    let secret = d.get("secret").and_then(|s| s.as_str());
    let salt = match d.get("salt").filter(|v| !v.is_null()) {
        None => None,
        Some(s) => Some(s.as_str().ok_or(Refusal::FAILED)?.into_owned()),
    };
    let spec = WampCraSpec {
        secret: secret.ok_or(Refusal::FAILED)?.into_owned(),
        salt,
        iterations: opt_u32(d, "iterations")?,
        keylen: opt_u32(d, "keylen")?,
    };
    if spec.iterations == Some(0) || spec.keylen.is_some_and(|k| !(1..=1024).contains(&k)) {
        return Err(Refusal::FAILED);
    }
    Ok(spec)
}

/// A cryptosign answer's `pubkey`: one hex key or a list of them.
fn pubkeys(d: &Val<'_>) -> Result<Vec<[u8; 32]>, Refusal> {
    let parse = |v: &Val<'_>| {
        v.as_str()
            .and_then(|k| super::cryptosign::parse_key(&k).ok())
            .ok_or(Refusal::FAILED)
    };
    let keys = match d.get("pubkey") {
        Some(Val::List(items)) => items.iter().map(parse).collect::<Result<Vec<_>, _>>()?,
        Some(v) => vec![parse(&v)?],
        None => Vec::new(),
    };
    if keys.is_empty() {
        return Err(Refusal::FAILED);
    }
    Ok(keys)
}
