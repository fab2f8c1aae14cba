//! Integration tests of the storage crate: one binary, one module per area.

mod storage {
    pub mod common;

    mod basic;
    mod compaction;
    mod concurrent;
    mod corrupt;
    mod crash;
    mod damage;
    mod enospc;
    mod epochs;
    #[cfg(feature = "failpoints")]
    mod failpoints;
    mod fulldisk;
    mod idempotent;
    mod io;
    mod model;
    mod producers;
    mod replica;
    mod threads;
    mod truncate;
    mod watermark;
}
