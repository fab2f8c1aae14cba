//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs over topic resources (every
//! topic configuration key of the broker, plus Kafka's `compression.type` for the broker's
//! `compression`) and a few read-only broker settings, so that `kafka-configs`, kcat and the
//! admin clients can read and change topic configurations.
//!
//! Kafka's names: every topic key of the broker that Kafka also has (`cleanup.policy`,
//! `retention.ms`, `segment.bytes`, `max.message.bytes`, ...) keeps its name; Kafka's
//! `compression.type` is the broker's `compression`, with `producer`, `uncompressed` and
//! `none` meaning no codec and every other value (`lz4`, `zstd`, a plugin name) passed on as
//! the broker takes it (it refuses `gzip` and `snappy`, which no bundled codec implements).

use super::{ADMIN_NEEDED, Ctx, Fatal, Principal, broker_error, refusal};
use crate::api::{blocking, s};
use distlog_broker::config::{CODEC_ALIASES, TOPIC_CONFIG_KEYS};
use distlog_broker::{Broker, BrokerError};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// `ConfigResource.Type` codes.
pub(super) const TOPIC: i8 = 2;
pub(super) const BROKER: i8 = 4;

/// `ConfigSource` codes.
pub(super) const DYNAMIC_TOPIC_CONFIG: i8 = 1;
pub(super) const STATIC_BROKER_CONFIG: i8 = 4;
pub(super) const DEFAULT_CONFIG: i8 = 5;

/// `ConfigType` codes (DescribeConfigs v3+).
const STRING: i8 = 2;
const INT: i8 = 3;
const LONG: i8 = 5;
const DOUBLE: i8 = 6;
const LIST: i8 = 7;
const BOOLEAN: i8 = 1;

/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// Kafka's name for the broker's `compression`.
const COMPRESSION_TYPE: &str = "compression.type";
const COMPRESSION: &str = "compression";

/// Keys whose value is a comma-separated list (APPEND and SUBTRACT apply to them only).
const LIST_KEYS: &[&str] = &["cleanup.policy"];

/// The type DescribeConfigs reports for a topic key.
fn config_type(key: &str) -> i8 {
    match key {
        "cleanup.policy" => LIST,
        "segment.bytes" | "max.message.bytes" => INT,
        "retention.ms"
        | "retention.bytes"
        | "segment.ms"
        | "flush.ms"
        | "flush.messages"
        | "delete.retention.ms"
        | "min.compaction.lag.ms" => LONG,
        "min.cleanable.dirty.ratio" => DOUBLE,
        _ => STRING,
    }
}

/// A Kafka configuration entry as the broker's topic configuration entry: the key and
/// value to hand to the broker, which validates them (its message is the client's).
pub(super) fn to_broker(name: &str, value: &str) -> (String, String) {
    if name == COMPRESSION_TYPE {
        let value = match value {
            "producer" | "uncompressed" | "none" => "none",
            other => other,
        };
        (COMPRESSION.to_owned(), value.to_owned())
    } else {
        (name.to_owned(), value.to_owned())
    }
}

/// The broker key a Kafka configuration name stands for.
pub(super) fn broker_key(name: &str) -> &str {
    if name == COMPRESSION_TYPE {
        COMPRESSION
    } else {
        name
    }
}

/// The broker's `compression` value as Kafka's `compression.type`.
fn kafka_compression(value: &str) -> String {
    match value {
        "none" | "uncompressed" => "uncompressed".to_owned(),
        other => CODEC_ALIASES
            .iter()
            .find(|(_, plugin)| *plugin == other)
            .map_or(other, |(alias, _)| alias)
            .to_owned(),
    }
}

/// One configuration entry of a topic as Kafka describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub name: String,
    pub value: String,
    /// Where the value comes from (`DYNAMIC_TOPIC_CONFIG`, `STATIC_BROKER_CONFIG`,
    /// `DEFAULT_CONFIG`).
    pub source: i8,
    /// The values it overrides, most specific first, itself included: `(value, source)`.
    pub synonyms: Vec<(String, i8)>,
    pub doc: Option<&'static str>,
    pub config_type: i8,
}

/// Every entry of a topic's effective configuration (`effective`), sourced from its own
/// entries (`overrides`) and the broker's defaults, plus `compression.type` beside
/// `compression`. Sorted by name. Cost: proportional to the number of entries.
pub(super) fn topic_entries(
    effective: &BTreeMap<String, String>,
    overrides: &BTreeMap<String, String>,
    broker_defaults: &BTreeMap<String, String>,
) -> Vec<Entry> {
    let mut out = Vec::with_capacity(effective.len() + 1);
    for (key, value) in effective {
        let builtin = TOPIC_CONFIG_KEYS.iter().find(|k| k.name == key);
        let mut synonyms = Vec::new();
        if let Some(v) = overrides.get(key) {
            synonyms.push((v.clone(), DYNAMIC_TOPIC_CONFIG));
        }
        if let Some(v) = broker_defaults.get(key) {
            synonyms.push((v.clone(), STATIC_BROKER_CONFIG));
        }
        if let Some(k) = builtin {
            synonyms.push((k.default.to_owned(), DEFAULT_CONFIG));
        }
        let source = synonyms.first().map_or(DYNAMIC_TOPIC_CONFIG, |(_, s)| *s);
        let entry = Entry {
            name: key.clone(),
            value: value.clone(),
            source,
            synonyms,
            doc: builtin.map(|k| k.doc),
            config_type: config_type(key),
        };
        if key == COMPRESSION {
            out.push(Entry {
                name: COMPRESSION_TYPE.to_owned(),
                value: kafka_compression(value),
                synonyms: entry
                    .synonyms
                    .iter()
                    .map(|(v, s)| (kafka_compression(v), *s))
                    .collect(),
                doc: Some(
                    "Kafka's name for compression: uncompressed, lz4, zstd or a codec plugin",
                ),
                ..entry.clone()
            });
        }
        out.push(entry);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The entries of a topic as the broker has them now.
pub(super) fn entries_of(broker: &Broker, topic: &str) -> Result<Vec<Entry>, BrokerError> {
    let effective = broker.topic_config(topic)?;
    let overrides = broker.topic_overrides(topic)?;
    Ok(topic_entries(
        effective.entries(),
        &overrides,
        &broker.config().topic_defaults,
    ))
}

/// The read-only broker settings DescribeConfigs shows for a broker resource.
fn broker_entries(ctx: &Ctx) -> Vec<Entry> {
    let c = ctx.broker.config();
    let fixed = |name: &str, value: String, config_type: i8, doc: &'static str| Entry {
        name: name.to_owned(),
        value,
        source: STATIC_BROKER_CONFIG,
        synonyms: Vec::new(),
        doc: Some(doc),
        config_type,
    };
    let defaults = distlog_broker::TopicConfig::resolve(&c.topic_defaults, &BTreeMap::new()).ok();
    let default_of = |key: &str| {
        defaults
            .as_ref()
            .and_then(|d| d.get(key).map(str::to_owned))
            .unwrap_or_default()
    };
    let mut out = vec![
        fixed(
            "auto.create.topics.enable",
            "false".into(),
            BOOLEAN,
            "topics are created by CreateTopics only",
        ),
        fixed(
            "broker.id",
            ctx.node.id.to_string(),
            INT,
            "this broker's node id (kafka.node_id)",
        ),
        fixed(
            "default.replication.factor",
            "1".into(),
            SHORT,
            "each partition has one copy",
        ),
        fixed(
            "delete.topic.enable",
            "true".into(),
            BOOLEAN,
            "DeleteTopics deletes topics",
        ),
        fixed(
            "log.dirs",
            c.data_dir.display().to_string(),
            STRING,
            "the broker's data directory (broker.data_dir)",
        ),
        fixed(
            "log.retention.ms",
            default_of("retention.ms"),
            LONG,
            "retention.ms of topics that do not set it",
        ),
        fixed(
            "log.segment.bytes",
            default_of("segment.bytes"),
            INT,
            "segment.bytes of topics that do not set it",
        ),
        fixed(
            "message.max.bytes",
            default_of("max.message.bytes"),
            INT,
            "max.message.bytes of topics that do not set it",
        ),
        fixed(
            "node.id",
            ctx.node.id.to_string(),
            INT,
            "this broker's node id (kafka.node_id)",
        ),
        fixed(
            "num.partitions",
            c.default_partitions.to_string(),
            INT,
            "partitions of a topic created without a count (broker.default_partitions)",
        ),
    ];
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// `ConfigType` SHORT.
const SHORT: i8 = 4;

fn described(
    e: Entry,
    read_only: bool,
    synonyms: bool,
    docs: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    let name = e.name.clone();
    DescribeConfigsResourceResult::default()
        .with_name(s(e.name))
        .with_value(Some(s(e.value)))
        .with_read_only(read_only)
        .with_config_source(e.source)
        .with_is_sensitive(false)
        .with_synonyms(if synonyms {
            e.synonyms
                .into_iter()
                .map(|(value, source)| {
                    DescribeConfigsSynonym::default()
                        .with_name(s(name.clone()))
                        .with_value(Some(s(value)))
                        .with_source(source)
                })
                .collect()
        } else {
            Vec::new()
        })
        // Types and documentation are v3+.
        .with_config_type(if version >= 3 { e.config_type } else { 0 })
        .with_documentation(if docs { e.doc.map(s) } else { None })
}

/// DescribeConfigs: every asked key (all when the list is null) of each resource.
pub(super) fn describe(
    ctx: &Ctx,
    version: i16,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let api = ApiKey::DescribeConfigs;
    let synonyms = req.include_synonyms;
    let docs = version >= 3 && req.include_documentation;
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_message(None);
            let wanted: Option<BTreeSet<String>> = r
                .configuration_keys
                .map(|keys| keys.iter().map(|k| k.to_string()).collect());
            let keep = |e: &Entry| wanted.as_ref().is_none_or(|w| w.contains(&e.name));
            let (entries, read_only) = match r.resource_type {
                TOPIC => match entries_of(&ctx.broker, &r.resource_name) {
                    Ok(entries) => (entries, false),
                    Err(e) => {
                        let (code, message) = broker_error(api, &e);
                        return result.with_error_code(code).with_error_message(message);
                    }
                },
                BROKER => {
                    let name = r.resource_name.as_str();
                    if !name.is_empty() && name != ctx.node.id.to_string() {
                        let (code, message) = refusal(
                            api,
                            ResponseError::InvalidRequest,
                            format!("this is broker {}, not broker {name:?}", ctx.node.id),
                        );
                        return result.with_error_code(code).with_error_message(message);
                    }
                    (broker_entries(ctx), true)
                }
                other => {
                    let (code, message) = refusal(
                        api,
                        ResponseError::InvalidRequest,
                        format!(
                            "resource type {other} has no configuration here (topics: 2, brokers: 4)"
                        ),
                    );
                    return result.with_error_code(code).with_error_message(message);
                }
            };
            result.with_configs(
                entries
                    .into_iter()
                    .filter(keep)
                    .map(|e| described(e, read_only, synonyms, docs, version))
                    .collect(),
            )
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// What to change in one topic's configuration.
#[derive(Debug, Default)]
struct Change {
    set: BTreeMap<String, String>,
    reset: Vec<String>,
}

/// Why a resource's change is refused before the broker sees it.
type Refused = (ResponseError, String);

/// The answer for one resource of an alter request: checks the resource type and the
/// session, then runs `change` on the blocking pool.
async fn alter_resource(
    ctx: &Arc<Ctx>,
    principal: &Principal,
    api: ApiKey,
    resource_type: i8,
    name: String,
    validate_only: bool,
    change: impl FnOnce(&Broker, &str) -> Result<Change, Refused> + Send + 'static,
) -> Result<(i16, Option<StrBytes>), Fatal> {
    match resource_type {
        TOPIC if !ctx.may_admin(principal) => Ok(refusal(
            api,
            ResponseError::TopicAuthorizationFailed,
            ADMIN_NEEDED,
        )),
        TOPIC => {
            let broker = ctx.broker.clone();
            blocking(move || {
                let change = match change(&broker, &name) {
                    Ok(c) => c,
                    Err((code, message)) => return refusal(api, code, message),
                };
                match broker.alter_topic_config(&name, change.set, change.reset, validate_only) {
                    Ok(_) => (0, None),
                    Err(e) => broker_error(api, &e),
                }
            })
            .await
        }
        BROKER if !ctx.may_admin(principal) => Ok(refusal(
            api,
            ResponseError::ClusterAuthorizationFailed,
            ADMIN_NEEDED,
        )),
        BROKER => Ok(refusal(
            api,
            ResponseError::InvalidRequest,
            "broker settings are read-only over Kafka: they are set in the server's \
             configuration file",
        )),
        other => Ok(refusal(
            api,
            ResponseError::InvalidRequest,
            format!("resource type {other} has no configuration here (topics: 2, brokers: 4)"),
        )),
    }
}

/// The first key named twice in `names`, if any.
fn duplicate<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut seen = BTreeSet::new();
    names
        .into_iter()
        .map(broker_key)
        .find(|n| !seen.insert(*n))
        .map(str::to_owned)
}

fn duplicate_refusal(key: &str) -> Refused {
    (
        ResponseError::InvalidRequest,
        format!("configuration key {key:?} is given twice"),
    )
}

/// AlterConfigs: each topic resource's own configuration becomes exactly the entries given
/// (keys not given are reset to their defaults).
pub(super) async fn alter(
    ctx: &Arc<Ctx>,
    principal: &Principal,
    _version: i16,
    req: AlterConfigsRequest,
) -> Result<AlterConfigsResponse, Fatal> {
    let api = ApiKey::AlterConfigs;
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let configs: Vec<(String, Option<String>)> = r
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
            .collect();
        let (code, message) = alter_resource(
            ctx,
            principal,
            api,
            r.resource_type,
            r.resource_name.to_string(),
            req.validate_only,
            move |broker, topic| {
                if let Some(key) = duplicate(configs.iter().map(|(n, _)| n.as_str())) {
                    return Err(duplicate_refusal(&key));
                }
                let mut change = Change::default();
                for (name, value) in configs {
                    let Some(value) = value else {
                        return Err((
                            ResponseError::InvalidConfig,
                            format!("configuration {name:?} has a null value"),
                        ));
                    };
                    let (k, v) = to_broker(&name, &value);
                    change.set.insert(k, v);
                }
                let current = broker
                    .topic_overrides(topic)
                    .map_err(|e| (crate::error::code(&e), e.to_string()))?;
                change.reset = current
                    .into_keys()
                    .filter(|k| !change.set.contains_key(k))
                    .collect();
                Ok(change)
            },
        )
        .await?;
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name),
        );
    }
    Ok(AlterConfigsResponse::default().with_responses(responses))
}

/// The list value of `key` after `op` (APPEND or SUBTRACT) of `items` to `current`.
fn edit_list(current: &str, op: i8, items: &str) -> String {
    let mut list: Vec<&str> = current
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    for item in items.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        if op == APPEND {
            if !list.contains(&item) {
                list.push(item);
            }
        } else {
            list.retain(|v| *v != item);
        }
    }
    list.join(",")
}

/// IncrementalAlterConfigs: SET, DELETE (back to the default), and APPEND / SUBTRACT for
/// list values (`cleanup.policy`), each resource's operations applied together or not at
/// all.
pub(super) async fn incremental_alter(
    ctx: &Arc<Ctx>,
    principal: &Principal,
    _version: i16,
    req: IncrementalAlterConfigsRequest,
) -> Result<IncrementalAlterConfigsResponse, Fatal> {
    let api = ApiKey::IncrementalAlterConfigs;
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let ops: Vec<(String, i8, Option<String>)> = r
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.config_operation,
                    c.value.as_ref().map(|v| v.to_string()),
                )
            })
            .collect();
        let (code, message) = alter_resource(
            ctx,
            principal,
            api,
            r.resource_type,
            r.resource_name.to_string(),
            req.validate_only,
            move |broker, topic| {
                if let Some(key) = duplicate(ops.iter().map(|(n, _, _)| n.as_str())) {
                    return Err(duplicate_refusal(&key));
                }
                let mut change = Change::default();
                for (name, op, value) in ops {
                    let key = broker_key(&name).to_owned();
                    match op {
                        DELETE => change.reset.push(key),
                        SET | APPEND | SUBTRACT => {
                            let Some(value) = value else {
                                return Err((
                                    ResponseError::InvalidConfig,
                                    format!("configuration {name:?} has a null value"),
                                ));
                            };
                            if op == SET {
                                let (k, v) = to_broker(&name, &value);
                                change.set.insert(k, v);
                                continue;
                            }
                            if !LIST_KEYS.contains(&key.as_str()) {
                                return Err((
                                    ResponseError::InvalidConfig,
                                    format!(
                                        "configuration {name:?} is not a list: APPEND and \
                                         SUBTRACT apply to list values ({}) only",
                                        LIST_KEYS.join(", ")
                                    ),
                                ));
                            }
                            let current = broker
                                .topic_config(topic)
                                .map_err(|e| (crate::error::code(&e), e.to_string()))?
                                .get(&key)
                                .unwrap_or_default()
                                .to_owned();
                            change.set.insert(key, edit_list(&current, op, &value));
                        }
                        other => {
                            return Err((
                                ResponseError::InvalidRequest,
                                format!(
                                    "unknown operation {other} on {name:?} (SET 0, DELETE 1, \
                                     APPEND 2, SUBTRACT 3)"
                                ),
                            ));
                        }
                    }
                }
                Ok(change)
            },
        )
        .await?;
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name),
        );
    }
    Ok(IncrementalAlterConfigsResponse::default().with_responses(responses))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{admin, anyone, ctx, round_trip, versions};
    use super::*;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::{alter_configs_request, incremental_alter_configs_request};

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn resource(kind: i8, name: &str, keys: Option<&[&str]>) -> DescribeConfigsResource {
        DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(s(name))
            .with_configuration_keys(keys.map(|k| k.iter().map(|k| s(*k)).collect()))
    }

    #[test]
    fn describe_configs_sources_synonyms_and_documentation() {
        let ctx = ctx(true);
        ctx.broker
            .create_topic("t", 1, map(&[("retention.ms", "1000")]))
            .expect("create");
        let all = DescribeConfigsRequest::default()
            .with_resources(vec![
                resource(TOPIC, "t", None),
                resource(
                    TOPIC,
                    "t",
                    Some(&["retention.ms", "compression.type", "nope"]),
                ),
                resource(TOPIC, "missing", None),
                resource(BROKER, "7", None),
                resource(BROKER, "8", None),
                resource(8, "7", None),
            ])
            .with_include_synonyms(true);
        let [min, max] = versions(ApiKey::DescribeConfigs);
        for v in [min, max] {
            let req = all.clone().with_include_documentation(v >= 3);
            round_trip(&req, v);
            let resp = round_trip(&describe(&ctx, v, req.clone()), v);
            let r = &resp.results;
            assert_eq!(r[0].error_code, 0);
            let entry = |name: &str| {
                r[0].configs
                    .iter()
                    .find(|c| c.name.as_str() == name)
                    .unwrap_or_else(|| panic!("{name}"))
            };
            for k in TOPIC_CONFIG_KEYS {
                let e = entry(k.name);
                assert!(!e.read_only, "{}", k.name);
                if v >= 3 {
                    assert_eq!(e.documentation.as_deref(), Some(k.doc), "{}", k.name);
                }
            }
            let retention = entry("retention.ms");
            assert_eq!(retention.value.as_deref(), Some("1000"));
            assert_eq!(retention.config_source, DYNAMIC_TOPIC_CONFIG);
            let sources: Vec<(Option<&str>, i8)> = retention
                .synonyms
                .iter()
                .map(|s| (s.value.as_deref(), s.source))
                .collect();
            assert_eq!(
                sources,
                vec![
                    (Some("1000"), DYNAMIC_TOPIC_CONFIG),
                    (Some("604800000"), DEFAULT_CONFIG)
                ]
            );
            assert_eq!(entry("segment.ms").config_source, STATIC_BROKER_CONFIG);
            assert_eq!(entry("cleanup.policy").config_source, DEFAULT_CONFIG);
            assert_eq!(
                entry("compression.type").value.as_deref(),
                Some("uncompressed")
            );
            if v >= 3 {
                assert_eq!(entry("cleanup.policy").config_type, LIST);
                assert_eq!(retention.config_type, LONG);
            }
            let filtered: Vec<&str> = r[1].configs.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(filtered, vec!["compression.type", "retention.ms"]);
            assert_eq!(
                r[2].error_code,
                ResponseError::UnknownTopicOrPartition.code()
            );
            assert_eq!(r[3].error_code, 0);
            let log_dirs = r[3]
                .configs
                .iter()
                .find(|c| c.name.as_str() == "log.dirs")
                .expect("log.dirs");
            assert!(log_dirs.read_only);
            assert!(
                r[3].configs
                    .iter()
                    .any(|c| c.name.as_str() == "auto.create.topics.enable"
                        && c.value.as_deref() == Some("false"))
            );
            assert!(r[3].configs.iter().any(|c| c.name.as_str() == "num.partitions"
                && c.value.as_deref() == Some("3")));
            for bad in &r[4..] {
                assert_eq!(bad.error_code, ResponseError::InvalidRequest.code());
                assert!(bad.error_message.is_some());
            }
        }
    }

    fn alter_req(
        kind: i8,
        name: &str,
        entries: &[(&str, Option<&str>)],
        validate_only: bool,
    ) -> AlterConfigsRequest {
        AlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(kind)
                    .with_resource_name(s(name))
                    .with_configs(
                        entries
                            .iter()
                            .map(|(k, v)| {
                                alter_configs_request::AlterableConfig::default()
                                    .with_name(s(*k))
                                    .with_value(v.map(s))
                            })
                            .collect(),
                    ),
            ])
    }

    #[tokio::test]
    async fn alter_configs_replaces_the_whole_set() {
        let ctx = ctx(true);
        ctx.broker
            .create_topic(
                "t",
                1,
                map(&[("retention.ms", "1000"), ("max.message.bytes", "2000")]),
            )
            .expect("create");
        let [min, max] = versions(ApiKey::AlterConfigs);
        let set = alter_req(
            TOPIC,
            "t",
            &[
                ("compression.type", Some("producer")),
                ("retention.bytes", Some("5")),
            ],
            false,
        );
        for v in [min, max] {
            round_trip(&set, v);
        }
        let overrides = || ctx.broker.topic_overrides("t").expect("overrides");
        let code = |r: &AlterConfigsResponse| r.responses[0].error_code;
        let r = alter(&ctx, &anyone(), max, set.clone())
            .await
            .expect("alter");
        assert_eq!(code(&r), ResponseError::TopicAuthorizationFailed.code());
        let r = alter(&ctx, &admin(), max, set.clone().with_validate_only(true))
            .await
            .expect("alter");
        assert_eq!(code(&r), 0);
        assert_eq!(
            overrides(),
            map(&[("max.message.bytes", "2000"), ("retention.ms", "1000")])
        );
        let r = alter(&ctx, &admin(), min, set).await.expect("alter");
        round_trip(&r, min);
        assert_eq!(code(&r), 0, "{r:?}");
        assert_eq!(
            overrides(),
            map(&[("compression", "none"), ("retention.bytes", "5")])
        );
        for (req, want) in [
            (
                alter_req(TOPIC, "t", &[("retention.ms", Some("x"))], false),
                ResponseError::InvalidConfig,
            ),
            (
                alter_req(TOPIC, "t", &[("no.such", Some("1"))], false),
                ResponseError::InvalidConfig,
            ),
            (
                alter_req(TOPIC, "t", &[("retention.ms", None)], false),
                ResponseError::InvalidConfig,
            ),
            (
                alter_req(
                    TOPIC,
                    "t",
                    &[("retention.ms", Some("1")), ("retention.ms", Some("2"))],
                    false,
                ),
                ResponseError::InvalidRequest,
            ),
            (
                alter_req(TOPIC, "missing", &[], false),
                ResponseError::UnknownTopicOrPartition,
            ),
            (
                alter_req(BROKER, "7", &[("num.partitions", Some("2"))], false),
                ResponseError::InvalidRequest,
            ),
            (
                alter_req(16, "x", &[], false),
                ResponseError::InvalidRequest,
            ),
        ] {
            let r = alter(&ctx, &admin(), max, req).await.expect("alter");
            assert_eq!(code(&r), want.code(), "{r:?}");
            assert!(r.responses[0].error_message.is_some(), "{r:?}");
        }
        let r = alter(&ctx, &anyone(), max, alter_req(BROKER, "7", &[], false))
            .await
            .expect("alter");
        assert_eq!(code(&r), ResponseError::ClusterAuthorizationFailed.code());
        assert_eq!(
            overrides(),
            map(&[("compression", "none"), ("retention.bytes", "5")])
        );
    }

    fn op(
        name: &str,
        operation: i8,
        value: Option<&str>,
    ) -> incremental_alter_configs_request::AlterableConfig {
        incremental_alter_configs_request::AlterableConfig::default()
            .with_name(s(name))
            .with_config_operation(operation)
            .with_value(value.map(s))
    }

    fn incremental_req(
        name: &str,
        ops: Vec<incremental_alter_configs_request::AlterableConfig>,
    ) -> IncrementalAlterConfigsRequest {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(s(name))
                .with_configs(ops),
        ])
    }

    #[tokio::test]
    async fn incremental_alter_sets_deletes_appends_and_subtracts() {
        let ctx = ctx(true);
        ctx.broker
            .create_topic("t", 1, map(&[("retention.ms", "1000")]))
            .expect("create");
        let [min, max] = versions(ApiKey::IncrementalAlterConfigs);
        let run = |req: IncrementalAlterConfigsRequest, v: i16| {
            let ctx = ctx.ctx.clone();
            async move {
                round_trip(&req, v);
                let r = incremental_alter(&ctx, &admin(), v, req)
                    .await
                    .expect("alter");
                round_trip(&r, v);
                r.responses[0].error_code
            }
        };
        let effective = |k: &str| {
            ctx.broker
                .topic_config("t")
                .expect("config")
                .get(k)
                .map(str::to_owned)
        };
        let code = run(
            incremental_req(
                "t",
                vec![
                    op("retention.ms", DELETE, None),
                    op("cleanup.policy", APPEND, Some("compact")),
                    op("segment.bytes", SET, Some("2097152")),
                ],
            ),
            min,
        )
        .await;
        assert_eq!(code, 0);
        assert_eq!(effective("retention.ms").as_deref(), Some("604800000"));
        assert_eq!(
            effective("cleanup.policy").as_deref(),
            Some("delete,compact")
        );
        assert_eq!(effective("segment.bytes").as_deref(), Some("2097152"));
        let code = run(
            incremental_req("t", vec![op("cleanup.policy", SUBTRACT, Some("delete"))]),
            max,
        )
        .await;
        assert_eq!(code, 0);
        assert_eq!(effective("cleanup.policy").as_deref(), Some("compact"));
        for (ops, want) in [
            (
                vec![op("retention.ms", APPEND, Some("5"))],
                ResponseError::InvalidConfig,
            ),
            (
                vec![op("cleanup.policy", SUBTRACT, Some("compact"))],
                ResponseError::InvalidConfig,
            ),
            (
                vec![op("retention.ms", 9, Some("5"))],
                ResponseError::InvalidRequest,
            ),
            (
                vec![
                    op("compression.type", SET, Some("lz4")),
                    op("compression", DELETE, None),
                ],
                ResponseError::InvalidRequest,
            ),
        ] {
            assert_eq!(run(incremental_req("t", ops), max).await, want.code());
        }
        assert_eq!(effective("cleanup.policy").as_deref(), Some("compact"));
        let refused = incremental_alter(
            &ctx,
            &anyone(),
            max,
            incremental_req("t", vec![op("retention.ms", SET, Some("5"))]),
        )
        .await
        .expect("alter");
        assert_eq!(
            refused.responses[0].error_code,
            ResponseError::TopicAuthorizationFailed.code()
        );
        let validated =
            incremental_req("t", vec![op("retention.ms", SET, Some("5"))]).with_validate_only(true);
        assert_eq!(run(validated, max).await, 0);
        assert_eq!(effective("retention.ms").as_deref(), Some("604800000"));
    }

    #[test]
    fn kafka_names_map_onto_the_brokers() {
        assert_eq!(
            to_broker("compression.type", "producer"),
            ("compression".into(), "none".into())
        );
        assert_eq!(
            to_broker("compression.type", "zstd"),
            ("compression".into(), "zstd".into())
        );
        assert_eq!(
            to_broker("retention.ms", "5"),
            ("retention.ms".into(), "5".into())
        );
        assert_eq!(kafka_compression("codec-lz4"), "lz4");
        assert_eq!(kafka_compression("none"), "uncompressed");
        assert_eq!(kafka_compression("my-codec"), "my-codec");
        assert_eq!(
            edit_list("delete", APPEND, "compact,delete"),
            "delete,compact"
        );
        assert_eq!(edit_list("delete,compact", SUBTRACT, "delete"), "compact");
    }
}
