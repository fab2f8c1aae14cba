//! Hot reload from a watched directory.
//!
//! Every `<name>.wasm` in the directory is loaded under `<name>`; writing or
//! renaming a file into the directory reloads it. Deploy by writing the new
//! component under a temporary name (not ending in `.wasm`) and renaming it
//! into place: a half-written file fails to compile, is rejected, and the
//! version already serving keeps serving until the complete file arrives.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::{LoadError, LoadReport, PluginHost, PluginSpec, WatchError};

/// Events closer together than this are handled as one reload per file.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// The outcome of one load triggered by the directory.
#[derive(Debug)]
pub struct WatchEvent {
    pub name: String,
    pub path: PathBuf,
    pub result: Result<LoadReport, LoadError>,
}

/// A running directory watcher. Dropping it stops watching (the worker
/// thread exits after the load in progress, if any).
pub struct DirWatcher {
    _watcher: notify::RecommendedWatcher,
    /// Disconnected for [`PluginHost::watch_dir_with`], which hands events to its callback.
    events: mpsc::Receiver<WatchEvent>,
}

impl std::fmt::Debug for DirWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirWatcher").finish_non_exhaustive()
    }
}

impl DirWatcher {
    /// Outcomes of the loads the watcher performed, in order (the initial
    /// scan first). Reading them is optional; they are also logged.
    pub fn events(&self) -> &mpsc::Receiver<WatchEvent> {
        &self.events
    }
}

fn plugin_name(path: &Path) -> Option<String> {
    if path.extension()? != "wasm" {
        return None;
    }
    Some(path.file_stem()?.to_str()?.to_owned())
}

impl PluginHost {
    /// Load every `*.wasm` in `dir`, then watch it and reload a plugin
    /// whenever its file changes. New names are loaded with default spec
    /// (no parameters, default limits); existing names keep theirs. Loads run
    /// on the watcher's thread, never on a caller's.
    pub fn watch_dir(&self, dir: &Path) -> Result<DirWatcher, WatchError> {
        let (events_tx, events_rx) = mpsc::channel();
        let watcher = self.watch_dir_with(dir, move |event| {
            // Nobody reads the events: keep watching anyway.
            let _ = events_tx.send(event);
        })?;
        Ok(DirWatcher {
            events: events_rx,
            ..watcher
        })
    }

    /// [`watch_dir`](Self::watch_dir), handing each outcome to `on_event` (on the
    /// watcher's thread, after the load and its log line) instead of queueing it:
    /// [`DirWatcher::events`] then yields nothing.
    pub fn watch_dir_with(
        &self,
        dir: &Path,
        on_event: impl Fn(WatchEvent) + Send + 'static,
    ) -> Result<DirWatcher, WatchError> {
        let dir = dir.to_owned();
        let (changed_tx, changed_rx) = mpsc::channel::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && (event.kind.is_create() || event.kind.is_modify())
                {
                    for path in event.paths {
                        let _ = changed_tx.send(path);
                    }
                }
            })
            .map_err(|e| WatchError::Watch {
                path: dir.clone(),
                message: e.to_string(),
            })?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| WatchError::Watch {
                path: dir.clone(),
                message: e.to_string(),
            })?;
        let initial: BTreeSet<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|source| WatchError::List {
                path: dir.clone(),
                source,
            })?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| plugin_name(p).is_some())
            .collect();

        let host = self.clone();
        std::thread::Builder::new()
            .name("plugin-watch".into())
            .spawn(move || {
                let mut batch = initial;
                loop {
                    for path in std::mem::take(&mut batch) {
                        let Some(name) = plugin_name(&path) else {
                            continue;
                        };
                        let result = host.load_from_watch(&name, &path);
                        match &result {
                            Ok(report) => tracing::info!(
                                plugin = %name,
                                version = %report.digest.short(),
                                unchanged = report.unchanged,
                                "plugin file loaded"
                            ),
                            Err(error) => {
                                tracing::warn!(plugin = %name, %error, "plugin file rejected")
                            }
                        }
                        on_event(WatchEvent { name, path, result });
                    }
                    // Block for the next change, then gather the burst that
                    // follows it (one write is several events).
                    match changed_rx.recv() {
                        Ok(path) => {
                            batch.insert(path);
                        }
                        Err(_) => return,
                    }
                    while let Ok(path) = changed_rx.recv_timeout(DEBOUNCE) {
                        batch.insert(path);
                    }
                }
            })
            .map_err(WatchError::Thread)?;
        Ok(DirWatcher {
            _watcher: watcher,
            events: mpsc::channel().1,
        })
    }

    fn load_from_watch(&self, name: &str, path: &Path) -> Result<LoadReport, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        if self.info(name).is_some() {
            self.reload(name, bytes)
        } else {
            self.load(PluginSpec::new(name), bytes)
        }
    }
}
