//! The `rocksdb` backend: keyed state on local disk in an embedded RocksDB, one instance per
//! keyed subtask (store), behind a bounded write-back cache of decoded values per state.
//!
//! # Layout
//!
//! One DB per [`KeyedStateStore`](super::KeyedStateStore), in its own working directory under
//! `state.backend.rocksdb.localdir` (default: the temp dir), removed when the store and every
//! capture of it are dropped. Every registered state gets a tag (its registration index) and
//! its entries are stored under
//!
//! ```text
//! key group (u16 BE) ++ tag (u16 BE) ++ MessagePack(key)  →  MessagePack(per-key value)
//! ```
//!
//! where the per-key value is what the `hashmap` backend keeps per key (`V`, the list, the
//! user map). A key group is one contiguous key range, as in Flink, and one state's entries of
//! a group are one prefix; MessagePack is self-delimiting, so no key's encoding is a prefix of
//! another's. Keys and values are written with the snapshot format's encoding, so a group's
//! canonical snapshot chunk is the concatenation of the stored entries under an array header:
//! encoding a group copies bytes, it decodes nothing.
//!
//! # The write-back cache
//!
//! Each state keeps the values of recently used keys decoded, per key group, with a dirty flag
//! ([`RocksGroups`]). Handle reads that return references are served from it; a key read with
//! a shared borrow that is not cached is read once into a one-entry slot (`spare`) that the next
//! `set_current_key` moves into the cache. Writes change only the cache. Dirty entries reach
//! RocksDB in one write batch when the cache is full (it is then emptied: bounded at
//! [`CACHE_ENTRIES`] keys per state) and in the synchronous part of every snapshot. The WAL is
//! off: what is not in a checkpoint is recovered from the last checkpoint, never from the DB.
//!
//! # Snapshots
//!
//! A deferred snapshot flushes the caches and creates a RocksDB checkpoint (a memtable flush,
//! then hard links of the immutable SST files) in a `-capture-N` directory next to the store's: the
//! barrier pause is that, not a copy of the state. The capture is opened read-only on the
//! encoding thread and encoded key group by key group into the canonical blob; its directory is
//! removed when the capture is dropped. Restores decode and check the canonical chunks, then
//! replace the state's prefix ranges with one batch.
//!
//! RocksDB errors on the record path (a full or failing local disk) panic with the operator and
//! the path: the subtask fails and the job restarts from its last checkpoint, as Flink's task
//! does. Errors while snapshotting or restoring are [`StateError::Backend`].

use std::cell::OnceCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rocksdb::{Options, ReadOptions, WriteBatch, WriteOptions, DB};
use serde::Serialize;

use super::error::StateError;
use super::key_group::{key_group_for_hash, stable_hash};
use super::keyed::{StateKey, StateValue};
use super::snapshot::decode_data;
use super::table::{
    CurrentKey, GroupEntries, GroupLayout, HashedKey, PrehashedMap, Prepared, TableRestoreError,
};

/// Keys cached per state before the cache is written back and emptied.
#[cfg(not(test))]
pub(crate) const CACHE_ENTRIES: usize = 1 << 17;
/// Small in unit tests, so that they write back and reload all the time.
#[cfg(test)]
pub(crate) const CACHE_ENTRIES: usize = 16;

/// The directory name prefix of a store's working directory.
const WORK_DIR_PREFIX: &str = "weir-rocksdb-";

/// RocksDB instances of this backend alive in the process (working DBs and captures).
static OPEN: AtomicU64 = AtomicU64::new(0);

/// Counts one instance while it lives (a field declared after the DB, so dropped after it).
#[derive(Debug)]
struct Counted;

impl Counted {
    fn new() -> Self {
        OPEN.fetch_add(1, Ordering::SeqCst);
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The number of RocksDB instances of the `rocksdb` backend open in this process.
pub fn open_instances() -> u64 {
    OPEN.load(Ordering::SeqCst)
}

/// A directory removed (with everything in it) when dropped.
#[derive(Debug)]
struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.0.display(), error = %e, "cannot remove a RocksDB working directory");
            }
        }
    }
}

/// One store's DB and working directory.
pub(crate) struct RocksStore {
    // Field order matters: the DB is closed before its directory is removed.
    db: DB,
    operator: String,
    layout: GroupLayout,
    captures: AtomicU64,
    /// Keys each state caches ([`CACHE_ENTRIES`] but in tests).
    cache_entries: usize,
    /// The capture being taken by `KeyedStateStore::snapshot_deferred` (set for the duration
    /// of one call, read by each table's `capture`).
    current_capture: Mutex<Option<Arc<Captured>>>,
    dir: DirGuard,
    _counted: Counted,
}

impl fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksStore")
            .field("operator", &self.operator)
            .field("dir", &self.dir.0)
            .finish_non_exhaustive()
    }
}

fn backend_error(operator: &str, detail: impl fmt::Display) -> StateError {
    StateError::Backend {
        operator: operator.to_string(),
        detail: detail.to_string(),
    }
}

impl RocksStore {
    /// Opens a fresh DB in a new working directory under `local_dir` (the temp dir if `None`).
    pub(crate) fn open(
        operator: &str,
        layout: GroupLayout,
        local_dir: Option<&Path>,
        cache_entries: usize,
    ) -> Result<Arc<Self>, StateError> {
        let base = local_dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
        std::fs::create_dir_all(&base).map_err(|e| {
            backend_error(
                operator,
                format!(
                    "cannot create the RocksDB local directory {}: {e}",
                    base.display()
                ),
            )
        })?;
        let safe: String = operator
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let dir = base.join(format!(
            "{WORK_DIR_PREFIX}{safe}-{}-{}",
            layout.range.start(),
            uuid::Uuid::new_v4().simple()
        ));
        let guard = DirGuard(dir.clone());
        std::fs::create_dir_all(&dir).map_err(|e| {
            backend_error(operator, format!("cannot create {}: {e}", dir.display()))
        })?;
        let db = DB::open(&db_options(), dir.join("db")).map_err(|e| {
            backend_error(
                operator,
                format!("cannot open RocksDB in {}: {e}", dir.display()),
            )
        })?;
        tracing::debug!(operator, path = %dir.display(), key_groups = %layout.range, "RocksDB opened");
        Ok(Arc::new(Self {
            db,
            operator: operator.to_string(),
            layout,
            captures: AtomicU64::new(0),
            cache_entries,
            current_capture: Mutex::new(None),
            dir: guard,
            _counted: Counted::new(),
        }))
    }

    /// The working directory (for tests and messages).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir.0
    }

    fn write(&self, batch: WriteBatch) -> Result<(), rocksdb::Error> {
        let mut wo = WriteOptions::default();
        wo.disable_wal(true);
        self.db.write_opt(batch, &wo)
    }

    /// Creates a RocksDB checkpoint of the DB as it is now (the caches must be flushed first)
    /// and makes it the current capture, which each table's `capture` then shares.
    pub(crate) fn begin_capture(&self) -> Result<(), StateError> {
        let n = self.captures.fetch_add(1, Ordering::Relaxed);
        // Next to the DB's directory (hard links need the same file system), not in it: the
        // capture may outlive the store while it is encoded.
        let mut name = self.dir.0.file_name().unwrap_or_default().to_os_string();
        name.push(format!("-capture-{n}"));
        let dir = self.dir.0.with_file_name(name);
        let checkpoint = rocksdb::checkpoint::Checkpoint::new(&self.db)
            .and_then(|c| c.create_checkpoint(&dir))
            .map_err(|e| {
                backend_error(
                    &self.operator,
                    format!(
                        "cannot create a RocksDB checkpoint in {}: {e}",
                        dir.display()
                    ),
                )
            });
        let guard = DirGuard(dir);
        checkpoint?;
        *self.current_capture.lock().expect("not poisoned") = Some(Arc::new(Captured {
            db: OnceLock::new(),
            operator: self.operator.clone(),
            dir: guard,
            _counted: Counted::new(),
        }));
        Ok(())
    }

    pub(crate) fn end_capture(&self) {
        self.current_capture.lock().expect("not poisoned").take();
    }

    fn capture(&self) -> Option<Arc<Captured>> {
        self.current_capture.lock().expect("not poisoned").clone()
    }
}

/// RocksDB's block cache per store (Flink's default is 8 MiB; point reads of state larger than
/// the write-back cache go through it).
const BLOCK_CACHE_BYTES: usize = 32 << 20;
/// Memtable size (two may exist while one is flushed).
const WRITE_BUFFER_BYTES: usize = 32 << 20;

fn db_options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.set_max_background_jobs(2);
    o.set_write_buffer_size(WRITE_BUFFER_BYTES);
    // Local working state, rewritten by compactions: no compression.
    o.set_compression_type(rocksdb::DBCompressionType::None);
    o.set_level_compaction_dynamic_level_bytes(true);
    // Most reads are point reads of one key: bloom filters on SSTs and the memtable.
    o.set_memtable_whole_key_filtering(true);
    o.set_memtable_prefix_bloom_ratio(0.05);
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    if let Ok(cache) = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES) {
        table.set_block_cache(&cache);
    }
    o.set_block_based_table_factory(&table);
    o
}

/// A RocksDB checkpoint taken at a barrier, opened read-only where it is encoded.
struct Captured {
    // Closed before the directory is removed.
    db: OnceLock<Result<DB, String>>,
    operator: String,
    dir: DirGuard,
    _counted: Counted,
}

impl Captured {
    fn db(&self) -> Result<&DB, rmp_serde::encode::Error> {
        self.db
            .get_or_init(|| {
                DB::open_for_read_only(&Options::default(), &self.dir.0, false).map_err(|e| {
                    format!(
                        "operator `{}`: cannot open the RocksDB checkpoint {}: {e}",
                        self.operator,
                        self.dir.0.display()
                    )
                })
            })
            .as_ref()
            .map_err(|e| rmp_serde::encode::Error::Syntax(e.clone()))
    }
}

/// The prefix of one state's entries of one key group.
fn prefix(key_group: u32, tag: u16) -> [u8; 4] {
    let kg = u16::try_from(key_group).expect("key groups fit in u16 (max parallelism ≤ 32768)");
    let [a, b] = kg.to_be_bytes();
    let [c, d] = tag.to_be_bytes();
    [a, b, c, d]
}

/// The end (exclusive) of [`prefix`]'s range (tags stay below `u16::MAX`).
fn prefix_end(key_group: u32, tag: u16) -> [u8; 4] {
    prefix(key_group, tag + 1)
}

fn db_key<K: Serialize>(key_group: u32, tag: u16, key: &K) -> Vec<u8> {
    let mut out = prefix(key_group, tag).to_vec();
    rmp_serde::encode::write_named(&mut out, key).expect("a state key serialises");
    out
}

/// Calls `f` with every `(key bytes, value bytes)` of the state's group (keys without the
/// 4-byte prefix).
fn scan(
    db: &DB,
    key_group: u32,
    tag: u16,
    f: &mut dyn FnMut(&[u8], &[u8]),
) -> Result<(), rocksdb::Error> {
    let mut ro = ReadOptions::default();
    ro.set_iterate_upper_bound(prefix_end(key_group, tag));
    let mut it = db.raw_iterator_opt(ro);
    it.seek(prefix(key_group, tag));
    while it.valid() {
        let (Some(k), Some(v)) = (it.key(), it.value()) else {
            break;
        };
        f(&k[4..], v);
        it.next();
    }
    it.status()
}

/// Writes a MessagePack array header for `n` elements.
fn array_header(n: usize, out: &mut Vec<u8>) {
    if n < 16 {
        out.push(0x90 | n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xdc);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Appends one `(key, value)` entry in the snapshot encoding.
fn push_entry(key: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(0x92);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

/// A cached key's value: `None` is a known absence (or a deletion, if dirty).
#[derive(Clone)]
struct Slot<S> {
    value: Option<S>,
    dirty: bool,
}

/// One state's storage in the store's DB (see the module docs).
pub(crate) struct RocksGroups<K, S> {
    store: Arc<RocksStore>,
    tag: u16,
    cache: Vec<PrehashedMap<K, Slot<S>>>,
    cached: usize,
    /// The current key's value read through a shared borrow, not cached yet.
    spare: OnceCell<(HashedKey<K>, Option<S>)>,
}

impl<K: StateKey, S: StateValue> RocksGroups<K, S> {
    pub(crate) fn new(store: Arc<RocksStore>, tag: u16) -> Self {
        let n = store.layout.range.len();
        Self {
            store,
            tag,
            cache: (0..n).map(|_| PrehashedMap::default()).collect(),
            cached: 0,
            spare: OnceCell::new(),
        }
    }

    fn read(&self, cur: &CurrentKey<K>) -> Option<S> {
        let key = db_key(cur.key_group, self.tag, &cur.key.key);
        match self.store.db.get_pinned(&key) {
            Ok(Some(bytes)) => Some(decode_data(&bytes).unwrap_or_else(|e| {
                panic!(
                    "operator `{}`: a RocksDB value of key group {} does not decode as {}: {e}",
                    self.store.operator,
                    cur.key_group,
                    std::any::type_name::<S>()
                )
            })),
            Ok(None) => None,
            Err(e) => self.io_failure("read", &e),
        }
    }

    #[cold]
    #[inline(never)]
    fn io_failure(&self, what: &str, e: &rocksdb::Error) -> ! {
        panic!(
            "operator `{}`: RocksDB {what} failed in {}: {e}",
            self.store.operator,
            self.store.dir().display()
        )
    }

    #[inline]
    pub(crate) fn get(&self, cur: &CurrentKey<K>) -> Option<&S> {
        if let Some(slot) = self.cache[cur.offset].get(&cur.key) {
            return slot.value.as_ref();
        }
        self.get_uncached(cur)
    }

    #[cold]
    #[inline(never)]
    fn get_uncached(&self, cur: &CurrentKey<K>) -> Option<&S> {
        let (key, value) = self.spare.get_or_init(|| (cur.key.clone(), self.read(cur)));
        assert!(
            key == &cur.key,
            "operator `{}`: the RocksDB backend was not told of a key change",
            self.store.operator
        );
        value.as_ref()
    }

    /// The current key's slot, read from the DB if it is not cached.
    #[inline]
    fn slot(&mut self, cur: &CurrentKey<K>) -> &mut Slot<S> {
        if !self.cache[cur.offset].contains_key(&cur.key) {
            self.load(cur);
        }
        self.cache[cur.offset]
            .get_mut(&cur.key)
            .expect("loaded above")
    }

    #[cold]
    #[inline(never)]
    fn load(&mut self, cur: &CurrentKey<K>) {
        let value = match self.spare.take() {
            Some((key, value)) if key == cur.key => value,
            _ => self.read(cur),
        };
        self.cache[cur.offset].insert(
            cur.key.clone(),
            Slot {
                value,
                dirty: false,
            },
        );
        self.cached += 1;
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, cur: &CurrentKey<K>) -> Option<&mut S> {
        let slot = self.slot(cur);
        if slot.value.is_some() {
            slot.dirty = true;
        }
        slot.value.as_mut()
    }

    #[inline]
    pub(crate) fn insert(&mut self, cur: &CurrentKey<K>, value: S) {
        let group = &mut self.cache[cur.offset];
        match group.get_mut(&cur.key) {
            Some(slot) => {
                slot.value = Some(value);
                slot.dirty = true;
            }
            None => {
                // A blind write: no read needed.
                self.spare.take();
                group.insert(
                    cur.key.clone(),
                    Slot {
                        value: Some(value),
                        dirty: true,
                    },
                );
                self.cached += 1;
            }
        }
    }

    #[inline]
    pub(crate) fn get_or_insert_with(
        &mut self,
        cur: &CurrentKey<K>,
        make: impl FnOnce() -> S,
    ) -> &mut S {
        let slot = self.slot(cur);
        slot.dirty = true;
        slot.value.get_or_insert_with(make)
    }

    #[inline]
    pub(crate) fn remove(&mut self, cur: &CurrentKey<K>) -> Option<S> {
        let slot = self.slot(cur);
        let old = slot.value.take();
        if old.is_some() {
            slot.dirty = true;
        }
        old
    }

    /// The store's current key changed: keep what was read through a shared borrow, and
    /// write back and empty the cache if it is full.
    #[inline]
    pub(crate) fn key_changed(&mut self) {
        if self.spare.get().is_some() {
            self.keep_spare();
        }
        if self.cached >= self.store.cache_entries {
            self.evict();
        }
    }

    #[cold]
    #[inline(never)]
    fn keep_spare(&mut self) {
        if let Some((key, value)) = self.spare.take() {
            let kg = key_group_for_hash(key.hash, self.store.layout.max_parallelism);
            if let Some(offset) = self.store.layout.range.offset_of(kg) {
                if self.cache[offset]
                    .insert(
                        key,
                        Slot {
                            value,
                            dirty: false,
                        },
                    )
                    .is_none()
                {
                    self.cached += 1;
                }
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn evict(&mut self) {
        if let Err(e) = self.write_back() {
            self.io_failure("write", &e);
        }
        for g in &mut self.cache {
            g.clear();
        }
        self.cached = 0;
    }

    /// Writes every dirty cached entry to the DB in one batch; they stay cached, clean.
    pub(crate) fn write_back(&mut self) -> Result<(), rocksdb::Error> {
        let mut batch = WriteBatch::default();
        let start = self.store.layout.range.start();
        for (offset, group) in self.cache.iter_mut().enumerate() {
            let kg = start + offset as u32;
            for (key, slot) in group.iter_mut().filter(|(_, s)| s.dirty) {
                let k = db_key(kg, self.tag, &key.key);
                match &slot.value {
                    Some(v) => batch.put(k, encode_value(v)),
                    None => batch.delete(k),
                }
                slot.dirty = false;
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.store.write(batch)
    }

    /// [`RocksGroups::write_back`] with the error as a [`StateError`].
    pub(crate) fn flush(&mut self) -> Result<(), StateError> {
        self.write_back()
            .map_err(|e| backend_error(&self.store.operator, format!("RocksDB write failed: {e}")))
    }

    /// The group's entries as they are now: the DB's, overlaid with the dirty cached ones.
    fn live_group(&self, offset: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let kg = self.store.layout.range.start() + offset as u32;
        let mut entries = std::collections::BTreeMap::new();
        if let Err(e) = scan(&self.store.db, kg, self.tag, &mut |k, v| {
            entries.insert(k.to_vec(), Some(v.to_vec()));
        }) {
            self.io_failure("read", &e);
        }
        for (key, slot) in self.cache[offset].iter().filter(|(_, s)| s.dirty) {
            let mut k = Vec::new();
            rmp_serde::encode::write_named(&mut k, &key.key).expect("a state key serialises");
            entries.insert(k, slot.value.as_ref().map(encode_value));
        }
        entries
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect()
    }

    pub(crate) fn key_count(&self) -> usize {
        (0..self.cache.len())
            .map(|o| self.live_group(o).len())
            .sum()
    }

    /// Every key with an entry, encoded (key group ++ key), for counting distinct keys.
    pub(crate) fn encoded_keys(&self, out: &mut std::collections::HashSet<Vec<u8>>) {
        let start = self.store.layout.range.start();
        for offset in 0..self.cache.len() {
            let kg = (start + offset as u32).to_be_bytes();
            for (k, _) in self.live_group(offset) {
                let mut key = kg.to_vec();
                key.extend_from_slice(&k);
                out.insert(key);
            }
        }
    }

    /// What the current capture of the store holds of this state (see the module docs).
    pub(crate) fn capture(&mut self) -> Box<dyn GroupEntries + Send> {
        Box::new(CapturedTable {
            captured: self.store.capture(),
            tag: self.tag,
            start: self.store.layout.range.start(),
        })
    }

    pub(crate) fn prepare_restore(
        &self,
        layout: &GroupLayout,
        chunks: &[(u32, &[u8])],
    ) -> Result<Prepared, TableRestoreError> {
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for &(key_group, bytes) in chunks {
            let decoded: Vec<(K, S)> = decode_data(bytes)
                .map_err(|source| TableRestoreError::Decode { key_group, source })?;
            entries.reserve(decoded.len());
            for (key, value) in decoded {
                let actual = key_group_for_hash(stable_hash(&key), layout.max_parallelism);
                if actual != key_group {
                    return Err(TableRestoreError::KeyGroupMoved {
                        saved: key_group,
                        actual,
                    });
                }
                entries.push((db_key(key_group, self.tag, &key), encode_value(&value)));
            }
        }
        Ok(Box::new(entries))
    }

    /// Replaces the state's entries with the prepared ones.
    ///
    /// # Panics
    ///
    /// If RocksDB cannot write them (the restore fails the subtask, which restarts).
    pub(crate) fn commit_restore(&mut self, prepared: Prepared) {
        let entries = *prepared
            .downcast::<Vec<(Vec<u8>, Vec<u8>)>>()
            .expect("prepared by the same table type");
        let mut batch = WriteBatch::default();
        let range = self.store.layout.range;
        for kg in range.start()..range.end() {
            batch.delete_range(prefix(kg, self.tag), prefix_end(kg, self.tag));
        }
        for (k, v) in entries {
            batch.put(k, v);
        }
        if let Err(e) = self.store.write(batch) {
            self.io_failure("write", &e);
        }
        for g in &mut self.cache {
            g.clear();
        }
        self.cached = 0;
        self.spare.take();
    }
}

fn encode_value<S: Serialize>(value: &S) -> Vec<u8> {
    let mut out = Vec::new();
    rmp_serde::encode::write_named(&mut out, value).expect("a state value serialises");
    out
}

impl<K: StateKey, S: StateValue> GroupEntries for RocksGroups<K, S> {
    fn group_len(&self, offset: usize) -> usize {
        self.live_group(offset).len()
    }

    fn encode_group(
        &self,
        offset: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), rmp_serde::encode::Error> {
        let entries = self.live_group(offset);
        if entries.is_empty() {
            return Ok(());
        }
        array_header(entries.len(), out);
        for (k, v) in &entries {
            push_entry(k, v, out);
        }
        Ok(())
    }
}

/// One state's view of a capture.
struct CapturedTable {
    /// `None`: the store took no capture (a bug; encoding says so).
    captured: Option<Arc<Captured>>,
    tag: u16,
    start: u32,
}

impl CapturedTable {
    fn db(&self) -> Result<&DB, rmp_serde::encode::Error> {
        match &self.captured {
            Some(c) => c.db(),
            None => Err(rmp_serde::encode::Error::Syntax(
                "a RocksDB table was captured outside a store capture".into(),
            )),
        }
    }
}

impl GroupEntries for CapturedTable {
    fn group_len(&self, offset: usize) -> usize {
        let Ok(db) = self.db() else {
            // Not 0, which would leave the group out: `encode_group` reports the error.
            return 1;
        };
        let mut n = 0;
        match scan(db, self.start + offset as u32, self.tag, &mut |_, _| n += 1) {
            Ok(()) => n,
            Err(_) => 1,
        }
    }

    fn encode_group(
        &self,
        offset: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), rmp_serde::encode::Error> {
        let db = self.db()?;
        let kg = self.start + offset as u32;
        let mut body = Vec::new();
        let mut n = 0usize;
        scan(db, kg, self.tag, &mut |k, v| {
            push_entry(k, v, &mut body);
            n += 1;
        })
        .map_err(|e| {
            rmp_serde::encode::Error::Syntax(format!(
                "cannot read key group {kg} of a RocksDB checkpoint: {e}"
            ))
        })?;
        if n > 0 {
            array_header(n, out);
            out.extend_from_slice(&body);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::state::key_group::KeyGroupRange;
    use crate::state::keyed::{KeyedStateStore, StateBackendKind};
    use crate::state::StateError;

    fn store(local: &std::path::Path) -> KeyedStateStore<u64> {
        KeyedStateStore::new(
            "op/1",
            KeyGroupRange::new(10, 20),
            128,
            StateBackendKind::RocksDb,
        )
        .with_local_dir(Some(local.to_path_buf()))
    }

    #[test]
    fn the_working_directory_is_under_the_local_dir_and_removed_with_the_store() {
        let local = tempfile::tempdir().unwrap();
        let mut s = store(local.path());
        assert!(
            s.local_state_dir().is_none(),
            "opened by the first registration"
        );
        let v = s.value::<u64>("v").unwrap();
        let dir = s.local_state_dir().unwrap().to_path_buf();
        assert!(dir.starts_with(local.path()), "{}", dir.display());
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("weir-rocksdb-op_1-10-"), "{name}");
        let key = (0u64..)
            .find(|k| {
                s.key_groups()
                    .contains(crate::state::key_group::key_group_of(k, 128))
            })
            .unwrap();
        s.set_current_key(key);
        v.update(&mut s, 5);
        let job = s.snapshot_deferred().unwrap();
        drop(s);
        assert!(
            !dir.exists(),
            "the DB's directory is removed with the store"
        );
        // The capture outlives the store, and is removed with the job.
        let blob = job.encode().unwrap();
        drop(job);
        assert_eq!(std::fs::read_dir(local.path()).unwrap().count(), 0);
        let mut t = KeyedStateStore::<u64>::new(
            "op/1",
            KeyGroupRange::new(10, 20),
            128,
            StateBackendKind::HashMap,
        );
        t.restore(&[&blob]).unwrap();
        let v = t.value::<u64>("v").unwrap();
        t.set_current_key(key);
        assert_eq!(v.value(&t), Some(5));
    }

    #[test]
    fn a_local_dir_that_cannot_be_created_is_a_backend_error_naming_it() {
        let local = tempfile::tempdir().unwrap();
        let file = local.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let mut s = store(&file.join("sub"));
        let e = s.value::<u64>("v").unwrap_err();
        assert!(matches!(e, StateError::Backend { .. }), "{e}");
        assert!(e.to_string().contains("a-file"), "{e}");
        assert!(e.to_string().contains("operator `op/1`"), "{e}");
    }
}
