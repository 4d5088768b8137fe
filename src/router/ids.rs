//! WAMP identifiers. Global-scope ids (sessions, publications, subscriptions, registrations) are drawn
//! at random from [1, 2^53] as the spec asks, so they are unguessable and need no coordination between
//! shards; router-scope ids (INVOCATION request ids) are per-session counters.

/// The largest id any WAMP peer can represent exactly (IEEE double precision).
pub const MAX_ID: u64 = 1 << 53;

/// A random global-scope id.
pub fn global() -> u64 {
    fastrand::u64(1..=MAX_ID)
}

/// A random session id that only shard `shard` of `shards` can draw: `(id - 1) % shards == shard`.
/// Session ids are then unique across the router without any coordination between shards (each
/// shard checks its own table), and the shard a session lives on follows from its id.
pub fn session(shard: usize, shards: usize) -> u64 {
    let shards = shards as u64;
    fastrand::u64(0..MAX_ID / shards) * shards + shard as u64 + 1
}

/// The shard a session id drawn by [`session`] belongs to.
pub fn shard_of_session(id: u64, shards: usize) -> usize {
    ((id - 1) % shards as u64) as usize
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
        for shards in [1, 2, 3, 4, 64] {
            for shard in 0..shards {
                for _ in 0..1000 {
                    let id = super::session(shard, shards);
                    assert!(super::valid(id));
                    assert_eq!(super::shard_of_session(id, shards), shard);
                }
            }
        }
        assert!(!super::valid(super::MAX_ID + 1));
    }
}
