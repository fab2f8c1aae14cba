//! confluent-kafka (librdkafka 2.16) against the Kafka listener, through `py/client.py`:
//! the producer under every `compression.type` with `linger.ms` and its delivery reports,
//! the consumer's `assign()` at earliest, latest and by time, watermarks, committed group
//! offsets, and the AdminClient's topic, configuration, group and cluster calls.
//!
//! The admin test checks every call and reports all mismatches at once, so one run names
//! every call that does not behave as Kafka documents.

use super::{Broker, hex, start, unhex};
use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

/// The records produced under `codec`: binary keys and values, repeated and empty headers,
/// explicit timestamps.
fn records(codec: &str, partition: u32, base_ts: i64) -> Vec<Value> {
    (0..4)
        .map(|i: i64| {
            let mut value = format!("{codec}:{i}:").into_bytes();
            value.extend(std::iter::repeat_n(0xA5, 300));
            json!({
                "key": hex(&[codec.as_bytes(), &[0, 0xFF, u8::try_from(i).unwrap_or(0)]].concat()),
                "value": hex(&value),
                "headers": [["codec", hex(codec.as_bytes())], ["h", hex(&[])], ["h", "00ff"]],
                "partition": partition,
                "timestamp": base_ts + i,
            })
        })
        .collect()
}

/// The librdkafka name of a reported error (`TOPIC_EXCEPTION` is Kafka's
/// INVALID_TOPIC_EXCEPTION, `UNKNOWN_TOPIC_OR_PART` its UNKNOWN_TOPIC_OR_PARTITION).
fn err_name(v: &Value) -> &str {
    v["name"].as_str().unwrap_or("")
}

#[test]
fn producer_codecs_and_consumer_positions_round_trip() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = start(dir.path(), &[])?;
    b.create_topic("py", 2, &[], &[])?;

    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    let mut sent = Vec::new();
    for (n, codec) in codecs.iter().enumerate() {
        let partition = u32::try_from(n % 2)?;
        let base_ts = 1_700_000_000_000 + i64::try_from(n)? * 1000;
        let recs = records(codec, partition, base_ts);
        let out = b.python(
            "produce",
            json!({
                "conf": { "compression.type": codec, "linger.ms": 50 },
                "topic": "py",
                "records": recs,
            }),
        )?;
        ensure!(out["unflushed"] == 0, "{codec}: {out}");
        let deliveries = out["deliveries"].as_array().context("deliveries")?;
        ensure!(deliveries.len() == 4, "{codec}: {out}");
        // Delivery reports in order, with the offsets the log assigned (dense per partition).
        let first = sent.iter().filter(|(p, _)| *p == partition).count();
        for (i, d) in deliveries.iter().enumerate() {
            ensure!(d["error"].is_null(), "{codec}: {d}");
            ensure!(d["partition"] == partition, "{codec}: {d}");
            ensure!(d["offset"] == first + i, "{codec}: {d}");
            ensure!(
                d["timestamp"] == base_ts + i64::try_from(i)?,
                "{codec}: {d}"
            );
        }
        sent.extend(recs.into_iter().map(|r| (partition, r)));
    }

    // assign() at the earliest offset of both partitions: every field as produced.
    let out = b.python(
        "consume",
        json!({
            "assign": [
                { "topic": "py", "partition": 0, "offset": "earliest" },
                { "topic": "py", "partition": 1, "offset": "earliest" },
            ],
            "max": 20,
            "watermarks": [{ "topic": "py", "partition": 0 }, { "topic": "py", "partition": 1 }],
        }),
    )?;
    let got = out["messages"].as_array().context("messages")?;
    ensure!(got.len() == 20, "{} messages: {out}", got.len());
    for p in 0..2u32 {
        let mine: Vec<&Value> = got.iter().filter(|m| m["partition"] == p).collect();
        let want: Vec<&Value> = sent
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, r)| r)
            .collect();
        ensure!(mine.len() == want.len(), "partition {p}");
        for (i, (m, w)) in mine.iter().zip(&want).enumerate() {
            ensure!(m["error"].is_null(), "{m}");
            ensure!(m["offset"] == i, "{m}");
            ensure!(
                m["key"] == w["key"] && m["value"] == w["value"],
                "{m} vs {w}"
            );
            ensure!(m["headers"] == w["headers"], "{m} vs {w}");
            // CreateTime (1) with the producer's timestamp.
            ensure!(
                m["timestamp_type"] == 1 && m["timestamp"] == w["timestamp"],
                "{m}"
            );
        }
    }
    ensure!(
        out["watermarks"] == json!([[0, 12], [0, 8]]),
        "watermarks: {}",
        out["watermarks"]
    );
    // The bytes really were binary.
    let first_key = unhex(got[0]["key"].as_str().context("key")?)?;
    ensure!(first_key.ends_with(&[0, 0xFF, 0]), "{first_key:?}");

    // assign() at latest: nothing within a bounded wait.
    let latest = b.python(
        "consume",
        json!({
            "assign": [{ "topic": "py", "partition": 0, "offset": "latest" }],
            "max": 1,
            "timeout": 2,
        }),
    )?;
    ensure!(latest["messages"] == json!([]), "{latest}");

    // By time (offsets_for_times): partition 0 holds the none, snappy and zstd runs (offsets
    // 0-3, 4-7, 8-11) stamped from base, base + 2 s and base + 4 s; base + 2 s + 2 ms is the
    // third snappy record.
    let by_time = b.python(
        "consume",
        json!({
            "assign": [{ "topic": "py", "partition": 0, "time": 1_700_000_002_002_i64 }],
            "max": 6,
        }),
    )?;
    ensure!(by_time["offsets_for_times"] == json!([6]), "{by_time}");
    let msgs = by_time["messages"].as_array().context("messages")?;
    ensure!(msgs.len() == 6 && msgs[0]["offset"] == 6, "{by_time}");
    ensure!(msgs[0]["timestamp"] == 1_700_000_002_002_i64, "{by_time}");
    // A time after every record: the end (-1 from the lookup, no records).
    let after = b.python(
        "consume",
        json!({
            "assign": [{ "topic": "py", "partition": 1, "time": 1_800_000_000_000_i64 }],
            "max": 1,
            "timeout": 2,
        }),
    )?;
    ensure!(after["offsets_for_times"] == json!([-1]), "{after}");
    ensure!(after["messages"] == json!([]), "{after}");
    Ok(())
}

#[test]
fn committed_offsets_round_trip() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = start(dir.path(), &[])?;
    b.create_topic("commits", 2, &[], &[])?;
    let out = b.python(
        "consume",
        json!({
            "conf": { "group.id": "g-commit" },
            "commit": [["commits", 0, 5], ["commits", 1, 0]],
            "committed": [["commits", 0], ["commits", 1]],
        }),
    )?;
    ensure!(
        out["commit"] == json!([["commits", 0, 5, null], ["commits", 1, 0, null]]),
        "commit: {out}"
    );
    ensure!(
        out["committed"] == json!([["commits", 0, 5, null], ["commits", 1, 0, null]]),
        "committed: {out}"
    );
    // Another consumer of the group sees them; another group sees none (-1001: invalid).
    let again = b.python(
        "consume",
        json!({ "conf": { "group.id": "g-commit" }, "committed": [["commits", 0]] }),
    )?;
    ensure!(
        again["committed"] == json!([["commits", 0, 5, null]]),
        "{again}"
    );
    let other = b.python(
        "consume",
        json!({ "conf": { "group.id": "g-other" }, "committed": [["commits", 0]] }),
    )?;
    ensure!(
        other["committed"] == json!([["commits", 0, -1001, null]]),
        "{other}"
    );
    Ok(())
}

/// Runs admin `steps` and returns their results in order.
fn admin(b: &Broker, steps: Value, conf: Value) -> Result<Vec<Value>> {
    let out = b.python(
        "admin",
        json!({ "steps": steps, "conf": conf, "timeout": 10 }),
    )?;
    let results = out["results"].as_array().context("results")?.clone();
    ensure!(
        results.len() == steps.as_array().map_or(0, Vec::len),
        "{out}"
    );
    Ok(results)
}

/// Partition count of `topic` as Kafka Metadata (kcat) reports it; `None` when unknown.
fn partitions(b: &Broker, topic: &str) -> Result<Option<usize>> {
    let md: Value = serde_json::from_str(&b.kcat_ok(&["-J", "-L", "-t", topic], b"")?)?;
    let t = &md["topics"][0];
    if t.get("error").is_some() {
        return Ok(None);
    }
    Ok(t["partitions"].as_array().map(Vec::len))
}

#[test]
fn admin_client_manages_topics_configs_groups_and_the_cluster() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let b = start(dir.path(), &[])?;
    b.create_topic("existing", 1, &[], &[])?;
    let mut failures: Vec<String> = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            failures.push(what);
        }
    };

    // Topics: create (with configuration), a duplicate refused, partitions added.
    let r = admin(
        &b,
        json!([
            { "op": "create_topics", "topics": [
                { "name": "made", "partitions": 2, "config": { "retention.ms": "3600000" } },
            ]},
            { "op": "create_topics", "topics": [{ "name": "existing", "partitions": 1 }] },
            { "op": "create_topics", "topics": [{ "name": "bad name!", "partitions": 1 }] },
            { "op": "create_partitions", "topics": [{ "name": "made", "total": 4 }] },
            { "op": "create_partitions", "topics": [{ "name": "made", "total": 3 }] },
            { "op": "describe_configs", "resources": [{ "name": "made" }] },
        ]),
        json!({}),
    )?;
    check(
        r[0]["ok"] == json!({ "made": null }),
        format!("create_topics: {}", r[0]),
    );
    check(
        err_name(&r[1]["ok"]["existing"]) == "TOPIC_ALREADY_EXISTS",
        format!("create_topics (duplicate): {}", r[1]),
    );
    check(
        err_name(&r[2]["ok"]["bad name!"]) == "TOPIC_EXCEPTION",
        format!("create_topics (invalid name): {}", r[2]),
    );
    check(
        r[3]["ok"] == json!({ "made": null }),
        format!("create_partitions: {}", r[3]),
    );
    check(
        err_name(&r[4]["ok"]["made"]) == "INVALID_PARTITIONS",
        format!("create_partitions (fewer): {}", r[4]),
    );
    check(
        r[5]["ok"]["made"]["retention.ms"] == "3600000",
        format!("describe_configs: {}", r[5]),
    );
    let made = partitions(&b, "made")?;
    check(made == Some(4), format!("made has {made:?} partitions"));

    // Configuration: a full replacement, then incremental changes.
    let r = admin(
        &b,
        json!([
            { "op": "alter_configs", "resources": [
                { "name": "made", "config": { "retention.ms": "7200000" } },
            ]},
            { "op": "describe_configs", "resources": [{ "name": "made" }] },
            { "op": "incremental_alter_configs", "resources": [{ "name": "made", "ops": [
                ["retention.ms", "SET", "1000"],
                ["cleanup.policy", "SET", "compact"],
            ]}]},
            { "op": "describe_configs", "resources": [{ "name": "made" }] },
            { "op": "incremental_alter_configs", "resources": [{ "name": "made", "ops": [
                ["retention.ms", "DELETE", ""],
            ]}]},
            { "op": "describe_configs", "resources": [{ "name": "made" }] },
            { "op": "incremental_alter_configs", "resources": [{ "name": "made", "ops": [
                ["no.such.setting", "SET", "1"],
            ]}]},
        ]),
        json!({}),
    )?;
    check(
        r[0]["ok"] == json!({ "made": null }),
        format!("alter_configs: {}", r[0]),
    );
    check(
        r[1]["ok"]["made"]["retention.ms"] == "7200000",
        format!("describe after alter_configs: {}", r[1]),
    );
    check(
        r[2]["ok"] == json!({ "made": null }),
        format!("incremental_alter_configs: {}", r[2]),
    );
    check(
        r[3]["ok"]["made"]["retention.ms"] == "1000"
            && r[3]["ok"]["made"]["cleanup.policy"] == "compact",
        format!("describe after incremental_alter_configs: {}", r[3]),
    );
    check(
        r[5]["ok"]["made"]["retention.ms"] == "604800000",
        format!("describe after DELETE (the default again): {}", r[5]),
    );
    check(
        err_name(&r[6]["ok"]["made"]) == "INVALID_CONFIG",
        format!("incremental_alter_configs (unknown setting): {}", r[6]),
    );

    // Groups: offsets committed by a consumer make a group that can be listed, described,
    // and deleted.
    let committed = b.python(
        "consume",
        json!({ "conf": { "group.id": "g-admin" }, "commit": [["made", 0, 3]] }),
    );
    check(
        committed
            .as_ref()
            .is_ok_and(|c| c["commit"] == json!([["made", 0, 3, null]])),
        format!("commit for g-admin: {committed:?}"),
    );
    let r = admin(
        &b,
        json!([
            { "op": "list_consumer_groups" },
            { "op": "describe_consumer_groups", "groups": ["g-admin"] },
            { "op": "list_consumer_group_offsets", "group": "g-admin" },
            { "op": "delete_consumer_groups", "groups": ["g-admin"] },
            { "op": "list_consumer_groups" },
            { "op": "delete_consumer_groups", "groups": ["g-never"] },
        ]),
        json!({}),
    )?;
    check(
        r[0]["ok"]["valid"] == json!(["g-admin"]),
        format!("list_consumer_groups: {}", r[0]),
    );
    check(
        r[1]["ok"]["g-admin"]["state"] == "ConsumerGroupState.EMPTY"
            && r[1]["ok"]["g-admin"]["members"] == 0
            && r[1]["ok"]["g-admin"]["coordinator"] == 0,
        format!("describe_consumer_groups: {}", r[1]),
    );
    check(
        r[2]["ok"]["g-admin"]
            .as_array()
            .is_some_and(|o| o.contains(&json!(["made", 0, 3]))),
        format!("list_consumer_group_offsets: {}", r[2]),
    );
    check(
        r[3]["ok"] == json!({ "g-admin": null }),
        format!("delete_consumer_groups: {}", r[3]),
    );
    check(
        r[4]["ok"]["valid"] == json!([]),
        format!("list_consumer_groups after delete: {}", r[4]),
    );
    check(
        err_name(&r[5]["ok"]["g-never"]) == "GROUP_ID_NOT_FOUND",
        format!("delete_consumer_groups (unknown): {}", r[5]),
    );

    // Cluster and offsets.
    let produced = b.python(
        "produce",
        json!({ "topic": "made", "records": [
            { "value": "01", "partition": 1, "timestamp": 1_000 },
            { "value": "02", "partition": 1, "timestamp": 2_000 },
        ]}),
    );
    check(
        produced.as_ref().is_ok_and(|p| p["unflushed"] == 0),
        format!("produce to the new partitions: {produced:?}"),
    );
    let r = admin(
        &b,
        json!([
            { "op": "describe_cluster" },
            { "op": "list_offsets", "partitions": [
                { "topic": "made", "partition": 1, "spec": "earliest" },
                { "topic": "made", "partition": 1, "spec": "latest" },
                { "topic": "made", "partition": 1, "spec": 1_500 },
                { "topic": "made", "partition": 3, "spec": "latest" },
            ]},
        ]),
        json!({}),
    )?;
    let port = i64::from(b.kafka.port());
    check(
        r[0]["ok"]["nodes"] == json!([[0, "127.0.0.1", port]])
            && r[0]["ok"]["controller"] == 0
            && r[0]["ok"]["cluster_id"]
                .as_str()
                .is_some_and(|c| !c.is_empty()),
        format!("describe_cluster: {}", r[0]),
    );
    let mut offsets = r[1]["ok"].as_array().cloned().unwrap_or_default();
    offsets.sort_by_key(|o| (o[1].as_i64(), o[2].as_i64()));
    check(
        offsets
            == [
                json!(["made", 1, 0]),
                json!(["made", 1, 1]),
                json!(["made", 1, 2]),
                json!(["made", 3, 0]),
            ],
        format!("list_offsets: {}", r[1]),
    );

    // Deleting: gone from Metadata; deleting again is refused.
    let r = admin(
        &b,
        json!([
            { "op": "delete_topics", "topics": ["made"] },
            { "op": "delete_topics", "topics": ["made"] },
        ]),
        json!({}),
    )?;
    check(
        r[0]["ok"] == json!({ "made": null }),
        format!("delete_topics: {}", r[0]),
    );
    check(
        err_name(&r[1]["ok"]["made"]) == "UNKNOWN_TOPIC_OR_PART",
        format!("delete_topics (again): {}", r[1]),
    );
    check(
        partitions(&b, "made")?.is_none(),
        "made still in Metadata after delete_topics".into(),
    );

    if !failures.is_empty() {
        bail!(
            "{} admin checks failed:\n- {}\nbroker log:\n{}",
            failures.len(),
            failures.join("\n- "),
            b.process.log()
        );
    }
    Ok(())
}
