//! Operator subcommands: thin gRPC clients over `distlog.v1`.
//!
//! Every call goes through [`Conn`], which carries the admin token and turns a
//! `tonic::Status` into an error that names the status code and the broker's message.

pub mod cluster;
pub mod consume;
pub mod format;
pub mod group;
pub mod plugin;
pub mod plugin_build;
pub mod plugin_new;
pub mod plugin_progress;
pub mod plugin_replay;
pub mod plugin_test;
pub mod produce;
pub mod timefmt;
pub mod topic;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use distlog_server::proto::cluster_client::ClusterClient;
use distlog_server::proto::groups_client::GroupsClient;
use distlog_server::proto::plugins_client::PluginsClient;
use distlog_server::proto::records_client::RecordsClient;
use distlog_server::proto::topics_client::TopicsClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::output::Output;

/// The default broker address, the same as `serve`'s default `listen`.
pub const DEFAULT_BROKER: &str = "127.0.0.1:9093";

/// Largest response the CLI decodes (a fetch of many large records, a plugin listing).
const MAX_DECODE: usize = 256 * 1024 * 1024;

/// Flags shared by every client subcommand.
#[derive(Debug, Clone, Args)]
pub struct ClientOpts {
    /// Broker address, HOST:PORT.
    #[arg(long, short = 'b', global = true, help_heading = "Connection", env = "DISTLOG_BROKER", default_value = DEFAULT_BROKER)]
    pub broker: String,
    /// Admin token, sent as `authorization: Bearer TOKEN` (needed for topic create, delete
    /// and alter and plugin load/reload/unload when the broker has one configured).
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "DISTLOG_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Connect with TLS, checking the broker's certificate against the web PKI roots (or
    /// --tls-ca). Implied by --tls-ca and by an `https://` broker address.
    #[arg(long, global = true, help_heading = "Connection", env = "DISTLOG_TLS")]
    pub tls: bool,
    /// PEM CA bundle that signed the broker's certificate (implies --tls).
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "DISTLOG_TLS_CA",
        value_name = "FILE"
    )]
    pub tls_ca: Option<PathBuf>,
    /// Name the broker's certificate must carry, when it differs from the --broker host.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "DISTLOG_TLS_DOMAIN",
        value_name = "NAME"
    )]
    pub tls_domain: Option<String>,
    /// PEM client certificate, for a broker that requires mutual TLS (with --tls-key).
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "DISTLOG_TLS_CERT",
        value_name = "FILE"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "DISTLOG_TLS_KEY",
        value_name = "FILE"
    )]
    pub tls_key: Option<PathBuf>,
}

impl ClientOpts {
    /// The `http(s)://host:port` URI of --broker.
    fn uri(&self) -> String {
        if self.broker.contains("://") {
            self.broker.clone()
        } else if self.tls_wanted() {
            format!("https://{}", self.broker)
        } else {
            format!("http://{}", self.broker)
        }
    }

    fn tls_wanted(&self) -> bool {
        self.tls
            || self.tls_ca.is_some()
            || self.tls_cert.is_some()
            || self.broker.starts_with("https://")
    }

    /// The client TLS settings, or `None` for plaintext.
    fn tls_config(&self) -> Result<Option<ClientTlsConfig>> {
        if !self.tls_wanted() {
            return Ok(None);
        }
        if self.broker.starts_with("http://") {
            anyhow::bail!(
                "--broker {} is plaintext (http://) but TLS was asked for",
                self.broker
            );
        }
        let mut tls = ClientTlsConfig::new();
        tls = match &self.tls_ca {
            Some(ca) => tls.ca_certificate(Certificate::from_pem(read_pem("--tls-ca", ca)?)),
            None => tls.with_webpki_roots(),
        };
        if let Some(domain) = &self.tls_domain {
            tls = tls.domain_name(domain.clone());
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(
                    read_pem("--tls-cert", cert)?,
                    read_pem("--tls-key", key)?,
                ));
            }
            (None, None) => {}
            _ => anyhow::bail!("--tls-cert and --tls-key go together"),
        }
        Ok(Some(tls))
    }
}

fn read_pem(flag: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{flag}: cannot read {}", path.display()))
}

/// A connection to one broker.
#[derive(Debug, Clone)]
pub struct Conn {
    channel: Channel,
    token: Option<String>,
    pub output: Output,
}

impl Conn {
    /// Connects to the broker. Fails fast (a few seconds) when nothing listens there.
    pub async fn connect(opts: &ClientOpts) -> Result<Self> {
        let endpoint = Endpoint::from_shared(opts.uri())
            .with_context(|| format!("invalid broker address {:?}", opts.broker))?
            .connect_timeout(Duration::from_secs(5));
        let mut endpoint = distlog_server::tune_endpoint(endpoint);
        if let Some(tls) = opts.tls_config()? {
            PLAINTEXT_HINT_OFF.store(true, std::sync::atomic::Ordering::Relaxed);
            endpoint = endpoint
                .tls_config(tls)
                .context("invalid TLS settings (--tls-ca, --tls-cert, --tls-key)")?;
        }
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to broker at {}", opts.broker))?;
        Ok(Self {
            channel,
            token: opts.token.clone(),
            output: opts.output,
        })
    }

    /// Wraps `message` in a request that carries the admin token, when there is one.
    pub fn request<T>(&self, message: T) -> Result<tonic::Request<T>> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token {
            let value = format!("Bearer {token}")
                .parse()
                .context("the admin token must be printable ASCII")?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }

    pub fn topics(&self) -> TopicsClient<Channel> {
        TopicsClient::new(self.channel.clone()).max_decoding_message_size(MAX_DECODE)
    }

    pub fn records(&self) -> RecordsClient<Channel> {
        RecordsClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_DECODE)
            .max_encoding_message_size(MAX_DECODE)
    }

    pub fn groups(&self) -> GroupsClient<Channel> {
        GroupsClient::new(self.channel.clone()).max_decoding_message_size(MAX_DECODE)
    }

    pub fn cluster(&self) -> ClusterClient<Channel> {
        ClusterClient::new(self.channel.clone())
    }

    pub fn plugins(&self) -> PluginsClient<Channel> {
        PluginsClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_DECODE)
            .max_encoding_message_size(MAX_DECODE)
    }
}

/// Turns a failed call into an error that reads `NotFound: topic "x" does not exist`.
pub fn status(what: &str) -> impl FnOnce(tonic::Status) -> anyhow::Error + '_ {
    move |status| {
        // A plaintext client talking to a TLS listener sees its connection fail during the
        // HTTP/2 handshake, which tonic reports, depending on timing, as a cancelled call, a
        // transport error or an h2 protocol error: never with a message from the broker.
        let transport_failure = matches!(
            status.code(),
            tonic::Code::Cancelled | tonic::Code::Unknown | tonic::Code::Internal
        ) && [
            "operation was canceled",
            "transport error",
            "h2 protocol error",
        ]
        .iter()
        .any(|m| status.message().contains(m));
        let hint = if transport_failure
            && !PLAINTEXT_HINT_OFF.load(std::sync::atomic::Ordering::Relaxed)
        {
            " (the connection was closed: if the broker serves TLS, pass --tls-ca FILE or --tls)"
        } else {
            ""
        };
        anyhow::anyhow!(
            "{what} failed: {:?}: {}{hint}",
            status.code(),
            status.message()
        )
    }
}

/// Set once a TLS connection is made: the plaintext hint of [`status`] no longer applies.
static PLAINTEXT_HINT_OFF: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Parses `KEY=VALUE` pairs (topic configuration flags).
pub fn parse_pairs(pairs: &[String]) -> Result<std::collections::HashMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => anyhow::bail!("{pair:?} is not KEY=VALUE"),
        })
        .collect()
}
