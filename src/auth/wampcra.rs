//! WAMP-CRA: the router sends a JSON challenge; the client answers base64(HMAC-SHA256(key,
//! challenge)). With a salt the key is not the password but base64(PBKDF2-SHA256(password, salt,
//! iterations, keylen)) used as text — what autobahn's `derive_key` produces — derived once at load.

use pbkdf2::pbkdf2_hmac;
use sha2::Sha256;

use super::{
    b64, ct_eq, dict, hmac_sha256, random_bytes, text, Hello, HelloInfo, Pending, Principal,
    Refusal, Step,
};
use crate::config::file::WampCraSpec;
use crate::protocol::Val;

pub const METHOD: &str = "wampcra";

/// The defaults autobahn and Crossbar use when a salt is given without them.
const DEFAULT_ITERATIONS: u32 = 1000;
const DEFAULT_KEYLEN: u32 = 32;

/// The HMAC key of one principal, and the salt parameters the client needs to derive it.
pub(crate) struct Key {
    key: Vec<u8>,
    salt: Option<(String, u32, u32)>,
}

impl Key {
    pub(crate) fn derive(spec: &WampCraSpec) -> Result<Key, String> {
        let Some(salt) = &spec.salt else {
            return Ok(Key {
                key: spec.secret.as_bytes().to_vec(),
                salt: None,
            });
        };
        let iterations = spec.iterations.unwrap_or(DEFAULT_ITERATIONS);
        let keylen = spec.keylen.unwrap_or(DEFAULT_KEYLEN);
        if iterations == 0 || !(1..=1024).contains(&keylen) {
            return Err("wampcra: iterations must be positive and keylen in 1..=1024".into());
        }
        Ok(Key {
            key: derive_key(&spec.secret, salt, iterations, keylen).into_bytes(),
            salt: Some((salt.clone(), iterations, keylen)),
        })
    }
}

/// autobahn's `derive_key`: PBKDF2-SHA256 over the UTF-8 password and salt, base64 text.
pub fn derive_key(secret: &str, salt: &str, iterations: u32, keylen: u32) -> String {
    let mut out = vec![0u8; keylen as usize];
    pbkdf2_hmac::<Sha256>(secret.as_bytes(), salt.as_bytes(), iterations, &mut out);
    b64(&out)
}

/// The signature a client with `key` computes over `challenge`.
pub fn sign(key: &[u8], challenge: &str) -> String {
    b64(&hmac_sha256(key, challenge.as_bytes()))
}

/// The challenge sent, to check the signature against.
pub(crate) struct Sent {
    challenge: String,
}

/// What a mock challenge shows, taken from the realm's own WAMP-CRA principals so that it looks
/// like theirs: the role of the first of them (by authid) and, where its secret is salted, its
/// iterations and key length with a salt made up for the authid asked about.
#[derive(Default)]
pub(crate) struct Mock {
    role: String,
    salted: Option<(u32, u32)>,
}

impl Mock {
    pub(crate) fn of<'a>(principals: impl Iterator<Item = &'a Principal>) -> Self {
        principals
            .filter_map(|p| p.wampcra.as_ref().map(|k| (p, k)))
            .min_by(|a, b| a.0.authid.cmp(&b.0.authid))
            .map(|(p, k)| Mock {
                role: p.role.clone(),
                salted: k.salt.as_ref().map(|(_, it, len)| (*it, *len)),
            })
            .unwrap_or_default()
    }
}

/// HELLO asked for wampcra: a challenge naming the principal's role, or a mock one, identical in
/// form and stable across attempts, for an authid without WAMP-CRA credentials (so that the
/// challenge does not tell which authids exist).
pub(crate) fn challenge(
    rules: &super::RealmAuth,
    hello: &HelloInfo<'_>,
    mock_key: &[u8; 32],
) -> Hello {
    let principal = hello
        .authid
        .and_then(|a| rules.principals.get(a))
        .filter(|p| p.wampcra.is_some());
    match (principal, hello.authid) {
        (Some(p), _) => challenge_as(Some(p), hello, "static"),
        (None, Some(authid)) => {
            let mock = &rules.cra_mock;
            let salt = mock.salted.map(|(iterations, keylen)| {
                let mut input = b"wampcra\0".to_vec();
                input.extend_from_slice(hello.realm.as_bytes());
                input.push(0);
                input.extend_from_slice(authid.as_bytes());
                (
                    b64(&hmac_sha256(mock_key, &input)[..12]),
                    iterations,
                    keylen,
                )
            });
            challenge_with(&mock.role, salt.as_ref(), hello, "static")
        }
        (None, None) => Hello::Refuse(Refusal::FAILED),
    }
}

/// The challenge for `principal` (None: one nobody can answer), naming `provider`.
pub(crate) fn challenge_as(
    principal: Option<&Principal>,
    hello: &HelloInfo<'_>,
    provider: &str,
) -> Hello {
    let salt = principal
        .and_then(|p| p.wampcra.as_ref())
        .and_then(|k| k.salt.as_ref());
    let role = principal.map_or("", |p| p.role.as_str());
    challenge_with(role, salt, hello, provider)
}

fn challenge_with(
    role: &str,
    salt: Option<&(String, u32, u32)>,
    hello: &HelloInfo<'_>,
    provider: &str,
) -> Hello {
    let Some(authid) = hello.authid else {
        return Hello::Refuse(Refusal::FAILED);
    };
    let challenge = challenge_json(authid, role, provider, hello.session);
    let mut extra = vec![("challenge", text(&challenge))];
    if let Some((salt, iterations, keylen)) = salt {
        extra.push(("salt", text(salt)));
        extra.push(("iterations", Val::UInt(u64::from(*iterations))));
        extra.push(("keylen", Val::UInt(u64::from(*keylen))));
    }
    Hello::Challenge {
        authmethod: METHOD,
        extra: dict(extra),
        pending: Pending {
            realm: hello.realm.to_string(),
            authid: authid.to_string(),
            step: Step::WampCra(Sent { challenge }),
            granted: None,
        },
    }
}

pub(crate) fn verify(
    p: &Principal,
    sent: &Sent,
    signature: &str,
) -> Option<Vec<(&'static str, String)>> {
    let key = p.wampcra.as_ref()?;
    let expected = sign(&key.key, &sent.challenge);
    ct_eq(expected.as_bytes(), signature.trim().as_bytes()).then(Vec::new)
}

/// The challenge text: a JSON object as the spec lists it.
fn challenge_json(authid: &str, role: &str, provider: &str, session: u64) -> String {
    let nonce = b64(&random_bytes::<16>());
    format!(
        "{{\"authid\":{},\"authrole\":{},\"authmethod\":\"wampcra\",\"authprovider\":{},\"nonce\":\"{nonce}\",\"timestamp\":\"{}\",\"session\":{session}}}",
        json_string(authid),
        json_string(role),
        json_string(provider),
        utc_timestamp(std::time::SystemTime::now()),
    )
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// ISO 8601 UTC with milliseconds, e.g. `2014-06-22T16:36:25.448Z`.
fn utc_timestamp(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_iso8601_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_403_455_001_448);
        assert_eq!(utc_timestamp(t), "2014-06-22T16:36:41.448Z");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
