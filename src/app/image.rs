//! `message:image`: an image by URL, with optional caption and dimensions.

use super::controller::{Draft, MessageController, number, put};
use super::validate::{Fields, ValidationError};
use serde_json::Value;

/// Image messages.
pub struct ImageController;

impl MessageController for ImageController {
    fn event(&self) -> &'static str {
        "message:image"
    }
    fn kind(&self) -> &'static str {
        "image"
    }
    fn known_fields(&self) -> &'static [&'static str] {
        &["imageUrl", "caption", "width", "height", "fileSize"]
    }
    fn build(&self, f: &Fields<'_>) -> Result<Draft, ValidationError> {
        let url = f.url("imageUrl")?;
        let caption = f.optional_str("caption")?;
        let mut d = Draft {
            text: caption.unwrap_or("sent an image").to_owned(),
            ..Draft::default()
        };
        d.fields.insert("imageUrl".into(), Value::String(url.to_owned()));
        put(&mut d.fields, "caption", caption.map(|c| Value::String(c.to_owned())));
        for key in ["width", "height", "fileSize"] {
            put(&mut d.fields, key, f.optional_number(key, 0.0, f64::MAX)?.map(number));
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::controller::prepare;
    use serde_json::json;

    #[test]
    fn images() {
        let m = prepare(
            &ImageController,
            &json!({"roomId": "r", "imageUrl": "https://x.test/a.png", "width": 640}),
        )
        .unwrap();
        assert_eq!(m.text, "sent an image");
        assert_eq!(m.metadata["imageUrl"], "https://x.test/a.png");
        assert_eq!(m.metadata["width"], 640);
        let c = prepare(
            &ImageController,
            &json!({"roomId": "r", "imageUrl": "http://x.test/a", "caption": "cat"}),
        )
        .unwrap();
        assert_eq!(c.text, "cat");
        let e = prepare(
            &ImageController,
            &json!({"roomId": "r", "imageUrl": "file:///etc/passwd"}),
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.field.as_str()),
            (crate::app::ErrorCode::InvalidUrl, "imageUrl")
        );
        let e = prepare(
            &ImageController,
            &json!({"roomId": "r", "imageUrl": "http://x/a", "height": -1}),
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.field.as_str()),
            (crate::app::ErrorCode::OutOfRange, "height")
        );
    }
}
