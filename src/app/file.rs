//! `message:file`: a file by URL with its name, size and type.

use super::controller::{Draft, MessageController, number, put};
use super::validate::{Fields, ValidationError};
use serde_json::Value;

/// File messages.
pub struct FileController;

impl MessageController for FileController {
    fn event(&self) -> &'static str {
        "message:file"
    }
    fn kind(&self) -> &'static str {
        "file"
    }
    fn known_fields(&self) -> &'static [&'static str] {
        &["fileUrl", "fileName", "fileSize", "fileType"]
    }
    fn build(&self, f: &Fields<'_>) -> Result<Draft, ValidationError> {
        let url = f.url("fileUrl")?;
        let name = f.required_str("fileName")?;
        let mut d = Draft {
            text: name.to_owned(),
            ..Draft::default()
        };
        d.fields.insert("fileUrl".into(), Value::String(url.to_owned()));
        d.fields.insert("fileName".into(), Value::String(name.to_owned()));
        put(
            &mut d.fields,
            "fileSize",
            f.optional_number("fileSize", 0.0, f64::MAX)?.map(number),
        );
        put(
            &mut d.fields,
            "fileType",
            f.optional_str("fileType")?.map(|s| Value::String(s.to_owned())),
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
    fn files() {
        let p = json!({"roomId": "r", "fileUrl": "https://x.test/r.pdf", "fileName": "r.pdf", "fileSize": 2048, "fileType": "application/pdf"});
        let m = prepare(&FileController, &p).unwrap();
        assert_eq!(m.text, "r.pdf");
        assert_eq!(m.metadata["fileSize"], 2048);
        assert_eq!(m.metadata["fileType"], "application/pdf");
        let e = prepare(
            &FileController,
            &json!({"roomId": "r", "fileUrl": "https://x.test/r.pdf"}),
        )
        .unwrap_err();
        assert_eq!(e.field, "fileName");
        let e = prepare(
            &FileController,
            &json!({"roomId": "r", "fileUrl": "x", "fileName": "n"}),
        )
        .unwrap_err();
        assert_eq!(e.field, "fileUrl");
    }
}
