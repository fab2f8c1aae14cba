//! Structured logs: text (default) or JSON lines on stderr, filtered by `--log-level` or `RUST_LOG`.

use std::io::IsTerminal;

use anyhow::{Context, Result};
use clap::ValueEnum;
use serde::Deserialize;
use tracing_subscriber::EnvFilter;

/// How log lines are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (colours only when stderr is a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the global subscriber. `level` is an `EnvFilter` directive (`info`,
/// `distlog_broker=debug,info`); when it is `None`, `RUST_LOG` is used, then `info`.
///
/// Call once, before anything logs; a second call fails.
pub fn init(format: LogFormat, level: Option<&str>) -> Result<()> {
    let filter = match level {
        Some(directive) => EnvFilter::try_new(directive)
            .with_context(|| format!("invalid log level {directive:?}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}
