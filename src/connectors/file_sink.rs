//! `ExactlyOnceFileSink`: JSON lines in files that become visible only when a checkpoint
//! completes — a two-phase-commit sink over a local directory.
//!
//! Each subtask appends to a hidden in-progress file `.part-<uid>-<subtask>-<seq>-<rand>.inprogress`.
//! At a barrier (`pre_commit`) the file is flushed, synced and renamed to `.….pending`; the
//! pending names are operator state. When the checkpoint completes (`commit`) pending files
//! become `part-…-chk-<n>.jsonl`, `<n>` the checkpoint whose barrier closed them. On restore
//! from checkpoint `r`, the pending files the restored checkpoint lists are committed (renaming
//! is idempotent; the list is union state, so after a rescale every subtask sees all of it and
//! no subtask deletes a file another must commit), every other in-progress or pending file of
//! the subtask (or of an index the job no longer has) — written after that checkpoint — is
//! deleted, and so is every committed file of a checkpoint after `r`: its
//! records come again from the rewound sources. That last step is what keeps the output
//! exactly once when a job restores an older checkpoint than its latest (a damaged latest
//! checkpoint, or a user restoring an earlier savepoint): the output is what a run from `r`
//! produces, never a duplicate. Readers see only committed files. Intermediate savepoints commit
//! nothing (Flink's rule).
//!
//! The file writes are buffered (64 KiB) local-file writes on the subtask's thread.

use std::collections::HashSet;
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
/// Between a committed file's base name and its checkpoint id.
const CHECKPOINT_MARK: &str = "-chk-";

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
        self.dir.join(format!(".{base}{suffix}"))
    }

    /// Where a staged file is visible once committed: its checkpoint is part of the name.
    fn committed_path(&self, staged: &Staged) -> PathBuf {
        self.dir.join(format!(
            "{}{CHECKPOINT_MARK}{}{COMMITTED}",
            staged.base, staged.checkpoint
        ))
    }

    fn io(&self, what: &str, path: &Path, e: std::io::Error) -> OperatorError {
        OperatorError::with_source(format!("file sink: cannot {what} {}", path.display()), e)
    }

    /// Makes a staged file visible; a file already committed is left as it is.
    fn commit_file(&self, staged: &Staged) -> Result<(), OperatorError> {
        let pending = self.path(&staged.base, PENDING);
        let committed = self.committed_path(staged);
        match fs::rename(&pending, &committed) {
            Ok(()) => Ok(()),
            Err(_) if committed.exists() => Ok(()),
            Err(e) => Err(self.io("commit", &pending, e)),
        }
    }

    /// Deletes the committed files of checkpoints after `restored_from` written by this
    /// subtask, or by a subtask index the job no longer has that maps to this one (`j % p`).
    fn roll_back_commits_after(
        &self,
        restored_from: CheckpointId,
        info: &SubtaskInfo,
    ) -> Result<(), OperatorError> {
        let prefix = format!("part-{}-", info.uid);
        let entries = fs::read_dir(&self.dir).map_err(|e| self.io("list", &self.dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            let Some((index, checkpoint)) = committed_file_origin(rest) else {
                continue;
            };
            if owns_index(info, index) && checkpoint > restored_from.0 {
                tracing::info!(uid = %info.uid, subtask = info.index, checkpoint_id = restored_from.0, file = %name, "rolling back output committed after the restored checkpoint");
                match fs::remove_file(entry.path()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(self.io("delete", &entry.path(), e)),
                }
            }
        }
        Ok(())
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
        // Union state: every subtask sees what every old subtask staged, so that a rescaled
        // job commits all of it and no subtask deletes a file another one must commit.
        let handle = state.union_list::<Staged>("staged")?;
        let restored = handle.get(state);
        for s in &restored {
            // Idempotent: several subtasks may commit the same file.
            self.commit_file(s)?;
        }
        if let Some(restored_from) = info.restored {
            self.roll_back_commits_after(restored_from, info)?;
        }
        // Everything else this subtask (or an index the job no longer has that maps to it) left
        // behind was written after the restored checkpoint.
        let restored: HashSet<&str> = restored.iter().map(|s| s.base.as_str()).collect();
        let hidden = format!(".part-{}-", info.uid);
        let entries = fs::read_dir(&self.dir).map_err(|e| self.io("list", &self.dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(base) = name
                .strip_suffix(IN_PROGRESS)
                .or_else(|| name.strip_suffix(PENDING))
                .and_then(|n| n.strip_prefix('.'))
            else {
                continue;
            };
            let index = name
                .strip_prefix(&hidden)
                .and_then(|rest| rest.split_once('-'))
                .and_then(|(index, _)| index.parse::<u32>().ok());
            let Some(index) = index else {
                continue;
            };
            if owns_index(info, index) && !restored.contains(base) {
                match fs::remove_file(entry.path()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(self.io("delete", &entry.path(), e)),
                }
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
            self.commit_file(s)?;
        }
        if !ready.is_empty() {
            self.sync_dir()?;
        }
        Ok(())
    }
}

/// Whether subtask `info` cleans up after files of subtask index `index`: its own, and those of
/// indices the job no longer has (`index % parallelism`).
fn owns_index(info: &SubtaskInfo, index: u32) -> bool {
    index == info.index || (index >= info.parallelism && index % info.parallelism == info.index)
}

/// The subtask index and checkpoint of a committed file, from its name after `part-<uid>-`
/// (`<index>-<seq>-<rand>-chk-<n>.jsonl`).
fn committed_file_origin(rest: &str) -> Option<(u32, u64)> {
    let stem = rest.strip_suffix(COMMITTED)?;
    let (file, checkpoint) = stem.rsplit_once(CHECKPOINT_MARK)?;
    // `<index>-<seq>-<rand>`, nothing more: a sink whose uid extends this one's (`out-2` next
    // to `out`) does not match.
    let mut parts = file.split('-');
    let (index, seq, rand) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if parts.next().is_some() || !digits(seq) || !rand.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((index.parse().ok()?, checkpoint.parse().ok()?))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn info(index: u32, parallelism: u32, restored: Option<u64>) -> SubtaskInfo {
        SubtaskInfo {
            uid: "out".into(),
            index,
            parallelism,
            max_parallelism: 128,
            restored: restored.map(CheckpointId),
        }
    }

    fn touch(dir: &Path, name: &str) {
        fs::write(dir.join(name), "{}\n").unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn committed_files_name_their_subtask_and_checkpoint() {
        assert_eq!(
            committed_file_origin("1-000003-0a1b2c3d-chk-12.jsonl"),
            Some((1, 12))
        );
        assert_eq!(
            committed_file_origin("2-0-000001-0a1b2c3d-chk-5.jsonl"),
            None
        );
        assert_eq!(committed_file_origin("1-000003-0a1b2c3d.jsonl"), None);
        assert_eq!(committed_file_origin("1-000003-0a1b2c3d-chk-x.jsonl"), None);
    }

    #[test]
    fn a_restore_rolls_back_what_this_subtask_committed_after_the_restored_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let kept = [
            "part-out-0-000001-0a1b2c3d-chk-3.jsonl", // before the restored checkpoint
            "part-out-0-000002-0a1b2c3d-chk-5.jsonl", // the restored checkpoint itself
            "part-out-1-000004-0a1b2c3d-chk-9.jsonl", // another live subtask's
            "part-out-2-0-000001-0a1b2c3d-chk-9.jsonl", // another sink's (uid `out-2`)
            "part-out-0-000001-0a1b2c3d.jsonl",       // written before names had checkpoints
        ];
        let rolled_back = [
            "part-out-0-000003-0a1b2c3d-chk-7.jsonl", // after it
            "part-out-2-000009-0a1b2c3d-chk-6.jsonl", // index 2 is gone at p=2 and maps to 0
        ];
        for name in kept.iter().chain(&rolled_back) {
            touch(dir.path(), name);
        }
        let mut sink = ExactlyOnceFileSink::<u64>::new(dir.path());
        let mut state = OperatorStateStore::for_operator("out");
        sink.open(&info(0, 2, Some(5)), &mut state).unwrap();
        let mut expected: Vec<String> = kept.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(names(dir.path()), expected);
    }

    #[test]
    fn a_fresh_start_rolls_back_nothing() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "part-out-0-000003-0a1b2c3d-chk-7.jsonl");
        let mut sink = ExactlyOnceFileSink::<u64>::new(dir.path());
        let mut state = OperatorStateStore::for_operator("out");
        sink.open(&info(0, 1, None), &mut state).unwrap();
        assert_eq!(
            names(dir.path()),
            vec!["part-out-0-000003-0a1b2c3d-chk-7.jsonl"]
        );
    }

    #[test]
    fn a_committed_file_names_the_checkpoint_that_staged_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = ExactlyOnceFileSink::<u64>::new(dir.path());
        let mut state = OperatorStateStore::for_operator("out");
        sink.open(&info(0, 1, None), &mut state).unwrap();
        sink.write(vec![1, 2]).unwrap();
        sink.pre_commit(CheckpointId(4)).unwrap();
        sink.commit(CheckpointId(4), CheckpointKind::PERIODIC)
            .unwrap();
        let names = names(dir.path());
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].starts_with("part-out-0-000001-") && names[0].ends_with("-chk-4.jsonl"));
        assert_eq!(committed_lines(dir.path()).unwrap(), vec!["1", "2"]);
    }

    /// Fault schedule 100495: after a rescale, the subtask with a staged file's old index
    /// deleted it as "written after the checkpoint" while the subtask that got the entry had yet
    /// to commit it; the commit then failed on every restart.
    #[test]
    fn after_a_rescale_every_staged_file_is_committed_and_none_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let listed = "part-out-1-000001-0a1b2c3d";
        let unlisted = "part-out-1-000002-0b0b0b0b";
        // Old subtask 1 of 2 staged `listed` for checkpoint 3; old subtask 0 staged nothing.
        let blob = |entries: Vec<Staged>| {
            let mut old = OperatorStateStore::for_operator("out");
            let h = old.union_list::<Staged>("staged").unwrap();
            h.update(&mut old, entries);
            old.snapshot().unwrap()
        };
        let blobs = [
            blob(Vec::new()),
            blob(vec![Staged {
                checkpoint: 3,
                base: listed.into(),
            }]),
        ];
        touch(dir.path(), &format!(".{listed}{PENDING}"));
        touch(dir.path(), &format!(".{unlisted}{PENDING}"));
        // Rescaled to 3: every new subtask opens, the one with the file's old index first;
        // whichever holds the entry commits it.
        for index in [1, 2, 0] {
            let mut state = OperatorStateStore::for_operator("out");
            let slices: Vec<&[u8]> = blobs.iter().map(|b| b.as_slice()).collect();
            state.restore(&slices, index, 3).unwrap();
            let mut sink = ExactlyOnceFileSink::<u64>::new(dir.path());
            sink.open(&info(index, 3, Some(3)), &mut state).unwrap();
        }
        assert_eq!(names(dir.path()), vec![format!("{listed}-chk-3.jsonl")]);
    }
}
