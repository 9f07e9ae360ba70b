//! Inputs the fuzzers found, replayed on every test run (see `scripts/fuzz`). Each file in
//! `tests/fuzz_regressions/` is named `<target>-<what it found>.bin` and is fed through the same
//! checks as its fuzz target.

use bytes::Bytes;
use sio_server::socketio::{Decoder, DecoderLimits};

/// The `socketio_decoder` target's property: decoding never panics and every decoded packet
/// re-encodes to text that decodes to the same packet.
fn socketio_decoder(data: &[u8]) {
    let mut decoder = Decoder::new(DecoderLimits::default());
    for chunk in data.split(|b| *b == 0xff) {
        let out = match chunk.split_first() {
            Some((0, rest)) => decoder.add_binary(Bytes::copy_from_slice(rest)),
            _ => match std::str::from_utf8(chunk) {
                Ok(s) => decoder.add_text(s),
                Err(_) => continue,
            },
        };
        if let Ok(Some(packet)) = out {
            let mut again = Decoder::new(DecoderLimits {
                max_attachments: usize::MAX,
            });
            let mut decoded = again.add_text(&packet.encode_text()).expect("re-encoded text decodes");
            for b in &packet.attachments {
                decoded = again.add_binary(b.clone()).expect("attachments decode");
            }
            assert_eq!(decoded.expect("complete"), packet);
        }
    }
}

/// The `streams_codec` target's property: entries and session values that decode re-encode to
/// fields (a value) that decode to the same message (session).
fn streams_codec(data: &[u8]) {
    use sio_server::adapter::streams::codec::{decode_entry, decode_session, encode_entry, encode_session};
    let Some((mode, rest)) = data.split_first() else { return };
    if mode & 1 == 1 {
        if let Ok(s) = decode_session(rest) {
            assert_eq!(decode_session(encode_session(&s).as_bytes()).expect("decodes again"), s);
        }
        return;
    }
    let names: [&[u8]; 4] = [b"uid", b"nsp", b"type", b"data"];
    let fields: Vec<(&[u8], &[u8])> = names.iter().copied().zip(rest.split(|b| *b == 0xff)).collect();
    if let Ok(msg) = decode_entry(&fields) {
        assert_eq!(decode_entry(&encode_entry(&msg)).expect("decodes again"), msg);
    }
}

#[test]
fn replays_every_saved_input() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("regression folder") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let data = std::fs::read(&path).expect("readable");
        if name.starts_with("socketio_decoder-") {
            socketio_decoder(&data);
            replayed += 1;
        }
        if name.starts_with("streams_codec-") {
            streams_codec(&data);
            replayed += 1;
        }
    }
    assert!(replayed >= 4, "no saved inputs found in {}", dir.display());
}

#[test]
fn huge_integers_round_trip_as_node_would_print_them() {
    // Found by the fuzzer: a 37-digit number (parsed as f64 like JSON.parse does) must encode to
    // text that parses back to the same value.
    let mut d = Decoder::new(DecoderLimits::default());
    let p = d
        .add_text("24[7000000000000000088753480479944649380]")
        .unwrap()
        .unwrap();
    let text = p.encode_text();
    let again = Decoder::new(DecoderLimits::default()).add_text(&text).unwrap().unwrap();
    assert_eq!(again, p, "{text}");
}
