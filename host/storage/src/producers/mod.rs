//! Producer state: per producer id, its epoch and its last batches' sequences and offsets,
//! snapshotted beside the segments and rebuilt from batch headers. Being written.
