//! `message:location`: coordinates with an optional address.

use super::controller::{Draft, MessageController, put};
use super::validate::{Fields, ValidationError};
use serde_json::Value;

/// Location messages.
pub struct LocationController;

impl MessageController for LocationController {
    fn event(&self) -> &'static str {
        "message:location"
    }
    fn kind(&self) -> &'static str {
        "location"
    }
    fn known_fields(&self) -> &'static [&'static str] {
        &["latitude", "longitude", "address"]
    }
    fn build(&self, f: &Fields<'_>) -> Result<Draft, ValidationError> {
        let lat = f.number("latitude", -90.0, 90.0)?;
        let lon = f.number("longitude", -180.0, 180.0)?;
        let address = f.optional_str("address")?;
        let mut d = Draft {
            text: address.unwrap_or("shared a location").to_owned(),
            ..Draft::default()
        };
        d.fields.insert("latitude".into(), Value::from(lat));
        d.fields.insert("longitude".into(), Value::from(lon));
        put(&mut d.fields, "address", address.map(|a| Value::String(a.to_owned())));
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::controller::prepare;
    use serde_json::json;

    #[test]
    fn locations() {
        let m = prepare(
            &LocationController,
            &json!({"roomId": "r", "latitude": 10.77, "longitude": 106.7}),
        )
        .unwrap();
        assert_eq!(m.text, "shared a location");
        assert_eq!(m.metadata["latitude"], 10.77);
        let m = prepare(
            &LocationController,
            &json!({"roomId": "r", "latitude": 0, "longitude": 0, "address": "HCMC"}),
        )
        .unwrap();
        assert_eq!(m.text, "HCMC");
        let e = prepare(
            &LocationController,
            &json!({"roomId": "r", "latitude": 100, "longitude": 0}),
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.field.as_str()),
            (crate::app::ErrorCode::OutOfRange, "latitude")
        );
        let e = prepare(
            &LocationController,
            &json!({"roomId": "r", "latitude": "1", "longitude": 0}),
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.field.as_str()),
            (crate::app::ErrorCode::InvalidType, "latitude")
        );
        assert_eq!(
            prepare(&LocationController, &json!({"roomId": "r", "latitude": 1}))
                .unwrap_err()
                .field,
            "longitude"
        );
    }
}
