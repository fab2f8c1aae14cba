//! On-disk cache of precompiled components.
//!
//! An artifact is `Engine::precompile_component` output, stored as
//! `<dir>/<component sha256>-<engine hash>.cwasm`, where the engine hash
//! covers the wasmtime version and every compilation setting
//! (`Engine::precompile_compatibility_hash`). Files are written to a unique
//! temporary name, synced, then renamed into place, so a reader never sees
//! a partial artifact and concurrent writers of the same key are harmless.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::PluginDigest;

/// Bumped when the cache layout or what goes into a key changes.
const CACHE_FORMAT: &str = "distlog-plugin-cache-v1";

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheOutcome {
    /// Loaded from a precompiled artifact (milliseconds).
    Hit,
    /// Compiled, and the artifact written for next time.
    Miss,
    /// Compiled; no cache is configured (or writing it failed).
    Uncached,
}

#[derive(Debug)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    engine_hash: String,
}

/// Feeds `Hash` output into sha256, for a hash that is stable across
/// processes and Rust versions (unlike `DefaultHasher`).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        // Unused: the full digest is read from the inner state.
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl ArtifactCache {
    pub(crate) fn new(dir: PathBuf, engine: &Engine) -> std::io::Result<Self> {
        fs::create_dir_all(&dir)?;
        let mut hasher = Sha256Hasher(Sha256::new());
        CACHE_FORMAT.hash(&mut hasher);
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = hex::encode(&hasher.0.finalize()[..16]);
        Ok(Self { dir, engine_hash })
    }

    fn path(&self, digest: &PluginDigest) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", digest.to_hex(), self.engine_hash))
    }

    /// Load the component from its artifact, or compile it and store the
    /// artifact. Cost: 1–5 ms on a hit; a full compile on a miss (tens of
    /// milliseconds for small Rust/C plugins, ~20 s for Python/JS ones).
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &PluginDigest,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.path(digest);
        if path.exists() {
            // SAFETY: `deserialize_file` trusts its input to be wasmtime's own
            // output for this engine configuration. The file comes from our
            // own cache directory, is named by the sha256 of the component it
            // was compiled from and by the engine's compatibility hash, and
            // was written in full and synced before being renamed into place
            // (see `store`), so it is the precompiled form of exactly these
            // bytes for exactly this engine. wasmtime also checks the
            // artifact's header and version before using it.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(error) => tracing::warn!(
                    path = %path.display(),
                    error = %format!("{error:#}"),
                    "discarding unreadable plugin artifact"
                ),
            }
        }
        let artifact = engine.precompile_component(bytes)?;
        // SAFETY: `artifact` was produced just now by this engine's
        // `precompile_component`.
        let component = unsafe { Component::deserialize(engine, &artifact)? };
        let outcome = match store(&path, &artifact) {
            Ok(()) => CacheOutcome::Miss,
            Err(error) => {
                tracing::warn!(
                    path = %path.display(),
                    %error,
                    "cannot write plugin artifact; the next load compiles again"
                );
                CacheOutcome::Uncached
            }
        };
        Ok((component, outcome))
    }

    /// Remove the artifact of `digest`, if any: a version rejected after it was compiled
    /// leaves nothing behind. Best effort (logged): a leftover artifact is only disk space.
    pub(crate) fn discard(&self, digest: &PluginDigest) {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(
                path = %path.display(),
                %error,
                "cannot remove the artifact of a rejected plugin version"
            ),
        }
    }
}

/// Removes the artifact a load compiled (a cache miss) unless the load succeeds and
/// [`disarm`](Self::disarm)s it first.
pub(crate) struct DiscardUnlessKept<'a> {
    cache: Option<&'a ArtifactCache>,
    digest: PluginDigest,
}

impl<'a> DiscardUnlessKept<'a> {
    pub(crate) fn new(
        cache: Option<&'a ArtifactCache>,
        outcome: CacheOutcome,
        digest: PluginDigest,
    ) -> Self {
        Self {
            cache: cache.filter(|_| outcome == CacheOutcome::Miss),
            digest,
        }
    }

    pub(crate) fn disarm(mut self) {
        self.cache = None;
    }
}

impl Drop for DiscardUnlessKept<'_> {
    fn drop(&mut self) {
        if let Some(cache) = self.cache {
            cache.discard(&self.digest);
        }
    }
}

/// Write `bytes` to `path` atomically: unique temporary file, fsync,
/// rename, fsync of the directory.
fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
