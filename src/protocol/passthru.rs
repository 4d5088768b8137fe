//! Payload passthru mode: the `ppt_*` attributes of a PUBLISH, CALL, YIELD or ERROR.
//!
//! They describe an application payload the router never looks into (an end-to-end encrypted or
//! gateway-native one), so they travel with that payload, unchanged, into the EVENT, INVOCATION,
//! RESULT or ERROR it becomes. The router only checks what the specification fixes: each is a
//! string, `ppt_scheme` names the scheme whenever any of them is present, and the predefined
//! schemes' closed value sets (`wamp`: `ppt_serializer` required, `cbor` or `flatbuffers`, and a
//! known cipher; `mqtt`: a known serializer). Custom schemes are the application's business.

use std::borrow::Cow;

use super::{Serializer, Val};

/// The attribute names, in the order they are forwarded.
pub const KEYS: [&str; 4] = ["ppt_scheme", "ppt_serializer", "ppt_cipher", "ppt_keyid"];

const SCHEME: usize = 0;
const SERIALIZER: usize = 1;
const CIPHER: usize = 2;

/// The serializers the end-to-end encryption scheme allows: both peers must read it whatever their
/// session serializer, so only self-describing binary formats qualify.
const WAMP_SERIALIZERS: &[&str] = &["cbor", "flatbuffers"];
const WAMP_CIPHERS: &[&str] = &["xsalsa20poly1305", "aes256gcm"];
/// `native` means the gateway's own bytes, unserialized.
const MQTT_SERIALIZERS: &[&str] = &["native", "json", "msgpack", "cbor"];

/// The `ppt_*` attributes of one message, as the sender wrote them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Passthru {
    values: [Option<Box<str>>; 4],
}

impl Passthru {
    /// Reads and checks the attributes in `options` (or ERROR.Details). None when there are none;
    /// an error text (the sender's protocol violation) when they break the specification's rules.
    pub fn read(options: &Val<'_>) -> Result<Option<Passthru>, String> {
        if !may_hold(options) {
            return Ok(None);
        }
        let mut p = Passthru::default();
        for (slot, key) in p.values.iter_mut().zip(KEYS) {
            *slot = string_attr(options, key)?;
        }
        if p.values.iter().all(Option::is_none) {
            return Ok(None);
        }
        p.check()?;
        Ok(Some(p))
    }

    /// The attributes of options already checked by [`Passthru::read`]; None when absent.
    pub fn of(options: &Val<'_>) -> Option<Passthru> {
        Passthru::read(options).ok().flatten()
    }

    /// The scheme (never empty).
    pub fn scheme(&self) -> &str {
        self.values[SCHEME].as_deref().unwrap_or("")
    }

    /// Adds the attributes to outgoing Details, as they came in.
    pub fn append<'a>(&'a self, out: &mut Vec<(Cow<'a, str>, Val<'a>)>) {
        for (key, value) in KEYS.iter().zip(&self.values) {
            if let Some(v) = value {
                out.push((Cow::Borrowed(*key), Val::Str(Cow::Borrowed(&**v))));
            }
        }
    }

    fn get(&self, i: usize) -> Option<&str> {
        self.values[i].as_deref()
    }

    /// The specification's rules across attributes.
    fn check(&self) -> Result<(), String> {
        let scheme = self.get(SCHEME).unwrap_or("");
        if scheme.is_empty() {
            return Err("ppt_scheme is required (a non-empty string) with any ppt_ option".into());
        }
        let one_of = |i: usize, allowed: &[&str], required: bool| match self.get(i) {
            None if !required => Ok(()),
            Some(v) if allowed.contains(&v) => Ok(()),
            _ => Err(format!(
                "ppt_scheme '{scheme}' needs {} to be one of {allowed:?}",
                KEYS[i]
            )),
        };
        match scheme {
            "wamp" => {
                one_of(SERIALIZER, WAMP_SERIALIZERS, true)?;
                one_of(CIPHER, WAMP_CIPHERS, false)
            }
            "mqtt" => one_of(SERIALIZER, MQTT_SERIALIZERS, false),
            _ => Ok(()),
        }
    }
}

/// One attribute: absent (or null, which counts as absent) or a string.
fn string_attr(options: &Val<'_>, key: &str) -> Result<Option<Box<str>>, String> {
    let Some(v) = options.get(key) else {
        return Ok(None);
    };
    if v.is_null() {
        return Ok(None);
    }
    match v.as_str() {
        Some(s) => Ok(Some(s.into())),
        None => Err(format!("{key} must be a string")),
    }
}

/// False when `options` certainly holds no `ppt_` key: empty, or raw bytes without the text
/// `ppt_` (a JSON key may hide it behind escapes, so JSON with a backslash is looked at). Options
/// of other features then cost a byte scan instead of four key lookups.
fn may_hold(options: &Val<'_>) -> bool {
    if options.is_empty_dict() {
        return false;
    }
    match options {
        Val::Raw(p) => {
            // First byte first: a slice comparison per window costs a call to memcmp.
            p.bytes.windows(4).any(|w| w[0] == b'p' && w == b"ppt_")
                || (p.ser == Serializer::Json && p.bytes.contains(&b'\\'))
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Payload;

    fn read(json: &str) -> Result<Option<Passthru>, String> {
        Passthru::read(&Val::Raw(Payload {
            ser: Serializer::Json,
            bytes: json.as_bytes(),
        }))
    }

    #[test]
    fn absent_attributes_are_none() {
        for ok in [
            "{}",
            r#"{"acknowledge": true}"#,
            r#"{"ppt_scheme": null}"#,
            r#"{"x": "ppt_scheme"}"#,
        ] {
            assert_eq!(read(ok), Ok(None), "{ok}");
        }
    }

    #[test]
    fn valid_attributes_are_kept_as_written() {
        let p = read(
            r#"{"ppt_scheme": "wamp", "ppt_serializer": "cbor", "ppt_cipher": "xsalsa20poly1305",
                "ppt_keyid": "0xAbC", "acknowledge": true}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.scheme(), "wamp");
        let mut out = Vec::new();
        p.append(&mut out);
        let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, KEYS);
        assert!(out[3].1.semantic_eq(&Val::Str("0xAbC".into())));
        for ok in [
            r#"{"ppt_scheme": "mqtt"}"#,
            r#"{"ppt_scheme": "mqtt", "ppt_serializer": "native"}"#,
            r#"{"ppt_scheme": "x_custom", "ppt_serializer": "custom", "ppt_cipher": "rot13"}"#,
            r#"{"ppt_scheme": "wamp", "ppt_serializer": "flatbuffers", "ppt_keyid": "k"}"#,
            r#"{"\u0070pt_scheme": "mqtt"}"#,
        ] {
            assert!(matches!(read(ok), Ok(Some(_))), "{ok}");
        }
    }

    #[test]
    fn the_specifications_rules_are_enforced() {
        for bad in [
            r#"{"ppt_scheme": 1}"#,
            r#"{"ppt_scheme": "x_a", "ppt_keyid": 7}"#,
            r#"{"ppt_serializer": "cbor"}"#,
            r#"{"ppt_cipher": "aes256gcm", "ppt_keyid": "k"}"#,
            r#"{"ppt_scheme": "", "ppt_serializer": "cbor"}"#,
            r#"{"ppt_scheme": "wamp"}"#,
            r#"{"ppt_scheme": "wamp", "ppt_serializer": "json"}"#,
            r#"{"ppt_scheme": "wamp", "ppt_serializer": "cbor", "ppt_cipher": "rot13"}"#,
            r#"{"ppt_scheme": "mqtt", "ppt_serializer": "xml"}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }
}
