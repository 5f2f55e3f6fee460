//! Attaching faults to a job's storage without a setting: a process-wide registry of
//! directories whose storage is faulty.
//!
//! [`install`] registers a directory (a path or URI, as in the job's configuration) with a
//! [`FaultInjector`]; every storage built afterwards for a location in or under it
//! ([`CheckpointStorage::new`](crate::checkpoint::storage::CheckpointStorage::new), savepoint
//! locations, [`load_snapshot`](crate::checkpoint::storage::load_snapshot),
//! [`dispose_snapshot`](crate::checkpoint::storage::dispose_snapshot),
//! [`list_snapshots`](crate::checkpoint::storage::list_snapshots)) goes through a
//! [`FaultLayer`] limited to that directory. Storage built before `install` is not affected:
//! install first (an injector with no rules changes nothing), then arm and disarm rules while
//! the job runs. A directory may also be installed below the configured one (the job's
//! directory, one `chk-<n>`): the layer is always limited to the installed directory. Tests
//! use unique temporary directories, so they do not see each other's faults; when installed
//! directories nest, each injector sees the operations in its own directory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::injector::FaultInjector;
use super::layer::FaultLayer;
use crate::checkpoint::storage::error::StorageError;
use crate::checkpoint::storage::location::{resolve_raw, Backend};

struct Registration {
    token: u64,
    /// [`Backend::id`] of the store the directory is in.
    backend: String,
    /// The directory as a key of that store.
    prefix: String,
    injector: Arc<FaultInjector>,
}

fn registry() -> MutexGuard<'static, Vec<Registration>> {
    static REGISTRY: OnceLock<Mutex<Vec<Registration>>> = OnceLock::new();
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keeps a directory's storage faulty; uninstalls the registration when dropped.
#[must_use = "the faults are uninstalled when the guard is dropped"]
#[derive(Debug)]
pub struct FaultGuard {
    token: u64,
    dir: String,
}

impl FaultGuard {
    /// The directory as it was installed.
    pub fn dir(&self) -> &str {
        &self.dir
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        registry().retain(|r| r.token != self.token);
    }
}

/// **Testing tool.** Makes the storage of `dir` (a plain path, `file://` or `memory://` URI)
/// and everything under it faulty as `injector` decides, for storage built from now on, until
/// the guard is dropped or [`uninstall`] is called.
///
/// # Errors
///
/// The location errors of [`CheckpointStorage::new`](crate::checkpoint::storage::CheckpointStorage::new)
/// for a `dir` that is not a usable location.
pub fn install(dir: &str, injector: Arc<FaultInjector>) -> Result<FaultGuard, StorageError> {
    static TOKENS: AtomicU64 = AtomicU64::new(0);
    let (backend, prefix) = resolve_raw(dir)?;
    let token = TOKENS.fetch_add(1, Ordering::Relaxed);
    registry().push(Registration {
        token,
        backend: backend.id(),
        prefix,
        injector,
    });
    Ok(FaultGuard {
        token,
        dir: dir.to_string(),
    })
}

/// **Testing tool.** Removes every registration of `dir` (however it was spelled); `false`
/// when there was none. Storage already built keeps its faults.
///
/// # Errors
///
/// As [`install`].
pub fn uninstall(dir: &str) -> Result<bool, StorageError> {
    let (backend, prefix) = resolve_raw(dir)?;
    let id = backend.id();
    let mut registry = registry();
    let before = registry.len();
    registry.retain(|r| r.backend != id || r.prefix != prefix);
    Ok(registry.len() != before)
}

/// `backend` with a [`FaultLayer`] for every installed directory that overlaps `key`: one
/// that contains it, or one inside it (a test may install a job's directory, or a single
/// `chk-<n>`, while the storage is built from the checkpoint directory above it). Each layer
/// is limited to its own directory.
pub(in crate::checkpoint::storage) fn attach(backend: Backend, key: &str) -> Backend {
    let id = backend.id();
    let registry = registry();
    let mut op = backend.op;
    let mut applied: Vec<(&str, &Arc<FaultInjector>)> = Vec::new();
    for r in registry.iter().filter(|r| r.backend == id) {
        let overlaps = is_under(key, &r.prefix) || is_under(&r.prefix, key);
        // The same injector installed twice on one directory is one layer, not two.
        let again = applied
            .iter()
            .any(|(p, i)| *p == r.prefix && Arc::ptr_eq(i, &r.injector));
        if overlaps && !again {
            op = op.layer(FaultLayer::new(Arc::clone(&r.injector)).within(&r.prefix));
            applied.push((&r.prefix, &r.injector));
        }
    }
    Backend {
        op,
        kind: backend.kind,
    }
}

/// Whether `key` is `prefix` or below it (by whole segments).
fn is_under(key: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || key
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_under_a_prefix_by_whole_segments() {
        assert!(is_under("a/b/c", "a/b"));
        assert!(is_under("a/b", "a/b"));
        assert!(is_under("a/b", ""));
        assert!(!is_under("a/bc", "a/b"));
        assert!(!is_under("a", "a/b"));
    }
}
