//! Authentication: who a session is, decided between HELLO and WELCOME.
//!
//! A realm without a security spec is open: anonymous sessions join with role `anonymous`. A realm
//! with one lets in the principals it lists, by the methods each has credentials for, and anonymous
//! sessions only when it names an `anonymous_role`.
//!
//! What a failed client learns: `wamp.error.no_matching_auth_method` when the realm offers none of the
//! methods it named (a property of the realm, not of any principal); otherwise every method that
//! needs a secret is challenged — also for authids and keys the realm does not know, with a mock
//! challenge — and every failure is `wamp.error.authentication_failed`. So neither the existence of an
//! authid nor which part of a response was wrong can be probed. `no_such_principal` is never sent.
//! A realm with a dynamic authenticator hands WAMP-CRA, SCRAM and cryptosign logins of unlisted
//! authids to it at HELLO, so its refusals come before any CHALLENGE.
//!
//! Key derivation (PBKDF2, Argon2) runs once per principal when [`Auth::build`] loads the rules,
//! which the server does before any shard starts; a login then costs a few HMACs or one Ed25519
//! verification, so a shard never runs a slow KDF. A salted WAMP-CRA secret or a SCRAM password that
//! the dynamic authenticator hands over at login time is derived on [`worker`]'s threads instead.

pub mod cryptosign;
pub mod dynamic;
pub mod limiter;
pub mod scram;
mod scram_answer;
pub mod ticket;
pub mod tls;
pub mod wampcra;
pub mod worker;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::file::{PrincipalSpec, RealmSpec};
use crate::config::AuthLimits;
use crate::protocol::{errors, Val};
use crate::transport::PeerInfo;

pub use limiter::Limiter;

/// Who a session turned out to be, for WELCOME.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub authid: String,
    pub authrole: String,
    pub authmethod: String,
    pub authprovider: String,
    /// WELCOME.Details.authextra entries (e.g. SCRAM's server signature, a dynamic authenticator's
    /// `extra`).
    pub authextra: Vec<(Cow<'static, str>, Val<'static>)>,
}

/// Why a session is refused: the ABORT reason and a message that names no principal detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: &'static str,
}

impl Refusal {
    pub const FAILED: Refusal = Refusal {
        reason: errors::AUTHENTICATION_FAILED,
        message: "authentication failed",
    };
    const NO_METHOD: Refusal = Refusal {
        reason: errors::NO_MATCHING_AUTH_METHOD,
        message: "this realm offers none of the authentication methods requested",
    };
    const THROTTLED: Refusal = Refusal {
        reason: errors::AUTHENTICATION_FAILED,
        message: "too many failed authentication attempts from this address; try again later",
    };
}

/// What HELLO leads to.
pub enum Hello {
    Welcome(Authenticated),
    Challenge {
        authmethod: &'static str,
        extra: Val<'static>,
        pending: Pending,
    },
    Refuse(Refusal),
    /// The realm's dynamic authenticator holds the credentials: call it, [`Auth::judge`] its
    /// answer, then challenge with [`Auth::challenge_granted`].
    Ask(dynamic::Ask),
}

/// What AUTHENTICATE leads to.
pub enum Verdict {
    Welcome(Authenticated),
    Refuse(Refusal),
    /// The realm's dynamic authenticator decides: call it, then [`Auth::judge`] its answer.
    Ask(dynamic::Ask),
}

/// A handshake between CHALLENGE and AUTHENTICATE.
pub struct Pending {
    realm: String,
    authid: String,
    step: Step,
    /// Credentials the dynamic authenticator granted (None: the realm's listed principal).
    granted: Option<Box<dynamic::Grant>>,
}

/// The method-specific state a CHALLENGE leaves behind.
enum Step {
    Ticket,
    WampCra(wampcra::Sent),
    Scram(scram::Sent),
    Cryptosign(cryptosign::Sent),
}

impl Pending {
    /// The authmethod being performed.
    pub fn method(&self) -> &'static str {
        match &self.step {
            Step::Ticket => ticket::METHOD,
            Step::WampCra(_) => wampcra::METHOD,
            Step::Scram(s) => s.dialect.method(),
            Step::Cryptosign(_) => cryptosign::METHOD,
        }
    }
}

/// One principal with its credentials in the form the checks need (derived keys, decoded keys).
pub(crate) struct Principal {
    pub authid: String,
    pub role: String,
    pub ticket: Option<[u8; 32]>,
    pub wampcra: Option<wampcra::Key>,
    pub scram: Option<scram::Stored>,
    pub cryptosign: Vec<[u8; 32]>,
    pub tls: Option<tls::Pin>,
}

/// One realm's authentication rules.
pub(crate) struct RealmAuth {
    anonymous_role: Option<String>,
    principals: HashMap<String, Principal>,
    /// Public key → authid, for cryptosign logins that name only their key.
    by_pubkey: HashMap<[u8; 32], String>,
    /// Decides authids not listed in `principals`.
    authenticator: Option<crate::config::file::ProcedureRef>,
    /// What a WAMP-CRA challenge for an authid without credentials looks like.
    cra_mock: wampcra::Mock,
}

/// The authentication rules of every realm that has any, and the failure limiter. Shared by all
/// shards (read-only but for the limiter).
pub struct Auth {
    realms: HashMap<String, RealmAuth>,
    /// Shared with the rules a reload builds, so that throttling survives a SIGHUP.
    limiter: Arc<Limiter>,
    /// Keys mock challenges so that they look the same on every attempt for one authid.
    mock_key: [u8; 32],
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            realms: HashMap::new(),
            limiter: Arc::new(Limiter::new(AuthLimits::default())),
            mock_key: random_bytes(),
        }
    }
}

/// The rules of every realm in `specs`, keys derived (slow by design).
fn realms_of(specs: &[RealmSpec]) -> Result<HashMap<String, RealmAuth>, String> {
    specs
        .iter()
        .map(|spec| Ok((spec.name.clone(), RealmAuth::build(spec)?)))
        .collect()
}

impl Auth {
    /// Loads the rules: decodes keys and derives every password-based key (slow by design; call it
    /// off the shard threads).
    pub fn build(specs: &[RealmSpec], limits: AuthLimits) -> Result<Auth, String> {
        Ok(Auth {
            realms: realms_of(specs)?,
            limiter: Arc::new(Limiter::new(limits)),
            mock_key: random_bytes(),
        })
    }

    /// The rules of `specs` (a reloaded file), keeping this one's failure counts and mock key:
    /// a reload neither forgives a throttled address nor changes what an unknown authid sees.
    pub fn rebuild(&self, specs: &[RealmSpec]) -> Result<Auth, String> {
        Ok(Auth {
            realms: realms_of(specs)?,
            limiter: self.limiter.clone(),
            mock_key: self.mock_key,
        })
    }

    /// HELLO to `realm` (which exists) with `details`; `session` is the id WELCOME will carry.
    pub fn hello(&self, realm: &str, details: &Val<'_>, session: u64, peer: &PeerInfo) -> Hello {
        let offered = offered_methods(details);
        let Some(rules) = self.realms.get(realm) else {
            return open_realm(&offered, session);
        };
        if self.limiter.blocked(ip_of(peer)) {
            return Hello::Refuse(Refusal::THROTTLED);
        }
        let Some(method) = offered
            .iter()
            .find(|m| rules.offers(m, peer))
            .map(String::as_str)
        else {
            return Hello::Refuse(Refusal::NO_METHOD);
        };
        let authid = details
            .get("authid")
            .and_then(|v| v.as_str())
            .map(|s| s.into_owned());
        let authextra = details.get("authextra");
        let hello = HelloInfo {
            realm,
            authid: authid.as_deref(),
            authextra: authextra.as_ref(),
            session,
            peer,
        };
        let out = match (&rules.authenticator, rules.dynamic_serves(method, &hello)) {
            // A SCRAM HELLO this server cannot continue is refused before the authenticator is
            // asked (the static path refuses it the same way).
            (Some(_), true)
                if scram::Dialect::from_method(method).is_some()
                    && scram::client_first(&hello).is_none() =>
            {
                Hello::Refuse(Refusal::FAILED)
            }
            (Some(target), true) => {
                Hello::Ask(dynamic::ask_hello(target, method_name(method), &hello))
            }
            _ => self.start(rules, method, &hello),
        };
        if let Hello::Refuse(r) = &out {
            if r.reason == errors::AUTHENTICATION_FAILED {
                self.failed(realm, hello.authid.unwrap_or(""), method, peer);
            }
        }
        out
    }

    fn start(&self, rules: &RealmAuth, method: &str, hello: &HelloInfo<'_>) -> Hello {
        match method {
            "anonymous" => Hello::Welcome(anonymous(
                hello.session,
                rules.anonymous_role.as_deref().unwrap_or("anonymous"),
            )),
            ticket::METHOD => ticket::challenge(hello),
            wampcra::METHOD => wampcra::challenge(rules, hello, &self.mock_key),
            cryptosign::METHOD => cryptosign::challenge(rules, hello),
            tls::METHOD => tls::decide(rules, hello),
            m => match scram::Dialect::from_method(m) {
                Some(d) => scram::challenge(rules, hello, d, &self.mock_key),
                None => Hello::Refuse(Refusal::NO_METHOD),
            },
        }
    }

    /// AUTHENTICATE for a pending handshake of session `session`.
    pub fn authenticate(
        &self,
        pending: Pending,
        signature: &str,
        extra: &Val<'_>,
        session: u64,
        peer: &PeerInfo,
    ) -> Verdict {
        let method = pending.method();
        let rules = self.realms.get(&pending.realm);
        let principal = match &pending.granted {
            Some(g) => Some(&g.principal),
            None => rules.and_then(|r| r.principals.get(&pending.authid)),
        };
        if let (None, Some(target), Step::Ticket) = (
            principal,
            rules.and_then(|r| r.authenticator.as_ref()),
            &pending.step,
        ) {
            return Verdict::Ask(dynamic::ask_ticket(
                target,
                &pending.realm,
                &pending.authid,
                signature,
                session,
                peer,
            ));
        }
        let outcome = match (&pending.step, principal) {
            (_, None) => None,
            (Step::Ticket, Some(p)) => ticket::verify(p, signature),
            (Step::WampCra(sent), Some(p)) => wampcra::verify(p, sent, signature),
            (Step::Scram(sent), Some(p)) => scram::verify(p, sent, signature, extra),
            (Step::Cryptosign(sent), Some(p)) => cryptosign::verify(p, sent, signature),
        };
        match (outcome, principal) {
            (Some(authextra), Some(p)) => {
                let mut authextra: Vec<_> = authextra
                    .into_iter()
                    .map(|(k, v)| (Cow::Borrowed(k), text(&v)))
                    .collect();
                let provider = match &pending.granted {
                    Some(g) => {
                        authextra.extend(g.authextra.iter().cloned());
                        dynamic::PROVIDER
                    }
                    None => "static",
                };
                Verdict::Welcome(Authenticated {
                    authid: p.authid.clone(),
                    authrole: p.role.clone(),
                    authmethod: method.to_string(),
                    authprovider: provider.to_string(),
                    authextra,
                })
            }
            _ => {
                self.failed(&pending.realm, &pending.authid, method, peer);
                Verdict::Refuse(Refusal::FAILED)
            }
        }
    }

    /// The dynamic authenticator's answer: its RESULT's arguments, or None for an ERROR, no callee
    /// or no answer in time.
    pub fn judge(
        &self,
        ctx: &dynamic::AskCtx,
        args: Option<&Val<'_>>,
        peer: &PeerInfo,
    ) -> Result<dynamic::Decided, Refusal> {
        let out = dynamic::judge(ctx, args);
        if out.is_err() {
            self.failed(&ctx.realm, &ctx.authid, ctx.method, peer);
        }
        out
    }

    /// The CHALLENGE for credentials the dynamic authenticator granted (the key derived, if any).
    pub fn challenge_granted(
        &self,
        ctx: &dynamic::AskCtx,
        grant: Box<dynamic::Grant>,
        session: u64,
        peer: &PeerInfo,
    ) -> Hello {
        if grant.needs_derivation() {
            return self.refuse_granted(ctx, peer);
        }
        let hello = HelloInfo {
            realm: &ctx.realm,
            authid: Some(&grant.principal.authid),
            authextra: ctx.authextra.as_ref(),
            session,
            peer,
        };
        let out = match ctx.method {
            wampcra::METHOD => {
                wampcra::challenge_as(Some(&grant.principal), &hello, dynamic::PROVIDER)
            }
            cryptosign::METHOD => cryptosign::challenge_as(grant.principal.authid.clone(), &hello),
            m => match (scram::Dialect::from_method(m), &grant.principal.scram) {
                // The AuthMessage names the authid the client sent, whatever WELCOME will name.
                (Some(d), Some(stored)) => scram::challenge_as(
                    Some(stored),
                    &HelloInfo {
                        authid: Some(&ctx.authid),
                        ..hello
                    },
                    d,
                    &self.mock_key,
                ),
                _ => Hello::Refuse(Refusal::FAILED),
            },
        };
        match out {
            Hello::Challenge {
                authmethod,
                extra,
                mut pending,
            } => {
                pending.granted = Some(grant);
                Hello::Challenge {
                    authmethod,
                    extra,
                    pending,
                }
            }
            _ => self.refuse_granted(ctx, peer),
        }
    }

    /// A grant that cannot be used (its key parameters are unusable, or the channel binding asked
    /// for is not available): a failure like any other.
    pub fn refuse_granted(&self, ctx: &dynamic::AskCtx, peer: &PeerInfo) -> Hello {
        self.failed(&ctx.realm, &ctx.authid, ctx.method, peer);
        Hello::Refuse(Refusal::FAILED)
    }

    /// Logs a failed attempt and counts it against the source address.
    fn failed(&self, realm: &str, authid: &str, method: &str, peer: &PeerInfo) {
        let addr = ip_of(peer);
        tracing::warn!(
            realm,
            authid,
            authmethod = method,
            address = ?addr,
            "authentication failed"
        );
        self.limiter.record_failure(addr);
        crate::metrics::auth_failure(method);
    }
}

/// What one HELLO says, for the method modules.
pub(crate) struct HelloInfo<'a> {
    pub realm: &'a str,
    pub authid: Option<&'a str>,
    pub authextra: Option<&'a Val<'a>>,
    pub session: u64,
    pub peer: &'a PeerInfo,
}

impl HelloInfo<'_> {
    /// A string attribute of HELLO.Details.authextra.
    pub fn extra_str(&self, key: &str) -> Option<String> {
        self.authextra?
            .get(key)
            .and_then(|v| v.as_str())
            .map(|s| s.into_owned())
    }
}

impl RealmAuth {
    fn build(spec: &RealmSpec) -> Result<RealmAuth, String> {
        let mut principals = HashMap::new();
        let mut by_pubkey = HashMap::new();
        for p in &spec.principal {
            let built = Principal::build(p)
                .map_err(|e| format!("realm {:?}, principal {:?}: {e}", spec.name, p.authid))?;
            for key in &built.cryptosign {
                by_pubkey.insert(*key, built.authid.clone());
            }
            principals.insert(p.authid.clone(), built);
        }
        Ok(RealmAuth {
            anonymous_role: spec.anonymous_role.clone(),
            cra_mock: wampcra::Mock::of(principals.values()),
            principals,
            by_pubkey,
            authenticator: spec.authenticator.clone(),
        })
    }

    /// True if this realm can perform `method` at all (for some principal), so that choosing it
    /// reveals nothing about the authid asked for.
    fn offers(&self, method: &str, peer: &PeerInfo) -> bool {
        let any = |f: fn(&Principal) -> bool| self.principals.values().any(f);
        match method {
            "anonymous" => self.anonymous_role.is_some(),
            ticket::METHOD => self.authenticator.is_some() || any(|p| p.ticket.is_some()),
            wampcra::METHOD => self.authenticator.is_some() || any(|p| p.wampcra.is_some()),
            cryptosign::METHOD => self.authenticator.is_some() || !self.by_pubkey.is_empty(),
            tls::METHOD => peer.tls.is_some() && any(|p| p.tls.is_some()),
            m => {
                scram::Dialect::from_method(m).is_some()
                    && (self.authenticator.is_some() || any(|p| p.scram.is_some()))
            }
        }
    }
}

impl RealmAuth {
    /// True if the dynamic authenticator (when the realm has one) decides this HELLO: a challenge
    /// method it serves, for an authid (or, for cryptosign without authid, a key) the realm does not
    /// list. Ticket logins are decided after AUTHENTICATE instead.
    fn dynamic_serves(&self, method: &str, hello: &HelloInfo<'_>) -> bool {
        let listed = |a: &str| self.principals.contains_key(a);
        match (method, hello.authid) {
            (wampcra::METHOD, Some(a)) => !listed(a),
            (cryptosign::METHOD, Some(a)) => !listed(a),
            (m, Some(a)) if scram::Dialect::from_method(m).is_some() => !listed(a),
            (cryptosign::METHOD, None) => !hello
                .extra_str("pubkey")
                .and_then(|k| cryptosign::parse_key(&k).ok())
                .is_some_and(|k| self.by_pubkey.contains_key(&k)),
            _ => false,
        }
    }
}

/// The `&'static` name of a method the dynamic path serves.
fn method_name(method: &str) -> &'static str {
    match method {
        wampcra::METHOD => wampcra::METHOD,
        m => scram::Dialect::from_method(m).map_or(cryptosign::METHOD, scram::Dialect::method),
    }
}

impl Principal {
    fn build(p: &PrincipalSpec) -> Result<Principal, String> {
        let cryptosign = p
            .cryptosign
            .iter()
            .flatten()
            .map(|k| cryptosign::parse_key(k))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Principal {
            authid: p.authid.clone(),
            role: p.role.clone(),
            ticket: p.ticket.as_deref().map(ticket::digest),
            wampcra: p.wampcra.as_ref().map(wampcra::Key::derive).transpose()?,
            scram: p.scram.as_ref().map(scram::Stored::derive).transpose()?,
            cryptosign,
            tls: p.tls.as_ref().map(tls::Pin::parse).transpose()?,
        })
    }
}

/// A realm without rules: anonymous only, with role `anonymous`.
fn open_realm(offered: &[String], session: u64) -> Hello {
    if offered.is_empty() || offered.iter().any(|m| m == "anonymous") {
        Hello::Welcome(anonymous(session, "anonymous"))
    } else {
        Hello::Refuse(Refusal {
            reason: errors::NO_MATCHING_AUTH_METHOD,
            message: "this realm accepts only the authmethod 'anonymous'",
        })
    }
}

fn anonymous(session: u64, role: &str) -> Authenticated {
    Authenticated {
        authid: format!("anonymous-{session}"),
        authrole: role.to_string(),
        authmethod: "anonymous".to_string(),
        authprovider: "static".to_string(),
        authextra: Vec::new(),
    }
}

/// HELLO.Details.authmethods in the client's order of preference; absent or empty means anonymous.
/// A wrongly typed attribute is ignored like an unknown one.
pub fn offered_methods(details: &Val<'_>) -> Vec<String> {
    let Some(methods) = details.get("authmethods") else {
        return vec!["anonymous".to_string()];
    };
    let decoded = match methods {
        Val::Raw(p) => Val::decode(p).ok(),
        other => Some(other),
    };
    let names: Vec<String> = match decoded {
        Some(Val::List(items)) => items
            .iter()
            .filter_map(|m| m.as_str().map(Cow::into_owned))
            .collect(),
        Some(Val::Str(m)) => vec![m.into_owned()],
        _ => Vec::new(),
    };
    if names.is_empty() {
        vec!["anonymous".to_string()]
    } else {
        names
    }
}

fn ip_of(peer: &PeerInfo) -> Option<IpAddr> {
    peer.addr.map(|a| a.ip())
}

// ---- primitives shared by the methods ----------------------------------------------------------

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system's random source");
    b
}

pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Equality that takes the same time wherever the inputs differ.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) fn unb64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

pub(crate) fn text(s: &str) -> Val<'static> {
    Val::Str(Cow::Owned(s.to_string()))
}

pub(crate) fn dict(entries: Vec<(&'static str, Val<'static>)>) -> Val<'static> {
    Val::Dict(
        entries
            .into_iter()
            .map(|(k, v)| (Cow::Borrowed(k), v))
            .collect(),
    )
}

#[cfg(test)]
mod tests;
