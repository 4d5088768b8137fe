//! Conformance against the official WAMP single-message test vectors:
//! parse every json/msgpack/cbor variant, check the expected attributes,
//! re-encode in every serializer and check again. The vectors are a copy in
//! `tests/vectors/wamp-testsuite/` (see its ORIGIN.md): a fresh clone has all it needs.

use std::borrow::Cow;
use std::path::PathBuf;

use serde_json::Value as J;
use wampd::protocol::codes;
use wampd::protocol::message::is_checked_option;
use wampd::protocol::{Message, Payload, Serializer, Val};

fn suite_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/wamp-testsuite/singlemessage"
    ))
}

fn vector_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for sub in ["basic", "advanced"] {
        let dir = suite_dir().join(sub);
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

fn to_val(j: &J) -> Val<'static> {
    match j {
        J::Null => Val::Null,
        J::Bool(b) => Val::Bool(*b),
        J::Number(n) => {
            if let Some(u) = n.as_u64() {
                Val::UInt(u)
            } else if let Some(i) = n.as_i64() {
                Val::Int(i)
            } else {
                Val::Float(n.as_f64().unwrap())
            }
        }
        J::String(s) => Val::Str(Cow::Owned(s.clone())),
        J::Array(a) => Val::List(a.iter().map(to_val).collect()),
        J::Object(o) => Val::Dict(
            o.iter()
                .map(|(k, v)| (Cow::Owned(k.clone()), to_val(v)))
                .collect(),
        ),
    }
}

/// Field values of a parsed message, keyed the way the vectors name them.
#[derive(Default)]
struct View<'a> {
    code: u64,
    ids: Vec<(&'static str, u64)>,
    strs: Vec<(&'static str, String)>,
    dict: Option<Val<'a>>,
    args: Option<Val<'a>>,
    kwargs: Option<Val<'a>>,
}

fn view<'a>(m: &Message<'a>) -> View<'a> {
    let mut v = View {
        code: m.code(),
        ..Default::default()
    };
    use Message as M;
    match m.clone() {
        M::Hello { realm, details } => {
            v.strs.push(("realm", realm.into()));
            v.dict = Some(details);
        }
        M::Welcome { session, details } => {
            v.ids.push(("session_id", session));
            v.dict = Some(details);
        }
        M::Abort { details, reason } | M::Goodbye { details, reason } => {
            v.strs.push(("reason", reason.into()));
            v.dict = Some(details);
        }
        M::Challenge { authmethod, extra } => {
            v.strs.push(("method", authmethod.into()));
            v.dict = Some(extra);
        }
        M::Authenticate { signature, extra } => {
            v.strs.push(("signature", signature.into()));
            v.dict = Some(extra);
        }
        M::Error {
            request_type,
            request,
            details,
            error,
            args,
            kwargs,
        } => {
            v.ids
                .extend([("request_type", request_type), ("request_id", request)]);
            v.strs.push(("error", error.into()));
            (v.dict, v.args, v.kwargs) = (Some(details), args, kwargs);
        }
        M::Publish {
            request,
            options,
            topic,
            args,
            kwargs,
        } => {
            v.ids.push(("request_id", request));
            v.strs.push(("topic", topic.into()));
            (v.dict, v.args, v.kwargs) = (Some(options), args, kwargs);
        }
        M::Call {
            request,
            options,
            procedure,
            args,
            kwargs,
        } => {
            v.ids.push(("request_id", request));
            v.strs.push(("procedure", procedure.into()));
            (v.dict, v.args, v.kwargs) = (Some(options), args, kwargs);
        }
        M::Published {
            request,
            publication,
        } => v
            .ids
            .extend([("request_id", request), ("publication_id", publication)]),
        M::Subscribe {
            request,
            options,
            topic,
        } => {
            v.ids.push(("request_id", request));
            v.strs.push(("topic", topic.into()));
            v.dict = Some(options);
        }
        M::Register {
            request,
            options,
            procedure,
        } => {
            v.ids.push(("request_id", request));
            v.strs.push(("procedure", procedure.into()));
            v.dict = Some(options);
        }
        M::Subscribed {
            request,
            subscription,
        }
        | M::Unsubscribe {
            request,
            subscription,
        } => v
            .ids
            .extend([("request_id", request), ("subscription_id", subscription)]),
        M::Registered {
            request,
            registration,
        }
        | M::Unregister {
            request,
            registration,
        } => v
            .ids
            .extend([("request_id", request), ("registration_id", registration)]),
        M::Unsubscribed { request, details } | M::Unregistered { request, details } => {
            v.ids.push(("request_id", request));
            v.dict = details;
        }
        M::Event {
            subscription,
            publication,
            details,
            args,
            kwargs,
        } => {
            v.ids.extend([
                ("subscription_id", subscription),
                ("publication_id", publication),
            ]);
            (v.dict, v.args, v.kwargs) = (Some(details), args, kwargs);
        }
        M::Invocation {
            request,
            registration,
            details,
            args,
            kwargs,
        } => {
            v.ids
                .extend([("request_id", request), ("registration_id", registration)]);
            (v.dict, v.args, v.kwargs) = (Some(details), args, kwargs);
        }
        M::Result {
            request,
            details,
            args,
            kwargs,
        }
        | M::Yield {
            request,
            options: details,
            args,
            kwargs,
        } => {
            v.ids.push(("request_id", request));
            (v.dict, v.args, v.kwargs) = (Some(details), args, kwargs);
        }
        M::Cancel { request, options } | M::Interrupt { request, options } => {
            v.ids.push(("request_id", request));
            v.dict = Some(options);
        }
    }
    v
}

fn is_binary(v: &Val) -> bool {
    matches!(v, Val::Raw(p) if matches!(Val::decode(*p), Ok(Val::Bytes(_))))
}

fn check(m: &Message, expected: &serde_json::Map<String, J>, ctx: &str) {
    let v = view(m);
    for (key, want) in expected {
        let ctx = format!("{ctx}: attribute {key}");
        match key.as_str() {
            "message_type" => assert_eq!(Some(v.code), want.as_u64(), "{ctx}"),
            "request_id" | "session_id" | "subscription_id" | "publication_id"
            | "registration_id" | "request_type" | "subscription" | "publication" => {
                let name = match key.as_str() {
                    "subscription" => "subscription_id",
                    "publication" => "publication_id",
                    k => k,
                };
                let got = v.ids.iter().find(|(n, _)| *n == name).map(|(_, x)| *x);
                assert_eq!(got, want.as_u64(), "{ctx}");
            }
            "topic" | "procedure" | "realm" | "reason" | "error" | "signature" | "method" => {
                let got = v
                    .strs
                    .iter()
                    .find(|(n, _)| n == key)
                    .map(|(_, x)| x.as_str());
                assert_eq!(got, want.as_str(), "{ctx}");
            }
            "details" | "options" | "extra" => {
                let d = v.dict.as_ref().unwrap_or_else(|| panic!("{ctx}: missing"));
                assert!(d.is_dict(), "{ctx}");
                let decoded = match d {
                    Val::Raw(p) => Val::decode(*p).unwrap(),
                    other => other.clone(),
                };
                assert!(decoded.semantic_eq(&to_val(want)), "{ctx}: got {decoded:?}");
            }
            "roles" => {
                let d = v.dict.as_ref().unwrap_or_else(|| panic!("{ctx}: missing"));
                let roles = d.get("roles").unwrap_or_else(|| panic!("{ctx}: missing"));
                assert!(roles.semantic_eq(&to_val(want)), "{ctx}");
            }
            "args" => match (want, &v.args) {
                (J::Null, None) => {}
                (J::Null, Some(a)) => assert!(is_binary(a), "{ctx}: expected no args"),
                (w, Some(a)) => assert!(a.semantic_eq(&to_val(w)), "{ctx}"),
                (_, None) => panic!("{ctx}: missing"),
            },
            "kwargs" => match (want, &v.kwargs) {
                (J::Null, None) => {}
                (J::Null, Some(k)) => assert_eq!(k.dict_len(), Some(0), "{ctx}"),
                (w, Some(k)) => assert!(k.semantic_eq(&to_val(w)), "{ctx}"),
                (_, None) => panic!("{ctx}: missing"),
            },
            "payload" => match want {
                J::Null => assert!(!v.args.as_ref().is_some_and(is_binary), "{ctx}"),
                J::String(h) => {
                    let bytes = hex::decode(h).unwrap();
                    let a = v.args.as_ref().unwrap_or_else(|| panic!("{ctx}: missing"));
                    assert!(a.semantic_eq(&Val::Bytes(Cow::Owned(bytes))), "{ctx}");
                }
                _ => panic!("{ctx}: unexpected"),
            },
            _ => panic!("{ctx}: unhandled attribute name"),
        }
    }
}

fn ser_of(name: &str) -> Option<Serializer> {
    Serializer::ALL.into_iter().find(|s| s.name() == name)
}

#[test]
fn official_single_message_vectors() {
    let mut counts = [0usize; 3];
    let mut unknown_code = 0;
    for file in vector_files() {
        let doc: J = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let fname = file.file_name().unwrap().to_string_lossy().to_string();
        for (si, sample) in doc["samples"].as_array().unwrap().iter().enumerate() {
            let Some(expected) = sample
                .get("expected_attributes")
                .and_then(|e| e.as_object())
            else {
                continue; // validation sample, see the other test
            };
            let code = expected["message_type"].as_u64().unwrap();
            for (sname, variants) in sample["serializers"].as_object().unwrap() {
                let Some(ser) = ser_of(sname) else { continue };
                for (vi, variant) in variants.as_array().unwrap().iter().enumerate() {
                    let ctx = format!("{fname} sample {si} {sname} variant {vi}");
                    let bytes = hex::decode(variant["bytes_hex"].as_str().unwrap()).unwrap();
                    let parsed = Message::parse(ser, &bytes);
                    if codes::name(code) == "UNKNOWN" {
                        // e.g. EVENT_RECEIVED (provisional): not supported, must be refused cleanly.
                        assert!(parsed.is_err(), "{ctx}");
                        unknown_code += 1;
                        continue;
                    }
                    let m = parsed.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    assert_eq!(
                        wampd::protocol::message::peek_code(ser, &bytes),
                        Some(code),
                        "{ctx}"
                    );
                    check(&m, expected, &ctx);
                    m.check_options().unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    for to in Serializer::ALL {
                        let mut out = Vec::new();
                        m.encode(to, &mut out)
                            .unwrap_or_else(|e| panic!("{ctx} -> {to:?}: {e}"));
                        let m2 = Message::parse(to, &out).unwrap_or_else(|e| {
                            panic!("{ctx} -> {to:?}: {e}: {}", hex::encode(&out))
                        });
                        check(&m2, expected, &format!("{ctx} -> {to:?}"));
                        if to == ser {
                            // Raw spans are spliced, so re-encoding is stable.
                            let mut again = Vec::new();
                            m2.encode(to, &mut again).unwrap();
                            assert_eq!(again, out, "{ctx}");
                        }
                    }
                    counts[ser as usize] += 1;
                }
            }
        }
    }
    eprintln!(
        "variants checked: json {} msgpack {} cbor {} (unknown code: {unknown_code})",
        counts[0], counts[1], counts[2]
    );
    for (i, c) in counts.iter().enumerate() {
        assert!(*c > 0, "no samples for {:?}", Serializer::ALL[i]);
    }
}

/// Builds the wire value of a validation sample; hex strings in the payload
/// position of encrypted messages stand for binary payloads.
fn wmsg_val(wmsg: &[J]) -> Val<'static> {
    let encrypted = wmsg.iter().any(|e| e.get("enc_algo").is_some());
    let mut items: Vec<Val<'static>> = wmsg.iter().map(to_val).collect();
    if encrypted {
        if let Some(J::String(h)) = wmsg.last() {
            if let Ok(b) = hex::decode(h) {
                *items.last_mut().unwrap() = Val::Bytes(Cow::Owned(b));
            }
        }
    }
    Val::List(items)
}

/// The validation samples of the vectors: a wrongly typed option is refused
/// when the router acts on that option, and ignored otherwise (the spec makes
/// attributes an implementation does not know ignored; the router does not
/// know the options of features it does not implement).
#[test]
fn official_validation_samples() {
    let (mut accepted, mut ignored) = (0, 0);
    let mut refused_keys = std::collections::BTreeSet::new();
    for file in vector_files() {
        let doc: J = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        for sample in doc["samples"].as_array().unwrap() {
            let Some(wmsg) = sample.get("wmsg").and_then(|w| w.as_array()) else {
                continue;
            };
            let code = wmsg[0].as_u64().unwrap();
            let val = wmsg_val(wmsg);
            for ser in Serializer::ALL {
                let mut frame = Vec::new();
                val.encode(ser, &mut frame).unwrap();
                let res = Message::parse(ser, &frame).and_then(|m| m.check_options());
                let ctx = format!(
                    "{} {:?} {}",
                    file.display(),
                    ser,
                    serde_json::to_string(wmsg).unwrap()
                );
                let Some(err) = sample.get("expected_error") else {
                    res.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    accepted += 1;
                    continue;
                };
                let key = err["contains"].as_str().unwrap_or_else(|| panic!("{ctx}"));
                if is_checked_option(code, key) {
                    let e = res.expect_err(&ctx);
                    assert!(e.to_string().contains(key), "{ctx}: {e}");
                    refused_keys.insert(format!("{} {key}", codes::name(code)));
                } else {
                    res.unwrap_or_else(|e| panic!("{ctx}: an option the router ignores: {e}"));
                    ignored += 1;
                }
            }
        }
    }
    eprintln!(
        "validation samples: {accepted} accepted, {ignored} ignored, refused: {refused_keys:?}"
    );
    assert!(accepted > 0 && ignored > 0);
    // The options the router acts on that the vectors cover with a wrongly typed sample.
    let want = [
        "PUBLISH acknowledge",
        "PUBLISH eligible",
        "PUBLISH eligible_authid",
        "PUBLISH eligible_authrole",
        "PUBLISH exclude",
        "PUBLISH exclude_authid",
        "PUBLISH exclude_authrole",
        "PUBLISH exclude_me",
        "PUBLISH retain",
        "SUBSCRIBE get_retained",
        "SUBSCRIBE match",
    ];
    assert_eq!(refused_keys.into_iter().collect::<Vec<_>>(), want);
}

#[test]
fn raw_payload_splices_between_messages() {
    // PUBLISH -> EVENT forwarding: the args/kwargs bytes are copied verbatim.
    for ser in Serializer::ALL {
        let publish = Message::Publish {
            request: 7,
            options: Val::empty_dict(),
            topic: "com.example.t".into(),
            args: Some(Val::List(vec![Val::UInt(1), Val::Str("two".into())])),
            kwargs: Some(Val::Dict(vec![("k".into(), Val::Bool(true))])),
        };
        let mut frame = Vec::new();
        publish.encode(ser, &mut frame).unwrap();
        let Message::Publish { args, kwargs, .. } = Message::parse(ser, &frame).unwrap() else {
            panic!()
        };
        let event = Message::Event {
            subscription: 1,
            publication: 2,
            details: Val::empty_dict(),
            args,
            kwargs,
        };
        let mut out = Vec::new();
        event.encode(ser, &mut out).unwrap();
        let Message::Event {
            args: Some(Val::Raw(a)),
            ..
        } = Message::parse(ser, &out).unwrap()
        else {
            panic!()
        };
        assert_eq!(a.ser, ser);
        let Val::Raw(orig) = (match Message::parse(ser, &frame).unwrap() {
            Message::Publish { args: Some(a), .. } => a,
            _ => unreachable!(),
        }) else {
            panic!()
        };
        assert_eq!(a.bytes, orig.bytes);
        assert!(
            Val::Raw(Payload {
                ser,
                bytes: a.bytes
            })
            .list_len()
                == Some(2)
        );
    }
}
