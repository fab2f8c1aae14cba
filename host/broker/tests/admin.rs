//! Administration that changes a live topic or group and must survive a restart: growing a
//! topic's partition count (while producers and readers keep going, with keyed records routed
//! by the new count, and after a growth that crashed half-way), and deleting a consumer
//! group's offsets (all of them, or some partitions') through tombstones on the offsets log.

use distlog_broker::partitioner::partition_for_key;
use distlog_broker::{Broker, BrokerConfig, BrokerError, OffsetCommit, ProduceRecord};
use std::collections::BTreeMap;
use std::path::Path;

fn config(dir: &Path) -> BrokerConfig {
    let mut c = BrokerConfig::new(dir);
    c.plugins.enabled = false;
    c.max_partitions = 16;
    c
}

fn open(dir: &Path) -> Broker {
    Broker::open(config(dir)).expect("open")
}

fn keyed(key: &str, value: &str) -> ProduceRecord {
    ProduceRecord {
        key: Some(key.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        ..ProduceRecord::default()
    }
}

fn values(b: &Broker, topic: &str, partition: u32) -> Vec<String> {
    b.fetch(topic, partition, 0, 1 << 20)
        .expect("fetch")
        .records
        .into_iter()
        .map(|r| String::from_utf8(r.value.map(|v| v.to_vec()).unwrap_or_default()).expect("utf8"))
        .collect()
}

#[test]
fn a_topic_grows_and_keeps_its_data_across_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let b = open(dir.path());
        b.create_topic("t", 2, BTreeMap::new()).expect("create");
        b.produce("t", Some(1), vec![keyed("k", "before")])
            .expect("produce");

        // Refusals change nothing.
        for bad in [1, 2] {
            assert!(
                matches!(
                    b.add_partitions("t", bad, false),
                    Err(BrokerError::InvalidArgument(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            b.add_partitions("t", 17, false),
            Err(BrokerError::InvalidPartitionCount { count: 17, max: 16 })
        ));
        assert!(matches!(
            b.add_partitions("nope", 3, false),
            Err(BrokerError::TopicNotFound(_))
        ));
        let checked = b.add_partitions("t", 5, true).expect("validate");
        assert_eq!(checked.partitions, 5);
        assert_eq!(b.partition_count("t").expect("count"), 2, "validate_only");

        let grown = b.add_partitions("t", 5, false).expect("grow");
        assert_eq!(grown.partitions, 5);
        assert_eq!(b.partition_count("t").expect("count"), 5);
        assert_eq!(b.describe_topic("t").expect("describe").partitions.len(), 5);
        b.produce("t", Some(4), vec![keyed("x", "new")])
            .expect("produce to a new partition");

        // Keyed records are routed by the new count.
        let routed = b
            .produce("t", None, vec![keyed("some-key", "routed")])
            .expect("produce keyed");
        assert_eq!(
            routed.record_partitions,
            vec![partition_for_key(b"some-key", 5)]
        );
        b.close().expect("close");
    }
    let b = open(dir.path());
    assert_eq!(b.partition_count("t").expect("count"), 5);
    assert_eq!(values(&b, "t", 1), vec!["before".to_owned()]);
    assert_eq!(values(&b, "t", 4), vec!["new".to_owned()]);
    // A configuration change after the growth keeps the new count on disk.
    b.alter_topic_config(
        "t",
        BTreeMap::from([("retention.ms".to_owned(), "1000".to_owned())]),
        Vec::new(),
        false,
    )
    .expect("alter");
    b.close().expect("close");
    drop(b);
    let b = open(dir.path());
    assert_eq!(b.partition_count("t").expect("count"), 5);
    assert_eq!(
        b.topic_overrides("t").expect("overrides"),
        BTreeMap::from([("retention.ms".to_owned(), "1000".to_owned())])
    );
    b.close().expect("close");
}

/// A growth that crashed after creating the partition directories and before replacing
/// topic.json leaves stray directories past the count: the topic opens with its old count,
/// and the next growth reuses the directories empty.
#[test]
fn a_growth_interrupted_before_the_metadata_changed_is_invisible() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let b = open(dir.path());
        b.create_topic("t", 1, BTreeMap::new()).expect("create");
        b.close().expect("close");
    }
    let stray = dir.path().join("topics/t/1");
    std::fs::create_dir_all(&stray).expect("mkdir");
    std::fs::write(stray.join("leftover"), b"junk").expect("write");
    let b = open(dir.path());
    assert_eq!(b.partition_count("t").expect("count"), 1);
    b.add_partitions("t", 2, false).expect("grow");
    assert!(!stray.join("leftover").exists());
    assert!(values(&b, "t", 1).is_empty());
    b.produce("t", Some(1), vec![keyed("k", "v")])
        .expect("produce");
    assert_eq!(values(&b, "t", 1), vec!["v".to_owned()]);
    b.close().expect("close");
}

/// Producers and readers of the old partitions keep going while the topic grows.
#[test]
fn producers_keep_going_while_the_topic_grows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = open(dir.path());
    b.create_topic("t", 1, BTreeMap::new()).expect("create");
    let producer = {
        let b = b.clone();
        std::thread::spawn(move || {
            for i in 0..200 {
                b.produce("t", Some(0), vec![keyed("k", &i.to_string())])
                    .expect("produce during growth");
                b.fetch("t", 0, 0, 1 << 16).expect("fetch during growth");
            }
        })
    };
    for n in 2..=8 {
        b.add_partitions("t", n, false).expect("grow");
    }
    producer.join().expect("producer");
    assert_eq!(b.partition_count("t").expect("count"), 8);
    let end = b.describe_topic("t").expect("describe").partitions[0].log_end_offset;
    assert_eq!(end, 200);
    b.close().expect("close");
}

fn commit(topic: &str, partition: u32, offset: u64) -> OffsetCommit {
    OffsetCommit {
        topic: topic.into(),
        partition,
        offset,
        metadata: format!("m{offset}"),
    }
}

fn committed(b: &Broker, group: &str) -> Vec<(String, u32, u64)> {
    b.fetch_offsets(group, None)
        .expect("fetch offsets")
        .into_iter()
        .map(|o| (o.topic, o.partition, o.offset))
        .collect()
}

#[test]
fn deleted_group_offsets_stay_deleted_across_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let b = open(dir.path());
        b.create_topic("t", 3, BTreeMap::new()).expect("create");
        b.commit_offsets("gone", vec![commit("t", 0, 1), commit("t", 1, 2)])
            .expect("commit");
        b.commit_offsets(
            "some",
            vec![commit("t", 0, 5), commit("t", 1, 6), commit("t", 2, 7)],
        )
        .expect("commit");
        b.commit_offsets("emptied", vec![commit("t", 0, 9)])
            .expect("commit");

        assert_eq!(b.delete_group("gone").expect("delete"), 2);
        assert!(matches!(
            b.delete_group("gone"),
            Err(BrokerError::GroupNotFound(_))
        ));
        assert!(matches!(
            b.delete_group("bad/name"),
            Err(BrokerError::InvalidName { .. })
        ));
        let some = [
            ("t".to_owned(), 1),
            ("t".to_owned(), 1),
            ("t".to_owned(), 2),
            ("other".to_owned(), 0),
        ];
        assert_eq!(b.delete_group_offsets("some", &some).expect("delete"), 2);
        assert_eq!(
            b.delete_group_offsets("emptied", &[("t".to_owned(), 0)])
                .expect("delete"),
            1
        );
        assert!(matches!(
            b.delete_group_offsets("never", &[("t".to_owned(), 0)]),
            Err(BrokerError::GroupNotFound(_))
        ));
        b.close().expect("close");
    }
    let b = open(dir.path());
    assert_eq!(b.list_groups(), vec!["some".to_owned()]);
    assert_eq!(committed(&b, "some"), vec![("t".to_owned(), 0, 5)]);
    assert!(matches!(
        b.fetch_offsets("gone", None),
        Err(BrokerError::GroupNotFound(_))
    ));
    // A deleted group can commit again from scratch.
    b.commit_offsets("gone", vec![commit("t", 2, 3)])
        .expect("commit again");
    assert_eq!(committed(&b, "gone"), vec![("t".to_owned(), 2, 3)]);
    b.close().expect("close");
}
