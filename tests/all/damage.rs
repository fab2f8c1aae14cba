//! End to end over gRPC: a damaged batch on disk costs only its own records. After a restart
//! the broker serves every intact batch, answers a fetch of the lost offsets with DATA_LOSS
//! naming them and where the log continues, and never reuses an offset. Guards the reported
//! case of a flipped bit in a batch's `base_offset` (outside the CRC) that made a fetch at 0
//! return offsets `[0..9, 2058..2067]` and the next append reuse offsets already served.

use crate::grpc::{clients, create, fetch_req, produce_req, record, start, test_config};
use anyhow::{Context, Result, ensure};
use distlog_server::proto;
use std::path::{Path, PathBuf};
use tonic::Code;

/// The `.log` files below `dir`, sorted.
fn segment_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(segment_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "log")
            && path.file_stem().is_some_and(|s| {
                s.len() == 20 && s.to_string_lossy().bytes().all(|b| b.is_ascii_digit())
            })
        {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Byte position of the batch whose base offset is `base` in a segment file.
fn position_of(data: &[u8], base: u64) -> Result<usize> {
    let mut at = 0;
    while at + 12 <= data.len() {
        if u64::from_le_bytes(data[at..at + 8].try_into()?) == base {
            return Ok(at);
        }
        at += 12 + u32::from_le_bytes(data[at + 8..at + 12].try_into()?) as usize;
    }
    anyhow::bail!("no batch with base offset {base}")
}

fn offsets(records: &[proto::StoredRecord]) -> Vec<i64> {
    records.iter().map(|r| r.offset).collect()
}

#[tokio::test]
async fn a_damaged_batch_is_reported_and_the_rest_is_served() -> Result<()> {
    // Both damage kinds: a flipped base offset (outside the CRC) and a flipped payload byte.
    for (what, field) in [("base offset", 1usize), ("payload", 80)] {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        {
            let server = start(&data, test_config()).await?;
            let mut c = clients(&server).await?;
            create(&mut c, "t", 1).await?;
            for b in 0..3u8 {
                let recs = (0..10u8)
                    .map(|i| record(Some(&[b, i]), Some(&[b; 16])))
                    .collect();
                c.records.produce(produce_req("t", Some(0), recs)).await?;
            }
            server.stop().await?;
        }
        let files = segment_files(&data.join("topics"))
            .or_else(|_| segment_files(&data))
            .context("segment files")?;
        let seg = files.first().context("a segment")?;
        let mut bytes = std::fs::read(seg)?;
        let at = position_of(&bytes, 10)? + field;
        // 10 -> 2058 for the base offset, as in the report.
        bytes[at] ^= 0x08;
        std::fs::write(seg, &bytes)?;

        let server = start(&data, test_config()).await?;
        let mut c = clients(&server).await?;
        let first = c.records.fetch(fetch_req("t", 0, 0)).await?.into_inner();
        ensure!(
            offsets(&first.records) == (0..10).collect::<Vec<i64>>(),
            "{what}: fetch at 0 serves the intact first batch only, got {:?}",
            offsets(&first.records)
        );
        ensure!(
            first.next_offset == 10,
            "{what}: next offset {}",
            first.next_offset
        );
        let lost = c
            .records
            .fetch(fetch_req("t", 0, 10))
            .await
            .expect_err("the damaged batch is not served");
        ensure!(lost.code() == Code::DataLoss, "{what}: {lost:?}");
        ensure!(
            lost.message().contains("10..20") && lost.message().contains("continues at offset 20"),
            "{what}: the status names the lost offsets: {}",
            lost.message()
        );
        let third = c.records.fetch(fetch_req("t", 0, 20)).await?.into_inner();
        ensure!(
            offsets(&third.records) == (20..30).collect::<Vec<i64>>(),
            "{what}: the batch after the damage is served"
        );
        let produced = c
            .records
            .produce(produce_req(
                "t",
                Some(0),
                vec![record(None, Some(b"after"))],
            ))
            .await?
            .into_inner();
        ensure!(
            produced.offsets == vec![30],
            "{what}: no offset is reused: {:?}",
            produced.offsets
        );
        server.stop().await?;
    }
    Ok(())
}
