//! Subscriber black- and whitelisting: which subscribers of a publication may receive it.
//!
//! A publication's filter is decided once, on the publisher's shard, and travels by reference with
//! the shared EVENT to every shard that delivers it; each delivering shard applies it to its own
//! subscribers, whose identity only it knows. A publication without listing options carries no
//! filter at all, so the plain path pays one `None` check per subscriber.

use std::borrow::Cow;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::protocol::message::id_value;
use crate::protocol::Val;
use crate::router::session::Identity;

/// The PUBLISH options that restrict receivers, in the spec's order.
pub const LISTING_OPTIONS: [&str; 6] = [
    "exclude",
    "exclude_authid",
    "exclude_authrole",
    "eligible",
    "eligible_authid",
    "eligible_authrole",
];

/// The receivers a publisher allowed. Session ids are sorted for binary search; authid/authrole
/// lists are short in practice and compared linearly.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// A 256-bit summary of `exclude` and `eligible` (one bit per id, by hash): a subscriber whose
    /// bit is clear is in neither list, which settles most subscribers of a large fanout without
    /// a search.
    listed: [u64; 4],
    /// Some authid/authrole condition exists (see [`EventFilter::needs_identity`]).
    identity: bool,
    exclude: Box<[u64]>,
    eligible: Option<Box<[u64]>>,
    exclude_authid: Box<[Arc<str>]>,
    exclude_authrole: Box<[Arc<str>]>,
    eligible_authid: Option<Box<[Arc<str>]>>,
    eligible_authrole: Option<Box<[Arc<str>]>>,
}

impl EventFilter {
    /// The filter PUBLISH.Options ask for; None when they name no listing option, so that
    /// unfiltered publications carry nothing. Values were type-checked at parse (`CHECKED`); one
    /// that is null counts as absent.
    pub fn from_options(options: &Val<'_>) -> Option<Self> {
        if options.dict_len() == Some(0) {
            return None;
        }
        let present = |key: &str| options.lookup(key).filter(|v| !v.is_null());
        if LISTING_OPTIONS.iter().all(|k| present(k).is_none()) {
            return None;
        }
        let ids = |key: &str| present(key).map(|v| sorted_ids(&v));
        let names = |key: &str| present(key).map(|v| names(&v));
        let mut filter = EventFilter {
            listed: [0; 4],
            identity: false,
            exclude: ids("exclude").unwrap_or_default(),
            eligible: ids("eligible"),
            exclude_authid: names("exclude_authid").unwrap_or_default(),
            exclude_authrole: names("exclude_authrole").unwrap_or_default(),
            eligible_authid: names("eligible_authid"),
            eligible_authrole: names("eligible_authrole"),
        };
        for &id in filter
            .exclude
            .iter()
            .chain(filter.eligible.iter().flatten())
        {
            let (word, bit) = summary_bit(id);
            filter.listed[word] |= bit;
        }
        filter.identity = !filter.exclude_authid.is_empty()
            || !filter.exclude_authrole.is_empty()
            || filter.eligible_authid.is_some()
            || filter.eligible_authrole.is_some();
        Some(filter)
    }

    /// False only if `session` is certainly in neither id list.
    #[inline(always)]
    fn maybe_listed(&self, session: u64) -> bool {
        let (word, bit) = summary_bit(session);
        self.listed[word] & bit != 0
    }

    /// True when deciding needs the subscriber's authid or authrole (not just its session id).
    #[inline(always)]
    pub fn needs_identity(&self) -> bool {
        self.identity
    }

    /// True if the subscriber `session` (with identity `who`, where known) may receive the event:
    /// the spec's six conditions, all of them. A subscriber whose identity is unknown is refused
    /// whenever an identity condition exists, so a filter never leaks to someone it might exclude.
    #[inline(always)]
    pub fn admits(&self, session: u64, who: Option<&Identity>) -> bool {
        let listed = self.maybe_listed(session);
        if listed && self.exclude.binary_search(&session).is_ok() {
            return false;
        }
        if let Some(e) = &self.eligible {
            if !listed || e.binary_search(&session).is_err() {
                return false;
            }
        }
        !self.identity || self.admits_identity(who)
    }

    /// The authid/authrole conditions.
    #[inline(never)]
    fn admits_identity(&self, who: Option<&Identity>) -> bool {
        let Some(who) = who else {
            return false;
        };
        !contains(&self.exclude_authid, &who.authid)
            && !contains(&self.exclude_authrole, &who.authrole)
            && self
                .eligible_authid
                .as_ref()
                .is_none_or(|l| contains(l, &who.authid))
            && self
                .eligible_authrole
                .as_ref()
                .is_none_or(|l| contains(l, &who.authrole))
    }
}

impl EventFilter {
    /// The parts of the id lists that concern one shard, where that settles its subscribers more
    /// cheaply than [`EventFilter::admits`] does one by one: only when no authid/authrole condition
    /// exists, the lists are short next to the `fanout` to decide, and at most [`LOCAL_IDS`] ids of
    /// each list are sessions of the shard (`is_here`). In a large fanout the excluded sessions are
    /// usually on other shards or none at all, and the delivery loop is then the unfiltered one.
    pub fn on_shard(&self, fanout: usize, is_here: impl Fn(u64) -> bool) -> Option<ShardLists> {
        let listed = self.exclude.len() + self.eligible.as_ref().map_or(0, |e| e.len());
        if self.identity || listed * 2 > fanout {
            return None;
        }
        let here = |ids: &[u64]| -> Option<SmallVec<[u64; LOCAL_IDS]>> {
            let mut out = SmallVec::new();
            for &id in ids.iter().filter(|&&id| is_here(id)) {
                if out.len() == LOCAL_IDS {
                    return None;
                }
                out.push(id);
            }
            Some(out)
        };
        Some(ShardLists {
            exclude: here(&self.exclude)?,
            eligible: match &self.eligible {
                Some(e) => Some(here(e)?),
                None => None,
            },
        })
    }
}

/// How many ids of one list a shard may hold for [`EventFilter::on_shard`] to apply.
pub const LOCAL_IDS: usize = 8;

/// The listed session ids that are on one shard (see [`EventFilter::on_shard`]).
#[derive(Debug, PartialEq, Eq)]
pub struct ShardLists {
    exclude: SmallVec<[u64; LOCAL_IDS]>,
    eligible: Option<SmallVec<[u64; LOCAL_IDS]>>,
}

impl ShardLists {
    /// Nothing on this shard is excluded by the lists: every subscriber here receives.
    #[inline(always)]
    pub fn admit_all(&self) -> bool {
        self.exclude.is_empty() && self.eligible.is_none()
    }

    /// No subscriber here can receive (a white list none of whose ids is on this shard).
    #[inline(always)]
    pub fn admit_none(&self) -> bool {
        self.eligible.as_ref().is_some_and(|e| e.is_empty())
    }

    #[inline(always)]
    pub fn admits(&self, session: u64) -> bool {
        !self.exclude.contains(&session)
            && self.eligible.as_ref().is_none_or(|e| e.contains(&session))
    }
}

/// The word and bit of `id` in [`EventFilter::listed`]: the top eight bits of a multiplicative
/// hash (session ids are random, but a multiply spreads any id set evenly).
#[inline(always)]
fn summary_bit(id: u64) -> (usize, u64) {
    let h = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize;
    (h >> 6, 1u64 << (h & 63))
}

fn contains(list: &[Arc<str>], name: &str) -> bool {
    list.iter().any(|n| &**n == name)
}

/// The items of a list value: lent when decoded already, else decoded (options are small; the
/// payload is never touched).
fn items<'v, 'a>(v: &'v Val<'a>) -> Cow<'v, [Val<'a>]> {
    match v {
        Val::List(items) => Cow::Borrowed(items),
        Val::Raw(p) => match Val::decode(*p) {
            Ok(Val::List(items)) => Cow::Owned(items),
            _ => Cow::Borrowed(&[]),
        },
        _ => Cow::Borrowed(&[]),
    }
}

fn sorted_ids(v: &Val<'_>) -> Box<[u64]> {
    let mut ids: Vec<u64> = items(v).iter().filter_map(id_value).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_boxed_slice()
}

fn names(v: &Val<'_>) -> Box<[Arc<str>]> {
    items(v)
        .iter()
        .filter_map(|i| i.as_str().map(|s| Arc::from(s.as_ref())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Message, Serializer};

    /// A repeatable stream of pseudo-random ids.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// Ids as the inside of a JSON list.
    fn list(ids: &[u64]) -> String {
        ids.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn options(json: &str) -> Option<EventFilter> {
        let frame = format!(r#"[16, 1, {json}, "t"]"#);
        let m = Message::parse(Serializer::Json, frame.as_bytes()).unwrap();
        let Message::Publish { options, .. } = m else {
            panic!()
        };
        EventFilter::from_options(&options)
    }

    fn who(authid: &str, authrole: &str) -> Identity {
        let mut i = Identity::anonymous(1, authrole);
        i.authid = Arc::from(authid);
        i
    }

    #[test]
    fn no_listing_option_means_no_filter() {
        assert_eq!(options("{}"), None);
        assert_eq!(options(r#"{"acknowledge": true, "exclude": null}"#), None);
    }

    #[test]
    fn session_lists() {
        let f = options(r#"{"exclude": [9, 3, 7], "eligible": [3, 4, 9]}"#).unwrap();
        assert!(!f.needs_identity());
        assert!(f.admits(4, None));
        assert!(!f.admits(3, None), "excluded wins over eligible");
        assert!(!f.admits(5, None), "not eligible");
        let float = options(r#"{"exclude": [9.0]}"#).unwrap();
        assert!(!float.admits(9, None), "an integral double is an id");
        let none = options(r#"{"eligible": []}"#).unwrap();
        assert!(!none.admits(4, None), "an empty whitelist admits nobody");
    }

    #[test]
    fn identity_lists_combine() {
        let f = options(
            r#"{"eligible_authrole": ["staff", "boss"], "exclude_authid": ["mallory"],
                "eligible_authid": ["alice", "mallory", "bob"], "exclude_authrole": ["boss"]}"#,
        )
        .unwrap();
        assert!(f.needs_identity());
        assert!(f.admits(1, Some(&who("alice", "staff"))));
        assert!(!f.admits(1, Some(&who("mallory", "staff"))));
        assert!(!f.admits(1, Some(&who("bob", "boss"))));
        assert!(!f.admits(1, Some(&who("carol", "staff"))));
        assert!(!f.admits(1, None), "unknown identity is refused");
    }

    #[test]
    fn the_id_summary_never_changes_a_decision() {
        // Enough ids that most summary bits are set: every subscriber is still decided exactly.
        let mut rand = xorshift(0x2545_f491_4f6c_dd1d);
        let mut next = move || rand() % (1 << 53) + 1;
        let listed: Vec<u64> = (0..300).map(|_| next()).collect();
        let others: Vec<u64> = (0..20_000).map(|_| next()).collect();
        let excl = options(&format!(r#"{{"exclude": [{}]}}"#, list(&listed))).unwrap();
        let elig = options(&format!(r#"{{"eligible": [{}]}}"#, list(&listed))).unwrap();
        for id in &listed {
            assert!(!excl.admits(*id, None));
            assert!(elig.admits(*id, None));
        }
        for id in others.iter().filter(|i| !listed.contains(i)) {
            assert!(excl.admits(*id, None));
            assert!(!elig.admits(*id, None));
        }
    }

    /// Whatever ids of the lists a shard holds, the shard's shortcut either declines or decides
    /// every one of its subscribers exactly as `admits` does.
    #[test]
    fn a_shard_shortcut_decides_as_the_full_filter() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let (mut taken, mut declined) = (0, 0);
        for round in 0..400 {
            // This shard's subscribers, and the ids of sessions elsewhere or gone.
            let here: Vec<u64> = (0..1 + next() % 60).map(|_| 1 + next() % 500).collect();
            let pick = |n: u64, next: &mut dyn FnMut() -> u64| -> Vec<u64> {
                (0..n)
                    .map(|_| match next() % 3 {
                        0 => here[(next() % here.len() as u64) as usize],
                        _ => 1000 + next() % 500,
                    })
                    .collect()
            };
            let exclude = pick(next() % 14, &mut next);
            let eligible = pick(next() % 14, &mut next);
            let json = match round % 3 {
                0 => format!(r#"{{"exclude": [{}]}}"#, list(&exclude)),
                1 => format!(r#"{{"eligible": [{}]}}"#, list(&eligible)),
                _ => format!(
                    r#"{{"exclude": [{}], "eligible": [{}]}}"#,
                    list(&exclude),
                    list(&eligible)
                ),
            };
            let f = options(&json).unwrap();
            let Some(lists) = f.on_shard(here.len(), |id| here.contains(&id)) else {
                declined += 1;
                continue;
            };
            taken += 1;
            for &id in &here {
                let shortcut = if lists.admit_all() {
                    true
                } else if lists.admit_none() {
                    false
                } else {
                    lists.admits(id)
                };
                assert_eq!(shortcut, f.admits(id, None), "{json}, subscriber {id}");
            }
        }
        assert!(
            taken > 100 && declined > 20,
            "{taken} taken, {declined} declined"
        );
    }

    #[test]
    fn identity_conditions_and_long_lists_take_the_full_filter() {
        let f = options(r#"{"exclude": [1], "exclude_authrole": ["x"]}"#).unwrap();
        assert!(f.on_shard(1000, |_| false).is_none(), "identity");
        let f = options(r#"{"exclude": [1, 2, 3]}"#).unwrap();
        assert!(
            f.on_shard(5, |_| false).is_none(),
            "list long next to the fanout"
        );
        let nine = (1..=9).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        let f = options(&format!(r#"{{"exclude": [{nine}]}}"#)).unwrap();
        assert!(
            f.on_shard(100, |_| true).is_none(),
            "more than LOCAL_IDS here"
        );
        let lists = f.on_shard(100, |id| id == 4).expect("one id here");
        assert!(!lists.admits(4) && lists.admits(5) && !lists.admit_all());
    }
}
