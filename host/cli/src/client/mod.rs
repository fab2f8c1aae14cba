//! Operator subcommands: thin gRPC clients over `distlog.v1`.
//!
//! Every call goes through [`Conn`], which carries the admin token and turns a
//! `tonic::Status` into an error that names the status code and the broker's message.

pub mod consume;
pub mod format;
pub mod group;
pub mod plugin;
pub mod plugin_test;
pub mod produce;
pub mod topic;

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use distlog_server::proto::groups_client::GroupsClient;
use distlog_server::proto::plugins_client::PluginsClient;
use distlog_server::proto::records_client::RecordsClient;
use distlog_server::proto::topics_client::TopicsClient;
use tonic::transport::{Channel, Endpoint};

use crate::output::Output;

/// The default broker address, the same as `serve`'s default `listen`.
pub const DEFAULT_BROKER: &str = "127.0.0.1:9092";

/// Largest response the CLI decodes (a fetch of many large records, a plugin listing).
const MAX_DECODE: usize = 256 * 1024 * 1024;

/// Flags shared by every client subcommand.
#[derive(Debug, Clone, Args)]
pub struct ClientOpts {
    /// Broker address, HOST:PORT.
    #[arg(long, global = true, env = "DISTLOG_BROKER", default_value = DEFAULT_BROKER)]
    pub broker: String,
    /// Admin token, sent as `authorization: Bearer TOKEN` (needed for delete, alter and
    /// plugin load/reload/unload when the broker has one configured).
    #[arg(long, global = true, env = "DISTLOG_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
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
        let uri = if opts.broker.contains("://") {
            opts.broker.clone()
        } else {
            format!("http://{}", opts.broker)
        };
        let channel = Endpoint::from_shared(uri)
            .with_context(|| format!("invalid broker address {:?}", opts.broker))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
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

    pub fn plugins(&self) -> PluginsClient<Channel> {
        PluginsClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_DECODE)
            .max_encoding_message_size(MAX_DECODE)
    }
}

/// Turns a failed call into an error that reads `NotFound: topic "x" does not exist`.
pub fn status(what: &str) -> impl FnOnce(tonic::Status) -> anyhow::Error + '_ {
    move |status| anyhow::anyhow!("{what} failed: {:?}: {}", status.code(), status.message())
}

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
