//! Compaction key from a JSON value: the field at a dotted path.
//!
//! - Param `field` (required): a dotted path such as `user.id`; a numeric
//!   segment indexes an array (`items.0.sku`). Empty segments are rejected.
//! - Key bytes: a JSON string gives its UTF-8 contents without quotes (so a
//!   record keyed `u1` and a value `{"user":{"id":"u1"}}` compact together);
//!   a number, boolean, object or array gives its canonical JSON text
//!   (objects with sorted keys, no whitespace). Hence `"42"` and `42` are the
//!   same key.
//! - No key (`none`: the record is kept whatever follows): the value is not
//!   JSON, the path is missing, or the field is `null`.
//! - Tombstones (no value): the record key, because Kafka keys tombstones by
//!   record key: a producer deletes `u1` by sending key `u1` with a null
//!   value. A tombstone without a record key has no key.
//!
//! Cost: one JSON parse per record with a value.

use distlog_plugin_sdk::Params;
use serde_json::Value;

/// The parameter naming the field.
pub const FIELD: &str = "field";

/// A parsed `field` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    segments: Vec<String>,
}

impl FieldPath {
    /// Parses init params: exactly the `field` parameter, a non-empty dotted path.
    pub fn from_params(pairs: &[(String, String)]) -> Result<Self, String> {
        let params = Params::parse(pairs, &[FIELD])?;
        let Some(path) = params.get(FIELD) else {
            return Err("missing parameter `field` (a dotted path such as `user.id`)".into());
        };
        let segments: Vec<String> = path.split('.').map(str::to_string).collect();
        if segments.iter().any(String::is_empty) {
            return Err(format!(
                "`field` = {path:?}: empty path segment (expected e.g. `user.id`)"
            ));
        }
        Ok(Self { segments })
    }

    /// The key of one record (see the crate docs for the rules).
    pub fn key(&self, record_key: Option<&[u8]>, value: Option<&[u8]>) -> Option<Vec<u8>> {
        let Some(value) = value else {
            return record_key.map(<[u8]>::to_vec);
        };
        let document: Value = serde_json::from_slice(value).ok()?;
        let mut node = &document;
        for segment in &self.segments {
            node = match node {
                Value::Object(map) => map.get(segment)?,
                Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        match node {
            Value::Null => None,
            Value::String(text) => Some(text.as_bytes().to_vec()),
            other => serde_json::to_vec(other).ok(),
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod component {
    use std::sync::Mutex;

    use distlog_plugin_sdk::compaction::{Compaction, LogRecord};
    use distlog_plugin_sdk::{Level, export_compaction, log};

    static PATH: Mutex<Option<super::FieldPath>> = Mutex::new(None);

    struct KeyJsonField;

    impl Compaction for KeyJsonField {
        fn init(params: Vec<(String, String)>) -> Result<(), String> {
            let path = super::FieldPath::from_params(&params)?;
            log(Level::Debug, "key-json-field ready");
            *PATH.lock().map_err(|_| "poisoned state".to_string())? = Some(path);
            Ok(())
        }

        fn extract_keys(records: Vec<LogRecord>) -> Result<Vec<Option<Vec<u8>>>, String> {
            let guard = PATH.lock().map_err(|_| "poisoned state".to_string())?;
            let Some(path) = guard.as_ref() else {
                return Err("init was not called: parameter `field` is required".into());
            };
            Ok(records
                .iter()
                .map(|r| path.key(r.key.as_deref(), r.value.as_deref()))
                .collect())
        }
    }

    export_compaction!(KeyJsonField);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> FieldPath {
        FieldPath::from_params(&[(FIELD.to_string(), p.to_string())]).unwrap()
    }

    #[test]
    fn extracts_nested_fields() {
        let p = path("user.id");
        let key = |v: &str| p.key(None, Some(v.as_bytes()));
        assert_eq!(key(r#"{"user":{"id":"u1"}}"#), Some(b"u1".to_vec()));
        assert_eq!(key(r#"{"user":{"id":42}}"#), Some(b"42".to_vec()));
        assert_eq!(
            key(r#"{"user":{"id":{"b":1, "a":[true]}}}"#),
            Some(br#"{"a":[true],"b":1}"#.to_vec())
        );
        assert_eq!(key(r#"{"user":{"id":null}}"#), None);
        assert_eq!(key(r#"{"user":{}}"#), None);
        assert_eq!(key(r#"{"user":"flat"}"#), None);
        assert_eq!(key("not json"), None);
        let items = path("items.1.sku");
        assert_eq!(
            items.key(None, Some(br#"{"items":[{"sku":"a"},{"sku":"b"}]}"#)),
            Some(b"b".to_vec())
        );
    }

    #[test]
    fn tombstones_use_the_record_key() {
        let p = path("id");
        assert_eq!(p.key(Some(b"k"), None), Some(b"k".to_vec()));
        assert_eq!(p.key(None, None), None);
        assert_eq!(
            p.key(Some(b"k"), Some(br#"{"id":"v"}"#)),
            Some(b"v".to_vec())
        );
    }

    #[test]
    fn validates_params() {
        assert!(FieldPath::from_params(&[]).is_err());
        assert!(FieldPath::from_params(&[(FIELD.into(), "a..b".into())]).is_err());
        assert!(FieldPath::from_params(&[("fields".into(), "a".into())]).is_err());
    }
}
