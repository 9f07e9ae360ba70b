//! `message:zalo`: a text message relayed from Zalo, with the Zalo user id.

use super::controller::{Draft, MessageController, put};
use super::validate::{Fields, ValidationError};
use serde_json::Value;

/// Zalo messages.
pub struct ZaloController;

impl MessageController for ZaloController {
    fn event(&self) -> &'static str {
        "message:zalo"
    }
    fn kind(&self) -> &'static str {
        "zalo"
    }
    fn known_fields(&self) -> &'static [&'static str] {
        &["message", "zaloUserId"]
    }
    fn build(&self, f: &Fields<'_>) -> Result<Draft, ValidationError> {
        let mut d = Draft {
            text: f.required_str("message")?.to_owned(),
            ..Draft::default()
        };
        put(
            &mut d.fields,
            "zaloUserId",
            f.optional_str("zaloUserId")?.map(|s| Value::String(s.to_owned())),
        );
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::controller::prepare;
    use serde_json::json;

    #[test]
    fn zalo_messages() {
        let m = prepare(
            &ZaloController,
            &json!({"roomId": "r", "message": "xin chào", "zaloUserId": "z1", "oaId": "o"}),
        )
        .unwrap();
        assert_eq!(m.text, "xin chào");
        assert_eq!(m.metadata["type"], "zalo");
        assert_eq!(m.metadata["zaloUserId"], "z1");
        assert_eq!(m.metadata["oaId"], "o");
        assert_eq!(
            prepare(&ZaloController, &json!({"roomId": "r"})).unwrap_err().field,
            "message"
        );
        let bad = prepare(
            &ZaloController,
            &json!({"roomId": "r", "message": "m", "zaloUserId": 5}),
        )
        .unwrap_err();
        assert_eq!(bad.field, "zaloUserId");
    }
}
