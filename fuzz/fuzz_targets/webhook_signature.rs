//! The webhook's signature check: arbitrary timestamp and signature headers and bodies never
//! panic; a request signed with the secret verifies, and the replay guard sees it only once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sio_server::webhook::signature::{ReplayGuard, Sighting, sign, verify};

const SECRET: &[u8] = b"a-fuzzing-secret-of-at-least-32-bytes";
const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let (ts, sig, body) = (parts.next(), parts.next(), parts.next().unwrap_or("").as_bytes());
    let _ = verify(SECRET, ts, body, sig, NOW);
    let at = ts.and_then(|t| t.trim().parse::<i64>().ok()).unwrap_or(NOW).clamp(NOW - 300, NOW + 300);
    let good = sign(SECRET, at, body);
    let signed = verify(SECRET, Some(&at.to_string()), body, Some(&good), NOW).expect("a fresh signature verifies");
    let guard = ReplayGuard::new(4);
    assert_eq!(guard.check(signed, NOW), Sighting::First);
    assert_eq!(guard.check(signed, NOW), Sighting::Again);
});
