//! The IO layer the crash tests rely on: the crash simulator keeps exactly what was synced
//! (file contents after `sync`, names after `sync_dir`), tears only unsynced writes, and stops
//! all IO once its power budget is spent; the in-memory quota fails writes like a full disk; the
//! real-file implementation honours the positional contract.

use distlog_storage::io::sim::{Crash, CrashStorage};
use distlog_storage::io::{FsStorage, MemStorage, OpenMode, Storage, is_no_space};

fn read_all(s: &dyn Storage, name: &str) -> Option<Vec<u8>> {
    let f = s.open(name, OpenMode::Existing).ok()?;
    let mut buf = vec![0u8; f.len().unwrap() as usize];
    f.read_at(&mut buf, 0).unwrap();
    Some(buf)
}

#[test]
fn crash_image_keeps_only_what_was_synced() {
    let sim = CrashStorage::new();
    let a = sim.open("a", OpenMode::Create).unwrap();
    a.write_at(b"hello", 0).unwrap();
    a.sync().unwrap();
    // Not durable yet: the name was never synced.
    assert!(read_all(&sim.crash_image(Crash::DropUnsynced), "a").is_none());
    sim.sync_dir().unwrap();
    a.write_at(b" world", 5).unwrap();
    let image = sim.crash_image(Crash::DropUnsynced);
    assert_eq!(read_all(&image, "a").unwrap(), b"hello");
    assert_eq!(
        read_all(&sim.crash_image(Crash::KeepAll), "a").unwrap(),
        b"hello world"
    );
    // A torn image holds the synced bytes plus a prefix of the unsynced write.
    for seed in 0..50 {
        let torn = read_all(&sim.crash_image(Crash::Torn { seed }), "a").unwrap();
        assert!(torn.starts_with(b"hello") && b"hello world".starts_with(&torn[..]));
    }
}

#[test]
fn renames_and_removals_are_durable_only_after_sync_dir() {
    let sim = CrashStorage::new();
    let f = sim.open("tmp", OpenMode::Create).unwrap();
    f.write_at(b"v1", 0).unwrap();
    f.sync().unwrap();
    sim.sync_dir().unwrap();
    sim.rename("tmp", "final").unwrap();
    let image = sim.crash_image(Crash::DropUnsynced);
    assert!(read_all(&image, "final").is_none());
    assert_eq!(read_all(&image, "tmp").unwrap(), b"v1");
    sim.sync_dir().unwrap();
    let image = sim.crash_image(Crash::DropUnsynced);
    assert_eq!(read_all(&image, "final").unwrap(), b"v1");
    sim.remove("final").unwrap();
    assert!(read_all(&sim.crash_image(Crash::DropUnsynced), "final").is_some());
    // The removed file stays readable through the open handle.
    let mut buf = [0u8; 2];
    f.read_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"v1");
}

#[test]
fn power_budget_stops_every_mutation() {
    let sim = CrashStorage::new();
    let f = sim.open("a", OpenMode::Create).unwrap();
    sim.fail_after(Some(1));
    f.write_at(b"x", 0).unwrap();
    assert!(f.write_at(b"y", 1).is_err());
    assert!(f.sync().is_err());
    assert!(sim.sync_dir().is_err());
    assert!(sim.open("b", OpenMode::Create).is_err());
    sim.fail_after(None);
    f.sync().unwrap();
}

#[test]
fn quota_fails_writes_like_a_full_disk_and_frees_on_truncate() {
    let m = MemStorage::new();
    m.set_quota(10);
    let f = m.open("a", OpenMode::Create).unwrap();
    f.write_at(b"12345678", 0).unwrap();
    let err = f.write_at(b"abcdef", 8).unwrap_err();
    assert!(is_no_space(&err));
    // A short write: what fit reached the file.
    assert_eq!(f.len().unwrap(), 10);
    f.set_len(8).unwrap();
    assert_eq!(m.used_bytes(), 8);
    assert!(is_no_space(&f.set_len(20).unwrap_err()));
    f.write_at(b"ab", 8).unwrap();
}

#[test]
fn real_files_follow_the_positional_contract() {
    let dir = tempfile::tempdir().unwrap();
    let s = FsStorage::create(dir.path().join("p")).unwrap();
    let f = s.open("x.log", OpenMode::Create).unwrap();
    f.write_at(b"abc", 4).unwrap();
    assert_eq!(f.len().unwrap(), 7);
    let mut buf = [9u8; 7];
    f.read_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"\0\0\0\0abc");
    assert!(
        f.read_at(&mut [0u8; 8], 0).is_err(),
        "short reads are errors"
    );
    f.sync().unwrap();
    s.rename("x.log", "y.log").unwrap();
    s.sync_dir().unwrap();
    assert_eq!(s.list().unwrap(), vec!["y.log".to_owned()]);
    assert!(s.open("../escape", OpenMode::Create).is_err());
    assert!(s.open("missing", OpenMode::Existing).is_err());
    s.remove("y.log").unwrap();
    // Still readable through the handle after unlink.
    f.read_at(&mut buf, 0).unwrap();
}
