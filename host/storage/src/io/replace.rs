//! Replacing a whole small file atomically and durably (checkpoints, metadata).
//!
//! The protocol, the same for every caller: write the new contents to `name.tmp` (truncating a
//! leftover one), fsync it, rename it over `name` (atomic, rule 3 of the module docs), fsync the
//! directory so that the rename itself survives a crash. After a crash at any point the file
//! holds either the old or the new contents, never a mix; a leftover `name.tmp` is garbage for
//! the owner to remove (the log removes every `*.tmp` on open).

use super::{OpenMode, Storage};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Name of the temporary file [`replace`] writes before renaming it over `name`.
pub fn temp_name(name: &str) -> String {
    format!("{name}.tmp")
}

/// Replaces `name` in `storage` with `bytes`, atomically and durably: writes `name.tmp`, syncs
/// it, renames it over `name`, syncs the directory. Cost: two fsyncs and a rename; meant for
/// small files rewritten now and then, never per record.
pub fn replace(storage: &dyn Storage, name: &str, bytes: &[u8]) -> io::Result<()> {
    replace_with_failpoint(storage, name, bytes, "replace::rename")
}

/// [`replace`] with the failpoint hit between the temporary file's sync and the rename named
/// by the caller (tests arm e.g. `checkpoint::rename`).
pub(crate) fn replace_with_failpoint(
    storage: &dyn Storage,
    name: &str,
    bytes: &[u8],
    failpoint: &str,
) -> io::Result<()> {
    let tmp = temp_name(name);
    let file = storage.open(&tmp, OpenMode::Create)?;
    file.set_len(0)?;
    file.write_at(bytes, 0)?;
    file.sync()?;
    drop(file);
    crate::failpoint::hit(failpoint)?;
    storage.rename(&tmp, name)?;
    storage.sync_dir()
}

/// The whole contents of the small file `name` (one that [`replace`] writes), or `None` when
/// there is none. Cost: one read of the whole file; meant for checkpoints and markers.
pub fn read_whole(storage: &dyn Storage, name: &str) -> io::Result<Option<Vec<u8>>> {
    let file = match storage.open(name, OpenMode::Existing) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = usize::try_from(file.len()?).map_err(|_| io::ErrorKind::InvalidData)?;
    let mut buf = vec![0u8; len];
    file.read_at(&mut buf, 0)?;
    Ok(Some(buf))
}

/// [`replace`] for a path on the real file system, for callers outside a [`Storage`]
/// directory (the broker's topic, group and plugin metadata): writes `path` + `.tmp` next to
/// it, `fsync`s it, renames it over `path`, `fsync`s the parent directory. A relative path
/// without a parent uses the current directory. Cost: two fsyncs and a rename.
pub fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let Some(file_name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        ));
    };
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(".tmp");
    let tmp: PathBuf = path.with_file_name(tmp_name);
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::MemStorage;
    use crate::io::sim::{Crash, CrashStorage};

    #[test]
    fn replace_leaves_the_new_contents_and_no_temp_file() {
        let storage = MemStorage::new();
        replace(&storage, "meta", b"old").unwrap();
        replace(&storage, "meta", b"new!").unwrap();
        let f = storage.open("meta", OpenMode::Existing).unwrap();
        let mut buf = vec![0; f.len().unwrap() as usize];
        f.read_at(&mut buf, 0).unwrap();
        assert_eq!(buf, b"new!");
        assert_eq!(storage.list().unwrap(), vec!["meta".to_owned()]);
    }

    #[test]
    fn replace_file_replaces_durably_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("topic.json");
        replace_file(&path, b"{\"a\":1}").unwrap();
        replace_file(&path, b"{}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("topic.json")]);
        assert!(replace_file(Path::new("/"), b"x").is_err());
    }

    #[test]
    fn a_crash_at_any_step_leaves_old_or_new_contents() {
        for budget in 0..8 {
            let storage = CrashStorage::new();
            replace(&storage, "meta", b"old").unwrap();
            storage.fail_after(Some(budget));
            let done = replace(&storage, "meta", b"newer").is_ok();
            for crash in [
                Crash::DropUnsynced,
                Crash::Torn { seed: budget },
                Crash::KeepAll,
            ] {
                let image = storage.crash_image(crash);
                let got = image.read_file("meta").unwrap();
                assert!(
                    got == b"old" || got == b"newer",
                    "budget {budget}, {crash:?}: {got:?}"
                );
                if done && crash == Crash::DropUnsynced {
                    assert_eq!(got, b"newer", "a completed replace is durable");
                }
            }
        }
    }
}
