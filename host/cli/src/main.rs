//! `distlog`: the DistributedLog broker (`distlog serve`) and its operator CLI.
//!
//! The binary wires the crates together and owns everything process-wide: configuration
//! layering, logging, the Prometheus endpoint, signals. Client subcommands are thin
//! gRPC calls over the generated `distlog.v1` client.

mod client;
mod config;
mod logging;
mod metrics_http;
mod output;
mod serve;
mod shell;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, CommandFactory, Parser, Subcommand};

use client::cluster::ClusterCmd;
use client::consume::ConsumeArgs;
use client::group::GroupCmd;
use client::plugin::PluginCmd;
use client::produce::ProduceArgs;
use client::topic::TopicCmd;
use client::{ClientOpts, Conn};
use logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "distlog",
    version,
    about = "DistributedLog: a commit-log broker with WebAssembly policy plugins",
    after_help = "The subcommands talk gRPC to --broker (default 127.0.0.1:9093). Kafka clients and \
tools use the broker's Kafka listener (default 127.0.0.1:9092), for example:\n  \
kcat -b 127.0.0.1:9092 -L\n  \
printf 'k:v\\n' | kcat -b 127.0.0.1:9092 -P -t events -K:\n  \
kcat -b 127.0.0.1:9092 -C -t events -o beginning -e\n\
librdkafka and Java clients need only bootstrap.servers=127.0.0.1:9092 (docs/KAFKA.md)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker.
    #[command(after_long_help = config::DEFAULT_TOML)]
    Serve(ServeArgs),
    /// Create, list, describe, delete, alter and grow topics.
    Topic {
        #[command(flatten)]
        client: ClientOpts,
        #[command(subcommand)]
        cmd: TopicCmd,
    },
    /// Append lines from stdin or a file as records.
    Produce {
        #[command(flatten)]
        client: ClientOpts,
        #[command(flatten)]
        args: ProduceArgs,
    },
    /// Print records of a topic.
    Consume {
        #[command(flatten)]
        client: ClientOpts,
        #[command(flatten)]
        args: ConsumeArgs,
    },
    /// List, load, reload, unload and describe WebAssembly plugins.
    Plugin {
        #[command(subcommand)]
        cmd: PluginCmd,
    },
    /// Consumer groups: list, describe, lag, offsets, commit, reset and delete.
    Group {
        #[command(flatten)]
        client: ClientOpts,
        #[command(subcommand)]
        cmd: GroupCmd,
    },
    /// The broker: version, listeners, uptime and status (info, health).
    Cluster {
        #[command(flatten)]
        client: ClientOpts,
        #[command(subcommand)]
        cmd: ClusterCmd,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Install, e.g.:\n  \
distlog completions bash > ~/.local/share/bash-completion/completions/distlog\n  \
distlog completions zsh > \"${fpath[1]}/_distlog\"\n  \
distlog completions fish > ~/.config/fish/completions/distlog.fish")]
    Completions(shell::CompletionsArgs),
    /// Print the distlog(1) man page (roff), or write one page per subcommand with --out.
    #[command(after_help = "Read it with: distlog man | man -l -\n\
Install every page: distlog man --out /usr/local/share/man/man1")]
    Man(shell::ManArgs),
}

/// Flags of `distlog serve`. Each overrides the setting of the same name; the full list of
/// settings (with defaults) follows in `--help`, and any of them can be set with `--set`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (overrides the embedded defaults).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory [setting: broker.data_dir].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// gRPC listen address, IP:PORT [setting: server.listen].
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Prometheus listen address, IP:PORT; "" disables [setting: metrics.listen].
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_listen: Option<String>,
    /// Admin token [setting: server.admin_token].
    #[arg(long, value_name = "TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Allow a non-loopback listen address without an admin token
    /// [setting: server.allow_unauthenticated_admin].
    #[arg(long)]
    pub insecure: bool,
    /// PEM certificate chain; with --tls-key the gRPC server speaks TLS only
    /// [setting: server.tls_cert].
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert [setting: server.tls_key].
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: clients must present a certificate it signed (mutual TLS)
    /// [setting: server.tls_client_ca].
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Log format [setting: log.format].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `distlog_broker=debug,info` [setting: log.level].
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Set any setting, KEY=VALUE with a dotted key (repeatable), e.g.
    /// `--set server.max_record_bytes=2097152`.
    #[arg(long = "set", short = 's', value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Check the configuration, print the effective settings as TOML (which `serve -c`
    /// accepts) and exit. The admin token is redacted unless --show-secrets.
    #[arg(long)]
    pub check_config: bool,
    /// With --check-config, print the admin token instead of redacting it.
    #[arg(long, requires = "check_config")]
    pub show_secrets: bool,
}

impl ServeArgs {
    /// The flags as `(key, value)` overrides in precedence order (`--set` last); keys are
    /// dotted or short names from [`config::ALIASES`].
    fn overrides(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        if let Some(dir) = &self.data_dir {
            out.push(("data_dir".into(), dir.display().to_string()));
        }
        if let Some(v) = &self.listen {
            out.push(("listen".into(), v.clone()));
        }
        if let Some(v) = &self.metrics_listen {
            out.push(("metrics_listen".into(), v.clone()));
        }
        if let Some(v) = &self.admin_token {
            out.push(("admin_token".into(), v.clone()));
        }
        if self.insecure {
            out.push(("insecure".into(), "true".into()));
        }
        for (key, path) in [
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
            ("tls_client_ca", &self.tls_client_ca),
        ] {
            if let Some(path) = path {
                out.push((key.into(), path.display().to_string()));
            }
        }
        if let Some(v) = self.log_format {
            let name = match v {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            };
            out.push(("log_format".into(), name.into()));
        }
        if let Some(v) = &self.log_level {
            out.push(("log_level".into(), v.clone()));
        }
        for pair in &self.set {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--set {pair:?}: expected KEY=VALUE"))?;
            out.push((k.trim().to_owned(), v.to_owned()));
        }
        Ok(out)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => match error.downcast_ref::<output::Quiet>() {
            Some(output::Quiet(code)) => ExitCode::from(*code),
            None => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Topic { client, cmd } => client_runtime(client, |conn| async move {
            client::topic::run(&conn, cmd).await
        }),
        Command::Produce { client, args } => client_runtime(client, |conn| async move {
            client::produce::run(&conn, args).await
        }),
        Command::Consume { client, args } => client_runtime(client, |conn| async move {
            client::consume::run(&conn, args).await
        }),
        Command::Plugin { cmd } => match cmd.client().cloned() {
            // Local subcommands (`plugin test`) take no connection flags.
            None => client::plugin::run_local(cmd),
            Some(client) => client_runtime(client, |conn| async move {
                client::plugin::run(&conn, cmd).await
            }),
        },
        Command::Group { client, cmd } => client_runtime(client, |conn| async move {
            client::group::run(&conn, cmd).await
        }),
        Command::Cluster { client, cmd } => client_runtime(client, |conn| async move {
            client::cluster::run(&conn, cmd).await
        }),
        Command::Completions(args) => shell::completions(Cli::command(), &args),
        Command::Man(args) => {
            for page in shell::man(Cli::command(), &args)? {
                println!("{}", page.display());
            }
            Ok(())
        }
    }
}

/// Runs one client subcommand on a small current-thread runtime.
fn client_runtime<F, Fut>(opts: ClientOpts, body: F) -> Result<()>
where
    F: FnOnce(Conn) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let conn = Conn::connect(&opts).await?;
        body(conn).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own consistency checks over every subcommand: no two flags share a long or
    /// short name, defaults parse, `requires`/`conflicts_with` name real arguments.
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// A command's own flags are listed before the `Connection:` heading, and the same
    /// short flag means the same thing wherever it appears.
    #[test]
    fn short_flags_mean_one_thing() {
        use std::collections::BTreeMap;
        fn walk(cmd: &clap::Command, seen: &mut BTreeMap<char, BTreeMap<String, Vec<String>>>) {
            for arg in cmd.get_arguments() {
                if let (Some(short), Some(long)) = (arg.get_short(), arg.get_long()) {
                    seen.entry(short)
                        .or_default()
                        .entry(long.to_owned())
                        .or_default()
                        .push(cmd.get_name().to_owned());
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, seen);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut seen = BTreeMap::new();
        walk(&cmd, &mut seen);
        // Each short flag stands for one long name, or for names of one family (the
        // partition count of `topic create`, the partitions of `group reset`, the
        // partition of produce and consume).
        let families: &[&[&str]] = &[
            &["partitions", "partition"],
            // `consume -c` is kcat's record count (`-n` is its alias, as in rpk); everywhere
            // else `-c` is configuration.
            &["config", "count"],
            &["output"],
            &["broker"],
            &["topic"],
            &["set"],
            &["total", "count"],
        ];
        for (short, longs) in &seen {
            if longs.len() == 1 {
                continue;
            }
            let names: Vec<&str> = longs.keys().map(String::as_str).collect();
            assert!(
                families.iter().any(|f| names.iter().all(|n| f.contains(n))),
                "-{short} stands for several flags: {longs:?}"
            );
        }
    }
}
