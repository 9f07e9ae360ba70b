//! `message:audio`: a voice message by URL with an optional duration.

use super::controller::{Draft, MessageController, number, put};
use super::validate::{Fields, ValidationError};
use serde_json::Value;

/// Audio messages.
pub struct AudioController;

impl MessageController for AudioController {
    fn event(&self) -> &'static str {
        "message:audio"
    }
    fn kind(&self) -> &'static str {
        "audio"
    }
    fn known_fields(&self) -> &'static [&'static str] {
        &["audioUrl", "duration"]
    }
    fn build(&self, f: &Fields<'_>) -> Result<Draft, ValidationError> {
        let url = f.url("audioUrl")?;
        let mut d = Draft {
            text: "sent a voice message".to_owned(),
            ..Draft::default()
        };
        d.fields.insert("audioUrl".into(), Value::String(url.to_owned()));
        put(
            &mut d.fields,
            "duration",
            f.optional_number("duration", 0.0, f64::MAX)?.map(number),
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
    fn audio() {
        let m = prepare(
            &AudioController,
            &json!({"roomId": "r", "audioUrl": "https://x.test/v.ogg", "duration": 3.5}),
        )
        .unwrap();
        assert_eq!(m.text, "sent a voice message");
        assert_eq!(m.metadata["duration"], 3.5);
        let e = prepare(&AudioController, &json!({"roomId": "r"})).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_str()),
            (crate::app::ErrorCode::Required, "audioUrl")
        );
    }
}
