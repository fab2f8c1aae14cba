//! The group coordinator's settings.

/// Settings of the [`GroupCoordinator`](crate::GroupCoordinator), Kafka's `group.*` broker
/// settings under the same names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long a group that was empty waits for more
    /// members before its first generation, extended by this much (up to the rebalance
    /// timeout) each time another member joins meanwhile. Kafka's default is 3000; 0 to 3000
    /// is sensible; 0 completes the rebalance as soon as every known member joined.
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`: the shortest session timeout a member may ask for
    /// (Kafka: 6000).
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`: the longest session timeout a member may ask for
    /// (Kafka: 300000).
    pub max_session_timeout_ms: i32,
}

impl Default for GroupConfig {
    /// A short initial delay (100 ms) and a session-timeout floor of 1 s, so tests and
    /// single-consumer groups start fast; the ceiling is Kafka's.
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 100,
            min_session_timeout_ms: 1_000,
            max_session_timeout_ms: 300_000,
        }
    }
}
