//! The webhook's JSON validation (the chat controllers): arbitrary JSON never panics, and an
//! accepted payload always yields a message with the room and type it claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sio_server::app::controller::prepare;
use sio_server::app::registry::default_controllers;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    for controller in default_controllers() {
        if let Ok(message) = prepare(controller.as_ref(), &value) {
            assert_eq!(Some(message.room_id.as_str()), value.get("roomId").and_then(|v| v.as_str()));
            assert_eq!(message.metadata.get("type").and_then(|t| t.as_str()), Some(controller.kind()));
            assert!(!message.id.is_empty());
        }
    }
});
