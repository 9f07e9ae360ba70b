//! Byte-exact Engine.IO v4 wire transcripts of the sans-IO session, on a virtual clock.
//! Each scenario's transcript is an insta snapshot in `tests/snapshots/`.

mod common;

use common::{App, Harness};

const HS: &str = "EIO=4&transport=polling";
const WS: &str = "EIO=4&transport=websocket";

fn polling(h: &mut Harness) -> String {
    h.get(HS);
    let sid = h.sid(1);
    format!("{HS}&sid={sid}")
}

fn check(name: &str, h: &Harness) {
    insta::assert_snapshot!(name, h.transcript());
}

#[test]
fn handshake_polling() {
    let mut h = Harness::new(App::EngineEcho);
    h.get(HS);
    check("eio_handshake_polling", &h);
}

#[test]
fn handshake_websocket() {
    let mut h = Harness::new(App::EngineEcho);
    h.ws_open(WS);
    check("eio_handshake_websocket", &h);
}

#[test]
fn ping_pong_polling() {
    let mut h = Harness::new(App::EngineEcho);
    let q = polling(&mut h);
    for _ in 0..3 {
        h.get(&q);
        h.advance(300);
        h.post(&q, b"3");
    }
    check("eio_ping_pong_polling", &h);
}

#[test]
fn ping_pong_websocket() {
    let mut h = Harness::new(App::EngineEcho);
    let sid = h.ws_open(WS).unwrap();
    for _ in 0..2 {
        h.advance(300);
        h.advance(50);
        h.ws_text(&sid, "3");
    }
    check("eio_ping_pong_websocket", &h);
}

#[test]
fn ping_timeout_polling_request_after_deadline() {
    // No timer ran between the handshake and this GET: the expired deadline is enforced on input.
    let mut h = Harness::new(App::EngineEcho);
    let q = polling(&mut h);
    h.jump(500);
    h.get(&q);
    check("eio_ping_timeout_polling", &h);
}

#[test]
fn ping_timeout_with_pending_get() {
    let mut h = Harness::new(App::EngineEcho);
    let q = polling(&mut h);
    h.get(&q);
    h.advance(300);
    h.get(&q);
    h.advance(199);
    h.advance(1);
    check("eio_ping_timeout_pending_get", &h);
}

#[test]
fn ping_timeout_websocket() {
    let mut h = Harness::new(App::EngineEcho);
    h.ws_open(WS).unwrap();
    h.advance(300);
    h.advance(200);
    check("eio_ping_timeout_websocket", &h);
}

#[test]
fn payload_batching() {
    let mut h = Harness::new(App::EngineEcho);
    let q = polling(&mut h);
    h.post(&q, b"4test1\x1e4test2\x1e4test3");
    h.get(&q);
    check("eio_payload_batching", &h);
}

#[test]
fn binary_over_polling() {
    let mut h = Harness::new(App::EngineEcho);
    let q = polling(&mut h);
    h.post(&q, b"4hello\x1ebAQIDBA==");
    h.get(&q);
    check("eio_binary_polling", &h);
}

#[test]
fn binary_over_websocket() {
    let mut h = Harness::new(App::EngineEcho);
    let sid = h.ws_open(WS).unwrap();
    h.ws_text(&sid, "4hello");
    h.ws_binary(&sid, &[1, 2, 3, 4]);
    check("eio_binary_websocket", &h);
}

/// A polling session with a GET parked, and a WebSocket probe answered (`3probe`): the upgrade is
/// pending. Returns the harness, the session's polling query and its sid.
fn probing_with_parked_get() -> (Harness, String, String) {
    let mut h = Harness::new(App::EngineEcho);
    let q = polling(&mut h);
    let sid = h.sid(1);
    h.get(&q);
    h.ws_open(&format!("{WS}&sid={sid}"));
    h.ws_text(&sid, "2probe");
    (h, q, sid)
}

#[test]
fn upgrade_with_pending_get() {
    let (mut h, q, sid) = probing_with_parked_get();
    // The GET parked when the probe is answered gets its noop at once (right after `3probe`).
    h.post(&q, b"4buffered before upgrade");
    h.get(&q);
    h.ws_text(&sid, "5");
    h.ws_text(&sid, "4hello");
    check("eio_upgrade_pending_get", &h);
}

#[test]
fn upgrade_get_parked_after_the_probe_waits_for_the_100ms_check() {
    // A client that polled again before it saw `3probe`: like Node, that GET gets its noop at
    // the next 100 ms check, not at once.
    let (mut h, q, sid) = probing_with_parked_get();
    h.get(&q);
    h.advance(99);
    h.advance(1);
    h.ws_text(&sid, "5");
    check("eio_upgrade_second_get_noop_at_check", &h);
}

#[test]
fn upgrade_pending_get_freed_by_data_gets_no_noop() {
    let (mut h, q, sid) = probing_with_parked_get();
    h.get(&q);
    h.advance(50);
    h.post(&q, b"4data before the noop check");
    h.get(&q);
    h.ws_text(&sid, "5");
    check("eio_upgrade_pending_get_freed_by_data", &h);
}

#[test]
fn requests_after_upgrade_are_refused() {
    let mut h = Harness::new(App::EngineEcho);
    let q = polling(&mut h);
    let sid = h.sid(1);
    h.ws_open(&format!("{WS}&sid={sid}"));
    h.ws_text(&sid, "2probe");
    h.ws_text(&sid, "5");
    h.get(&q);
    h.post(&q, b"4x");
    h.ws_open(&format!("{WS}&sid={sid}"));
    h.ws_text(&sid, "4still works");
    check("eio_after_upgrade", &h);
}

#[test]
fn upgrade_timeout_and_bad_probe() {
    let mut h = Harness::new(App::EngineEcho);
    h.config = sio_server::engineio::EngineConfig::default();
    let q = polling(&mut h);
    let sid = h.sid(1);
    h.ws_open(&format!("{WS}&sid={sid}"));
    h.advance(9_999);
    h.advance(1);
    h.ws_open(&format!("{WS}&sid={sid}"));
    h.ws_text(&sid, "4not a probe");
    h.post(&q, b"3");
    h.get(&q);
    check("eio_upgrade_timeout", &h);
}

#[test]
fn max_payload_polling() {
    let mut h = Harness::new(App::EngineEcho);
    h.config.max_payload = 10;
    let q = polling(&mut h);
    h.post(&q, b"4this is more than ten bytes");
    h.post(&q, b"4ten bytes");
    h.get(&q);
    check("eio_max_payload_polling", &h);
}

#[test]
fn max_payload_websocket() {
    let mut h = Harness::new(App::EngineEcho);
    h.config.max_payload = 10;
    let sid = h.ws_open(WS).unwrap();
    h.ws_text(&sid, "4this is more than ten bytes");
    check("eio_max_payload_websocket", &h);
}

#[test]
fn http_errors() {
    let mut h = Harness::new(App::EngineEcho);
    h.get("EIO=4");
    h.get("EIO=4&transport=abc");
    h.get("EIO=4&transport=polling&sid=nope");
    h.post("EIO=4&transport=polling&sid=nope", b"4x");
    h.request("POST", HS);
    h.request("PUT", HS);
    h.get(WS);
    h.get("transport=polling");
    h.get("EIO=3&transport=polling");
    h.get("EIO=abc&transport=polling");
    h.ws_open("EIO=4&transport=websocket&sid=nope");
    h.allow_handshake = false;
    h.get(HS);
    check("eio_http_errors", &h);
}

#[test]
fn duplicate_get_closes_the_session() {
    let mut h = Harness::new(App::EngineEcho);
    let q = polling(&mut h);
    h.get(&q);
    h.get(&q);
    h.get(&q);
    check("eio_duplicate_get", &h);
}

#[test]
fn aborted_get_closes_the_session() {
    let mut h = Harness::new(App::EngineEcho);
    let q = polling(&mut h);
    h.get(&q);
    h.abort_get(&h.sid(1));
    h.get(&q);
    check("eio_aborted_get", &h);
}

#[test]
fn client_close_polling() {
    let mut h = Harness::new(App::EngineEcho);
    let q = polling(&mut h);
    h.get(&q);
    h.post(&q, b"1");
    h.get(&q);
    check("eio_client_close_polling", &h);
}

#[test]
fn client_close_websocket() {
    let mut h = Harness::new(App::EngineEcho);
    let sid = h.ws_open(WS).unwrap();
    h.ws_text(&sid, "1");
    let sid = h.ws_open(WS).unwrap();
    h.ws_close(&sid);
    check("eio_client_close_websocket", &h);
}

#[test]
fn parse_errors_close_the_session() {
    let mut h = Harness::new(App::EngineEcho);
    let q = polling(&mut h);
    h.post(&q, b"4before\x1eabc");
    h.get(&q);
    let sid = h.ws_open(WS).unwrap();
    h.ws_text(&sid, "abc");
    check("eio_parse_error", &h);
}

#[test]
fn server_close_polling() {
    let mut h = Harness::new(App::EngineEcho);
    let q = polling(&mut h);
    h.post(&q, b"4last words");
    h.server_close(&h.sid(1));
    h.get(&q);
    h.get(&q);
    h.get(&q);
    check("eio_server_close_polling", &h);
}

#[test]
fn server_close_with_pending_get_and_websocket() {
    let mut h = Harness::new(App::EngineEcho);
    let q = polling(&mut h);
    h.get(&q);
    h.server_close(&h.sid(1));
    let sid = h.ws_open(WS).unwrap();
    h.server_close(&sid);
    check("eio_server_close_pending_and_ws", &h);
}

#[test]
fn client_ping_is_a_transport_error() {
    let mut h = Harness::new(App::EngineEcho);
    let sid = h.ws_open(WS).unwrap();
    h.ws_text(&sid, "2");
    check("eio_client_ping", &h);
}

#[test]
fn server_shutdown_does_not_wait_for_a_poll() {
    let mut h = Harness::new(App::EngineEcho);
    let q = polling(&mut h);
    h.post(&q, b"4queued before shutdown");
    h.server_shutdown(&h.sid(1));
    h.get(&q);
    h.get(&q);
    let sid = h.ws_open(WS).unwrap();
    h.ws_text(&sid, "4last");
    h.server_shutdown(&sid);
    check("eio_server_shutdown", &h);
}
