//! A dynamic authenticator's answer for a SCRAM login (`wamp-scram` or `scram`), in one of two
//! shapes besides `role` (and the optional `authid`, `extra` every answer may carry):
//!
//! - Crossbar's credential: `salt` (hex), `kdf` (`argon2id-13`, `argon2id13` or `pbkdf2`),
//!   `iterations`, `memory` (Argon2 only, KiB), `stored-key` and `server-key` (hex, 32 bytes each).
//!   The router challenges with these parameters and verifies against the keys as they are, for
//!   either dialect: whoever derived them chose how SaltedPassword was fed to HMAC (autobahn's
//!   `scram` uses an Argon2 output as its unpadded base64 text, `wamp-scram` the raw bytes).
//! - wampd's: `password` and `kdf`, with optional `salt` (hex; a fresh random one if absent),
//!   `iterations` and `memory` (the defaults of a listed principal if absent). The keys of both
//!   dialects are derived from the password; the KDF is slow, so this runs on a key-derivation
//!   thread ([`super::worker`]), never on a shard.
//!
//! Anything else — both shapes at once, a missing key, bad hex, wrong lengths, an unknown KDF,
//! costs out of range — is unusable and refuses the login.

use super::scram::{kdf_from_name, Keys, Params, Stored};
use super::Refusal;
use crate::config::file::Kdf;
use crate::protocol::Val;

/// Salt lengths accepted (bytes): Argon2's own bounds, and at least RFC 5802's spirit.
const SALT_LEN: std::ops::RangeInclusive<usize> = 8..=64;
/// Iterations accepted per KDF (autobahn's `derive_scram_credential` uses 4096 with Argon2id).
const MAX_ARGON2_ITERATIONS: u32 = 10_000;
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// Argon2 memory accepted in a credential (KiB; the client pays for it).
const ARGON2_MEMORY: std::ops::RangeInclusive<u32> = 8..=1_048_576;
/// What the router itself derives for a password answer: at most 256 MiB, and at most 4 GiB of
/// memory passes (iterations × memory), so one login keeps a derivation thread busy for seconds
/// at worst.
const MAX_DERIVED_MEMORY: u32 = 262_144;
const MAX_DERIVED_WORK: u64 = 4_194_304;

/// What a SCRAM answer grants.
pub(crate) enum ScramAnswer {
    /// A credential with the keys already derived: ready to challenge with.
    Keys(Stored),
    /// A password whose keys are still to be derived (slow; off the shard).
    Password { password: String, params: Params },
}

/// Reads the SCRAM credentials of an answer dict.
pub(crate) fn parse(d: &Val<'_>) -> Result<ScramAnswer, Refusal> {
    let present = |k: &str| d.get(k).is_some_and(|v| !v.is_null());
    let password = present("password");
    let keys = present("stored-key") || present("server-key");
    let kdf = string(d, "kdf")
        .and_then(|k| kdf_from_name(&k))
        .ok_or(Refusal::FAILED)?;
    let salt = match d.get("salt").filter(|v| !v.is_null()) {
        None => None,
        Some(v) => Some(salt(&v)?),
    };
    let iterations = super::dynamic::opt_u32(d, "iterations")?;
    let memory = match kdf {
        Kdf::Argon2id13 => super::dynamic::opt_u32(d, "memory")?,
        Kdf::Pbkdf2 => None,
    };
    match (password, keys) {
        (true, false) => {
            let password = string(d, "password").ok_or(Refusal::FAILED)?;
            let mut params = Params::fresh(kdf, iterations, memory);
            if let Some(s) = salt {
                params.salt = s;
            }
            check_costs(&params)?;
            let work = u64::from(params.iterations) * u64::from(params.memory);
            if params.memory > MAX_DERIVED_MEMORY || work > MAX_DERIVED_WORK {
                return Err(Refusal::FAILED);
            }
            Ok(ScramAnswer::Password { password, params })
        }
        (false, true) => {
            let params = Params {
                kdf,
                salt: salt.ok_or(Refusal::FAILED)?,
                iterations: iterations.ok_or(Refusal::FAILED)?,
                memory: match kdf {
                    Kdf::Argon2id13 => memory.ok_or(Refusal::FAILED)?,
                    Kdf::Pbkdf2 => 0,
                },
            };
            check_costs(&params)?;
            let keys = Keys {
                stored: key(d, "stored-key")?,
                server: key(d, "server-key")?,
            };
            Ok(ScramAnswer::Keys(Stored::from_keys(params, keys)))
        }
        _ => Err(Refusal::FAILED),
    }
}

fn string(d: &Val<'_>, k: &str) -> Option<String> {
    d.get(k).and_then(|v| v.as_str()).map(|s| s.into_owned())
}

fn salt(v: &Val<'_>) -> Result<Vec<u8>, Refusal> {
    v.as_str()
        .and_then(|s| hex::decode(s.as_ref()).ok())
        .filter(|s| SALT_LEN.contains(&s.len()))
        .ok_or(Refusal::FAILED)
}

fn key(d: &Val<'_>, k: &str) -> Result<[u8; 32], Refusal> {
    string(d, k)
        .and_then(|s| hex::decode(s).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or(Refusal::FAILED)
}

fn check_costs(p: &Params) -> Result<(), Refusal> {
    let ok = match p.kdf {
        Kdf::Argon2id13 => {
            (1..=MAX_ARGON2_ITERATIONS).contains(&p.iterations) && ARGON2_MEMORY.contains(&p.memory)
        }
        Kdf::Pbkdf2 => (1..=MAX_PBKDF2_ITERATIONS).contains(&p.iterations),
    };
    if ok {
        Ok(())
    } else {
        Err(Refusal::FAILED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{dict, text};

    const STORED: &str = "0101010101010101010101010101010101010101010101010101010101010101";
    const SERVER: &str = "0202020202020202020202020202020202020202020202020202020202020202";

    /// Crossbar's credential shape (Argon2id, as autobahn's `derive_scram_credential` writes it).
    fn crossbar() -> Vec<(&'static str, Val<'static>)> {
        vec![
            ("role", text("r")),
            ("kdf", text("argon2id-13")),
            ("salt", text("00112233445566778899aabbccddeeff")),
            ("iterations", Val::UInt(4096)),
            ("memory", Val::UInt(512)),
            ("stored-key", text(STORED)),
            ("server-key", text(SERVER)),
        ]
    }

    fn with(
        mut d: Vec<(&'static str, Val<'static>)>,
        k: &'static str,
        v: Option<Val<'static>>,
    ) -> Val<'static> {
        d.retain(|(key, _)| *key != k);
        if let Some(v) = v {
            d.push((k, v));
        }
        dict(d)
    }

    #[test]
    fn a_crossbar_credential_is_taken_as_it_is() {
        let Ok(ScramAnswer::Keys(stored)) = parse(&dict(crossbar())) else {
            panic!("a Crossbar credential is accepted");
        };
        assert_eq!(
            stored.params,
            Params {
                kdf: Kdf::Argon2id13,
                salt: hex::decode("00112233445566778899aabbccddeeff").unwrap(),
                iterations: 4096,
                memory: 512,
            }
        );
        // Every KDF spelling, and PBKDF2 without memory.
        for kdf in ["argon2id13", "argon2id-13"] {
            assert!(
                parse(&with(crossbar(), "kdf", Some(text(kdf)))).is_ok(),
                "{kdf}"
            );
        }
        let pbkdf2 = with(crossbar(), "kdf", Some(text("pbkdf2")));
        let Ok(ScramAnswer::Keys(stored)) = parse(&pbkdf2) else {
            panic!("PBKDF2 credential");
        };
        assert_eq!((stored.params.kdf, stored.params.memory), (Kdf::Pbkdf2, 0));
        let mut no_memory = crossbar();
        no_memory.retain(|(k, _)| *k != "memory");
        assert!(parse(&with(no_memory, "kdf", Some(text("pbkdf2")))).is_ok());
    }

    #[test]
    fn unusable_credentials_are_refused() {
        let bad: Vec<(&str, Option<Val<'static>>)> = vec![
            ("salt", None),
            ("salt", Some(text("not hex"))),
            ("salt", Some(text("0011"))),
            ("salt", Some(text(&"00".repeat(65)))),
            ("salt", Some(Val::UInt(7))),
            ("iterations", None),
            ("iterations", Some(Val::UInt(0))),
            ("iterations", Some(Val::UInt(1 << 40))),
            ("iterations", Some(Val::UInt(10_001))),
            ("iterations", Some(text("4096"))),
            ("iterations", Some(Val::Int(-1))),
            ("memory", None),
            ("memory", Some(Val::UInt(4))),
            ("memory", Some(Val::UInt(2_000_000))),
            ("kdf", None),
            ("kdf", Some(text("scrypt"))),
            ("kdf", Some(Val::UInt(1))),
            ("stored-key", None),
            ("stored-key", Some(text(&STORED[2..]))),
            ("stored-key", Some(text(&STORED.replace('1', "x")))),
            ("server-key", None),
            ("server-key", Some(text(&format!("{SERVER}00")))),
            ("server-key", Some(Val::List(vec![]))),
            // Both shapes at once.
            ("password", Some(text("pw"))),
        ];
        for (k, v) in bad {
            let d = with(crossbar(), k, v.clone());
            assert!(parse(&d).is_err(), "{k} = {v:?} must be refused");
        }
        // Neither shape.
        assert!(parse(&dict(vec![("role", text("r")), ("kdf", text("pbkdf2"))])).is_err());
    }

    #[test]
    fn a_password_is_left_to_derive_within_bounds() {
        let pw = |extra: Vec<(&'static str, Val<'static>)>| {
            let mut d = vec![("role", text("r")), ("password", text("secret"))];
            d.extend(extra);
            parse(&dict(d))
        };
        let Ok(ScramAnswer::Password { password, params }) = pw(vec![("kdf", text("pbkdf2"))])
        else {
            panic!("a password with a KDF is accepted");
        };
        assert_eq!(password, "secret");
        assert_eq!(
            params.iterations,
            crate::auth::scram::DEFAULT_PBKDF2_ITERATIONS
        );
        assert_eq!(params.salt.len(), 16, "a fresh salt");
        let Ok(ScramAnswer::Password { params, .. }) = pw(vec![
            ("kdf", text("argon2id13")),
            ("salt", text("0102030405060708")),
            ("iterations", Val::UInt(3)),
            ("memory", Val::UInt(2048)),
        ]) else {
            panic!("a password with parameters is accepted");
        };
        assert_eq!(
            (params.salt, params.iterations, params.memory),
            (vec![1, 2, 3, 4, 5, 6, 7, 8], 3, 2048)
        );
        let refused: Vec<Vec<(&'static str, Val<'static>)>> = vec![
            // A KDF is required.
            vec![],
            vec![("kdf", text("md5"))],
            vec![("kdf", text("pbkdf2")), ("salt", text("zz"))],
            vec![("kdf", text("pbkdf2")), ("iterations", Val::UInt(0))],
            vec![
                ("kdf", text("pbkdf2")),
                ("iterations", Val::UInt(10_000_001)),
            ],
            // More than the router derives: 512 MiB, or 4096 passes over 19 MiB.
            vec![("kdf", text("argon2id13")), ("memory", Val::UInt(524_288))],
            vec![("kdf", text("argon2id13")), ("iterations", Val::UInt(4096))],
        ];
        for extra in refused {
            assert!(pw(extra.clone()).is_err(), "{extra:?} must be refused");
        }
        let not_text = dict(vec![
            ("role", text("r")),
            ("password", Val::UInt(1)),
            ("kdf", text("pbkdf2")),
        ]);
        assert!(parse(&not_text).is_err());
    }
}
