//! SIGKILL of a real `distlog serve` while clients produce and commit, round after round, over
//! one data directory.
//!
//! Guards: every acknowledged record of a `flush.policy=batch` topic survives every kill at its
//! acknowledged offset, exactly once, with the offsets of each partition dense; every
//! acknowledged group commit survives (the internal offsets log is synced before the answer);
//! the broker restarts over whatever the kill left (torn segment tails, a recovery checkpoint
//! up to a second old, an internal log cut mid-batch) and takes appends at the recovered end.
//! Bounded: four rounds, each killed once its producer has had 40 answers.

use crate::grpc::{fetch_req, guarded, record};
use anyhow::{Context, Result, ensure};
use distlog_harness::{Process, Profile};
use distlog_server::proto::groups_client::GroupsClient;
use distlog_server::proto::records_client::RecordsClient;
use distlog_server::proto::topics_client::TopicsClient;
use distlog_server::proto::{self};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tonic::transport::Channel;

const TOPIC: &str = "crashloop";
const GROUP: &str = "crashloop-readers";
const PARTITIONS: u32 = 2;
const ROUNDS: usize = 4;
const ANSWERS_BEFORE_KILL: usize = 40;

/// What the clients were told: acknowledged records by (partition, offset), and the highest
/// acknowledged and the highest attempted commit of partition 0.
#[derive(Debug, Default, Clone)]
struct Acked {
    records: BTreeMap<(u32, i64), Vec<u8>>,
    answers_this_round: usize,
    commit_acked: Option<i64>,
    commit_attempted: Option<i64>,
}

async fn channel(server: &Process) -> Result<Channel> {
    Ok(Channel::from_shared(format!("http://{}", server.grpc()))?
        .connect()
        .await?)
}

/// Produces one-record requests, alternating partitions, and commits after every tenth
/// answer, until the broker stops answering.
async fn produce_until_killed(
    ch: Channel,
    round: usize,
    acked: Arc<Mutex<Acked>>,
    enough: Arc<Notify>,
) {
    let mut records = RecordsClient::new(ch.clone());
    let mut groups = GroupsClient::new(ch);
    for i in 0u64.. {
        let partition = (i % u64::from(PARTITIONS)) as u32;
        let value = format!("round {round} record {i}").into_bytes();
        let request = proto::ProduceRequest {
            topic: TOPIC.into(),
            partition: Some(partition),
            records: vec![record(Some(&i.to_le_bytes()), Some(&value))],
            sequence: i,
        };
        let Ok(answer) = records.produce(request).await else {
            return;
        };
        let Some(&offset) = answer.get_ref().offsets.first() else {
            return;
        };
        let commit = {
            let mut a = acked.lock().expect("acked");
            a.records.insert((partition, offset), value);
            a.answers_this_round += 1;
            if a.answers_this_round == ANSWERS_BEFORE_KILL {
                enough.notify_one();
            }
            a.answers_this_round.is_multiple_of(10).then(|| {
                let next = a
                    .records
                    .range((0, 0)..(1, 0))
                    .next_back()
                    .map_or(0, |((_, o), _)| o + 1);
                a.commit_attempted = Some(next);
                next
            })
        };
        if let Some(next) = commit {
            let request = proto::CommitOffsetsRequest {
                group: GROUP.into(),
                offsets: vec![proto::CommittedOffset {
                    topic: TOPIC.into(),
                    partition: 0,
                    offset: next,
                    metadata: format!("round {round}"),
                    committed_at_ms: 0,
                }],
            };
            if groups.commit_offsets(request).await.is_err() {
                return;
            }
            acked.lock().expect("acked").commit_acked = Some(next);
        }
    }
}

/// Checks the restarted broker against everything acknowledged before the kill.
async fn check(ch: Channel, acked: &Acked) -> Result<()> {
    let mut records = RecordsClient::new(ch.clone());
    for partition in 0..PARTITIONS {
        let mut stored = BTreeMap::new();
        let mut offset = 0;
        loop {
            let r = records
                .fetch(fetch_req(TOPIC, partition, offset))
                .await?
                .into_inner();
            if r.records.is_empty() {
                break;
            }
            offset = r.next_offset;
            for rec in r.records {
                ensure!(
                    stored
                        .insert(rec.offset, rec.value.unwrap_or_default())
                        .is_none(),
                    "partition {partition}: offset {} served twice",
                    rec.offset
                );
            }
        }
        let offsets: Vec<i64> = stored.keys().copied().collect();
        ensure!(
            offsets.iter().copied().eq(0..offsets.len() as i64),
            "partition {partition}: offsets are not dense from 0: {offsets:?}"
        );
        for ((p, o), value) in acked.records.range((partition, 0)..(partition + 1, 0)) {
            let got = stored
                .get(o)
                .with_context(|| format!("acknowledged record {p}/{o} lost"))?;
            ensure!(got == value, "record {p}/{o} changed");
        }
    }
    let committed = GroupsClient::new(ch)
        .fetch_offsets(proto::FetchOffsetsRequest {
            group: GROUP.into(),
            topic: TOPIC.into(),
        })
        .await?
        .into_inner()
        .offsets
        .into_iter()
        .find(|o| o.partition == 0)
        .map(|o| o.offset);
    if let Some(want) = acked.commit_acked {
        let got = committed.context("an acknowledged commit was lost")?;
        ensure!(
            got >= want && Some(got) <= acked.commit_attempted,
            "committed offset {got}: acknowledged {want}, attempted {:?}",
            acked.commit_attempted
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_and_commits_survive_sigkill_mid_stream() -> Result<()> {
    let bin = distlog_harness::distlog_bin(Profile::Caller)?;
    let dir = tempfile::tempdir()?;
    let acked = Arc::new(Mutex::new(Acked::default()));
    for round in 0..=ROUNDS {
        let server = Process::start(&bin, dir.path(), "info", &[])?;
        let ch = guarded("connect", channel(&server)).await??;
        if round == 0 {
            TopicsClient::new(ch.clone())
                .create_topic(proto::CreateTopicRequest {
                    name: TOPIC.into(),
                    partitions: PARTITIONS,
                    config: [("flush.policy".to_owned(), "batch".to_owned())].into(),
                })
                .await?;
        } else {
            let snapshot = acked.lock().expect("acked").clone();
            guarded("check", check(ch.clone(), &snapshot))
                .await?
                .with_context(|| format!("after kill {round}:\n{}", server.log()))?;
        }
        if round == ROUNDS {
            server.terminate()?;
            break;
        }
        acked.lock().expect("acked").answers_this_round = 0;
        let enough = Arc::new(Notify::new());
        let producer = tokio::spawn(produce_until_killed(
            ch,
            round,
            acked.clone(),
            enough.clone(),
        ));
        guarded("40 answers", enough.notified()).await?;
        // Dropping the process kills it with SIGKILL while the producer is mid-request.
        drop(server);
        guarded("producer sees the kill", producer).await??;
    }
    Ok(())
}
