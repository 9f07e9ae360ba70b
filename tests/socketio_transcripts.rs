//! Byte-exact Socket.IO v5 wire transcripts over the sans-IO Engine.IO session, on a virtual clock,
//! with the conformance server behaviour (see `common`). Snapshots live in `tests/snapshots/`.

mod common;

use common::{App, Harness};
use serde_json::json;
use sio_server::socketio::{Packet, placeholder};

const HS: &str = "EIO=4&transport=polling";
const WS: &str = "EIO=4&transport=websocket";

fn ws(h: &mut Harness) -> String {
    h.ws_open(WS).expect("handshake")
}

fn ws_connected(h: &mut Harness) -> String {
    let sid = ws(h);
    h.ws_text(&sid, "40");
    sid
}

fn check(name: &str, h: &Harness) {
    insta::assert_snapshot!(name, h.transcript());
}

#[test]
fn connect_main_namespace_polling() {
    let mut h = Harness::new(App::SocketIo);
    h.get(HS);
    let q = format!("{HS}&sid={}", h.sid(1));
    h.post(&q, b"40");
    h.get(&q);
    check("sio_connect_main_polling", &h);
}

#[test]
fn connect_main_namespace_with_auth() {
    let mut h = Harness::new(App::SocketIo);
    let sid = ws(&mut h);
    h.ws_text(&sid, r#"40{"token":"123"}"#);
    check("sio_connect_main_auth", &h);
}

#[test]
fn connect_custom_namespace_with_auth() {
    let mut h = Harness::new(App::SocketIo);
    let sid = ws(&mut h);
    h.ws_text(&sid, "40/custom,");
    h.ws_text(&sid, r#"40/custom,{"token":"abc"}"#);
    let sid = ws(&mut h);
    h.ws_text(&sid, r#"40/custom,{"token":"abc"}"#);
    check("sio_connect_custom_auth", &h);
}

#[test]
fn connect_error_for_unknown_namespace_and_middleware() {
    let mut h = Harness::new(App::SocketIo);
    let sid = ws(&mut h);
    h.ws_text(&sid, "40/random");
    h.ws_text(&sid, "40/private,");
    h.ws_text(&sid, "40");
    check("sio_connect_error", &h);
}

#[test]
fn event_without_and_with_ack() {
    let mut h = Harness::new(App::SocketIo);
    let sid = ws_connected(&mut h);
    h.ws_text(&sid, r#"42["message",1,"2",{"3":[true]}]"#);
    h.ws_text(&sid, r#"42456["message-with-ack",1,"2",{"3":[false]}]"#);
    check("sio_event_ack", &h);
}

#[test]
fn server_emit_with_ack_and_client_ack() {
    let mut h = Harness::new(App::SocketIo);
    let sid = ws_connected(&mut h);
    h.server_emit(&sid, Packet::event("/", "question", [json!("ready?")]).with_id(0));
    h.ws_text(&sid, r#"430["yes",{"at":1}]"#);
    check("sio_server_ack", &h);
}

#[test]
fn binary_event_websocket() {
    let mut h = Harness::new(App::SocketIo);
    let sid = ws_connected(&mut h);
    h.ws_text(
        &sid,
        r#"452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    );
    h.ws_binary(&sid, &[1, 2, 3]);
    h.ws_binary(&sid, &[4, 5, 6]);
    check("sio_binary_event_ws", &h);
}

#[test]
fn binary_event_with_ack_websocket() {
    let mut h = Harness::new(App::SocketIo);
    let sid = ws_connected(&mut h);
    h.ws_text(
        &sid,
        r#"452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    );
    h.ws_binary(&sid, &[1, 2, 3]);
    h.ws_binary(&sid, &[4, 5, 6]);
    check("sio_binary_ack_ws", &h);
}

#[test]
fn binary_event_polling() {
    let mut h = Harness::new(App::SocketIo);
    h.get(HS);
    let q = format!("{HS}&sid={}", h.sid(1));
    h.post(&q, b"40");
    h.get(&q);
    h.post(&q, b"451-[\"message\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID");
    h.get(&q);
    let sid = h.sid(1);
    let nested = json!({"file": placeholder(0), "name": "a.bin"});
    h.server_emit(
        &sid,
        Packet::event("/", "upload", [nested]).with_attachments(vec![bytes::Bytes::from_static(&[0xff, 0])]),
    );
    h.get(&q);
    check("sio_binary_polling", &h);
}

#[test]
fn client_disconnect_gets_no_reply() {
    let mut h = Harness::new(App::SocketIo);
    let sid = ws_connected(&mut h);
    h.advance(300);
    h.ws_text(&sid, "3");
    h.ws_text(&sid, "40/custom");
    h.ws_text(&sid, "41/custom");
    h.ws_text(&sid, r#"42["message","message to main namespace"]"#);
    h.ws_text(&sid, "41");
    h.advance(300);
    check("sio_client_disconnect", &h);
}

#[test]
fn server_disconnects_namespace_then_connection() {
    let mut h = Harness::new(App::SocketIo);
    let sid = ws_connected(&mut h);
    h.ws_text(&sid, "40/custom,");
    h.server_disconnect(&sid, "/custom", false);
    h.server_disconnect(&sid, "/", true);
    h.get(HS);
    let q = format!("{HS}&sid={}", h.sid(2));
    h.post(&q, b"40");
    h.get(&q);
    let sid = h.sid(2);
    h.server_disconnect(&sid, "/", true);
    h.get(&q);
    h.get(&q);
    check("sio_server_disconnect", &h);
}

#[test]
fn connect_timeout_closes_the_connection() {
    let mut h = Harness::new(App::SocketIo);
    h.config = sio_server::engineio::EngineConfig::default();
    ws(&mut h);
    h.advance(999);
    h.advance(1);
    check("sio_connect_timeout", &h);
}

#[test]
fn invalid_packets_close_the_connection() {
    let mut h = Harness::new(App::SocketIo);
    for bad in [
        "4abc",
        "42{}",
        r#"42abc["message-with-ack",1,"2",{"3":[false]}]"#,
        "44{}",
    ] {
        let sid = ws_connected(&mut h);
        h.ws_text(&sid, bad);
    }
    check("sio_invalid_packets", &h);
}

#[test]
fn protocol_violations_over_polling() {
    let mut h = Harness::new(App::SocketIo);
    h.get(HS);
    let q = format!("{HS}&sid={}", h.sid(1));
    h.post(&q, br#"42["some event"]"#);
    h.get(&q);
    h.get(HS);
    let q = format!("{HS}&sid={}", h.sid(2));
    h.post(&q, b"40");
    h.get(&q);
    h.post(&q, b"40");
    h.get(&q);
    h.get(&q);
    check("sio_violations_polling", &h);
}
