//! `serve` configuration: the embedded defaults (`default.toml`), overlaid by a TOML file,
//! then by `DISTLOG_*` environment variables, then by command-line flags (later wins).
//!
//! Every setting has a dotted key (`server.max_record_bytes`). Its environment variable is
//! `DISTLOG_` followed by the key in upper case with dots as underscores
//! (`DISTLOG_SERVER_MAX_RECORD_BYTES`); the most used settings also have a short name
//! ([`ALIASES`]: `DISTLOG_LISTEN`, `DISTLOG_DATA_DIR`, …), applied before the full names.
//! `--set KEY=VALUE` sets any key from the command line. Values from the environment and
//! `--set` are typed by the default's type. Unknown keys and ill-typed values are errors
//! that name the key and where it came from.
//!
//! The `[server]`, `[broker]` and `[kafka]` tables deserialize straight into the server's
//! [`ServerConfig`], the broker's [`BrokerConfig`] and the Kafka listener's
//! `KafkaConfig`; `[metrics]`, `[log]` and `[shutdown]` belong to the binary.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use distlog_server::{BrokerConfig, ServerConfig};
use serde::Deserialize;
use toml::{Table, Value};

use crate::logging::LogFormat;

/// The embedded defaults: every key, each with a comment.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Short names: `(short, dotted key)`. `--listen` and `DISTLOG_LISTEN` set `server.listen`.
pub const ALIASES: &[(&str, &str)] = &[
    ("listen", "server.listen"),
    ("admin_token", "server.admin_token"),
    ("insecure", "server.allow_unauthenticated_admin"),
    ("tls_cert", "server.tls_cert"),
    ("tls_key", "server.tls_key"),
    ("tls_client_ca", "server.tls_client_ca"),
    ("data_dir", "broker.data_dir"),
    ("metrics_listen", "metrics.listen"),
    ("log_format", "log.format"),
    ("log_level", "log.level"),
];

/// Tables whose keys are free-form (a map, not a struct).
const MAP_TABLES: &[&str] = &["broker.topic_defaults"];

/// The whole configuration of `distlog serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub broker: BrokerConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub shutdown: ShutdownConfig,
    pub kafka: distlog_kafka::KafkaConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Prometheus endpoint address; empty disables it.
    pub listen: String,
    /// Serve the endpoint over TLS with the gRPC server's certificates (and, with
    /// `server.tls_client_ca`, only to scrapers presenting a client certificate of it).
    pub tls: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `EnvFilter` directive; empty means `RUST_LOG`, then `info`.
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long in-flight requests may take after SIGINT/SIGTERM before the broker is
    /// closed anyway, in milliseconds.
    pub grace_ms: u64,
}

/// Where one layer of settings came from, for error messages.
#[derive(Debug, Clone, Copy)]
enum Source<'a> {
    Env(&'a str),
    Flag,
}

impl std::fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::Flag => write!(f, "command line"),
        }
    }
}

/// Builds the configuration: defaults < `file` < environment (`env`, usually
/// `std::env::vars()`) < `overrides` (`KEY=VALUE` from flags, applied in order; a key may
/// be dotted or a short name from [`ALIASES`]).
#[cfg(test)]
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &[(String, String)],
) -> Result<Config> {
    Ok(load_layers(file, env, overrides)?.0)
}

/// Builds the configuration as [`load`] does, also returning the merged layers as one TOML
/// table: every key with the value in effect, sorted by key (what `--check-config` prints).
pub fn load_layers(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &[(String, String)],
) -> Result<(Config, Table)> {
    let mut merged = defaults()?;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let layer: Table = text
            .parse()
            .map_err(|e: toml::de::Error| anyhow!("config file {}: {e}", path.display()))?;
        // Unknown keys and wrong types are reported by the typed pass below; check them
        // here first so the message names the file.
        let mut probe = merged.clone();
        overlay(&mut probe, layer);
        typed(probe.clone()).map_err(|e| anyhow!("config file {}: {e:#}", path.display()))?;
        merged = probe;
    }
    let env: std::collections::HashMap<String, String> = env.into_iter().collect();
    let mut keys: Vec<String> = ALIASES
        .iter()
        .map(|(short, _)| (*short).to_owned())
        .collect();
    keys.extend(leaf_keys(&defaults()?));
    for key in &keys {
        let var = env_var(key);
        if let Some(text) = env.get(&var) {
            set(&mut merged, key, text, Source::Env(&var))?;
        }
    }
    for (key, text) in overrides {
        set(&mut merged, key, text, Source::Flag)?;
    }
    let config = typed(merged.clone()).map_err(|e| anyhow!("invalid configuration: {e:#}"))?;
    config.validate()?;
    Ok((config, merged))
}

/// The `--check-config` rendering of `merged` (from [`load_layers`]): TOML that `serve -c`
/// accepts and that renders the same again. With `show_secrets` false, a set
/// `server.admin_token` is printed as `""` with a comment saying so: the output still parses
/// and loads, but serves without the token unless the environment or a flag sets it.
pub fn render_toml(merged: &Table, show_secrets: bool) -> Result<String> {
    let mut table = merged.clone();
    let mut redacted = false;
    if !show_secrets
        && let Some(Value::Table(server)) = table.get_mut("server")
        && let Some(Value::String(token)) = server.get_mut("admin_token")
        && !token.is_empty()
    {
        token.clear();
        redacted = true;
    }
    let body = toml::to_string(&table).context("cannot render the configuration as TOML")?;
    let mut out = String::from(
        "# distlog serve --check-config: the effective configuration (defaults < file <\n\
         # DISTLOG_* environment < flags). Feed it back with `distlog serve -c FILE`.\n\n",
    );
    let mut section = String::new();
    for line in body.lines() {
        if line.starts_with('[') {
            section = line.to_owned();
        }
        out.push_str(line);
        if redacted && section == "[server]" && line.starts_with("admin_token = ") {
            out.push_str(
                " # redacted: a token is set. Set it with DISTLOG_ADMIN_TOKEN or \
                 --admin-token, or print it with --check-config --show-secrets",
            );
        }
        out.push('\n');
    }
    Ok(out)
}

fn defaults() -> Result<Table> {
    DEFAULT_TOML
        .parse()
        .context("the embedded default configuration is invalid")
}

fn typed(table: Table) -> Result<Config> {
    let mut config: Config = Value::Table(table).try_into()?;
    // "" in the file format means "no token".
    if config.server.admin_token.as_deref() == Some("") {
        config.server.admin_token = None;
    }
    for path in [
        &mut config.server.tls_cert,
        &mut config.server.tls_key,
        &mut config.server.tls_client_ca,
        &mut config.broker.plugins.cache_dir,
        &mut config.broker.plugins.watch_dir,
    ] {
        if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            *path = None;
        }
    }
    Ok(config)
}

/// `server.max_record_bytes` → `DISTLOG_SERVER_MAX_RECORD_BYTES`.
pub fn env_var(key: &str) -> String {
    format!("DISTLOG_{}", key.replace(['.', '-'], "_").to_uppercase())
}

/// Every dotted key of the embedded defaults, in file order.
#[cfg(test)]
pub fn default_keys() -> Vec<String> {
    defaults().map(|t| leaf_keys(&t)).unwrap_or_default()
}

fn leaf_keys(table: &Table) -> Vec<String> {
    fn walk(table: &Table, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Table(t) if !MAP_TABLES.contains(&key.as_str()) => walk(t, &key, out),
                Value::Table(_) => {}
                _ => out.push(key),
            }
        }
    }
    let mut out = Vec::new();
    walk(table, "", &mut out);
    out
}

/// Deep-merges `layer` into `base`: tables merge, other values replace.
fn overlay(base: &mut Table, layer: Table) {
    for (k, v) in layer {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(base_table)), Value::Table(layer_table)) => {
                overlay(base_table, layer_table);
            }
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Sets one key from text, typed by the default value's type. `key` is dotted or a short
/// name; under a map table (`broker.topic_defaults.retention.ms`) the rest is the map key.
fn set(base: &mut Table, key: &str, text: &str, source: Source<'_>) -> Result<()> {
    let key = ALIASES
        .iter()
        .find(|(short, _)| *short == key)
        .map_or(key, |(_, full)| full);
    if let Some(map) = MAP_TABLES
        .iter()
        .find(|m| key.len() > m.len() + 1 && key.starts_with(*m) && key.as_bytes()[m.len()] == b'.')
    {
        let entry = &key[map.len() + 1..];
        let mut table = &mut *base;
        for part in map.split('.') {
            table = table
                .entry(part)
                .or_insert_with(|| Value::Table(Table::new()))
                .as_table_mut()
                .ok_or_else(|| anyhow!("{source}: {map} is not a table"))?;
        }
        table.insert(entry.to_owned(), Value::String(text.to_owned()));
        return Ok(());
    }
    let (parents, leaf) = match key.rsplit_once('.') {
        Some((parents, leaf)) => (Some(parents), leaf),
        None => (None, key),
    };
    let mut table = &mut *base;
    for part in parents.into_iter().flat_map(|p| p.split('.')) {
        table = match table.get_mut(part) {
            Some(Value::Table(t)) => t,
            _ => bail!("{source}: unknown setting {key:?}"),
        };
    }
    let slot = table
        .get_mut(leaf)
        .filter(|v| !v.is_table())
        .ok_or_else(|| anyhow!("{source}: unknown setting {key:?}"))?;
    *slot = match slot {
        Value::String(_) => Value::String(text.to_owned()),
        Value::Integer(_) => Value::Integer(
            text.trim()
                .parse()
                .map_err(|_| anyhow!("{source}: {key} must be an integer, got {text:?}"))?,
        ),
        Value::Boolean(_) => Value::Boolean(match text.trim() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => bail!("{source}: {key} must be true or false, got {text:?}"),
        }),
        Value::Float(_) => Value::Float(
            text.trim()
                .parse()
                .map_err(|_| anyhow!("{source}: {key} must be a number, got {text:?}"))?,
        ),
        other => bail!(
            "{source}: {key} is a {} and cannot be set here",
            other.type_str()
        ),
    };
    Ok(())
}

impl Config {
    fn validate(&self) -> Result<()> {
        self.metrics_addr()?;
        if self.broker.data_dir.as_os_str().is_empty() {
            bail!("broker.data_dir must not be empty");
        }
        self.server.check_limits()?;
        self.server.check_tls()?;
        if self.metrics.tls && !self.server.tls_enabled() {
            bail!(
                "metrics.tls is on but the server has no certificate: set server.tls_cert and server.tls_key"
            );
        }
        self.kafka_addr()?;
        if self.kafka.tls && !self.server.tls_enabled() {
            bail!(
                "kafka.tls is on but the server has no certificate: set server.tls_cert and server.tls_key"
            );
        }
        if !self.kafka.mechanisms().is_empty() && self.server.admin_token.is_none() {
            bail!("kafka.sasl_mechanisms needs server.admin_token: it is the password SASL checks");
        }
        Ok(())
    }

    /// The metrics address, or `None` when disabled.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>> {
        let text = self.metrics.listen.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| {
            anyhow!(
                "metrics.listen: {text:?} is not HOST:PORT with an IP address (e.g. 127.0.0.1:9644)"
            )
        })
    }

    /// Refuses a non-loopback gRPC address without an admin token, unless `--insecure`:
    /// plugin load runs code inside the broker. Checked before anything is opened.
    /// The Kafka listener's address; `None` when `kafka.listen` is empty.
    pub fn kafka_addr(&self) -> Result<Option<SocketAddr>> {
        let listen = self.kafka.listen.trim();
        if listen.is_empty() {
            return Ok(None);
        }
        listen
            .parse()
            .map(Some)
            .with_context(|| format!("kafka.listen {listen:?} is not IP:PORT"))
    }

    pub fn check_exposure(&self) -> Result<()> {
        if let Some(addr) = self.kafka_addr()?
            && !addr.ip().is_loopback()
            && self.server.admin_token.is_none()
            && !self.server.allow_unauthenticated_admin
        {
            bail!(
                "refusing to listen for Kafka clients on non-loopback address {addr} \
                     without an admin token: anyone who can reach it could delete topics. \
                     Set server.admin_token (--admin-token or DISTLOG_ADMIN_TOKEN), \
                     or pass --insecure"
            );
        }
        let addr = self.server.listen;
        if !addr.ip().is_loopback()
            && self.server.admin_token.is_none()
            && !self.server.allow_unauthenticated_admin
        {
            bail!(
                "refusing to listen on non-loopback address {addr} without an admin token: \
                 anyone who can reach it could load plugins (code) into the broker. \
                 Set server.admin_token (--admin-token or DISTLOG_ADMIN_TOKEN), \
                 or pass --insecure"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_match_the_crates_defaults() -> Result<()> {
        let config = load(None, no_env(), &[])?;
        assert_eq!(config.server, ServerConfig::default());
        let mut broker = BrokerConfig::default();
        broker.data_dir = PathBuf::from("./distlog-data");
        assert_eq!(config.broker, broker);
        assert_eq!(config.metrics.listen, "127.0.0.1:9644");
        config.check_exposure()
    }

    #[test]
    fn precedence_is_defaults_file_env_flags() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[broker]\ndata_dir = \"/from/file\"\n[server]\nlisten = \"127.0.0.1:1\"\n\
             max_record_bytes = 7\n[broker.topic_defaults]\n\"retention.ms\" = \"5\"\n",
        )?;
        let env = pairs(&[
            ("DISTLOG_LISTEN", "127.0.0.1:2"),
            ("DISTLOG_SERVER_MAX_RECORD_BYTES", "8"),
            ("DISTLOG_METRICS_LISTEN", ""),
        ]);
        let flags = pairs(&[
            ("listen", "127.0.0.1:3"),
            ("broker.topic_defaults.segment.bytes", "1048576"),
        ]);
        let config = load(Some(&path), env, &flags)?;
        assert_eq!(config.broker.data_dir, PathBuf::from("/from/file"));
        assert_eq!(config.server.listen.port(), 3);
        assert_eq!(config.server.max_record_bytes, 8);
        assert_eq!(config.metrics_addr()?, None);
        assert_eq!(
            config
                .broker
                .topic_defaults
                .get("retention.ms")
                .map(String::as_str),
            Some("5")
        );
        assert_eq!(
            config
                .broker
                .topic_defaults
                .get("segment.bytes")
                .map(String::as_str),
            Some("1048576")
        );
        Ok(())
    }

    #[test]
    fn bad_input_names_the_setting() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("c.toml");
        let message = |text: &str| -> Result<String> {
            std::fs::write(&path, text)?;
            Ok(load(Some(&path), no_env(), &[])
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default())
        };
        assert!(message("[server]\nlisten = 9092\n")?.contains("listen"));
        assert!(message("[server]\nmax_recod_bytes = 1\n")?.contains("max_recod_bytes"));
        assert!(message("[nope]\nx = 1\n")?.contains("nope"));
        assert!(message("this is = not toml [")?.contains("c.toml"));

        let env = pairs(&[("DISTLOG_SERVER_MAX_RECORD_BYTES", "big")]);
        let err = load(None, env, &[]).err().map(|e| format!("{e:#}"));
        assert!(err.is_some_and(|e| e.contains("DISTLOG_SERVER_MAX_RECORD_BYTES")));
        let err = load(None, no_env(), &pairs(&[("server.nope", "1")]))
            .err()
            .map(|e| format!("{e:#}"));
        assert!(err.is_some_and(|e| e.contains("server.nope")));
        Ok(())
    }

    #[test]
    fn non_loopback_needs_a_token() -> Result<()> {
        let flags = pairs(&[("listen", "0.0.0.0:9092")]);
        assert!(load(None, no_env(), &flags)?.check_exposure().is_err());
        let mut with_token = flags.clone();
        with_token.extend(pairs(&[("admin_token", "s3cret")]));
        load(None, no_env(), &with_token)?.check_exposure()?;
        let mut insecure = flags;
        insecure.extend(pairs(&[("insecure", "true")]));
        load(None, no_env(), &insecure)?.check_exposure()
    }

    #[test]
    fn empty_token_means_none() -> Result<()> {
        assert_eq!(load(None, no_env(), &[])?.server.admin_token, None);
        let config = load(None, pairs(&[("DISTLOG_ADMIN_TOKEN", "t")]), &[])?;
        assert_eq!(config.server.admin_token.as_deref(), Some("t"));
        Ok(())
    }

    #[test]
    fn every_key_is_documented() -> Result<()> {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CONFIG.md"))?;
        for key in default_keys() {
            assert!(
                doc.contains(&format!("`{key}`")),
                "docs/CONFIG.md misses `{key}`"
            );
            assert!(
                doc.contains(&env_var(&key)),
                "docs/CONFIG.md misses {}",
                env_var(&key)
            );
        }
        Ok(())
    }
}
