//! Byte-exact tests of the streams codec against entries, a session and pub/sub payloads captured
//! from the real Node adapter (`tests/js/fixtures/capture-streams.mjs` regenerates them; uids and
//! socket ids are random, so the tests read them from the fixtures instead of hard-coding them).

use super::*;
use crate::adapter::BroadcastFlags;
use serde_json::json;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/streams/", $name)).as_slice()
    };
}

/// An `.entry` fixture: one `<field> <value>` line per field, in stream order.
fn fields(file: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    file.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let sp = l.iter().position(|b| *b == b' ').expect("a space after the field name");
            (l[..sp].to_vec(), l[sp + 1..].to_vec())
        })
        .collect()
}

/// The entry re-encoded in the fixture's format.
fn render(pairs: &[(&'static str, String)]) -> Vec<u8> {
    pairs
        .iter()
        .flat_map(|(k, v)| format!("{k} {v}\n").into_bytes())
        .collect()
}

/// Decodes a fixture, checks that it re-encodes to the same bytes, returns the message.
fn roundtrip(file: &[u8]) -> StreamMessage {
    let msg = decode_entry(&fields(file)).expect("decodes");
    assert_eq!(
        String::from_utf8_lossy(&render(&encode_entry(&msg))),
        String::from_utf8_lossy(file),
        "re-encoded byte for byte"
    );
    assert_eq!(msg.uid.len(), 16, "a socket.io-adapter uid");
    assert_eq!(msg.nsp, "/");
    msg
}

fn broadcast(msg: StreamMessage) -> (Packet, BroadcastOptions) {
    match msg.body {
        Body::Broadcast { packet, opts } => (packet, opts),
        other => panic!("not a broadcast: {other:?}"),
    }
}

fn rooms(names: &[&str]) -> Vec<Room> {
    names.iter().map(|r| Room::from(*r)).collect()
}

#[test]
fn node_text_broadcasts_roundtrip() {
    let (p, o) = broadcast(roundtrip(fixture!("03-broadcast-text.entry")));
    assert_eq!(p.ty, PacketType::Event);
    assert_eq!(p.nsp, "/");
    assert_eq!(p.id, None);
    assert_eq!(
        p.data,
        Some(json!(["chat", {"text": "héllo", "n": 1, "f": 1.5, "ok": true, "none": null}]))
    );
    assert_eq!(
        o,
        BroadcastOptions {
            rooms: rooms(&["room1"]),
            ..Default::default()
        }
    );

    let (p, o) = broadcast(roundtrip(fixture!("04-broadcast-all.entry")));
    assert_eq!(p.data, Some(json!(["news", "to everyone"])));
    assert!(o.rooms.is_empty() && o.except.is_empty());

    let (p, o) = broadcast(roundtrip(fixture!("05-broadcast-except.entry")));
    assert_eq!(p.data, Some(json!(["chat", [1, -2, 300, 70000, "x"]])));
    assert_eq!((o.rooms, o.except), (rooms(&["room1"]), rooms(&["room2"])));

    let (_, o) = broadcast(roundtrip(fixture!("06-broadcast-volatile.entry")));
    assert_eq!(
        o.flags,
        BroadcastFlags {
            volatile: true,
            ..Default::default()
        }
    );
}

#[test]
fn node_private_emits_are_broadcasts_to_the_socket_id() {
    for file in [
        fixture!("01-welcome.entry"),
        fixture!("02-welcome-other.entry"),
        fixture!("08-private-emit.entry"),
    ] {
        let (p, o) = broadcast(roundtrip(file));
        assert_eq!(o.rooms.len(), 1);
        assert_eq!(o.rooms[0].len(), 20, "a socket id: {:?}", o.rooms);
        assert!(p.data.unwrap()[0].is_string());
    }
}

#[test]
fn node_binary_broadcast_is_base64_msgpack_with_bins_in_place() {
    let file = fixture!("07-broadcast-binary.entry");
    let data = &fields(file)[3].1;
    assert_ne!(data[0], b'{', "binary content is not JSON");
    let (p, o) = broadcast(roundtrip(file));
    assert_eq!(p.ty, PacketType::Event, "Node keeps type 2; the parser makes it binary");
    assert_eq!(
        p.data,
        Some(
            json!(["file", {"name": "a.bin", "bytes": {"_placeholder": true, "num": 0},
            "more": [{"_placeholder": true, "num": 1}]}])
        )
    );
    assert_eq!(
        p.attachments,
        vec![Bytes::from_static(&[0, 1, 2, 255]), Bytes::from_static(b"xyz")]
    );
    assert_eq!(o.rooms, rooms(&["room1"]));
}

#[test]
fn node_room_operations_roundtrip() {
    match roundtrip(fixture!("09-sockets-join.entry")).body {
        Body::SocketsJoin { opts, rooms: r } => {
            assert_eq!((opts.rooms, r), (rooms(&["room1"]), rooms(&["room2"])));
        }
        other => panic!("{other:?}"),
    }
    match roundtrip(fixture!("10-sockets-leave.entry")).body {
        Body::SocketsLeave { opts, rooms: r } => {
            assert_eq!((opts.rooms, r), (rooms(&["room1"]), rooms(&["room2"])));
        }
        other => panic!("{other:?}"),
    }
    match roundtrip(fixture!("11-disconnect-sockets.entry")).body {
        Body::DisconnectSockets { opts, close } => {
            assert_eq!((opts.rooms, close), (rooms(&["nobody-here"]), false));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn our_binary_event_packets_go_out_as_node_type_2() {
    let packet = Packet {
        ty: PacketType::BinaryEvent,
        nsp: "/".into(),
        id: None,
        data: Some(json!(["b", {"_placeholder": true, "num": 0}])),
        attachments: vec![Bytes::from_static(&[9])],
    };
    let msg = StreamMessage {
        uid: "u".into(),
        nsp: "/".into(),
        body: Body::Broadcast {
            packet,
            opts: Default::default(),
        },
    };
    let back = decode_entry(&encode_entry(&msg)).unwrap();
    let (p, _) = broadcast(back);
    assert_eq!(
        (p.ty, p.attachments),
        (PacketType::Event, vec![Bytes::from_static(&[9])])
    );
}

#[test]
fn node_session_value_roundtrips() {
    let raw = fixture!("session.value");
    let s = decode_session(raw).expect("decodes");
    assert_eq!(s.sid.as_bytes(), fixture!("session.sid"));
    assert_eq!(s.pid.as_bytes(), fixture!("session.pid"));
    assert_eq!(
        s.rooms,
        vec![Room::from(s.sid.as_str()), Room::from("room1"), Room::from("room3")]
    );
    assert_eq!(s.data, json!({"user": "bob", "n": 7}));
    assert_eq!(encode_session(&s).as_bytes(), raw, "re-encoded byte for byte");
    assert_eq!(session_key(DEFAULT_SESSION_KEY_PREFIX, "abc"), "sio:session:abc");
}

#[test]
fn node_pubsub_payloads_are_whole_msgpack_messages() {
    for (file, ty) in [
        (fixture!("pubsub-01-request.bin"), mt::FETCH_SOCKETS),
        (fixture!("pubsub-02-response.bin"), 8),
        (fixture!("pubsub-03-request.bin"), mt::SERVER_SIDE_EMIT),
    ] {
        let v = decode_mp(file).unwrap();
        let keys: Vec<_> = v
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(keys, ["type", "data", "uid", "nsp"]);
        assert_eq!(v.as_map().unwrap()[0].1.as_u64(), Some(ty));
        assert!(is_ephemeral(ty, false) || ty == 8);
    }
    assert!(is_ephemeral(mt::BROADCAST, true));
    assert!(!is_ephemeral(mt::BROADCAST, false));
    assert!(!is_ephemeral(mt::SOCKETS_JOIN, false));
}

#[test]
fn bad_entries_are_errors_not_panics() {
    let bad: &[&[(&str, &str)]] = &[
        &[("uid", "u"), ("type", "3"), ("data", "{}")],
        &[("uid", "u"), ("nsp", "/"), ("type", "x"), ("data", "{}")],
        &[("uid", "u"), ("nsp", "/"), ("type", "3")],
        &[
            ("uid", "u"),
            ("nsp", "/"),
            ("type", "3"),
            ("data", "{\"packet\":{\"type\":2}}"),
        ],
        &[("uid", "u"), ("nsp", "/"), ("type", "3"), ("data", "{not json")],
        &[("uid", "u"), ("nsp", "/"), ("type", "3"), ("data", "!!!not base64")],
        &[("uid", "u"), ("nsp", "/"), ("type", "3"), ("data", "AAAA")],
        &[
            ("uid", "u"),
            ("nsp", "/"),
            ("type", "4"),
            ("data", "{\"opts\":{},\"rooms\":[1]}"),
        ],
    ];
    for fields in bad {
        assert!(decode_entry(fields).is_err(), "{fields:?}");
    }
    let other = decode_entry(&[("uid", "u"), ("nsp", "/"), ("type", "13")]).unwrap();
    assert_eq!(
        other.body,
        Body::Other {
            ty: 13,
            data: None,
            attachments: vec![]
        }
    );
    assert_eq!(render(&encode_entry(&other)), b"uid u\nnsp /\ntype 13\n");
    // Found by fuzzing: data that is not an object must not go out as JSON (readers would take it
    // for base64).
    let odd = decode_entry(&[("uid", "u"), ("nsp", "/"), ("type", "32"), ("data", "7348")]).unwrap();
    assert_eq!(decode_entry(&encode_entry(&odd)).unwrap(), odd);
    for bad in [&b""[..], b"!!", b"AAAA", b"kQ=="] {
        assert!(decode_session(bad).is_err());
    }
}

#[test]
fn offsets_and_replay_filter() {
    assert_eq!(parse_stream_id("1700000000000-0"), Some((1_700_000_000_000, 0)));
    for bad in [
        "",
        "-",
        "1-",
        "-1",
        "1",
        "1-2-3",
        "a-1",
        "+1-2",
        "1-99999999999999999999",
        " 1-2",
    ] {
        assert_eq!(parse_stream_id(bad), None, "{bad:?}");
    }
    assert_eq!(next_offset("5-7").as_deref(), Some("5-8"));
    assert_eq!(next_offset(&format!("5-{}", u64::MAX)).as_deref(), Some("6-0"));
    assert_eq!(next_offset("x"), None);

    let session = rooms(&["sid", "room1"]);
    let opts = |r: &[&str], e: &[&str], volatile| BroadcastOptions {
        rooms: rooms(r),
        except: rooms(e),
        flags: BroadcastFlags {
            volatile,
            ..Default::default()
        },
    };
    assert!(should_replay(&session, &opts(&[], &[], false)));
    assert!(should_replay(&session, &opts(&["room1", "x"], &[], false)));
    assert!(should_replay(&session, &opts(&["sid"], &[], false)));
    assert!(!should_replay(&session, &opts(&["other"], &[], false)));
    assert!(!should_replay(&session, &opts(&["room1"], &["sid"], false)));
    assert!(!should_replay(&session, &opts(&[], &[], true)));
}
