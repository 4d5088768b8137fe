//! SCRAM (RFC 5802 with SHA-256, Argon2id or PBKDF2), in two dialects:
//!
//! - `wamp-scram`, as the WAMP spec writes it: kdf `argon2id13`, `c=biws` (base64 of `n,,`), the
//!   salted password used as raw bytes, the server signature in WELCOME `authextra.verifier`;
//! - `scram`, as autobahn-python and autobahn-js speak it: kdf `argon2id-13`, an empty `c=`, the
//!   Argon2 salted password used as its unpadded base64 text, the server signature in
//!   `authextra.scram_server_signature`.
//!
//! The server keeps only StoredKey and ServerKey per dialect, derived at load; a login costs HMACs.
//! Usernames and passwords are used as given (no SASLprep), which is exact for ASCII.

use base64::Engine;
use pbkdf2::pbkdf2_hmac;
use sha2::Sha256;

use super::{
    b64, ct_eq, dict, hmac_sha256, random_bytes, sha256, text, unb64, Hello, HelloInfo, Pending,
    Principal, RealmAuth, Refusal, Step,
};
use crate::config::file::{Kdf, ScramSpec};
use crate::protocol::Val;

/// Argon2id defaults (OWASP's minimum: 19 MiB, 2 passes); PBKDF2-SHA256 default iterations.
pub const DEFAULT_ARGON2_ITERATIONS: u32 = 2;
pub const DEFAULT_ARGON2_MEMORY: u32 = 19_456;
pub const DEFAULT_PBKDF2_ITERATIONS: u32 = 600_000;

/// Which SCRAM a client speaks, named by the authmethod it asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Spec,
    Autobahn,
}

impl Dialect {
    pub fn from_method(m: &str) -> Option<Dialect> {
        match m {
            "wamp-scram" => Some(Dialect::Spec),
            "scram" => Some(Dialect::Autobahn),
            _ => None,
        }
    }

    pub fn method(self) -> &'static str {
        match self {
            Dialect::Spec => "wamp-scram",
            Dialect::Autobahn => "scram",
        }
    }

    fn kdf_name(self, kdf: Kdf) -> &'static str {
        match (self, kdf) {
            (Dialect::Spec, Kdf::Argon2id13) => "argon2id13",
            (Dialect::Autobahn, Kdf::Argon2id13) => "argon2id-13",
            (_, Kdf::Pbkdf2) => "pbkdf2",
        }
    }

    /// The `c=` attribute of the client-final message without channel binding.
    fn cbind(self) -> &'static str {
        match self {
            Dialect::Spec => "biws",
            Dialect::Autobahn => "",
        }
    }
}

/// StoredKey and ServerKey.
#[derive(Clone, Copy)]
pub struct Keys {
    pub stored: [u8; 32],
    pub server: [u8; 32],
}

impl Keys {
    pub fn from_salted(salted: &[u8]) -> Keys {
        let client = hmac_sha256(salted, b"Client Key");
        Keys {
            stored: sha256(&client),
            server: hmac_sha256(salted, b"Server Key"),
        }
    }
}

/// The KDF and its parameters, as the CHALLENGE names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Params {
    pub kdf: Kdf,
    pub salt: Vec<u8>,
    pub iterations: u32,
    /// Argon2 memory in KiB (unused by PBKDF2).
    pub memory: u32,
}

impl Params {
    /// `kdf` with the default costs and a fresh random 16-byte salt; `iterations` and `memory`
    /// override the defaults.
    pub(crate) fn fresh(kdf: Kdf, iterations: Option<u32>, memory: Option<u32>) -> Params {
        let (iterations, memory) = match kdf {
            Kdf::Argon2id13 => (
                iterations.unwrap_or(DEFAULT_ARGON2_ITERATIONS),
                memory.unwrap_or(DEFAULT_ARGON2_MEMORY),
            ),
            Kdf::Pbkdf2 => (iterations.unwrap_or(DEFAULT_PBKDF2_ITERATIONS), 0),
        };
        Params {
            kdf,
            salt: random_bytes::<16>().to_vec(),
            iterations,
            memory,
        }
    }
}

/// A KDF by the name either dialect (or a Crossbar credential) gives it.
pub fn kdf_from_name(name: &str) -> Option<Kdf> {
    match name {
        "argon2id13" | "argon2id-13" => Some(Kdf::Argon2id13),
        "pbkdf2" => Some(Kdf::Pbkdf2),
        _ => None,
    }
}

/// What the server stores for one principal.
pub(crate) struct Stored {
    pub(crate) params: Params,
    spec: Keys,
    autobahn: Keys,
}

impl Stored {
    /// Derives the keys (slow: the KDF runs here) with a fresh random salt.
    pub(crate) fn derive(spec: &ScramSpec) -> Result<Stored, String> {
        let params = Params::fresh(spec.kdf, spec.iterations, spec.memory);
        Stored::derive_with(spec.password.as_bytes(), params)
    }

    /// Derives the keys of both dialects from `password` with `params` (slow: the KDF runs here).
    pub(crate) fn derive_with(password: &[u8], params: Params) -> Result<Stored, String> {
        let salted = salted_password(
            params.kdf,
            password,
            &params.salt,
            params.iterations,
            params.memory,
        )?;
        let autobahn_salted = match params.kdf {
            Kdf::Argon2id13 => base64::engine::general_purpose::STANDARD_NO_PAD
                .encode(salted)
                .into_bytes(),
            Kdf::Pbkdf2 => salted.to_vec(),
        };
        Ok(Stored {
            params,
            spec: Keys::from_salted(&salted),
            autobahn: Keys::from_salted(&autobahn_salted),
        })
    }

    /// Keys someone else derived (a Crossbar-style credential): the same for both dialects, since
    /// whoever derived them chose how SaltedPassword is fed to HMAC.
    pub(crate) fn from_keys(params: Params, keys: Keys) -> Stored {
        Stored {
            params,
            spec: keys,
            autobahn: keys,
        }
    }

    fn keys(&self, d: Dialect) -> &Keys {
        match d {
            Dialect::Spec => &self.spec,
            Dialect::Autobahn => &self.autobahn,
        }
    }
}

/// SaltedPassword = KDF(password, salt, params) with a 32-byte output.
pub fn salted_password(
    kdf: Kdf,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    memory: u32,
) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    match kdf {
        Kdf::Pbkdf2 => {
            if iterations == 0 {
                return Err("scram: iterations must be positive".into());
            }
            pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
        }
        Kdf::Argon2id13 => {
            let params = argon2::Params::new(memory, iterations, 1, Some(32))
                .map_err(|e| format!("scram: argon2 parameters: {e}"))?;
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_into(password, salt, &mut out)
                .map_err(|e| format!("scram: argon2: {e}"))?;
        }
    }
    Ok(out)
}

/// What the CHALLENGE fixed, to rebuild the AuthMessage at AUTHENTICATE.
pub(crate) struct Sent {
    pub dialect: Dialect,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

/// The client's authid and nonce, if HELLO is a SCRAM client-first message this server serves
/// (an authid, a base64 nonce, no channel binding).
pub(crate) fn client_first(hello: &HelloInfo<'_>) -> Option<(String, String)> {
    let (Some(authid), Some(client_nonce)) = (hello.authid, hello.extra_str("nonce")) else {
        return None;
    };
    let binding = hello.authextra.and_then(|e| e.get("channel_binding"));
    if unb64(&client_nonce).is_none() || binding.is_some_and(|b| !b.is_null()) {
        return None;
    }
    Some((authid.to_string(), client_nonce))
}

/// HELLO asked for SCRAM: the challenge with the principal's salt and KDF parameters — or, for an
/// authid without SCRAM credentials, a mock one whose salt is always the same for that authid.
pub(crate) fn challenge(
    rules: &RealmAuth,
    hello: &HelloInfo<'_>,
    dialect: Dialect,
    mock_key: &[u8; 32],
) -> Hello {
    let stored = hello
        .authid
        .and_then(|a| rules.principals.get(a))
        .and_then(|p| p.scram.as_ref());
    challenge_as(stored, hello, dialect, mock_key)
}

/// The challenge for `stored` (None: a mock one) to the client of `hello`.
pub(crate) fn challenge_as(
    stored: Option<&Stored>,
    hello: &HelloInfo<'_>,
    dialect: Dialect,
    mock_key: &[u8; 32],
) -> Hello {
    let Some((authid, client_nonce)) = client_first(hello) else {
        return Hello::Refuse(Refusal::FAILED);
    };
    let mock;
    let params = match stored {
        Some(s) => &s.params,
        None => {
            mock = Params {
                kdf: Kdf::Argon2id13,
                salt: mock_salt(mock_key, hello.realm, &authid),
                iterations: DEFAULT_ARGON2_ITERATIONS,
                memory: DEFAULT_ARGON2_MEMORY,
            };
            &mock
        }
    };
    let nonce = format!("{client_nonce}{}", b64(&random_bytes::<16>()));
    let salt = b64(&params.salt);
    let iterations = params.iterations;
    let mut extra = vec![
        ("nonce", text(&nonce)),
        ("salt", text(&salt)),
        ("kdf", text(dialect.kdf_name(params.kdf))),
        ("iterations", Val::UInt(u64::from(iterations))),
    ];
    if params.kdf == Kdf::Argon2id13 {
        extra.push(("memory", Val::UInt(u64::from(params.memory))));
    }
    let name = match dialect {
        Dialect::Spec => escape(&authid),
        Dialect::Autobahn => authid.clone(),
    };
    let sent = Sent {
        dialect,
        client_first_bare: format!("n={name},r={client_nonce}"),
        server_first: format!("r={nonce},s={salt},i={iterations}"),
        nonce,
    };
    Hello::Challenge {
        authmethod: dialect.method(),
        extra: dict(extra),
        pending: Pending {
            realm: hello.realm.to_string(),
            authid,
            step: Step::Scram(sent),
            granted: None,
        },
    }
}

/// Checks the ClientProof; on success, WELCOME's authextra carries the ServerSignature.
pub(crate) fn verify(
    p: &Principal,
    sent: &Sent,
    signature: &str,
    extra: &Val<'_>,
) -> Option<Vec<(&'static str, String)>> {
    let stored = p.scram.as_ref()?;
    if !extra.get("channel_binding").is_none_or(|b| b.is_null()) {
        return None;
    }
    if sent.dialect == Dialect::Spec {
        let nonce = extra.get("nonce").and_then(|n| n.as_str())?;
        if nonce != sent.nonce {
            return None;
        }
    }
    let keys = stored.keys(sent.dialect);
    let auth_message = format!(
        "{},{},c={},r={}",
        sent.client_first_bare,
        sent.server_first,
        sent.dialect.cbind(),
        sent.nonce
    );
    let proof = unb64(signature)?;
    let client_signature = hmac_sha256(&keys.stored, auth_message.as_bytes());
    if proof.len() != client_signature.len() {
        return None;
    }
    let client_key: Vec<u8> = proof
        .iter()
        .zip(client_signature)
        .map(|(a, b)| a ^ b)
        .collect();
    if !ct_eq(&sha256(&client_key), &keys.stored) {
        return None;
    }
    let server_signature = b64(&hmac_sha256(&keys.server, auth_message.as_bytes()));
    Some(vec![
        ("verifier", server_signature.clone()),
        ("scram_server_signature", server_signature),
    ])
}

/// RFC 5802's saslname escaping of `,` and `=`.
fn escape(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn mock_salt(key: &[u8; 32], realm: &str, authid: &str) -> Vec<u8> {
    let mut input = Vec::with_capacity(realm.len() + authid.len() + 1);
    input.extend_from_slice(realm.as_bytes());
    input.push(0);
    input.extend_from_slice(authid.as_bytes());
    hmac_sha256(key, &input)[..16].to_vec()
}
