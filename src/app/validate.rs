//! Field validation for chat payloads: typed errors naming the field, shared by the socket
//! controllers and the webhook.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What is wrong with a field; its JSON form (`snake_case`) is the machine-readable `code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A required field is missing or blank.
    Required,
    /// A field has the wrong JSON type.
    InvalidType,
    /// A field is not an absolute http(s) URL.
    InvalidUrl,
    /// A number is outside its range.
    OutOfRange,
    /// A string is longer than allowed.
    TooLong,
    /// The payload is not an object (and any code this server does not know, when read back).
    #[serde(other)]
    InvalidPayload,
}

/// A validation failure, sent to clients as `{code, message, field}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationError {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// The offending field (`payload` for the payload itself).
    pub field: String,
}

impl ValidationError {
    fn new(code: ErrorCode, field: &str, message: impl Into<String>) -> ValidationError {
        ValidationError {
            code,
            message: message.into(),
            field: field.to_owned(),
        }
    }
}

/// Longest accepted room id and sender name, in characters.
pub const MAX_NAME_LEN: usize = 256;

/// A payload being validated: a JSON object.
pub struct Fields<'a>(pub &'a Map<String, Value>);

impl<'a> Fields<'a> {
    /// The payload as an object, or an `invalid_payload` error.
    pub fn of(v: &'a Value) -> Result<Fields<'a>, ValidationError> {
        v.as_object()
            .map(Fields)
            .ok_or_else(|| ValidationError::new(ErrorCode::InvalidPayload, "payload", "payload must be a JSON object"))
    }

    fn get(&self, field: &str) -> Option<&'a Value> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    /// A required non-blank string.
    pub fn required_str(&self, field: &str) -> Result<&'a str, ValidationError> {
        match self.get(field) {
            None => Err(ValidationError::new(
                ErrorCode::Required,
                field,
                format!("{field} is required"),
            )),
            Some(Value::String(s)) if s.trim().is_empty() => Err(ValidationError::new(
                ErrorCode::Required,
                field,
                format!("{field} must not be empty"),
            )),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(ValidationError::new(
                ErrorCode::InvalidType,
                field,
                format!("{field} must be a string"),
            )),
        }
    }

    /// An optional string (absent, null or empty means none).
    pub fn optional_str(&self, field: &str) -> Result<Option<&'a str>, ValidationError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ValidationError::new(
                ErrorCode::InvalidType,
                field,
                format!("{field} must be a string"),
            )),
        }
    }

    /// A required room id or name: non-blank, at most [`MAX_NAME_LEN`] characters.
    pub fn name(&self, field: &str) -> Result<&'a str, ValidationError> {
        let s = self.required_str(field)?;
        check_len(field, s)?;
        Ok(s)
    }

    /// A required absolute http(s) URL.
    pub fn url(&self, field: &str) -> Result<&'a str, ValidationError> {
        let s = self.required_str(field)?;
        if is_http_url(s) {
            Ok(s)
        } else {
            Err(ValidationError::new(
                ErrorCode::InvalidUrl,
                field,
                format!("{field} must be an absolute http(s) URL"),
            ))
        }
    }

    /// An optional number within `[min, max]`.
    pub fn optional_number(&self, field: &str, min: f64, max: f64) -> Result<Option<f64>, ValidationError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => self.number_value(field, v, min, max).map(Some),
        }
    }

    /// A required number within `[min, max]`.
    pub fn number(&self, field: &str, min: f64, max: f64) -> Result<f64, ValidationError> {
        match self.get(field) {
            None => Err(ValidationError::new(
                ErrorCode::Required,
                field,
                format!("{field} is required"),
            )),
            Some(v) => self.number_value(field, v, min, max),
        }
    }

    fn number_value(&self, field: &str, v: &Value, min: f64, max: f64) -> Result<f64, ValidationError> {
        let n = v
            .as_f64()
            .ok_or_else(|| ValidationError::new(ErrorCode::InvalidType, field, format!("{field} must be a number")))?;
        if !(min..=max).contains(&n) {
            return Err(ValidationError::new(
                ErrorCode::OutOfRange,
                field,
                format!("{field} must be between {min} and {max}"),
            ));
        }
        Ok(n)
    }

    /// An optional object (`metadata`).
    pub fn optional_object(&self, field: &str) -> Result<Option<&'a Map<String, Value>>, ValidationError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(ValidationError::new(
                ErrorCode::InvalidType,
                field,
                format!("{field} must be an object"),
            )),
        }
    }
}

/// The sender name, `Anonymous` when absent; at most [`MAX_NAME_LEN`] characters.
pub fn sender(fields: &Fields<'_>) -> Result<String, ValidationError> {
    let s = fields.optional_str("sender")?.map(str::trim).unwrap_or("Anonymous");
    check_len("sender", s)?;
    Ok(s.to_owned())
}

fn check_len(field: &str, s: &str) -> Result<(), ValidationError> {
    if s.chars().count() > MAX_NAME_LEN {
        return Err(ValidationError::new(
            ErrorCode::TooLong,
            field,
            format!("{field} must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    Ok(())
}

/// Whether `s` is an absolute `http://` or `https://` URL with a host, as [`http::Uri`] parses it.
/// Non-ASCII characters (an IDN host, a path in Vietnamese) count as letters: the shape is
/// checked, not the name.
pub fn is_http_url(s: &str) -> bool {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let ascii: String = s.chars().map(|c| if c.is_ascii() { c } else { 'x' }).collect();
    let Ok(uri) = http::Uri::try_from(ascii) else {
        return false;
    };
    matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some_and(|h| !h.is_empty() && h != "[]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls() {
        for ok in [
            "http://a.b/x.png",
            "https://cdn.example.com:8443/p?q=1#f",
            "http://[::1]:3000/a",
            "http://localhost",
            "https://user:pw@example.com/a",
            "https://cdn.example.com/ảnh%20đẹp.png",
            "http://例え.jp/x",
        ] {
            assert!(is_http_url(ok), "{ok}");
        }
        for bad in [
            "ftp://a/b",
            "//a/b",
            "https://",
            "http:///path",
            "https://a b/c",
            "javascript:alert(1)",
            "a.png",
            "http://a.b/x\ny",
            "http://:80/x",
            "HTTP//a.b",
            "mailto:a@b.c",
        ] {
            assert!(!is_http_url(bad), "{bad}");
        }
    }

    #[test]
    fn fields() {
        let v = json!({"roomId": " ", "n": "x", "lat": 91, "s": 3});
        let f = Fields::of(&v).unwrap();
        assert_eq!(f.name("roomId").unwrap_err().code, ErrorCode::Required);
        assert_eq!(f.name("missing").unwrap_err().field, "missing");
        assert_eq!(f.number("n", 0.0, 1.0).unwrap_err().code, ErrorCode::InvalidType);
        assert_eq!(f.number("lat", -90.0, 90.0).unwrap_err().code, ErrorCode::OutOfRange);
        assert_eq!(f.optional_str("s").unwrap_err().code, ErrorCode::InvalidType);
        assert_eq!(Fields::of(&json!([1])).err().unwrap().code, ErrorCode::InvalidPayload);
        let long = json!({"roomId": "r".repeat(MAX_NAME_LEN + 1)});
        assert_eq!(
            Fields::of(&long).unwrap().name("roomId").unwrap_err().code,
            ErrorCode::TooLong
        );
    }

    #[test]
    fn codes_round_trip_through_json() {
        let e = ValidationError::new(ErrorCode::OutOfRange, "lat", "too far");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v, json!({"code": "out_of_range", "message": "too far", "field": "lat"}));
        assert_eq!(serde_json::from_value::<ValidationError>(v).unwrap(), e);
        // A code this server does not know (a newer server's) reads back as invalid_payload.
        let other = json!({"code": "too_blue", "message": "m", "field": "f"});
        assert_eq!(
            serde_json::from_value::<ValidationError>(other).unwrap().code,
            ErrorCode::InvalidPayload
        );
    }
}
