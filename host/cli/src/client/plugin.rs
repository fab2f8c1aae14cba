//! `distlog plugin list|load|reload|unload|describe` (broker calls) and
//! `new|build|test|replay` (local, no broker).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use distlog_server::proto::{
    DescribePluginRequest, ListPluginsRequest, LoadPluginRequest, Plugin, PluginKind,
    ReloadPluginRequest, UnloadPluginRequest,
};
use serde_json::json;

use super::{ClientOpts, Conn, status};
use crate::output::{Table, emit};

/// The WIT world a plugin implements.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    Codec,
    Retention,
    Compaction,
}

#[derive(Debug, Subcommand)]
pub enum PluginCmd {
    /// List plugins with their active version and call statistics.
    List {
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Load a new plugin from a WebAssembly component file (admin call).
    Load {
        /// Path to the component (`.wasm`).
        file: PathBuf,
        /// Name for the plugin; default: the file name without `.wasm`.
        #[arg(long)]
        name: Option<String>,
        /// The world it must implement; default: detected from the component's exports.
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        /// A parameter for the plugin's `init`, `KEY=VALUE` (repeatable), e.g.
        /// `--param field=user.id` for the JSON-field key extractor. Kept across reloads
        /// and restarts; load the component again under another name for other values.
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Replace a plugin's component with a new version, atomically (admin call).
    Reload {
        name: String,
        file: PathBuf,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Unload a plugin (admin call).
    Unload {
        name: String,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Show one plugin's versions and statistics.
    Describe {
        name: String,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Check a component locally, without a broker: load it as the broker would,
    /// run its world's conformance suite, and run it on sample data (`--input`).
    Test(super::plugin_test::TestArgs),
    /// Start a plugin project from a template: a working plugin in the chosen language,
    /// with a copy of the plugin contract (`wit/`) so it builds on its own.
    New(super::plugin_new::NewArgs),
    /// Build the plugin project in DIR into a component, with its language's recipe
    /// (detected from the project's files).
    Build(super::plugin_build::BuildArgs),
    /// Run a plugin deterministically over stored data (a partition's segments, read-only)
    /// or a recorded sample, and print a digest of its outputs: two versions that behave
    /// alike on that data print the same digest.
    Replay(super::plugin_replay::ReplayArgs),
}

/// Per-plugin limits of `plugin load`; each overrides the broker's default
/// (`broker.plugins.*`) and is kept across reloads and restarts.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Deadline of one call, in ms (for a codec's decompress, the base that grows with the
    /// payload) [default: broker.plugins.<kind>_timeout_ms].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: Option<u64>,
    /// Deadline of instantiation plus `init`, in ms [default: broker.plugins.init_timeout_ms].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub init_timeout_ms: Option<u64>,
    /// Linear memory cap of one instance, in bytes (at most broker.plugins.max_memory_bytes)
    /// [default: broker.plugins.memory_bytes].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub memory_bytes: Option<u64>,
    /// Fuel per call; used only when the broker meters fuel (broker.plugins.fuel_metering)
    /// [default: broker.plugins.fuel].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub fuel: Option<u64>,
}

impl PluginCmd {
    /// The connection flags of a subcommand that talks to a broker; `None` for the local
    /// ones, which [`run_local`] runs without a broker.
    pub fn client(&self) -> Option<&ClientOpts> {
        match self {
            Self::List { client }
            | Self::Load { client, .. }
            | Self::Reload { client, .. }
            | Self::Unload { client, .. }
            | Self::Describe { client, .. } => Some(client),
            Self::Test(_) | Self::New(_) | Self::Build(_) | Self::Replay(_) => None,
        }
    }
}

/// Runs a subcommand for which [`PluginCmd::client`] is `None`.
pub fn run_local(cmd: PluginCmd) -> Result<()> {
    match cmd {
        PluginCmd::Test(args) => super::plugin_test::run(args),
        PluginCmd::New(args) => super::plugin_new::run(args),
        PluginCmd::Build(args) => super::plugin_build::run(args),
        PluginCmd::Replay(args) => super::plugin_replay::run(args),
        _ => bail!("this plugin subcommand needs a broker"),
    }
}

impl Kind {
    /// The plugin host's kind.
    pub fn host_kind(self) -> distlog_plugin_host::PluginKind {
        match self {
            Kind::Codec => distlog_plugin_host::PluginKind::Codec,
            Kind::Retention => distlog_plugin_host::PluginKind::Retention,
            Kind::Compaction => distlog_plugin_host::PluginKind::Compaction,
        }
    }
}

impl LimitArgs {
    /// The plugin host's limits these flags ask for.
    pub fn plugin_limits(&self) -> distlog_plugin_host::PluginLimits {
        let mut limits = distlog_plugin_host::PluginLimits::default();
        limits.timeout = self.timeout_ms.map(std::time::Duration::from_millis);
        limits.init_timeout = self.init_timeout_ms.map(std::time::Duration::from_millis);
        limits.memory_bytes = self.memory_bytes;
        limits.fuel = self.fuel;
        limits
    }
}

/// The name `plugin load` gives a component without `--name`: its file name without the
/// `.wasm` extension.
fn default_name(file: &Path) -> Result<String> {
    file.file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "cannot name the plugin after {}: pass --name",
                file.display()
            )
        })
}

pub async fn run(conn: &Conn, cmd: PluginCmd) -> Result<()> {
    let mut client = conn.plugins();
    match cmd {
        PluginCmd::Test(_) | PluginCmd::New(_) | PluginCmd::Build(_) | PluginCmd::Replay(_) => {
            bail!("this plugin subcommand runs without a broker")
        }
        PluginCmd::List { .. } => {
            let plugins = client
                .list_plugins(conn.request(ListPluginsRequest {})?)
                .await
                .map_err(status("list plugins"))?
                .into_inner()
                .plugins;
            let value: Vec<_> = plugins.iter().map(plugin_json).collect();
            emit(conn.output, &value, || {
                let mut table = Table::new([
                    "NAME", "KIND", "BUILTIN", "DIGEST", "VERSIONS", "CALLS", "ERRORS", "TIMEOUTS",
                ]);
                for p in &plugins {
                    let stats = p.stats.unwrap_or_default();
                    table.row([
                        p.name.clone(),
                        kind_name(p.kind).to_owned(),
                        p.builtin.to_string(),
                        short_digest(p),
                        p.versions.len().to_string(),
                        stats.calls.to_string(),
                        stats.errors.to_string(),
                        stats.timeouts.to_string(),
                    ]);
                }
                table.render()
            })
        }
        PluginCmd::Load {
            file,
            name,
            kind,
            params,
            limits,
            ..
        } => {
            let name = match name {
                Some(name) => name,
                None => default_name(&file)?,
            };
            let request = LoadPluginRequest {
                params: super::parse_pairs(&params)?,
                name: name.clone(),
                kind: match kind {
                    None => PluginKind::Unspecified,
                    Some(Kind::Codec) => PluginKind::Codec,
                    Some(Kind::Retention) => PluginKind::Retention,
                    Some(Kind::Compaction) => PluginKind::Compaction,
                } as i32,
                component: read(&file)?,
                timeout_ms: limits.timeout_ms.unwrap_or(0),
                init_timeout_ms: limits.init_timeout_ms.unwrap_or(0),
                memory_bytes: limits.memory_bytes.unwrap_or(0),
                fuel: limits.fuel.unwrap_or(0),
            };
            let spinner = super::plugin_progress::Spinner::start(format!(
                "loading {name} (compile, type check, init, self-test)"
            ));
            let loaded = client.load_plugin(conn.request(request)?).await;
            drop(spinner);
            let plugin = loaded
                .map_err(status("load plugin"))?
                .into_inner()
                .plugin
                .context("broker returned no plugin")?;
            show(conn, &plugin, "loaded")
        }
        PluginCmd::Reload { name, file, .. } => {
            let request = ReloadPluginRequest {
                name,
                component: read(&file)?,
            };
            let spinner = super::plugin_progress::Spinner::start(format!(
                "reloading {} (compile, type check, init, self-test)",
                request.name
            ));
            let reloaded = client.reload_plugin(conn.request(request)?).await;
            drop(spinner);
            let plugin = reloaded
                .map_err(status("reload plugin"))?
                .into_inner()
                .plugin
                .context("broker returned no plugin")?;
            show(conn, &plugin, "reloaded")
        }
        PluginCmd::Unload { name, .. } => {
            client
                .unload_plugin(conn.request(UnloadPluginRequest { name: name.clone() })?)
                .await
                .map_err(status("unload plugin"))?;
            emit(conn.output, &json!({"unloaded": name}), || {
                format!("unloaded plugin {name}\n")
            })
        }
        PluginCmd::Describe { name, .. } => {
            let plugin = client
                .describe_plugin(conn.request(DescribePluginRequest { name })?)
                .await
                .map_err(status("describe plugin"))?
                .into_inner()
                .plugin
                .context("broker returned no plugin")?;
            show(conn, &plugin, "plugin")
        }
    }
}

fn read(file: &Path) -> Result<Vec<u8>> {
    std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
}

fn kind_name(kind: i32) -> &'static str {
    match PluginKind::try_from(kind) {
        Ok(PluginKind::Codec) => "codec",
        Ok(PluginKind::Retention) => "retention",
        Ok(PluginKind::Compaction) => "compaction",
        _ => "unknown",
    }
}

fn short_digest(plugin: &Plugin) -> String {
    plugin
        .versions
        .iter()
        .find(|v| v.active)
        .map(|v| v.digest.chars().take(12).collect())
        .unwrap_or_default()
}

fn plugin_json(p: &Plugin) -> serde_json::Value {
    let stats = p.stats.unwrap_or_default();
    json!({
        "name": p.name,
        "kind": kind_name(p.kind),
        "builtin": p.builtin,
        "versions": p.versions.iter().map(|v| json!({
            "digest": v.digest,
            "active": v.active,
            "size_bytes": v.size_bytes,
            "loaded_at_ms": v.loaded_at_ms,
        })).collect::<Vec<_>>(),
        "stats": {
            "calls": stats.calls,
            "errors": stats.errors,
            "timeouts": stats.timeouts,
            "total_micros": stats.total_micros,
        },
    })
}

fn show(conn: &Conn, plugin: &Plugin, verb: &str) -> Result<()> {
    emit(conn.output, &plugin_json(plugin), || {
        let mut out = format!(
            "{verb} {} ({}{})\n\n",
            plugin.name,
            kind_name(plugin.kind),
            if plugin.builtin { ", builtin" } else { "" }
        );
        let mut table = Table::new(["DIGEST", "ACTIVE", "BYTES", "LOADED_AT_MS"]);
        for v in &plugin.versions {
            table.row([
                v.digest.clone(),
                v.active.to_string(),
                v.size_bytes.to_string(),
                v.loaded_at_ms.to_string(),
            ]);
        }
        out.push_str(&table.render());
        let stats = plugin.stats.unwrap_or_default();
        out.push_str(&format!(
            "\ncalls {}  errors {}  timeouts {}  total {} us\n",
            stats.calls, stats.errors, stats.timeouts, stats.total_micros
        ));
        out
    })
}
