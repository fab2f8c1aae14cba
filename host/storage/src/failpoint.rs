//! Failpoints for the places an IO wrapper cannot reach (segment roll, checkpoint rename, index
//! growth). Compiled only with the `failpoints` feature; without it the check is an inlined
//! `Ok(())`. Failpoints are per thread, so tests running in parallel do not disturb each other.
//!
//! Points: `segment::roll`, `segment::create`, `index::grow`, `checkpoint::rename`; compaction
//! (in protocol order, see docs/FORMAT.md "Compaction and deletion"):
//! `compaction::before_swap` (cleaned files written and synced, nothing renamed),
//! `compaction::commit` (indexes and manifest renamed to `.swap`, the log not yet),
//! `compaction::swap` (committed, sources untouched), `compaction::rename_log` (sources deleted,
//! indexes swapped in, the log not yet), `compaction::swapped` (all renamed, manifest left);
//! deletion: `delete::rename` (before each segment's renames), `delete::sync` (before the
//! directory sync), `delete::remove` (before each removal of a `.deleted` file); truncation
//! (see `log/truncate.rs`): `truncate::commit` (marker durable, readers at the new end, no
//! file changed), `delete::rename` and `delete::sync` (the newer segments),
//! `truncate::cut` (newer segments gone, the cut segment not yet cut), `truncate::done`
//! (everything done but the marker's removal); `replace::rename` (a [`crate::io::replace`]
//! between the temporary file's sync and its rename).

use std::io;

#[cfg(feature = "failpoints")]
mod imp {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::io;

    thread_local! {
        static POINTS: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
    }

    /// Makes failpoint `name` fail on this thread after `skip` successful passes, until cleared.
    pub fn set(name: &str, skip: u64) {
        POINTS.with(|p| p.borrow_mut().insert(name.to_owned(), skip));
    }

    /// Removes every failpoint of this thread.
    pub fn clear() {
        POINTS.with(|p| p.borrow_mut().clear());
    }

    pub(crate) fn hit(name: &str) -> io::Result<()> {
        POINTS.with(|p| {
            let mut points = p.borrow_mut();
            match points.get_mut(name) {
                None => Ok(()),
                Some(0) => Err(io::Error::other(format!("failpoint {name}"))),
                Some(n) => {
                    *n -= 1;
                    Ok(())
                }
            }
        })
    }
}

#[cfg(feature = "failpoints")]
pub use imp::{clear, set};

/// Fails with an IO error if failpoint `name` is armed on this thread.
#[inline]
pub(crate) fn hit(name: &str) -> io::Result<()> {
    #[cfg(feature = "failpoints")]
    {
        imp::hit(name)
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        Ok(())
    }
}
