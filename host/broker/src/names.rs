//! Name rules, as Kafka's: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
//! Names become directory names, so these rules are also what keeps a name from escaping the
//! data directory.

use crate::BrokerError;

/// Longest topic or group name.
pub const MAX_NAME_LEN: usize = 249;

/// Checks a topic name. Cost: one pass over the name.
pub fn validate_topic_name(name: &str) -> Result<(), BrokerError> {
    validate("topic", name)
}

/// Checks a consumer group name (same rules as topics).
pub fn validate_group_name(name: &str) -> Result<(), BrokerError> {
    validate("group", name)
}

fn validate(what: &'static str, name: &str) -> Result<(), BrokerError> {
    let bad = |reason| {
        Err(BrokerError::InvalidName {
            what,
            name: name.chars().take(MAX_NAME_LEN + 1).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("must not be empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("must be at most 249 characters");
    }
    if name == "." || name == ".." {
        return bad("must not be \".\" or \"..\"");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("may contain only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_rules() {
        for ok in ["a", "orders", "a.b_c-D9", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(250), "../etc"] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }
}
