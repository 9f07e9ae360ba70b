//! `message`: plain text (the original design's DefaultMessageController).

use super::controller::{Draft, MessageController};
use super::validate::{Fields, ValidationError};

/// Plain text messages.
pub struct TextController;

impl MessageController for TextController {
    fn event(&self) -> &'static str {
        "message"
    }
    fn kind(&self) -> &'static str {
        "text"
    }
    fn known_fields(&self) -> &'static [&'static str] {
        &["message"]
    }
    fn build(&self, f: &Fields<'_>) -> Result<Draft, ValidationError> {
        Ok(Draft {
            text: f.required_str("message")?.to_owned(),
            ..Draft::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::controller::prepare;
    use serde_json::json;

    #[test]
    fn builds_text_and_keeps_client_fields() {
        let m = prepare(
            &TextController,
            &json!({"roomId": "r1", "message": "hi", "ts": 123, "metadata": {"color": "red"}}),
        )
        .unwrap();
        assert_eq!(
            (m.text.as_str(), m.sender.as_str(), m.room_id.as_str()),
            ("hi", "Anonymous", "r1")
        );
        assert_eq!(m.metadata["type"], "text");
        assert_eq!(m.metadata["ts"], 123);
        assert_eq!(m.metadata["color"], "red");
        assert!(!m.metadata.contains_key("message"));
    }

    #[test]
    fn rejects_bad_input() {
        let e = |v| prepare(&TextController, &v).unwrap_err();
        assert_eq!(e(json!({"message": "hi"})).field, "roomId");
        assert_eq!(e(json!({"roomId": "r", "message": ""})).field, "message");
        assert_eq!(
            e(json!({"roomId": "r", "message": 5})).code,
            crate::app::ErrorCode::InvalidType
        );
        assert_eq!(e(json!({"roomId": "r", "message": "x", "sender": 1})).field, "sender");
        assert_eq!(e(json!("just a string")).code, crate::app::ErrorCode::InvalidPayload);
        assert_eq!(
            e(json!({"roomId": "r", "message": "x", "metadata": 3})).field,
            "metadata"
        );
    }
}
