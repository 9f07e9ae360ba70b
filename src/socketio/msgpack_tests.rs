//! Byte-exact tests against `socket.io-msgpack-parser` 3.0.2 output, captured by
//! `tests/js/fixtures/capture-msgpack.mjs` into `tests/js/fixtures/msgpack-packets.txt`.

use super::*;
use serde_json::json;

const FIXTURES: &str = include_str!("../../tests/js/fixtures/msgpack-packets.txt");

fn fixture(name: &str) -> Bytes {
    let line = FIXTURES
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("fixture {name}"));
    let hex = line.trim().as_bytes();
    let bytes = hex
        .chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
        .collect::<Vec<u8>>();
    Bytes::from(bytes)
}

fn dec(b: &Bytes) -> Result<Packet, DecodeError> {
    decode(b, &DecoderLimits::default())
}

/// Encodes to the JS parser's bytes, and decodes them back to the same packet.
fn round_trip(name: &str, packet: Packet) {
    let wire = fixture(name);
    assert_eq!(encode(&packet), wire.to_vec(), "{name}: encode");
    assert_eq!(dec(&wire), Ok(packet), "{name}: decode");
}

fn x(n: usize) -> Value {
    Value::String("x".repeat(n))
}

#[test]
fn server_packets_match_the_js_parser() {
    round_trip("connect_reply", Packet::connect_reply("/", "abc"));
    round_trip(
        "event",
        Packet::event("/", "message", [json!({"roomId": "r1", "message": "hi"})]),
    );
    round_trip(
        "event_id_nsp",
        Packet::event("/admin", "join", [json!("r1")]).with_id(12),
    );
    round_trip("ack", Packet::ack("/", 300, vec![json!({"ok": true, "roomId": "r1"})]));
    round_trip(
        "binary",
        Packet::event("/", "bin", [placeholder(0), json!({"nested": placeholder(1)})])
            .with_attachments(vec![Bytes::from_static(&[1, 2, 3]), Bytes::from(vec![7u8; 300])]),
    );
    let numbers = json!([
        0,
        127,
        128,
        255,
        256,
        65535,
        65536,
        4294967295u64,
        4294967296u64,
        -1,
        -32,
        -33,
        -128,
        -129,
        -32768,
        -32769,
        -2147483648i64,
        -2147483649i64,
        1.5,
        -0.25,
        1_000_000_000_000_000i64,
        -1_000_000_000_000_000i64,
        null,
        true,
        false
    ]);
    round_trip("numbers", Packet::event("/", "n", numbers.as_array().unwrap().clone()));
    round_trip(
        "strings",
        Packet::event("/", "s", [x(31), x(32), x(255), x(256), json!("héllo 🎉")]),
    );
    let keys = |n: usize| Value::Object((0..n).map(|i| (format!("k{i}"), Value::from(i))).collect());
    round_trip(
        "containers",
        Packet::event(
            "/",
            "c",
            [
                json!(vec![1; 15]),
                json!(vec![2; 16]),
                keys(15),
                keys(16),
                json!([]),
                json!({}),
            ],
        ),
    );
    round_trip("disconnect", Packet::disconnect("/admin"));
    round_trip("connect_error", Packet::connect_error("/", "Not authorized", None));
}

#[test]
fn integral_floats_are_written_as_integers() {
    let p = Packet::event("/", "n", [json!(256.0), json!(-33.0)]);
    let q = Packet::event("/", "n", [json!(256), json!(-33)]);
    assert_eq!(encode(&p), encode(&q));
}

#[test]
fn client_packets_decode() {
    let p = dec(&fixture("client_connect")).unwrap();
    assert_eq!((p.ty, p.nsp.as_str(), p.data), (PacketType::Connect, "/", None));
    let p = dec(&fixture("client_connect_auth")).unwrap();
    assert_eq!((p.nsp.as_str(), p.data), ("/chat", Some(json!({"token": "t"}))));
    let p = dec(&fixture("client_emit_ack")).unwrap();
    assert_eq!(
        p,
        Packet::event("/", "join", [json!("r1")]).with_id(0),
        "options ignored"
    );
    assert_eq!(
        dec(&fixture("client_ack")),
        Ok(Packet::ack("/", 7, vec![json!({"ok": true})]))
    );
    let p = dec(&fixture("client_arraybuffer")).unwrap();
    assert_eq!(p.args(), &[placeholder(0), placeholder(1)]);
    assert_eq!(
        p.attachments,
        vec![Bytes::from_static(&[1, 2, 3]), Bytes::from(vec![0u8; 300])]
    );
    assert_eq!(p.wire_type(), PacketType::BinaryEvent);
    let p = dec(&fixture("client_undefined")).unwrap();
    assert_eq!(
        p.args(),
        &[Value::Null, json!({"b": 1})],
        "undefined as JSON.stringify writes it"
    );
}

#[test]
fn rejects_what_the_js_parser_rejects() {
    let bad = |v: Value| -> Bytes {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &json_mp(&v)).unwrap();
        Bytes::from(out)
    };
    for (v, err) in [
        (json!({"type": 5, "nsp": "/", "data": ["x"]}), DecodeError::UnknownType),
        (
            json!({"type": "2", "nsp": "/", "data": ["x"]}),
            DecodeError::UnknownType,
        ),
        (json!({"nsp": "/", "data": ["x"]}), DecodeError::UnknownType),
        (json!({"type": 2, "data": ["x"]}), DecodeError::InvalidPayload),
        (json!({"type": 2, "nsp": 1, "data": ["x"]}), DecodeError::InvalidPayload),
        (json!({"type": 2, "nsp": "/", "data": "x"}), DecodeError::InvalidPayload),
        (json!({"type": 2, "nsp": "/"}), DecodeError::InvalidPayload),
        (
            json!({"type": 2, "nsp": "/", "data": ["x"], "id": "1"}),
            DecodeError::InvalidPayload,
        ),
        (
            json!({"type": 2, "nsp": "/", "data": ["x"], "id": -1}),
            DecodeError::InvalidPayload,
        ),
        (json!({"type": 1, "nsp": "/", "data": {}}), DecodeError::InvalidPayload),
        (json!({"type": 0, "nsp": "/", "data": []}), DecodeError::InvalidPayload),
        (
            json!({"type": 2, "nsp": "/", "data": ["connect"]}),
            DecodeError::InvalidPayload,
        ),
        (json!(["not", "a", "map"]), DecodeError::InvalidPayload),
    ] {
        assert_eq!(dec(&bad(v.clone())), Err(err), "{v}");
    }
}

#[test]
fn hostile_bytes_fail_cleanly() {
    let mut wire = fixture("event").to_vec();
    wire.push(0xc0);
    assert_eq!(
        dec(&Bytes::from(wire)),
        Err(DecodeError::InvalidPayload),
        "trailing bytes"
    );
    let wire = fixture("binary");
    for cut in 0..wire.len() {
        assert!(dec(&wire.slice(..cut)).is_err(), "truncated at {cut}");
    }
    // An array32 claiming 4 billion items in a few bytes: no huge allocation, an error.
    let huge = Bytes::from_static(&[0x81, 0xa4, b'd', b'a', b't', b'a', 0xdd, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(dec(&huge), Err(DecodeError::InvalidPayload));
    // Deep nesting stops at the depth limit instead of exhausting the stack.
    let mut deep = vec![0x81, 0xa4, b'd', b'a', b't', b'a'];
    deep.extend(std::iter::repeat_n(0x91, 100_000));
    deep.push(0xc0);
    assert_eq!(dec(&Bytes::from(deep)), Err(DecodeError::InvalidPayload));
    // More binaries than the attachment limit.
    let mut many = vec![
        0x83, 0xa4, b't', b'y', b'p', b'e', 0x02, 0xa3, b'n', b's', b'p', 0xa1, b'/',
    ];
    many.extend([0xa4, b'd', b'a', b't', b'a', 0x9c, 0xa1, b'e']);
    for _ in 0..11 {
        many.extend([0xc4, 0x00]);
    }
    assert_eq!(dec(&Bytes::from(many)), Err(DecodeError::TooManyAttachments));
    // A message of one-byte values: more values than JSON could carry in the same bytes.
    let mut nils = vec![0x81, 0xa4, b'd', b'a', b't', b'a', 0xdd, 0, 0, 0x27, 0x10];
    nils.extend(std::iter::repeat_n(0xc0, 10_000));
    assert_eq!(dec(&Bytes::from(nils)), Err(DecodeError::TooLarge));
    for b in 0..=255u8 {
        let _ = dec(&Bytes::from(vec![b]));
    }
}

fn json_mp(v: &Value) -> rmpv::Value {
    match v {
        Value::Null => rmpv::Value::Nil,
        Value::Bool(b) => rmpv::Value::Boolean(*b),
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| rmpv::Value::F64(n.as_f64().unwrap()), rmpv::Value::from),
        Value::String(s) => rmpv::Value::from(s.as_str()),
        Value::Array(a) => rmpv::Value::Array(a.iter().map(json_mp).collect()),
        Value::Object(o) => rmpv::Value::Map(
            o.iter()
                .map(|(k, x)| (rmpv::Value::from(k.as_str()), json_mp(x)))
                .collect(),
        ),
    }
}

proptest::proptest! {
    /// Arbitrary bytes never panic, and what decodes is stable after one re-encoding (the fuzz
    /// target `socketio_msgpack` checks the same on a longer run).
    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
        let limits = DecoderLimits::default();
        if let Ok(packet) = decode(&Bytes::from(data), &limits) {
            let once = decode(&Bytes::from(encode(&packet)), &limits).unwrap();
            let twice = decode(&Bytes::from(encode(&once)), &limits).unwrap();
            proptest::prop_assert_eq!(once, twice);
        }
    }

    /// Fixtures with a few bytes changed: never a panic, and stable after one re-encoding.
    #[test]
    fn mutated_fixtures(line in 0usize..16, edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..4)) {
        let name = FIXTURES.lines().nth(line % FIXTURES.lines().count()).unwrap().split(' ').next().unwrap();
        let mut wire = fixture(name).to_vec();
        for (at, b) in edits {
            let i = at % wire.len();
            wire[i] = b;
        }
        let limits = DecoderLimits::default();
        if let Ok(packet) = decode(&Bytes::from(wire), &limits) {
            let once = decode(&Bytes::from(encode(&packet)), &limits).unwrap();
            let twice = decode(&Bytes::from(encode(&once)), &limits).unwrap();
            proptest::prop_assert_eq!(once, twice);
        }
    }

    /// Valid packets built from random values survive a round trip once numbers are normalized.
    #[test]
    fn random_events(name in "[a-z]{1,8}", n in proptest::prelude::any::<i64>(), s in ".{0,40}", bin in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        let p = Packet::event("/", &name, [json!(n), json!(s), placeholder(0)]).with_attachments(vec![Bytes::from(bin)]);
        proptest::prop_assert_eq!(decode(&Bytes::from(encode(&p)), &DecoderLimits::default()), Ok(p));
    }
}
