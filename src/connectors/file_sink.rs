//! `ExactlyOnceFileSink`: JSON lines in files that become visible only when a checkpoint
//! completes — a two-phase-commit sink over a local directory.
//!
//! Each subtask appends to a hidden in-progress file `.part-<uid>-<subtask>-<seq>-<rand>.inprogress`.
//! At a barrier (`pre_commit`) the file is flushed, synced and renamed to `.….pending`; the
//! pending names are operator state. When the checkpoint completes (`commit`) pending files
//! become `part-….jsonl`. On restore, the pending files the restored checkpoint lists are
//! committed (renaming is idempotent) and every other in-progress or pending file of the subtask
//! — written after that checkpoint — is deleted. Readers see only committed files, so the
//! committed output is exactly once. Intermediate savepoints commit nothing (Flink's rule).
//!
//! The file writes are buffered (64 KiB) local-file writes on the subtask's thread.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::element::CheckpointKind;
use crate::ids::CheckpointId;
use crate::operator::{OperatorError, Sink, SubtaskInfo};
use crate::state::operator_state::{OperatorListState, OperatorStateStore};

const IN_PROGRESS: &str = ".inprogress";
const PENDING: &str = ".pending";
const COMMITTED: &str = ".jsonl";

/// A file staged for a checkpoint, waiting for its completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Staged {
    checkpoint: u64,
    base: String,
}

/// Exactly-once JSON-lines files in `dir`.
pub struct ExactlyOnceFileSink<T> {
    dir: PathBuf,
    prefix: String,
    seq: u64,
    current: Option<(String, BufWriter<File>)>,
    staged: Vec<Staged>,
    state: Option<OperatorListState<Staged>>,
    _t: PhantomData<fn(T)>,
}

impl<T> Clone for ExactlyOnceFileSink<T> {
    fn clone(&self) -> Self {
        Self::new(self.dir.clone())
    }
}

impl<T> ExactlyOnceFileSink<T> {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            prefix: String::new(),
            seq: 0,
            current: None,
            staged: Vec::new(),
            state: None,
            _t: PhantomData,
        }
    }

    fn path(&self, base: &str, suffix: &str) -> PathBuf {
        if suffix == COMMITTED {
            self.dir.join(format!("{base}{suffix}"))
        } else {
            self.dir.join(format!(".{base}{suffix}"))
        }
    }

    fn io(&self, what: &str, path: &Path, e: std::io::Error) -> OperatorError {
        OperatorError::with_source(format!("file sink: cannot {what} {}", path.display()), e)
    }

    /// Makes a staged file visible; a file already committed is left as it is.
    fn commit_file(&self, base: &str) -> Result<(), OperatorError> {
        let pending = self.path(base, PENDING);
        let committed = self.path(base, COMMITTED);
        match fs::rename(&pending, &committed) {
            Ok(()) => Ok(()),
            Err(_) if committed.exists() => Ok(()),
            Err(e) => Err(self.io("commit", &pending, e)),
        }
    }

    fn sync_dir(&self) -> Result<(), OperatorError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io("sync directory", &self.dir, e))
    }
}

impl<T: Serialize + Send + 'static> Sink<T> for ExactlyOnceFileSink<T> {
    fn open(
        &mut self,
        info: &SubtaskInfo,
        state: &mut OperatorStateStore,
    ) -> Result<(), OperatorError> {
        fs::create_dir_all(&self.dir).map_err(|e| self.io("create", &self.dir, e))?;
        self.prefix = format!("part-{}-{}-", info.uid, info.index);
        let handle = state.list::<Staged>("staged")?;
        let restored = handle.get(state);
        for s in &restored {
            self.commit_file(&s.base)?;
        }
        // Everything else this subtask left behind was written after the restored checkpoint.
        let hidden = format!(".{}", self.prefix);
        let entries = fs::read_dir(&self.dir).map_err(|e| self.io("list", &self.dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&hidden) && (name.ends_with(IN_PROGRESS) || name.ends_with(PENDING))
            {
                fs::remove_file(entry.path()).map_err(|e| self.io("delete", &entry.path(), e))?;
            }
        }
        self.sync_dir()?;
        self.staged.clear();
        self.state = Some(handle);
        Ok(())
    }

    fn write(&mut self, batch: Vec<T>) -> Result<(), OperatorError> {
        if self.current.is_none() {
            self.seq += 1;
            let suffix = uuid::Uuid::new_v4().simple().to_string();
            let base = format!("{}{:06}-{}", self.prefix, self.seq, &suffix[..8]);
            let path = self.path(&base, IN_PROGRESS);
            let file = OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(&path)
                .map_err(|e| self.io("create", &path, e))?;
            self.current = Some((base, BufWriter::with_capacity(64 * 1024, file)));
        }
        let (base, w) = self.current.as_mut().expect("opened above");
        for r in &batch {
            serde_json::to_writer(&mut *w, r)
                .map_err(|e| OperatorError::with_source("file sink: cannot format a record", e))?;
            w.write_all(b"\n").map_err(|e| {
                OperatorError::with_source(format!("file sink: cannot write {base}"), e)
            })?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, checkpoint: CheckpointId) -> Result<(), OperatorError> {
        let Some((base, w)) = self.current.take() else {
            return Ok(());
        };
        let from = self.path(&base, IN_PROGRESS);
        let file = w
            .into_inner()
            .map_err(|e| self.io("flush", &from, e.into_error()))?;
        file.sync_all().map_err(|e| self.io("sync", &from, e))?;
        let to = self.path(&base, PENDING);
        fs::rename(&from, &to).map_err(|e| self.io("stage", &from, e))?;
        self.staged.push(Staged {
            checkpoint: checkpoint.0,
            base,
        });
        Ok(())
    }

    fn snapshot(&mut self, state: &mut OperatorStateStore) -> Result<(), OperatorError> {
        let handle = self.state.as_ref().expect("opened");
        handle.update(state, self.staged.clone());
        Ok(())
    }

    fn commit(
        &mut self,
        checkpoint: CheckpointId,
        kind: CheckpointKind,
    ) -> Result<(), OperatorError> {
        if matches!(kind, CheckpointKind::Savepoint { .. }) {
            return Ok(());
        }
        let (ready, later): (Vec<Staged>, Vec<Staged>) = std::mem::take(&mut self.staged)
            .into_iter()
            .partition(|s| s.checkpoint <= checkpoint.0);
        self.staged = later;
        for s in &ready {
            self.commit_file(&s.base)?;
        }
        if !ready.is_empty() {
            self.sync_dir()?;
        }
        Ok(())
    }
}

/// The committed lines under `dir`, file by file in name order (for tests and tools).
///
/// # Errors
/// Any I/O error reading the directory or a file.
pub fn committed_lines(dir: impl AsRef<Path>) -> std::io::Result<Vec<String>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("part-") && n.ends_with(COMMITTED))
        })
        .collect();
    files.sort();
    let mut lines = Vec::new();
    for f in files {
        lines.extend(fs::read_to_string(f)?.lines().map(str::to_owned));
    }
    Ok(lines)
}
