//! Unit tests of the streams adapter's pure parts: pid checks, offsets, msgpack re-encoding, the
//! restore-gap ring and scoped session values.
use super::*;
use crate::adapter::streams::bus::as_msgpack;
use crate::socketio::PacketType;
use serde_json::json;

fn event(text: &str, offset: &str) -> Packet {
    Packet {
        ty: PacketType::Event,
        nsp: "/".into(),
        id: None,
        data: Some(json!(["message", text, offset])),
        attachments: Vec::new(),
    }
}

fn to(rooms: &[&str]) -> BroadcastOptions {
    BroadcastOptions {
        rooms: rooms.iter().map(|r| Room::from(*r)).collect(),
        ..BroadcastOptions::default()
    }
}

#[test]
fn pids_are_checked_before_redis_is_asked() {
    assert!(valid_pid("AbCdEfGhIjKlMnOpQrSt"));
    assert!(valid_pid("a-b_c"));
    assert!(!valid_pid(""));
    assert!(!valid_pid(&"x".repeat(65)));
    assert!(!valid_pid("a b"));
    assert!(!valid_pid("a\r\nFLUSHALL"));
    assert!(!valid_pid("sio:session:*"));
}

#[test]
fn the_offset_is_the_last_string_argument() {
    assert_eq!(offset_of(&event("hi", "17-3")), Some((17, 3)));
    assert_eq!(offset_of(&event("hi", "nope")), None);
    let mut p = event("hi", "1-0");
    p.data = None;
    assert_eq!(offset_of(&p), None);
}

#[test]
fn json_cluster_messages_go_out_as_msgpack() {
    let json = br#"{"type":7,"data":{"requestId":"r"},"uid":"u","nsp":"/"}"#.to_vec();
    let mp = as_msgpack(json);
    assert_eq!(mp[0] & 0xf0, 0x80, "a msgpack map");
    let (v, _) = crate::adapter::cluster::codec::decode_any(&mp).unwrap();
    assert_eq!(
        v,
        json!({"type": 7, "data": {"requestId": "r"}, "uid": "u", "nsp": "/"})
    );
    // Already msgpack (binary): unchanged.
    assert_eq!(as_msgpack(vec![0x81, 0xa1, b'a', 0x01]), vec![0x81, 0xa1, b'a', 0x01]);
}

#[test]
fn the_ring_fills_a_restore_gap_with_the_sessions_rooms_only() {
    let mut ring = Ring::default();
    ring.start_at((0, 0));
    for (i, room) in ["r", "other", "r", "r"].iter().enumerate() {
        let id = (100, i as u64);
        ring.push(Delivered {
            id,
            packet: event(&format!("m{i}"), &format!("100-{i}")),
            opts: to(&[room]),
            size: 10,
        });
    }
    let rooms = [Room::from("sid"), Room::from("r")];
    let got = ring.between((100, 0), (100, 2), &rooms).unwrap();
    assert_eq!(got, vec![event("m2", "100-2")], "after 100-0, up to 100-2, in room r");
    assert_eq!(ring.between((100, 3), (100, 3), &rooms).unwrap(), vec![]);
    // An offset between two entries, or before the first (the ring started at 0-0), is covered.
    assert!(ring.covers((0, 0)) && ring.covers((99, 5)) && ring.covers((100, 1)));
    assert!(
        !Ring::default().covers((100, 1)),
        "a ring whose reader has not started covers nothing"
    );
    let all = vec![event("m0", "100-0"), event("m2", "100-2"), event("m3", "100-3")];
    assert_eq!(ring.between((99, 5), (100, 9), &rooms).unwrap(), all);
    assert_eq!(ring.between((100, 1), (100, 3), &rooms).unwrap(), all[1..]);
}

#[test]
fn a_ring_that_dropped_part_of_the_gap_says_so() {
    let mut ring = Ring::default();
    ring.start_at((0, 0));
    for i in 0..(RING_ENTRIES as u64 + 2) {
        ring.push(Delivered {
            id: (1, i),
            packet: event("m", &format!("1-{i}")),
            opts: to(&[]),
            size: 1,
        });
    }
    assert_eq!(ring.entries.len(), RING_ENTRIES);
    assert!(ring.between((1, 0), (1, 5), &[]).is_none(), "1-1 was dropped");
    assert_eq!(ring.between((1, 1), (1, 3), &[]).unwrap().len(), 2);
    // Bounded in bytes too.
    let mut ring = Ring::default();
    for i in 0..3 {
        ring.push(Delivered {
            id: (2, i),
            packet: event("big", "2-0"),
            opts: to(&[]),
            size: RING_BYTES / 2,
        });
    }
    assert_eq!(ring.entries.len(), 2);
    assert!(ring.bytes <= RING_BYTES);
}

#[test]
fn our_session_values_are_nodes_plus_their_namespace() {
    let s = codec::Session {
        sid: "AbCdEfGhIjKlMnOpQrSt".into(),
        pid: "p".into(),
        rooms: vec![Room::from("AbCdEfGhIjKlMnOpQrSt"), Room::from("r")],
        data: json!({"k": 1}),
    };
    let ours = encode_session_scoped(&s, "/chat", "u1");
    assert_eq!(decode_session(ours.as_bytes()).unwrap(), s, "Node reads what it knows");
    assert_eq!(session_nsp(ours.as_bytes()).as_deref(), Some("/chat"));
    assert_eq!(
        session_nsp(codec::encode_session(&s).as_bytes()),
        None,
        "Node's: any namespace"
    );
    assert_ne!(
        ours,
        encode_session_scoped(&s, "/chat", "u2"),
        "each writer's value differs"
    );
}

#[test]
fn node_sessions_are_not_restored_where_middlewares_would_be_skipped() {
    assert!(nsp_may_restore(Some("/chat"), "/chat", true));
    assert!(!nsp_may_restore(Some("/chat"), "/admin", false));
    assert!(nsp_may_restore(None, "/chat", false));
    assert!(!nsp_may_restore(None, "/admin", true));
}

fn restored(missed: &[(&str, &str)]) -> Restored {
    Restored {
        session: Session {
            sid: "s".into(),
            rooms: vec!["r".into()],
            ..Session::default()
        },
        missed: missed.iter().map(|(t, o)| event(t, o)).collect(),
        ..Restored::default()
    }
}

#[test]
fn a_ring_that_started_after_the_gap_proves_nothing() {
    let mut ring = Ring::default();
    assert!(ring.between((1, 0), (1, 0), &[]).is_none(), "reader not started");
    // Started at the stream's end 5-0, empty: cannot vouch for (1-0, 5-0].
    ring.start_at((5, 0));
    assert!(ring.between((1, 0), (5, 0), &[]).is_none());
    assert_eq!(ring.between((5, 0), (5, 0), &[]).unwrap(), vec![]);
}

#[test]
fn settle_refuses_what_it_cannot_prove_complete() {
    let mut ring = Ring::default();
    ring.start_at((10, 0));
    ring.push(Delivered {
        id: (12, 0),
        packet: event("ring", "12-0"),
        opts: to(&["r"]),
        size: 1,
    });
    // The reader has not started.
    assert!(!settle(None, Some((11, 0)), &ring, &mut restored(&[])));
    // The restore's last read is unknown.
    assert!(!settle(Some((12, 0)), None, &ring, &mut restored(&[])));
    // Reader behind the restore's read: trimmed to what the reader will not deliver.
    let mut r = restored(&[("a", "11-0"), ("b", "13-0")]);
    assert!(settle(Some((12, 0)), Some((13, 0)), &ring, &mut r));
    assert_eq!(r.missed, vec![event("a", "11-0")]);
    // Reader ahead: completed from the ring.
    let mut r = restored(&[("a", "11-0")]);
    assert!(settle(Some((12, 0)), Some((11, 0)), &ring, &mut r));
    assert_eq!(r.missed, vec![event("a", "11-0"), event("ring", "12-0")]);
    // Reader ahead, from before the ring started: refused.
    assert!(!settle(Some((12, 0)), Some((9, 0)), &ring, &mut restored(&[])));
}
