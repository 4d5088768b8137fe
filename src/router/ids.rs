//! WAMP identifiers. Global-scope ids (sessions, publications, subscriptions, registrations) are drawn
//! at random from [1, 2^53] as the spec asks, so they are unguessable and need no coordination between
//! shards; router-scope ids (INVOCATION request ids) are per-session counters.

/// The largest id any WAMP peer can represent exactly (IEEE double precision).
pub const MAX_ID: u64 = 1 << 53;

/// A random global-scope id.
pub fn global() -> u64 {
    fastrand::u64(1..=MAX_ID)
}

/// True for a valid id (request ids, subscription ids ... sent by a peer).
pub fn valid(id: u64) -> bool {
    (1..=MAX_ID).contains(&id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_stay_in_range() {
        for _ in 0..10_000 {
            assert!(super::valid(super::global()));
        }
        assert!(!super::valid(0));
        assert!(!super::valid(super::MAX_ID + 1));
    }
}
