//! Hot-path codec costs: parsing PUBLISH, encoding EVENT with spliced
//! payload, and cross-serializer transcoding.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use wampd::protocol::{transcode, Message, Payload, Serializer, Val};

fn sample_publish(ser: Serializer) -> Vec<u8> {
    let m = Message::Publish {
        request: 239714735,
        options: Val::Dict(vec![("acknowledge".into(), Val::Bool(true))]),
        topic: "com.myapp.mytopic1".into(),
        args: Some(Val::List(vec![
            Val::Str("Hello, world!".into()),
            Val::UInt(42),
            Val::Float(1.5),
        ])),
        kwargs: Some(Val::Dict(vec![
            ("color".into(), Val::Str("orange".into())),
            ("n".into(), Val::Int(-7)),
        ])),
    };
    let mut out = Vec::new();
    m.encode(ser, &mut out).unwrap();
    out
}

fn bench(c: &mut Criterion) {
    for ser in Serializer::ALL {
        let frame = sample_publish(ser);
        c.bench_function(&format!("parse_publish/{}", ser.name()), |b| {
            b.iter(|| Message::parse(ser, black_box(&frame)).unwrap())
        });
        let Message::Publish { args, kwargs, .. } = Message::parse(ser, &frame).unwrap() else {
            unreachable!()
        };
        let event = Message::Event {
            subscription: 5512315355,
            publication: 4429313566,
            details: Val::empty_dict(),
            args,
            kwargs,
        };
        let mut out = Vec::with_capacity(256);
        c.bench_function(&format!("encode_event/{}", ser.name()), |b| {
            b.iter(|| {
                out.clear();
                black_box(&event).encode(ser, &mut out).unwrap();
                black_box(out.len())
            })
        });
    }
    let json = sample_publish(Serializer::Json);
    let p = Payload::new(Serializer::Json, &json).unwrap();
    let mut out = Vec::with_capacity(256);
    c.bench_function("transcode/json_to_msgpack", |b| {
        b.iter(|| {
            out.clear();
            transcode(black_box(p), Serializer::MsgPack, &mut out).unwrap();
            black_box(out.len())
        })
    });
    // A 4 KiB-ish payload: 40 records of mixed types.
    let mut big = String::from("[");
    for i in 0..40 {
        if i > 0 {
            big.push(',');
        }
        big.push_str(&format!(
            r#"{{"id":{i},"name":"sensor-{i}","value":{}.25,"ok":true,"tags":["a","b\u00e9"],"raw":"\u0000AAECAwQFBgc="}}"#,
            i * 3
        ));
    }
    big.push(']');
    let p = Payload::new(Serializer::Json, big.as_bytes()).unwrap();
    c.bench_function("transcode/json_to_msgpack_4k", |b| {
        b.iter(|| {
            out.clear();
            transcode(black_box(p), Serializer::MsgPack, &mut out).unwrap();
            black_box(out.len())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
