//! Compaction key = the record key, Kafka's `cleanup.policy=compact`.
//!
//! A record without a key has no compaction key (`none`: it is kept whatever
//! follows). Tombstones are keyed like any other record. Params: none.
//! Cost: one copy of each key.

use distlog_plugin_sdk::Params;

/// Validates init params: this plugin takes none.
pub fn parse_params(pairs: &[(String, String)]) -> Result<(), String> {
    Params::parse(pairs, &[]).map(|_| ())
}

/// The compaction key of a record with key `key`.
pub fn key(key: Option<&[u8]>) -> Option<Vec<u8>> {
    key.map(<[u8]>::to_vec)
}

#[cfg(target_arch = "wasm32")]
mod component {
    use distlog_plugin_sdk::compaction::{Compaction, LogRecord};
    use distlog_plugin_sdk::{Level, export_compaction, log};

    struct KeyRecordKey;

    impl Compaction for KeyRecordKey {
        fn init(params: Vec<(String, String)>) -> Result<(), String> {
            super::parse_params(&params)?;
            log(Level::Debug, "key-record-key ready");
            Ok(())
        }

        fn extract_keys(records: Vec<LogRecord>) -> Result<Vec<Option<Vec<u8>>>, String> {
            Ok(records.into_iter().map(|r| r.key).collect())
        }
    }

    export_compaction!(KeyRecordKey);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_the_record_key() {
        assert_eq!(key(Some(b"k")), Some(b"k".to_vec()));
        assert_eq!(key(None), None);
        assert!(parse_params(&[]).is_ok());
        assert!(parse_params(&[("x".into(), "y".into())]).is_err());
    }
}
