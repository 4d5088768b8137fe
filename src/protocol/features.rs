//! Advanced-profile features: which ones a client announced in HELLO.Details.roles, and which ones
//! this router announces in WELCOME.
//!
//! The router changes what it sends to a peer only for features that peer announced (the spec's
//! rule: INTERRUPT only to callees with `call_canceling`, progressive RESULTs only to callers with
//! `progressive_call_results`, payload passthru only between peers that announced it, ...).

use super::Val;

/// The features a client announced, one bit per (role, feature) the router acts on.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ClientFeatures(u32);

/// One announceable (role, feature) pair and its bit.
struct Known {
    role: &'static str,
    feature: &'static str,
    bit: u32,
}

impl ClientFeatures {
    pub const CALLER_CALL_CANCELING: u32 = 1 << 0;
    pub const CALLER_PROGRESSIVE_RESULTS: u32 = 1 << 1;
    pub const CALLER_PROGRESSIVE_INVOCATIONS: u32 = 1 << 2;
    pub const CALLER_CALL_TIMEOUT: u32 = 1 << 3;
    pub const CALLER_IDENTIFICATION: u32 = 1 << 4;
    pub const CALLEE_CALL_CANCELING: u32 = 1 << 5;
    pub const CALLEE_PROGRESSIVE_RESULTS: u32 = 1 << 6;
    pub const CALLEE_PROGRESSIVE_INVOCATIONS: u32 = 1 << 7;
    pub const CALLEE_CALL_TIMEOUT: u32 = 1 << 8;
    pub const CALLEE_CALLER_IDENTIFICATION: u32 = 1 << 9;
    pub const CALLEE_SHARED_REGISTRATION: u32 = 1 << 10;
    pub const PUBLISHER_IDENTIFICATION: u32 = 1 << 11;
    pub const PUBLISHER_EXCLUSION: u32 = 1 << 12;
    pub const SUBSCRIBER_PUBLISHER_IDENTIFICATION: u32 = 1 << 13;
    pub const SUBSCRIBER_BLACKWHITE_LISTING: u32 = 1 << 14;
    /// `payload_passthru_mode` announced in any role.
    pub const PAYLOAD_PASSTHRU: u32 = 1 << 15;

    const KNOWN: &'static [Known] = &[
        k("caller", "call_canceling", Self::CALLER_CALL_CANCELING),
        k(
            "caller",
            "progressive_call_results",
            Self::CALLER_PROGRESSIVE_RESULTS,
        ),
        k(
            "caller",
            "progressive_call_invocations",
            Self::CALLER_PROGRESSIVE_INVOCATIONS,
        ),
        k("caller", "call_timeout", Self::CALLER_CALL_TIMEOUT),
        k(
            "caller",
            "caller_identification",
            Self::CALLER_IDENTIFICATION,
        ),
        k("callee", "call_canceling", Self::CALLEE_CALL_CANCELING),
        k(
            "callee",
            "progressive_call_results",
            Self::CALLEE_PROGRESSIVE_RESULTS,
        ),
        k(
            "callee",
            "progressive_call_invocations",
            Self::CALLEE_PROGRESSIVE_INVOCATIONS,
        ),
        k("callee", "call_timeout", Self::CALLEE_CALL_TIMEOUT),
        k(
            "callee",
            "caller_identification",
            Self::CALLEE_CALLER_IDENTIFICATION,
        ),
        k(
            "callee",
            "shared_registration",
            Self::CALLEE_SHARED_REGISTRATION,
        ),
        k(
            "publisher",
            "publisher_identification",
            Self::PUBLISHER_IDENTIFICATION,
        ),
        k(
            "publisher",
            "publisher_exclusion",
            Self::PUBLISHER_EXCLUSION,
        ),
        k(
            "subscriber",
            "publisher_identification",
            Self::SUBSCRIBER_PUBLISHER_IDENTIFICATION,
        ),
        k(
            "subscriber",
            "subscriber_blackwhite_listing",
            Self::SUBSCRIBER_BLACKWHITE_LISTING,
        ),
        k("caller", "payload_passthru_mode", Self::PAYLOAD_PASSTHRU),
        k("callee", "payload_passthru_mode", Self::PAYLOAD_PASSTHRU),
        k("publisher", "payload_passthru_mode", Self::PAYLOAD_PASSTHRU),
        k(
            "subscriber",
            "payload_passthru_mode",
            Self::PAYLOAD_PASSTHRU,
        ),
    ];

    /// Reads `HELLO.Details.roles.<role>.features.<feature> = true` for every feature the router
    /// acts on. Anything malformed counts as not announced (HELLO attributes of the wrong type are
    /// ignored like unknown ones).
    pub fn from_hello(details: &Val<'_>) -> Self {
        let Some(roles) = details.get("roles") else {
            return Self::default();
        };
        let mut bits = 0;
        for known in Self::KNOWN {
            let announced = roles
                .get(known.role)
                .and_then(|r| r.get("features"))
                .and_then(|f| f.get(known.feature))
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            if announced {
                bits |= known.bit;
            }
        }
        ClientFeatures(bits)
    }

    /// True if every bit of `bits` was announced.
    pub fn has(self, bits: u32) -> bool {
        self.0 & bits == bits
    }

    /// True if the client announced a feature named `feature` in any role: a WELCOME cut down to
    /// fit the client keeps those of the router's features the client can make use of.
    pub fn announced_name(self, feature: &str) -> bool {
        Self::KNOWN
            .iter()
            .any(|k| k.feature == feature && self.has(k.bit))
    }

    /// A set with exactly `bits` (tests, internal sessions).
    pub fn with(bits: u32) -> Self {
        ClientFeatures(bits)
    }
}

const fn k(role: &'static str, feature: &'static str, bit: u32) -> Known {
    Known { role, feature, bit }
}

/// Features the Broker announces in WELCOME. A feature is listed here only once it works across
/// shards and is tested.
pub const BROKER_FEATURES: &[&str] = &[
    "publisher_exclusion",
    "pattern_based_subscription",
    "subscriber_blackwhite_listing",
    "publisher_identification",
    "event_retention",
    "session_meta_api",
    "subscription_meta_api",
    "event_history",
    "payload_passthru_mode",
];

/// Features the Dealer announces in WELCOME (same rule as [`BROKER_FEATURES`]).
pub const DEALER_FEATURES: &[&str] = &[
    "pattern_based_registration",
    "caller_identification",
    "progressive_call_results",
    "call_timeout",
    "call_canceling",
    "progressive_call_invocations",
    "shared_registration",
    "session_meta_api",
    "registration_meta_api",
    "testament_meta_api",
    "payload_passthru_mode",
    "sharded_registration",
    "call_reroute",
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn dict(entries: Vec<(&'static str, Val<'static>)>) -> Val<'static> {
        Val::Dict(
            entries
                .into_iter()
                .map(|(k, v)| (Cow::Borrowed(k), v))
                .collect(),
        )
    }

    #[test]
    fn reads_announced_features_per_role() {
        let hello = dict(vec![(
            "roles",
            dict(vec![
                (
                    "caller",
                    dict(vec![(
                        "features",
                        dict(vec![("progressive_call_results", Val::Bool(true))]),
                    )]),
                ),
                (
                    "callee",
                    dict(vec![(
                        "features",
                        dict(vec![
                            ("call_canceling", Val::Bool(true)),
                            ("progressive_call_results", Val::Bool(false)),
                        ]),
                    )]),
                ),
            ]),
        )]);
        let f = ClientFeatures::from_hello(&hello);
        assert!(f.has(ClientFeatures::CALLER_PROGRESSIVE_RESULTS));
        assert!(f.has(ClientFeatures::CALLEE_CALL_CANCELING));
        assert!(!f.has(ClientFeatures::CALLEE_PROGRESSIVE_RESULTS));
        assert!(!f.has(ClientFeatures::CALLER_CALL_CANCELING));
    }

    #[test]
    fn malformed_roles_announce_nothing() {
        let hello = dict(vec![("roles", Val::Str(Cow::Borrowed("caller")))]);
        assert_eq!(
            ClientFeatures::from_hello(&hello),
            ClientFeatures::default()
        );
        assert_eq!(
            ClientFeatures::from_hello(&Val::empty_dict()),
            ClientFeatures::default()
        );
    }
}
