//! Integration tests of the storage crate: one binary, one module per area.

mod storage {
    pub mod common;

    mod basic;
}
