use super::*;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame: first byte `b0` (FIN, RSV, opcode) and `payload`.
fn client(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![b0];
    match payload.len() {
        n @ 0..=125 => v.push(0x80 | n as u8),
        n if n <= 0xffff => {
            v.push(0x80 | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            v.push(0x80 | 127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    v.extend_from_slice(&MASK);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    v
}

fn decode_all(d: &mut Decoder, bytes: &[u8]) -> Result<Vec<Incoming>, Violation> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(m) = d.decode(&mut buf)? {
        out.push(m);
    }
    assert!(buf.is_empty(), "all consumed");
    Ok(out)
}

fn err(d: &mut Decoder, bytes: &[u8]) -> u16 {
    decode_all(d, bytes).expect_err("refused").code
}

#[test]
fn rfc6455_masked_hello() {
    // RFC 6455 section 5.7: a single-frame masked text message.
    let wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    let mut d = Decoder::new(100, false);
    assert_eq!(
        decode_all(&mut d, &wire).unwrap(),
        vec![Incoming::Text(Bytes::from("Hello"))]
    );
}

#[test]
fn encodes_unmasked_server_frames() {
    let mut out = BytesMut::new();
    encode(&mut out, Opcode::Text, false, b"Hello");
    assert_eq!(&out[..], [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    // RFC 7692 section 7.2.3.1: "Hello" compressed, RSV1 set.
    out.clear();
    encode(
        &mut out,
        Opcode::Text,
        true,
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
    );
    assert_eq!(&out[..], [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    out.clear();
    encode(&mut out, Opcode::Binary, false, &[0u8; 256]);
    assert_eq!(&out[..4], [0x82, 0x7e, 0x01, 0x00]);
    assert_eq!(out.len(), 4 + 256);
    out.clear();
    encode(&mut out, Opcode::Binary, false, &vec![0u8; 65536]);
    assert_eq!(&out[..10], [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
    out.clear();
    encode_close(&mut out, Some(1009), "message too big");
    assert_eq!(&out[..4], [0x88, 17, 0x03, 0xf1]);
    assert_eq!(&out[4..], b"message too big");
    out.clear();
    encode_close(&mut out, Some(1000), &"é".repeat(100));
    assert_eq!(out[1], 124, "reason cut to 125 bytes at a character boundary");
}

#[test]
fn rfc7692_compressed_and_fragmented() {
    let mut d = Decoder::new(100, true);
    // Section 7.2.3.1, one frame.
    let one = client(0xc1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(
        decode_all(&mut d, &one).unwrap(),
        vec![Incoming::Text(Bytes::from("Hello"))]
    );
    // The same message in two fragments: RSV1 on the first only, a ping in between.
    let mut wire = client(0x41, &[0xf2, 0x48, 0xcd]);
    wire.extend(client(0x89, b"hb"));
    wire.extend(client(0x80, &[0xc9, 0xc9, 0x07, 0x00]));
    assert_eq!(
        decode_all(&mut d, &wire).unwrap(),
        vec![Incoming::Ping(Bytes::from("hb")), Incoming::Text(Bytes::from("Hello"))]
    );
    // Uncompressed messages still pass on a deflate connection.
    let plain = client(0x82, &[1, 2, 3]);
    assert_eq!(
        decode_all(&mut d, &plain).unwrap(),
        vec![Incoming::Binary(Bytes::from_static(&[1, 2, 3]))]
    );
}

#[test]
fn arrives_byte_by_byte() {
    let mut d = Decoder::new(1000, true);
    let msg = "x".repeat(300);
    let z = super::deflate::compress(msg.as_bytes());
    let mut wire = client(0x41, &z[..5]);
    wire.extend(client(0x80, &z[5..]));
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for b in wire {
        buf.extend_from_slice(&[b]);
        if let Some(m) = d.decode(&mut buf).unwrap() {
            got.push(m);
        }
    }
    assert_eq!(got, vec![Incoming::Text(Bytes::from(msg))]);
    assert!(!d.is_mid_message());
}

#[test]
fn close_frames() {
    let mut d = Decoder::new(100, false);
    assert_eq!(
        decode_all(&mut d, &client(0x88, &[])).unwrap(),
        vec![Incoming::Close(None)]
    );
    let mut p = 1001u16.to_be_bytes().to_vec();
    p.extend_from_slice(b"bye");
    assert_eq!(
        decode_all(&mut d, &client(0x88, &p)).unwrap(),
        vec![Incoming::Close(Some((1001, "bye".into())))]
    );
    assert_eq!(err(&mut d, &client(0x88, &[3])), CLOSE_PROTOCOL);
    assert_eq!(err(&mut d, &client(0x88, &1005u16.to_be_bytes())), CLOSE_PROTOCOL);
    assert_eq!(err(&mut d, &client(0x88, &999u16.to_be_bytes())), CLOSE_PROTOCOL);
    assert_eq!(err(&mut d, &client(0x88, &5000u16.to_be_bytes())), CLOSE_PROTOCOL);
    for ok in [1012u16, 1014, 3000, 4999] {
        let got = decode_all(&mut d, &client(0x88, &ok.to_be_bytes())).unwrap();
        assert_eq!(got, vec![Incoming::Close(Some((ok, String::new())))]);
    }
    assert_eq!(err(&mut d, &client(0x88, &[0x03, 0xe8, 0xff])), CLOSE_INVALID_DATA);
}

#[test]
fn hostile_frames_are_refused() {
    let deflate = || Decoder::new(1000, true);
    // Unmasked client frame.
    assert_eq!(err(&mut deflate(), &[0x81, 0x02, b'h', b'i']), CLOSE_PROTOCOL);
    // RSV1 on a continuation, on control frames, and without the extension.
    let mut cont = client(0x01, b"he");
    cont.extend(client(0xc0, b"llo"));
    assert_eq!(err(&mut deflate(), &cont), CLOSE_PROTOCOL);
    assert_eq!(err(&mut deflate(), &client(0xc9, b"")), CLOSE_PROTOCOL);
    assert_eq!(err(&mut deflate(), &client(0xc8, b"")), CLOSE_PROTOCOL);
    assert_eq!(err(&mut Decoder::new(100, false), &client(0xc1, b"x")), CLOSE_PROTOCOL);
    // RSV2, RSV3, unknown opcodes.
    assert_eq!(err(&mut deflate(), &client(0xa1, b"x")), CLOSE_PROTOCOL);
    assert_eq!(err(&mut deflate(), &client(0x91, b"x")), CLOSE_PROTOCOL);
    assert_eq!(err(&mut deflate(), &client(0x83, b"x")), CLOSE_PROTOCOL);
    // Fragmented or long control frames.
    assert_eq!(err(&mut deflate(), &client(0x09, b"x")), CLOSE_PROTOCOL);
    assert_eq!(err(&mut deflate(), &client(0x89, &[0; 126])), CLOSE_PROTOCOL);
    // Continuation without a start; a new message inside another.
    assert_eq!(err(&mut deflate(), &client(0x80, b"x")), CLOSE_PROTOCOL);
    let mut nested = client(0x01, b"a");
    nested.extend(client(0x81, b"b"));
    assert_eq!(err(&mut deflate(), &nested), CLOSE_PROTOCOL);
    // Text that is not UTF-8, also when it arrives compressed.
    assert_eq!(err(&mut deflate(), &client(0x81, &[0xc3, 0x28])), CLOSE_INVALID_DATA);
    let z = super::deflate::compress(&[0xff; 2000]);
    assert_eq!(
        err(&mut Decoder::new(4000, true), &client(0xc1, &z)),
        CLOSE_INVALID_DATA
    );
    // Corrupt deflate data.
    assert_eq!(err(&mut deflate(), &client(0xc2, &[0xff, 0xff])), CLOSE_INVALID_DATA);
}

#[test]
fn size_limits() {
    // An oversized frame is refused from its header, before its payload arrives.
    let mut d = Decoder::new(1000, true);
    let mut buf = BytesMut::from(&[0x82, 0xfe, 0x03, 0xe9][..]);
    assert_eq!(d.decode(&mut buf).unwrap_err().code, CLOSE_TOO_BIG);
    // A 64-bit length with the top bit set.
    let mut buf = BytesMut::from(&[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0][..]);
    assert_eq!(
        Decoder::new(1000, false).decode(&mut buf).unwrap_err().code,
        CLOSE_PROTOCOL
    );
    // Fragments that add up to more than the limit.
    let mut wire = client(0x02, &[0; 600]);
    wire.extend(client(0x80, &[0; 600]));
    assert_eq!(err(&mut Decoder::new(1000, false), &wire), CLOSE_TOO_BIG);
    // Exactly the limit passes.
    let mut wire = client(0x02, &[0; 500]);
    wire.extend(client(0x80, &[0; 500]));
    assert_eq!(decode_all(&mut Decoder::new(1000, false), &wire).unwrap().len(), 1);
    // A bomb: 10 MB of zeros in ~10 KB, refused with 1009 once past 1 MB.
    let bomb = super::deflate::compress(&vec![0u8; 10_000_000]);
    let mut wire = client(0xc2, &bomb[..bomb.len() / 2]);
    wire[0] = 0x42;
    wire.extend(client(0x80, &bomb[bomb.len() / 2..]));
    assert_eq!(err(&mut Decoder::new(1_000_000, true), &wire), CLOSE_TOO_BIG);
}

#[test]
fn control_frames_between_fragments_near_the_limit() {
    let mut d = Decoder::new(10, false);
    let mut wire = client(0x01, b"0123456789");
    wire.extend(client(0x8a, b"pong payload"));
    wire.extend(client(0x80, b""));
    assert_eq!(
        decode_all(&mut d, &wire).unwrap(),
        vec![
            Incoming::Pong(Bytes::from("pong payload")),
            Incoming::Text(Bytes::from("0123456789"))
        ]
    );
}

proptest::proptest! {
    /// Arbitrary client bytes, with and without deflate, split anywhere: no panic, nothing over the
    /// limit, text always UTF-8, and only the three close codes.
    #[test]
    fn arbitrary_bytes(
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        piece in 1usize..40,
        deflate in proptest::prelude::any::<bool>(),
    ) {
        let mut d = Decoder::new(256, deflate);
        let mut buf = BytesMut::new();
        'feed: for chunk in data.chunks(piece) {
            buf.extend_from_slice(chunk);
            loop {
                match d.decode(&mut buf) {
                    Ok(Some(Incoming::Text(t))) => {
                        proptest::prop_assert!(t.len() <= 256);
                        proptest::prop_assert!(std::str::from_utf8(&t).is_ok());
                    }
                    Ok(Some(Incoming::Binary(b))) => proptest::prop_assert!(b.len() <= 256),
                    Ok(Some(Incoming::Ping(p) | Incoming::Pong(p))) => proptest::prop_assert!(p.len() <= 125),
                    Ok(Some(Incoming::Close(_))) => {}
                    Ok(None) => break,
                    Err(v) => {
                        proptest::prop_assert!(matches!(v.code, CLOSE_PROTOCOL | CLOSE_INVALID_DATA | CLOSE_TOO_BIG));
                        break 'feed;
                    }
                }
            }
        }
    }

    /// Any message the server compresses inflates back to itself through a client frame.
    #[test]
    fn compressed_round_trip(text in "[a-z \\u{e9}\\u{1F600}]{0,3000}", split in 1usize..50) {
        let z = super::deflate::compress(text.as_bytes());
        let cut = split.min(z.len());
        let mut wire = client(0x41, &z[..cut]);
        wire.extend(client(0x80, &z[cut..]));
        let got = decode_all(&mut Decoder::new(20_000, true), &wire).unwrap();
        proptest::prop_assert_eq!(got, vec![Incoming::Text(Bytes::from(text))]);
    }
}
