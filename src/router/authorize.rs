//! Static authorization: what a session's role may do on which URIs, compiled from the
//! configuration's `[[realm.role.permission]]` tables.
//!
//! A decision is made on the shard that receives the request, from a compiled rule set the shard
//! holds (`Arc`, read-only, replaced as a whole on reload): no lock, no cross-thread hop. Each role's
//! permissions live in a [`UriTrie`], the matcher of pattern-based registrations, so that "most
//! specific wins" means exactly what it means for registrations:
//!
//! 1. an `exact` permission for the URI;
//! 2. else the longest matching `prefix` permission (by bytes; `""` with `prefix` matches every URI);
//! 3. else the matching `wildcard` permission with the longest literal run before its first
//!    wildcard component, then before its second, and so on.
//!
//! The winning permission alone decides: its `allow` list says which actions are granted, and a
//! less specific permission cannot add to it (so `com.example.admin.` can take back what
//! `com.example.` gives). A role with no matching permission is denied. A realm without a `[[realm]]`
//! entry is open: everything is allowed, whatever the role.
//!
//! Pattern subscriptions and registrations are authorized by their pattern string, taken as a URI:
//! a role that may subscribe to the prefix `com.example.` may subscribe to the pattern
//! `com.example.` (and to `com.example.x` with `match = "prefix"`).

use std::sync::Arc;

use ahash::AHashMap;
use bytes::Bytes;

use crate::config::file::{Action, Disclose, PermissionSpec, RealmSpec};
use crate::config::load::match_policy;
use crate::protocol::{codes, errors, Message};
use crate::router::trie::UriTrie;
use crate::router::Router;

/// What the winning permission grants.
#[derive(Clone, Copy, Debug, Default)]
struct Grant {
    /// Bit per [`Action`].
    actions: u8,
    /// Bit per [`Disclose`].
    disclose: u8,
}

fn action_bit(a: Action) -> u8 {
    match a {
        Action::Call => 1,
        Action::Register => 2,
        Action::Publish => 4,
        Action::Subscribe => 8,
    }
}

fn disclose_bit(d: Disclose) -> u8 {
    match d {
        Disclose::Caller => 1,
        Disclose::Publisher => 2,
    }
}

/// The permissions of one role.
#[derive(Default)]
pub struct RolePermissions {
    trie: UriTrie<Grant>,
    /// Matches every URI (`uri = ""`, `match = "prefix"`), which the trie cannot hold.
    everything: Option<Grant>,
}

impl RolePermissions {
    /// Compiles a role's permission list (validated by the loader: no duplicate patterns).
    pub fn compile(perms: &[PermissionSpec]) -> Self {
        let mut role = RolePermissions::default();
        for p in perms {
            let grant = Grant {
                actions: p.allow.iter().fold(0, |b, &a| b | action_bit(a)),
                disclose: p.disclose.iter().fold(0, |b, &d| b | disclose_bit(d)),
            };
            let policy = match_policy(p.match_);
            if p.uri.is_empty() && policy == crate::protocol::uri::MatchPolicy::Prefix {
                role.everything = Some(grant);
            } else {
                role.trie.insert(policy, &p.uri, grant);
            }
        }
        role
    }

    /// The most specific permission for `uri`, if any.
    fn winner(&self, uri: &str) -> Option<Grant> {
        match self.trie.best_match(uri) {
            Some((_, _, g)) => Some(*g),
            None => self.everything,
        }
    }

    /// True if the most specific permission for `uri` allows `action`.
    pub fn allows(&self, action: Action, uri: &str) -> bool {
        self.winner(uri)
            .is_some_and(|g| g.actions & action_bit(action) != 0)
    }
}

/// The outcome of the static rules for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// No static permission matches and the realm has a dynamic authorizer: ask it.
    Ask,
}

/// Whether the router reveals who made a call or a publication to its receivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disclosure {
    /// The role's permission says `disclose`: the router discloses whether or not the client asked
    /// (`disclose_me`), so that callees and subscribers can rely on knowing who it was.
    Forced,
    /// Disclosed only if the client asks with `disclose_me = true`; the router never refuses that
    /// request (so `wamp.error.option_disallowed.disclose_me` is never the answer).
    OnRequest,
}

/// What an anonymous session of a realm becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnonymousRole<'a> {
    /// The realm has no rules: any role name will do, everything is allowed.
    Open,
    /// The realm's `anonymous_role`.
    Role(&'a str),
    /// The realm has rules but no `anonymous_role`: anonymous sessions are refused.
    Refused,
}

/// The rules of one realm that has a `[[realm]]` entry.
pub struct RealmRules {
    /// The realm's entry as configured (principals, anonymous role, authenticator, authorizer).
    pub spec: RealmSpec,
    roles: AHashMap<Box<str>, RolePermissions>,
}

impl RealmRules {
    fn compile(spec: &RealmSpec) -> Self {
        RealmRules {
            roles: spec
                .role
                .iter()
                .map(|r| {
                    (
                        r.name.as_str().into(),
                        RolePermissions::compile(&r.permission),
                    )
                })
                .collect(),
            spec: spec.clone(),
        }
    }

    /// The permissions of `role` (None: the role is not defined, so nothing is allowed).
    pub fn role(&self, role: &str) -> Option<&RolePermissions> {
        self.roles.get(role)
    }
}

/// The rules of every realm of a router, by realm index.
#[derive(Default)]
pub struct Rules {
    realms: Vec<Option<RealmRules>>,
    /// Some realm has rules (otherwise nothing needs deciding).
    any: bool,
    /// Some permission says `disclose`: without one, no call or publication needs a second look
    /// at the rules (a role lookup and a trie search per message saved).
    discloses: bool,
}

impl Rules {
    /// Compiles the specs for realms `names` (in the router's realm order); a realm without a spec is
    /// open. Specs of realms not in `names` (added by a reload) are ignored.
    pub fn compile(names: &[Arc<str>], specs: &[RealmSpec]) -> Self {
        let realms: Vec<Option<RealmRules>> = names
            .iter()
            .map(|n| {
                specs
                    .iter()
                    .find(|s| *s.name == **n)
                    .map(RealmRules::compile)
            })
            .collect();
        let any = realms.iter().any(Option::is_some);
        let discloses = realms.iter().flatten().any(|r| {
            r.spec
                .role
                .iter()
                .any(|role| role.permission.iter().any(|p| !p.disclose.is_empty()))
        });
        Rules {
            realms,
            any,
            discloses,
        }
    }

    /// Every realm open (no configured rules).
    pub fn open() -> Self {
        Rules::default()
    }

    /// The rules of realm `realm`; None for an open realm.
    pub fn realm(&self, realm: usize) -> Option<&RealmRules> {
        self.realms.get(realm).and_then(Option::as_ref)
    }

    /// True if a session of role `role` in realm `realm` may do `action` on `uri` by the static
    /// rules alone (a question for the authorizer counts as no).
    #[inline]
    pub fn allows(&self, realm: usize, role: &str, action: Action, uri: &str) -> bool {
        self.decide(realm, role, action, uri) == Decision::Allow
    }

    /// Who decides whether a session of role `role` in realm `realm` may do `action` on `uri`:
    /// the role's most specific matching permission where there is one; otherwise the realm's
    /// dynamic authorizer if it has one (so static rules stay the fast path, and the authorizer
    /// fills the gaps, as the authenticator does for authids not listed); otherwise nobody: denied.
    #[inline]
    pub fn decide(&self, realm: usize, role: &str, action: Action, uri: &str) -> Decision {
        let Some(r) = self.realm(realm) else {
            return Decision::Allow;
        };
        match r.role(role).and_then(|p| p.winner(uri)) {
            Some(g) if g.actions & action_bit(action) != 0 => Decision::Allow,
            Some(_) => Decision::Deny,
            None if r.spec.authorizer.is_some() => Decision::Ask,
            None => Decision::Deny,
        }
    }

    /// Whether a call (`Action::Call`) or publication (`Action::Publish`) by a session of `role` on
    /// `uri` must disclose its sender. The Dealer and Broker apply it where they build INVOCATION
    /// and EVENT details: `Forced` adds the caller's/publisher's session, authid and authrole even
    /// without `disclose_me`.
    pub fn disclosure(&self, realm: usize, role: &str, action: Action, uri: &str) -> Disclosure {
        let wanted = match action {
            Action::Call => Disclose::Caller,
            Action::Publish => Disclose::Publisher,
            _ => return Disclosure::OnRequest,
        };
        let forced = self
            .realm(realm)
            .and_then(|r| r.role(role))
            .and_then(|p| p.winner(uri))
            .is_some_and(|g| g.disclose & disclose_bit(wanted) != 0);
        if forced {
            Disclosure::Forced
        } else {
            Disclosure::OnRequest
        }
    }

    /// True if the router must disclose the sender of `action` (call, publish) on `uri` by a
    /// session of `role` in `realm`, asked or not: `dynamic` when the authorizer's answer said
    /// `disclose`, else the static winner. One flag test when no permission discloses and no
    /// authorizer answered.
    #[inline]
    pub fn forces_disclosure(
        &self,
        dynamic: bool,
        realm: usize,
        role: &str,
        action: Action,
        uri: &str,
    ) -> bool {
        (self.any && dynamic)
            || (self.discloses && self.disclosure(realm, role, action, uri) == Disclosure::Forced)
    }

    /// The role an anonymous session of realm `realm` gets.
    pub fn anonymous_role(&self, realm: usize) -> AnonymousRole<'_> {
        match self.realm(realm) {
            None => AnonymousRole::Open,
            Some(r) => match r.spec.anonymous_role.as_deref() {
                Some(role) => AnonymousRole::Role(role),
                None => AnonymousRole::Refused,
            },
        }
    }
}

/// True for the messages a permission governs (the rest, YIELD above all, skip the decision
/// without a call).
#[inline(always)]
fn asks_permission(msg: &Message<'_>) -> bool {
    matches!(
        msg,
        Message::Call { .. }
            | Message::Register { .. }
            | Message::Subscribe { .. }
            | Message::Publish { .. }
    )
}

/// The action a client message asks for, its request type, request id and URI, and whether a
/// denial is answered (an unacknowledged PUBLISH has no answer: it is dropped silently).
fn request_of<'m>(msg: &'m Message<'_>) -> Option<(Action, u64, u64, &'m str, bool)> {
    match msg {
        Message::Call {
            request, procedure, ..
        } => Some((Action::Call, codes::CALL, *request, procedure, true)),
        Message::Register {
            request, procedure, ..
        } => Some((Action::Register, codes::REGISTER, *request, procedure, true)),
        Message::Subscribe { request, topic, .. } => {
            Some((Action::Subscribe, codes::SUBSCRIBE, *request, topic, true))
        }
        Message::Publish {
            request,
            topic,
            options,
            ..
        } => {
            let ack = options
                .get("acknowledge")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            Some((Action::Publish, codes::PUBLISH, *request, topic, ack))
        }
        _ => None,
    }
}

impl Router {
    /// Replaces the rules this shard decides by (at start and on reload). Sessions keep their role;
    /// decisions from now on read the new rules for it.
    pub fn set_rules(&mut self, rules: Arc<Rules>) {
        self.rules = rules;
        // New rules may name another authorizer, or the same one may answer otherwise now.
        self.authorizer.clear_caches();
    }

    /// The rules this shard decides by.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// True if session `sid` may send `msg` now; otherwise the message was refused (answered with
    /// `wamp.error.not_authorized` where it has an answer) or parked until the realm's dynamic
    /// authorizer has decided (see [`super::authorizer`]), and the caller must not route it.
    #[inline(always)]
    pub(crate) fn authorized(&mut self, sid: u64, msg: &Message<'_>, frame: &Bytes) -> bool {
        !self.rules.any || !asks_permission(msg) || self.decide(sid, msg, frame)
    }

    /// [`Router::authorized`] where some realm has rules: kept out of line so that a router
    /// without rules pays one flag test per message and no call.
    #[inline(never)]
    fn decide(&mut self, sid: u64, msg: &Message<'_>, frame: &Bytes) -> bool {
        self.authorizer.disclose_now = false;
        let Some((req, uri)) = Request::of(msg) else {
            return true;
        };
        let action = req.action;
        let Some(session) = self.sessions.get(&sid) else {
            return true;
        };
        match self
            .rules
            .decide(session.realm, &session.identity.authrole, action, uri)
        {
            Decision::Allow => true,
            Decision::Deny => {
                self.refuse(sid, req, uri, "");
                false
            }
            Decision::Ask => self.ask_authorizer(sid, req, uri, msg, frame),
        }
    }

    /// Answers a refused request with `wamp.error.not_authorized` (an unacknowledged PUBLISH has
    /// no answer: it is dropped); `by` names who refused, for the message.
    pub(crate) fn refuse(&self, sid: u64, req: Request, uri: &str, by: &str) {
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        let role = &session.identity.authrole;
        let action = req.action;
        tracing::debug!(
            session = sid,
            role = &**role,
            ?action,
            uri,
            by,
            "not authorized"
        );
        if req.answered {
            let text = format!("role {role:?} is not authorized to {action:?} {uri:?}{by}");
            self.reply_error_text(
                sid,
                req.request_type,
                req.request,
                errors::NOT_AUTHORIZED,
                &text,
            );
        }
    }
}

/// What a request asks for and how a refusal is answered.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Request {
    pub action: Action,
    pub request_type: u64,
    pub request: u64,
    /// A refusal is answered (false only for an unacknowledged PUBLISH).
    pub answered: bool,
}

impl Request {
    /// The request `msg` makes and its URI; None for messages that need no authorization.
    pub(crate) fn of<'m>(msg: &'m Message<'_>) -> Option<(Request, &'m str)> {
        let (action, request_type, request, uri, answered) = request_of(msg)?;
        Some((
            Request {
                action,
                request_type,
                request,
                answered,
            },
            uri,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::{MatchKind, RoleSpec};

    fn perm(uri: &str, m: MatchKind, allow: &[Action], disclose: &[Disclose]) -> PermissionSpec {
        PermissionSpec {
            uri: uri.into(),
            match_: m,
            allow: allow.to_vec(),
            disclose: disclose.to_vec(),
        }
    }

    fn rules(perms: Vec<PermissionSpec>) -> Rules {
        let spec = RealmSpec {
            name: "r".into(),
            anonymous_role: Some("a".into()),
            role: vec![RoleSpec {
                name: "a".into(),
                permission: perms,
            }],
            ..Default::default()
        };
        Rules::compile(&["r".into(), "open".into()], &[spec])
    }

    use Action::{Call, Publish, Register, Subscribe};
    use MatchKind::{Exact, Prefix, Wildcard};

    #[test]
    fn most_specific_permission_decides() {
        let r = rules(vec![
            perm("com.", Prefix, &[Call, Subscribe], &[]),
            perm("com.admin.", Prefix, &[], &[]),
            perm("com.admin.status", Exact, &[Call], &[]),
            perm("com..open", Wildcard, &[Publish], &[]),
            perm("net.*.x", Wildcard, &[Register], &[]),
            perm("net..x", Wildcard, &[Subscribe], &[]),
        ]);
        let ok = |a, u| r.allows(0, "a", a, u);
        assert!(ok(Call, "com.example.add"));
        assert!(ok(Subscribe, "com.example"));
        assert!(!ok(Publish, "com.example"), "not in the allow list");
        assert!(!ok(Call, "com.admin.reset"), "a longer prefix takes back");
        assert!(ok(Call, "com.admin.status"), "exact beats every prefix");
        assert!(!ok(Subscribe, "com.admin.status"));
        assert!(
            !ok(Publish, "com.x.open"),
            "a matching prefix beats a wildcard"
        );
        assert!(!ok(Call, "org.example"), "no matching permission: denied");
        assert!(ok(Subscribe, "net.a.x"));
        assert!(!ok(Register, "net.a.x"));
        assert!(r.allows(1, "whoever", Register, "any.thing"), "open realm");
        assert!(!r.allows(0, "undefined-role", Call, "com.example.add"));
    }

    #[test]
    fn literal_wildcard_components_count() {
        let r = rules(vec![
            perm("a..c", Wildcard, &[Call], &[]),
            perm("a.b.", Wildcard, &[Subscribe], &[]),
        ]);
        assert!(
            r.allows(0, "a", Subscribe, "a.b.c"),
            "a.b. has the longer literal run"
        );
        assert!(!r.allows(0, "a", Call, "a.b.c"));
        assert!(r.allows(0, "a", Call, "a.x.c"));
    }

    #[test]
    fn empty_prefix_matches_everything_least_specifically() {
        let r = rules(vec![
            perm("", Prefix, &[Call, Publish, Register, Subscribe], &[]),
            perm("wamp.", Prefix, &[Call], &[]),
        ]);
        assert!(r.allows(0, "a", Register, "anything.at.all"));
        assert!(r.allows(0, "a", Call, "wamp.session.count"));
        assert!(!r.allows(0, "a", Subscribe, "wamp.session.on_join"));
    }

    #[test]
    fn disclosure_follows_the_winning_permission() {
        let r = rules(vec![
            perm("com.", Prefix, &[Call, Publish], &[Disclose::Caller]),
            perm("com.pub", Exact, &[Publish], &[Disclose::Publisher]),
        ]);
        assert_eq!(r.disclosure(0, "a", Call, "com.x"), Disclosure::Forced);
        assert_eq!(
            r.disclosure(0, "a", Publish, "com.x"),
            Disclosure::OnRequest
        );
        assert_eq!(r.disclosure(0, "a", Publish, "com.pub"), Disclosure::Forced);
        assert_eq!(r.disclosure(0, "a", Call, "com.pub"), Disclosure::OnRequest);
        assert_eq!(r.disclosure(1, "a", Call, "com.x"), Disclosure::OnRequest);
    }

    #[test]
    fn forced_disclosure_needs_a_disclosing_permission() {
        let r = rules(vec![
            perm("com.", Prefix, &[Call], &[Disclose::Caller]),
            perm("org.", Prefix, &[Call, Publish], &[]),
        ]);
        assert!(r.forces_disclosure(false, 0, "a", Call, "com.x"));
        assert!(!r.forces_disclosure(false, 0, "a", Call, "org.x"));
        // The same grants without any `disclose`: never forced, whatever the URI.
        let quiet = rules(vec![perm("com.", Prefix, &[Call], &[])]);
        assert!(!quiet.forces_disclosure(false, 0, "a", Call, "com.x"));
        assert!(!Rules::open().forces_disclosure(false, 0, "a", Publish, "com.x"));
    }

    #[test]
    fn anonymous_role_per_realm() {
        let r = rules(vec![]);
        assert_eq!(r.anonymous_role(0), AnonymousRole::Role("a"));
        assert_eq!(r.anonymous_role(1), AnonymousRole::Open);
        let closed = Rules::compile(
            &["c".into()],
            &[RealmSpec {
                name: "c".into(),
                ..Default::default()
            }],
        );
        assert_eq!(closed.anonymous_role(0), AnonymousRole::Refused);
    }
}
