//! The broker on a full disk: it keeps serving reads, refuses produces with a clear "no space"
//! error, stops on SIGTERM with exit status 0 (a warning names what could not be written: the
//! recovery checkpoints, which nothing acknowledged depends on), starts again on the still full
//! disk, and takes produces again once space returns, with every acknowledged record kept.
//!
//! The data directory is a real tmpfs of 64 MiB mounted by the test (root needed, as in CI;
//! without it the test fails and says so), filled with a file; a full tmpfs fails `write` with
//! ENOSPC like a full disk, and raised SIGBUS through sparse memory-mapped index files before
//! those were preallocated.

use anyhow::{Context, Result, ensure};

use crate::cli::start;
use distlog_fixtures::{Tmpfs, fill_disk};
use distlog_harness::Process;

fn lines(from: usize, n: usize) -> Vec<u8> {
    (from..from + n)
        .flat_map(|i| format!("record {i:06} {}\n", "x".repeat(100)).into_bytes())
        .collect()
}

fn consume_all(broker: &Process) -> Result<Vec<u8>> {
    Ok(broker.ok(&["consume", "full", "--from", "earliest", "-e", "-q"], b"")?)
}

fn produce_fails_for_lack_of_space(broker: &Process) -> Result<()> {
    let out = broker.cli(&["produce", "full", "-q"], &lines(900_000, 10))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "a produce to a full disk succeeded");
    ensure!(
        stderr.to_lowercase().contains("no space"),
        "the produce failed without saying the disk is full: {stderr}"
    );
    Ok(())
}

#[test]
fn the_broker_serves_stops_and_restarts_on_a_full_disk() -> Result<()> {
    let fs = Tmpfs::mount("64m");
    let data = fs.path().join("data");

    let broker = start(&data, &[])?;
    // Small segments: small preallocated indexes, so the data, not the indexes, fills the disk.
    broker.ok(
        &[
            "topic",
            "create",
            "full",
            "--partitions",
            "1",
            "-c",
            "segment.bytes=1048576",
        ],
        b"",
    )?;
    let mut acked = lines(0, 3000);
    broker.ok(&["produce", "full", "-q"], &acked)?;
    ensure!(consume_all(&broker)? == acked);

    // Fill the disk, then produce until it refuses (the log may still have had room in pages
    // it already held).
    let filler = fill_disk(fs.path(), "filler").context("filling the tmpfs")?;
    let mut refused = false;
    for i in 0..50 {
        let batch = lines(10_000 + i * 1000, 1000);
        let out = broker.cli(&["produce", "full", "-q"], &batch)?;
        if out.status.success() {
            acked.extend_from_slice(&batch);
            continue;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            stderr.to_lowercase().contains("no space"),
            "the produce failed without saying the disk is full: {stderr}"
        );
        refused = true;
        break;
    }
    ensure!(refused, "the disk never filled up");
    produce_fails_for_lack_of_space(&broker)?;
    ensure!(consume_all(&broker)? == acked, "reads on a full disk");

    // SIGTERM on the full disk: a clean exit.
    let status = broker.terminate_logged()?;
    ensure!(
        status.0.success(),
        "exit {} on a full disk; log:\n{}",
        status.0,
        status.1
    );

    // A restart on the still full disk serves reads and refuses produces.
    let broker = start(&data, &[])?;
    ensure!(
        consume_all(&broker)? == acked,
        "reads after a restart on a full disk"
    );
    produce_fails_for_lack_of_space(&broker)?;
    let status = broker.terminate_logged()?;
    ensure!(
        status.0.success(),
        "second exit {}; log:\n{}",
        status.0,
        status.1
    );

    // Space returns: produces work again, and nothing acknowledged was lost.
    std::fs::remove_file(&filler)?;
    let broker = start(&data, &[])?;
    let more = lines(500_000, 500);
    broker.ok(&["produce", "full", "-q"], &more)?;
    acked.extend_from_slice(&more);
    ensure!(consume_all(&broker)? == acked, "reads after space returned");
    let status = broker.terminate_logged()?;
    ensure!(
        status.0.success(),
        "last exit {}; log:\n{}",
        status.0,
        status.1
    );
    Ok(())
}
