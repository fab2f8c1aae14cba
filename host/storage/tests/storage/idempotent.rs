//! The idempotent append: the producer check and the append happen under one writer lock, so a
//! retried batch is answered with its original offsets and never stored twice, even when the
//! retries race; out-of-order sequences, fenced epochs and unknown producers are refused with
//! nothing written; the state that decides survives a reopen.

use super::common::*;
use distlog_storage::batch::{BatchBuilder, Record};
use distlog_storage::producers::Check;
use distlog_storage::{AppendError, AppendInfo, Idempotent, Log};
use std::sync::{Arc, Barrier};

fn batch(producer: i64, epoch: i16, sequence: i32, records: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new().producer(producer, epoch, sequence);
    for i in 0..records {
        b.push(&Record::new(
            1,
            format!("p{producer} e{epoch} s{}", sequence as usize + i),
        ))
        .expect("record fits");
    }
    b.finish().expect("batch")
}

fn append(log: &Log, bytes: &[u8]) -> Result<Idempotent, AppendError> {
    log.append_idempotent(&mut bytes.to_vec())
}

fn offsets(outcome: Idempotent) -> (u64, u64) {
    match outcome {
        Idempotent::Appended(AppendInfo {
            base_offset,
            last_offset,
            ..
        })
        | Idempotent::Duplicate(AppendInfo {
            base_offset,
            last_offset,
            ..
        }) => (base_offset, last_offset),
    }
}

fn refusal(r: Result<Idempotent, AppendError>) -> Check {
    match r {
        Err(AppendError::Producer(check)) => check,
        other => panic!("expected a producer refusal, got {other:?}"),
    }
}

#[test]
fn a_retry_gets_its_original_offsets_and_bad_sequences_are_refused() {
    let (_m, s) = mem();
    let log = open(&s, &small_config());
    let first = batch(1, 0, 0, 3);
    assert!(matches!(append(&log, &first), Ok(Idempotent::Appended(_))));
    let again = append(&log, &first).expect("retry");
    assert!(matches!(again, Idempotent::Duplicate(_)), "{again:?}");
    assert_eq!(offsets(again), (0, 2));
    assert_eq!(log.log_end_offset(), 3, "the retry was not stored");

    assert_eq!(
        offsets(append(&log, &batch(1, 0, 3, 2)).expect("next")),
        (3, 4)
    );
    // A gap in the sequence, refused with a message that says what was expected.
    let gap = append(&log, &batch(1, 0, 7, 1));
    if let Err(e) = &gap {
        assert!(e.to_string().contains("next sequence is 5"), "{e}");
    }
    assert_eq!(refusal(gap), Check::OutOfOrder { expected: 5 });
    // A new epoch starts again at 0; the old epoch is fenced from then on.
    assert_eq!(
        offsets(append(&log, &batch(1, 1, 0, 1)).expect("new epoch")),
        (5, 5)
    );
    assert_eq!(
        refusal(append(&log, &batch(1, 0, 5, 1))),
        Check::Fenced { current: 1 }
    );
    // A producer the log has never seen must start at sequence 0.
    assert_eq!(
        refusal(append(&log, &batch(2, 0, 9, 1))),
        Check::UnknownProducer
    );
    // A batch without a producer id is appended as by `append`.
    let plain = {
        let mut b = BatchBuilder::new();
        b.push(&Record::new(1, "plain")).expect("record");
        b.finish().expect("batch")
    };
    assert_eq!(offsets(append(&log, &plain).expect("plain")), (6, 6));
    assert_eq!(log.log_end_offset(), 7, "no refused batch was written");
}

#[test]
fn racing_retries_store_the_batch_once() {
    const THREADS: usize = 8;
    let (_m, s) = mem();
    let log = open(&s, &small_config());
    let bytes = Arc::new(batch(7, 0, 0, 4));
    let barrier = Arc::new(Barrier::new(THREADS));
    let outcomes: Vec<Idempotent> = (0..THREADS)
        .map(|_| {
            let (log, bytes, barrier) = (log.clone(), bytes.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                append(&log, &bytes).expect("append")
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let appended = outcomes
        .iter()
        .filter(|o| matches!(o, Idempotent::Appended(_)))
        .count();
    assert_eq!(appended, 1, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|o| offsets(*o) == (0, 3)),
        "{outcomes:?}"
    );
    assert_eq!(log.log_end_offset(), 4);
}

#[test]
fn the_deciding_state_survives_a_reopen() {
    let (_m, s) = mem();
    let config = small_config();
    let first = batch(3, 2, 0, 2);
    {
        let log = open(&s, &config);
        append(&log, &first).expect("append");
        append(&log, &batch(3, 2, 2, 2)).expect("append");
        log.close().expect("close");
    }
    let log = open(&s, &config);
    assert_eq!(
        append(&log, &first).expect("retry after reopen"),
        Idempotent::Duplicate(AppendInfo {
            base_offset: 0,
            last_offset: 1,
            log_append_time_ms: 1,
        })
    );
    assert_eq!(
        refusal(append(&log, &batch(3, 1, 4, 1))),
        Check::Fenced { current: 2 }
    );
    assert_eq!(
        offsets(append(&log, &batch(3, 2, 4, 1)).expect("next")),
        (4, 4)
    );
}
