//! Property tests: encode→decode round trips for both protocol layers, and decoders that never
//! panic on arbitrary input.

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::Value;
use sio_server::engineio::{Data, Frame, Packet as EioPacket, Str, payload};
use sio_server::socketio::{Decoder, DecoderLimits, Packet, PacketType, placeholder};

fn text_without_separator() -> impl Strategy<Value = String> {
    "[^\u{1e}]{0,40}"
}

fn eio_packet() -> impl Strategy<Value = EioPacket> {
    prop_oneof![
        text_without_separator().prop_map(|s| EioPacket::Message(Data::Text(Str::from(s)))),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| EioPacket::Message(Data::Binary(Bytes::from(b)))),
        text_without_separator().prop_map(|s| EioPacket::Ping(Str::from(s))),
        text_without_separator().prop_map(|s| EioPacket::Pong(Str::from(s))),
        Just(EioPacket::Close),
        Just(EioPacket::Upgrade),
        Just(EioPacket::Noop),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(("[a-z_]{1,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn sio_packet() -> impl Strategy<Value = Packet> {
    let nsp = prop_oneof![Just("/".to_owned()), "/[a-z0-9_-]{1,8}"];
    let event = "[a-z:]{1,10}".prop_filter("reserved", |e| {
        !sio_server::socketio::packet::RESERVED_EVENTS.contains(&e.as_str())
    });
    let args = proptest::collection::vec(json_value(), 0..4);
    let bins = proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 0..3);
    (nsp, event, args, proptest::option::of(0u64..1_000_000), bins, 0..4u8).prop_map(
        |(nsp, event, mut args, id, bins, kind)| {
            for i in 0..bins.len() {
                args.push(placeholder(i));
            }
            let attachments: Vec<Bytes> = bins.into_iter().map(Bytes::from).collect();
            let mut p = match kind {
                0 => Packet::event(&nsp, &event, args),
                1 => Packet::ack(&nsp, id.unwrap_or(0), args),
                2 => Packet::connect(&nsp, Some(Value::Object(Default::default()))),
                _ => Packet::disconnect(&nsp),
            };
            if kind <= 1 {
                p.attachments = attachments;
                if kind == 0 {
                    p.id = id;
                }
            }
            p
        },
    )
}

proptest! {
    #[test]
    fn eio_frames_round_trip(p in eio_packet()) {
        prop_assert_eq!(p.encode().decode().unwrap(), p);
    }

    #[test]
    fn eio_payloads_round_trip(ps in proptest::collection::vec(eio_packet(), 1..6)) {
        let frames: Vec<Frame> = ps.iter().map(EioPacket::encode).collect();
        let (decoded, err) = payload::decode(Bytes::from(payload::encode(&frames)));
        prop_assert_eq!(err, None);
        prop_assert_eq!(decoded, ps);
    }

    #[test]
    fn eio_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = payload::decode(Bytes::from(bytes.clone()));
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let _ = EioPacket::decode_text(&Str::from(s));
        }
    }

    #[test]
    fn sio_packets_round_trip(p in sio_packet()) {
        let enc = p.encode();
        let mut d = Decoder::new(DecoderLimits::default());
        let mut out = d.add_text(&enc.text).unwrap();
        for b in enc.attachments {
            prop_assert!(out.is_none());
            out = d.add_binary(b).unwrap();
        }
        let decoded = out.expect("complete");
        prop_assert_eq!(decoded.encode_text(), p.encode_text());
        prop_assert_eq!(decoded, p);
    }

    #[test]
    fn sio_decoder_never_panics(
        texts in proptest::collection::vec("\\PC{0,40}", 0..4),
        bins in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 0..4),
        prefix in prop_oneof![Just(""), Just("5"), Just("51-"), Just("62-/a,1"), Just("2/x,"), Just("0")],
    ) {
        let mut d = Decoder::new(DecoderLimits::default());
        for (i, t) in texts.iter().enumerate() {
            let _ = d.add_text(&format!("{prefix}{t}"));
            if let Some(b) = bins.get(i) {
                let _ = d.add_binary(Bytes::from(b.clone()));
            }
        }
    }
}

#[test]
fn binary_wire_types_are_chosen_by_attachments() {
    let p = Packet::event("/", "e", [placeholder(0)]).with_attachments(vec![Bytes::from_static(b"x")]);
    assert_eq!(p.wire_type(), PacketType::BinaryEvent);
    assert_eq!(Packet::ack("/", 1, vec![]).wire_type(), PacketType::Ack);
}
