use super::*;

fn pmd(v: &str) -> Option<Params> {
    negotiate([v])
}

#[test]
fn negotiates_what_browsers_and_ws_offer() {
    // Chromium, Firefox and Node's `ws` client all send this.
    let p = pmd("permessage-deflate; client_max_window_bits").expect("accepted");
    assert_eq!(p.server_max_window_bits, None);
    assert_eq!(
        p.response(),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    assert!(pmd("permessage-deflate").is_some());
    assert!(pmd("permessage-deflate; client_no_context_takeover; server_no_context_takeover").is_some());
    assert!(pmd("permessage-deflate; client_max_window_bits=10").is_some());
}

#[test]
fn echoes_server_max_window_bits() {
    let p = pmd("permessage-deflate; server_max_window_bits=10").unwrap();
    assert_eq!(p.server_max_window_bits, Some(10));
    assert!(p.response().ends_with("; server_max_window_bits=10"));
    assert!(p.compresses(1024));
    assert!(!p.compresses(1025), "a longer message could reach past a 1 KiB window");
    assert!(!p.compresses(1023), "under the threshold");
    assert!(pmd("permessage-deflate").unwrap().compresses(1_000_000));
    assert!(
        pmd("permessage-deflate; server_max_window_bits=15")
            .unwrap()
            .compresses(1_000_000)
    );
}

#[test]
fn declines_bad_offers_and_takes_the_next() {
    assert_eq!(pmd("x-webkit-deflate-frame"), None);
    assert_eq!(pmd("permessage-deflate; server_max_window_bits"), None, "needs a value");
    assert_eq!(pmd("permessage-deflate; server_max_window_bits=7"), None);
    assert_eq!(pmd("permessage-deflate; client_max_window_bits=16"), None);
    // Only a plain decimal 8..15: no sign, no leading zero (RFC 7692 section 7.1.2).
    for v in ["+10", "010", "08", " ", "1 0", "0x0a"] {
        assert_eq!(
            pmd(&format!("permessage-deflate; server_max_window_bits={v}")),
            None,
            "{v:?}"
        );
        assert_eq!(
            pmd(&format!("permessage-deflate; client_max_window_bits={v}")),
            None,
            "{v:?}"
        );
    }
    assert_eq!(
        pmd("permessage-deflate; server_max_window_bits=8").unwrap().response(),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8"
    );
    assert_eq!(pmd("permessage-deflate; mystery"), None);
    assert_eq!(
        pmd("permessage-deflate; client_no_context_takeover; client_no_context_takeover"),
        None
    );
    assert_eq!(pmd("permessage-deflate; server_no_context_takeover=1"), None);
    let p = negotiate([
        "foo, permessage-deflate; server_max_window_bits=99",
        "permessage-deflate; server_max_window_bits=\"12\"",
    ]);
    assert_eq!(p.unwrap().server_max_window_bits, Some(12));
    assert_eq!(negotiate(Vec::<&str>::new()), None);
}

#[test]
fn rfc7692_section_7_2_3_1_hello() {
    // "Hello" compressed in one block, as RFC 7692 section 7.2.3.1 gives it.
    let z = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    assert_eq!(&inflate(&z, 100).unwrap()[..], b"Hello");
    // Section 7.2.3.3: in a stored (uncompressed) block.
    let stored = [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
    assert_eq!(&inflate(&stored, 100).unwrap()[..], b"Hello");
    // Section 7.2.3.4: in two blocks (the first a sync flush's empty stored block).
    let two = [
        0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(&inflate(&two, 100).unwrap()[..], b"Hello");
    // Section 7.2.3.5: with BFINAL set.
    let fin = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    assert_eq!(&inflate(&fin, 100).unwrap()[..], b"Hello");
}

#[test]
fn compress_round_trips_and_drops_the_tail() {
    let text = "42[\"message\",{\"text\":\"hello hello hello\"}]".repeat(60);
    let z = compress(text.as_bytes());
    assert!(z.len() < text.len() / 4, "{} of {}", z.len(), text.len());
    assert!(!z.ends_with(&TAIL));
    assert_eq!(&inflate(&z, text.len()).unwrap()[..], text.as_bytes());
    // The same input gives the same bytes every time: no context is kept.
    assert_eq!(compress(text.as_bytes()), z);
    assert_eq!(&inflate(&z, text.len()).unwrap()[..], text.as_bytes());
    // Incompressible data too, and past the inflater's scratch size.
    let noise: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert_eq!(&inflate(&compress(&noise), noise.len()).unwrap()[..], &noise[..]);
}

#[test]
fn inflate_stops_at_the_limit() {
    let zeros = vec![0u8; 10 << 20];
    let bomb = compress(&zeros);
    assert!(bomb.len() < 100_000, "10 MiB of zeros is a small bomb: {}", bomb.len());
    assert_eq!(inflate(&bomb, 1_000_000), Err(InflateError::TooBig));
    assert_eq!(inflate(&bomb, zeros.len()).unwrap().len(), zeros.len());
    let z = compress(&[7u8; 2000]);
    assert_eq!(inflate(&z, 1999), Err(InflateError::TooBig));
    assert_eq!(inflate(&z, 2000).unwrap().len(), 2000);
}

#[test]
fn inflate_refuses_garbage() {
    // BTYPE 11 is reserved.
    assert_eq!(inflate(&[0xff, 0xff, 0xff], 100), Err(InflateError::Corrupt));
    // A stored block whose length and its complement disagree.
    assert_eq!(
        inflate(&[0x00, 0x05, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5], 100),
        Err(InflateError::Corrupt)
    );
}

#[test]
fn a_shared_frame_is_compressed_once() {
    let frame = Bytes::from("4".to_owned() + &"2[\"m\",\"shared\"]".repeat(100));
    let receivers: Vec<Bytes> = (0..3).map(|_| frame.clone()).collect();
    let a = compress_shared(&receivers[0]);
    let b = compress_shared(&receivers[1]);
    assert_eq!(a.as_ptr(), b.as_ptr(), "the second receiver gets the first one's bytes");
    assert_eq!(&inflate(&a, 10_000).unwrap()[..], &frame[..]);
    // Equal content in another allocation is compressed on its own, with the same result.
    let other = Bytes::from(frame.to_vec());
    let keep = other.clone();
    let c = compress_shared(&other);
    assert_ne!(c.as_ptr(), a.as_ptr());
    assert_eq!(c, a);
    drop(keep);
    // A frame only one connection holds is not cached.
    let unique = Bytes::from(frame.to_vec());
    assert_eq!(compress_shared(&unique), a);
    assert!(
        !CACHE.lock().iter().any(|c| c.source.as_ptr() == unique.as_ptr()),
        "unique bytes not kept"
    );
}

#[test]
fn the_cache_is_bounded() {
    let frames: Vec<Bytes> = (0..CACHE_ENTRIES * 2)
        .map(|i| Bytes::from(format!("4{i}").repeat(700)))
        .collect();
    let held: Vec<Bytes> = frames.clone();
    for f in &frames {
        compress_shared(f);
    }
    let cache = CACHE.lock();
    assert!(cache.len() <= CACHE_ENTRIES);
    assert!(cache.iter().map(|c| c.source.len()).sum::<usize>() <= CACHE_BYTES);
    drop(held);
}
