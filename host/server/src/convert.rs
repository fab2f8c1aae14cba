//! Conversions between broker types and protobuf messages.

use crate::proto;
use distlog_broker::{
    BrokerInfo, CommittedOffset, ConfigSource, GroupPartitionLag, Header, PartitionDescription,
    PartitionReset, PluginDescription, PluginKind, ProduceRecord, ProduceResult, SegmentInfo,
    Status, StoredRecord, TopicDescription,
};

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn produce_record(r: proto::Record) -> ProduceRecord {
    ProduceRecord {
        key: r.key,
        value: r.value,
        headers: r
            .headers
            .into_iter()
            .map(|h| Header {
                key: h.key,
                value: h.value,
            })
            .collect(),
        timestamp_ms: r.timestamp_ms,
    }
}

/// Key, value and header bytes of a record (what `max_record_bytes` limits).
pub(crate) fn record_size(r: &proto::Record) -> usize {
    r.key.as_ref().map_or(0, Vec::len)
        + r.value.as_ref().map_or(0, Vec::len)
        + r.headers
            .iter()
            .map(|h| h.key.len() + h.value.len())
            .sum::<usize>()
}

pub(crate) fn stored_record(r: StoredRecord) -> proto::StoredRecord {
    proto::StoredRecord {
        offset: to_i64(r.offset),
        timestamp_ms: r.timestamp_ms,
        key: r.key,
        value: r.value,
        headers: r
            .headers
            .into_iter()
            .map(|h| proto::Header {
                key: h.key,
                value: h.value,
            })
            .collect(),
    }
}

pub(crate) fn stored_batch(b: distlog_broker::RawBatch) -> proto::StoredBatch {
    let (codec_name, codec_digest) = b.codec.map_or((String::new(), String::new()), |c| {
        (c.name, c.digest.to_hex())
    });
    proto::StoredBatch {
        base_offset: to_i64(b.base_offset),
        last_offset: to_i64(b.last_offset),
        data: b.bytes,
        codec_name,
        codec_digest,
    }
}

pub(crate) fn produce_response(r: ProduceResult, sequence: u64) -> proto::ProduceResponse {
    proto::ProduceResponse {
        partitions: r
            .partitions
            .into_iter()
            .map(|p| proto::PartitionAppend {
                partition: p.partition,
                base_offset: to_i64(p.base_offset),
                record_count: p.record_count,
            })
            .collect(),
        offsets: r.offsets.into_iter().map(to_i64).collect(),
        record_partitions: r.record_partitions,
        sequence,
        error: None,
    }
}

fn segment(s: SegmentInfo) -> proto::SegmentDescription {
    proto::SegmentDescription {
        base_offset: to_i64(s.base_offset),
        end_offset: if s.record_count == 0 {
            to_i64(s.base_offset)
        } else {
            to_i64(s.last_offset.saturating_add(1))
        },
        size_bytes: s.size_bytes,
        max_timestamp_ms: s.max_timestamp,
        active: s.active,
        record_count: s.record_count,
    }
}

fn partition(p: PartitionDescription) -> proto::PartitionDescription {
    proto::PartitionDescription {
        partition: p.partition,
        log_start_offset: to_i64(p.log_start_offset),
        log_end_offset: to_i64(p.log_end_offset),
        size_bytes: p.size_bytes,
        segments: p.segments.into_iter().map(segment).collect(),
        record_count: p.record_count,
    }
}

fn config_source(s: Option<&ConfigSource>) -> proto::ConfigSource {
    match s {
        Some(ConfigSource::Topic) => proto::ConfigSource::Topic,
        Some(ConfigSource::Broker) => proto::ConfigSource::Broker,
        Some(ConfigSource::Default) => proto::ConfigSource::Default,
        _ => proto::ConfigSource::Unspecified,
    }
}

pub(crate) fn topic(t: TopicDescription) -> proto::TopicDescription {
    let config_entries: Vec<_> = t
        .config
        .iter()
        .map(|(name, value)| proto::TopicConfigEntry {
            name: name.clone(),
            value: value.clone(),
            source: config_source(t.config_sources.get(name)) as i32,
        })
        .collect();
    proto::TopicDescription {
        name: t.name,
        config: t.config.into_iter().collect(),
        partitions: t.partitions.into_iter().map(partition).collect(),
        created_at_ms: t.created_at_ms,
        config_entries,
    }
}

pub(crate) fn group_partition(g: GroupPartitionLag) -> proto::GroupPartition {
    proto::GroupPartition {
        topic: g.committed.topic,
        partition: g.committed.partition,
        committed_offset: to_i64(g.committed.offset),
        log_start_offset: g.log_start_offset.map_or(-1, to_i64),
        log_end_offset: g.log_end_offset.map_or(-1, to_i64),
        lag: to_i64(g.lag),
        metadata: g.committed.metadata,
        committed_at_ms: g.committed.committed_at_ms,
    }
}

pub(crate) fn partition_reset(r: PartitionReset) -> proto::PartitionReset {
    proto::PartitionReset {
        topic: r.topic,
        partition: r.partition,
        previous_offset: r.previous.map_or(-1, to_i64),
        new_offset: to_i64(r.new_offset),
    }
}

/// The broker's state as DescribeCluster answers it; `version` is the server's.
pub(crate) fn cluster(
    info: BrokerInfo,
    version: &str,
    data_dir: String,
) -> proto::DescribeClusterResponse {
    let (status, problems) = match info.status {
        Status::Serving => (proto::BrokerStatus::Serving, Vec::new()),
        Status::Degraded(problems) => (
            proto::BrokerStatus::Degraded,
            problems.iter().map(ToString::to_string).collect(),
        ),
        Status::Stopping => (
            proto::BrokerStatus::Stopping,
            vec!["the broker is shutting down".to_owned()],
        ),
        _ => (proto::BrokerStatus::Unspecified, Vec::new()),
    };
    proto::DescribeClusterResponse {
        version: version.to_owned(),
        node_id: info.node_id,
        listeners: info
            .listeners
            .into_iter()
            .map(|l| proto::Listener {
                name: l.name,
                address: l.address,
                advertised: l.advertised.unwrap_or_default(),
                tls: l.tls,
            })
            .collect(),
        started_at_ms: info.started_at_ms,
        uptime_ms: to_i64(info.uptime_ms),
        status: status as i32,
        problems,
        topics: info.topics,
        partitions: info.partitions,
        groups: info.groups,
        data_dir,
    }
}

pub(crate) fn committed(o: CommittedOffset) -> proto::CommittedOffset {
    proto::CommittedOffset {
        topic: o.topic,
        partition: o.partition,
        offset: to_i64(o.offset),
        metadata: o.metadata,
        committed_at_ms: o.committed_at_ms,
    }
}

pub(crate) fn plugin_kind(kind: PluginKind) -> proto::PluginKind {
    match kind {
        PluginKind::Codec => proto::PluginKind::Codec,
        PluginKind::Retention => proto::PluginKind::Retention,
        PluginKind::Compaction => proto::PluginKind::Compaction,
        _ => proto::PluginKind::Unspecified,
    }
}

/// `None` for UNSPECIFIED (detect the kind from the component); `Err` for unknown numbers.
pub(crate) fn kind_from_proto(kind: i32) -> Result<Option<PluginKind>, i32> {
    match proto::PluginKind::try_from(kind) {
        Ok(proto::PluginKind::Unspecified) => Ok(None),
        Ok(proto::PluginKind::Codec) => Ok(Some(PluginKind::Codec)),
        Ok(proto::PluginKind::Retention) => Ok(Some(PluginKind::Retention)),
        Ok(proto::PluginKind::Compaction) => Ok(Some(PluginKind::Compaction)),
        Err(_) => Err(kind),
    }
}

pub(crate) fn plugin(p: PluginDescription) -> proto::Plugin {
    let mut stats = proto::PluginStats::default();
    for v in &p.versions {
        stats.calls += v.stats.calls;
        stats.errors += v.stats.errors;
        stats.timeouts += v.stats.timeouts;
        stats.total_micros += u64::try_from(v.stats.total_latency.as_micros()).unwrap_or(u64::MAX);
    }
    proto::Plugin {
        name: p.name,
        kind: plugin_kind(p.kind) as i32,
        versions: p
            .versions
            .into_iter()
            .map(|v| proto::PluginVersion {
                digest: v.digest.to_hex(),
                active: v.current,
                size_bytes: v.size_bytes,
                loaded_at_ms: v.loaded_at_ms,
            })
            .collect(),
        stats: Some(stats),
        builtin: p.builtin,
    }
}
