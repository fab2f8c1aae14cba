//! Parameter helpers: validation of `init` parameters and the lookup rule "topic
//! configuration first, then init parameters, then the default" that retention policies
//! follow. Nothing here knows the bindings, so it builds and tests natively.

use std::collections::BTreeMap;

/// Validated `key = value` parameters (a plugin's `init` params or a topic's
/// configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// Accepts `pairs` if every key is in `allowed` and none repeats.
    ///
    /// Errors name the offending key and the accepted ones, so a typo in a
    /// plugin's configuration surfaces at load time. Cost: O(n log n).
    pub fn parse(pairs: &[(String, String)], allowed: &[&str]) -> Result<Self, String> {
        let mut values = BTreeMap::new();
        for (key, value) in pairs {
            if !allowed.contains(&key.as_str()) {
                return Err(if allowed.is_empty() {
                    format!("unknown parameter `{key}`: this plugin takes no parameters")
                } else {
                    format!(
                        "unknown parameter `{key}` (accepted: {})",
                        allowed.join(", ")
                    )
                });
            }
            if values.insert(key.clone(), value.clone()).is_some() {
                return Err(format!("parameter `{key}` given twice"));
            }
        }
        Ok(Self { values })
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

/// Finds `key` in a topic configuration (the last occurrence wins, as when a
/// configuration is altered by appending). Unknown keys are not an error here:
/// a topic configuration carries settings for every component of the broker.
pub fn config_value<'a>(config: &'a [(String, String)], key: &str) -> Option<&'a str> {
    config
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Parses a Kafka-style signed limit: a non-negative integer, or `-1` for
/// "unlimited" (returned as `None`). Any other negative number is an error.
pub fn parse_limit(key: &str, value: &str) -> Result<Option<u64>, String> {
    let trimmed = value.trim();
    match trimmed.parse::<i64>() {
        Ok(-1) => Ok(None),
        Ok(n) if n >= 0 => Ok(Some(n.unsigned_abs())),
        Ok(n) => Err(format!(
            "`{key}` = {n}: expected a non-negative integer or -1 (unlimited)"
        )),
        Err(_) => Err(format!(
            "`{key}` = {value:?}: expected a non-negative integer or -1 (unlimited)"
        )),
    }
}

/// The effective limit for `key`: the topic configuration if it sets `key`,
/// else the plugin's init parameter, else `default`.
pub fn effective_limit(
    config: &[(String, String)],
    params: &Params,
    key: &str,
    default: Option<u64>,
) -> Result<Option<u64>, String> {
    if let Some(value) = config_value(config, key) {
        return parse_limit(key, value).map_err(|e| format!("topic config: {e}"));
    }
    match params.get(key) {
        Some(value) => parse_limit(key, value),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rejects_unknown_and_repeated_keys() {
        assert!(Params::parse(&pairs(&[("retention.ms", "1")]), &["retention.ms"]).is_ok());
        let err = Params::parse(&pairs(&[("retention.msx", "1")]), &["retention.ms"]).unwrap_err();
        assert!(err.contains("retention.msx"), "{err}");
        let err = Params::parse(&pairs(&[("a", "1"), ("a", "2")]), &["a"]).unwrap_err();
        assert!(err.contains("twice"), "{err}");
        assert!(Params::parse(&pairs(&[("a", "1")]), &[]).is_err());
    }

    #[test]
    fn limits_follow_kafka_conventions() {
        assert_eq!(parse_limit("k", "-1"), Ok(None));
        assert_eq!(parse_limit("k", "0"), Ok(Some(0)));
        assert_eq!(parse_limit("k", " 42 "), Ok(Some(42)));
        assert!(parse_limit("k", "-2").is_err());
        assert!(parse_limit("k", "1e3").is_err());
    }

    #[test]
    fn topic_config_overrides_params() {
        let params = Params::parse(&pairs(&[("k", "10")]), &["k"]).unwrap();
        assert_eq!(effective_limit(&[], &params, "k", None), Ok(Some(10)));
        let config = pairs(&[("k", "5"), ("k", "7")]);
        assert_eq!(effective_limit(&config, &params, "k", None), Ok(Some(7)));
        let empty = Params::default();
        assert_eq!(effective_limit(&[], &empty, "k", Some(3)), Ok(Some(3)));
    }
}
