//! The one place that builds every checkpoint and savepoint storage path.
//!
//! Callers use these functions rather than formatting paths by hand (Arroyo's `ProtocolPaths`).
//! Paths here are storage keys: `/`-separated, relative to the root of whatever storage they
//! live in, with no leading or trailing `/` (the empty string is the root itself).
//!
//! ```text
//! <checkpoint dir>/<job-id>/          (no <job-id>/ level when create-subdir is off)
//!   chk-<n>/_metadata                 written last: its presence means "complete"
//!   chk-<n>/<state file>              this checkpoint's own state files
//!   shared/                           files several checkpoints reference (incremental)
//!   taskowned/
//! <savepoint dir>/savepoint-<first 6 hex of job id>-<12 random hex>/_metadata (+ state files)
//! ```
//!
//! - [`CheckpointPaths`]: the directories of one job under a checkpoint directory.
//! - [`checkpoint_dir_name`] / [`parse_checkpoint_dir_name`], [`savepoint_dir_name`] /
//!   [`is_savepoint_dir_name`]: naming snapshot directories and recognising them again.
//! - [`state_hint`], [`state_file_name`]: unique state file names that say what they hold.
//! - [`join`], [`parent`], [`file_name`], [`normalize`]: key arithmetic.

use std::fmt;

use uuid::Uuid;

use crate::ids::{CheckpointId, JobId};

/// The file whose presence marks a snapshot directory as complete.
pub const METADATA_FILE: &str = "_metadata";
/// Prefix of a checkpoint directory's name, `chk-<n>`.
pub const CHECKPOINT_DIR_PREFIX: &str = "chk-";
/// Prefix of a savepoint directory's name, `savepoint-<job>-<random>`.
pub const SAVEPOINT_DIR_PREFIX: &str = "savepoint-";
/// Directory of files shared between checkpoints (incremental state).
pub const SHARED_DIR: &str = "shared";
/// Directory of state owned by tasks, never deleted by the coordinator.
pub const TASKOWNED_DIR: &str = "taskowned";
/// Prefix of the temporary file `_metadata` is written to before it is renamed into place.
const METADATA_TEMP_PREFIX: &str = "_metadata.inprogress-";
/// Longest name hint kept in a state file name.
const MAX_HINT_LEN: usize = 80;

/// The directories of one job under its checkpoint directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointPaths {
    job_dir: String,
}

impl CheckpointPaths {
    /// `root` is the checkpoint directory as a storage key (see [`normalize`]); the job's
    /// directory is `root/<job-id>` when `create_subdir`, else `root` itself.
    pub fn new(root: &str, job_id: JobId, create_subdir: bool) -> Self {
        let root = normalize(root);
        let job_dir = if create_subdir {
            join(&root, &job_id.to_hex())
        } else {
            root
        };
        Self { job_dir }
    }

    /// The directory holding this job's `chk-<n>`, `shared` and `taskowned` directories.
    pub fn job_dir(&self) -> &str {
        &self.job_dir
    }

    /// `<job dir>/chk-<n>`.
    pub fn checkpoint_dir(&self, id: CheckpointId) -> String {
        join(&self.job_dir, &checkpoint_dir_name(id))
    }

    /// `<job dir>/shared`.
    pub fn shared_dir(&self) -> String {
        join(&self.job_dir, SHARED_DIR)
    }

    /// `<job dir>/taskowned`.
    pub fn taskowned_dir(&self) -> String {
        join(&self.job_dir, TASKOWNED_DIR)
    }
}

/// `chk-<n>`.
pub fn checkpoint_dir_name(id: CheckpointId) -> String {
    format!("{CHECKPOINT_DIR_PREFIX}{id}")
}

/// The id of a `chk-<n>` directory name; `None` for anything else, including `chk-007`
/// (not a name [`checkpoint_dir_name`] produces).
pub fn parse_checkpoint_dir_name(name: &str) -> Option<CheckpointId> {
    let digits = name.strip_prefix(CHECKPOINT_DIR_PREFIX)?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !canonical {
        return None;
    }
    digits.parse().ok().map(CheckpointId)
}

/// A new `savepoint-<first 6 hex of the job id>-<12 random hex>` name.
pub fn savepoint_dir_name(job_id: JobId) -> String {
    let job = job_id.to_hex();
    let random = Uuid::new_v4().simple().to_string();
    format!("{SAVEPOINT_DIR_PREFIX}{}-{}", &job[..6], &random[..12])
}

/// Whether a directory name is a savepoint's (`savepoint-...`).
pub fn is_savepoint_dir_name(name: &str) -> bool {
    name.len() > SAVEPOINT_DIR_PREFIX.len() && name.starts_with(SAVEPOINT_DIR_PREFIX)
}

/// Whether a directory name looks like a job's directory (32 lowercase hex digits).
pub fn is_job_dir_name(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `<dir>/_metadata`.
pub fn metadata_path(dir: &str) -> String {
    join(dir, METADATA_FILE)
}

/// A fresh `<dir>/_metadata.inprogress-<uuid>`: where `_metadata` is written before it is
/// renamed into place.
pub fn metadata_temp_path(dir: &str) -> String {
    join(
        dir,
        &format!("{METADATA_TEMP_PREFIX}{}", Uuid::new_v4().simple()),
    )
}

/// Which part of a subtask's state a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatePart {
    Keyed,
    Operator,
    /// Channel state of an unaligned checkpoint.
    Channel,
}

impl fmt::Display for StatePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StatePart::Keyed => "keyed",
            StatePart::Operator => "operator",
            StatePart::Channel => "channel",
        })
    }
}

/// The name hint for a subtask's state: `<uid>-<subtask>-<keyed|operator>`, e.g.
/// `count-1-keyed`. [`state_file_name`] makes it safe and unique.
pub fn state_hint(operator_uid: &str, subtask: u32, part: StatePart) -> String {
    format!("{operator_uid}-{subtask}-{part}")
}

/// A unique file name that says what it holds: the hint with every character outside
/// `[A-Za-z0-9._-]` replaced by `_` (at most 80 of them, never starting with `.` or `_`, so it
/// is neither hidden nor mistaken for `_metadata`), then `-<uuid v7>`.
pub fn state_file_name(hint: &str) -> String {
    let mut safe: String = hint
        .chars()
        .take(MAX_HINT_LEN)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() {
        safe.push_str("state");
    } else if safe.starts_with(['.', '_']) {
        safe.insert(0, 's');
    }
    format!("{safe}-{}", Uuid::now_v7().simple())
}

/// Whether a relative path inside a snapshot directory is safe to resolve: non-empty, no
/// leading `/`, no empty, `.` or `..` segments. A `_metadata` that names anything else is
/// rejected rather than followed outside its directory.
pub fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\\')
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// `dir/name`, or `name` when `dir` is the root.
pub fn join(dir: &str, name: &str) -> String {
    match (dir.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (false, true) => dir.to_string(),
        (false, false) => format!("{dir}/{name}"),
    }
}

/// The directory holding `path` (the root for a top-level name).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The last segment of `path`.
pub fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

/// `path` as a storage key: `/`-separated, without empty and `.` segments, `..` applied
/// lexically (never above the root), no leading or trailing `/`.
pub fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> JobId {
        "0123456789abcdef0123456789abcdef".parse().unwrap()
    }

    #[test]
    fn checkpoint_layout_with_and_without_job_subdir() {
        let p = CheckpointPaths::new("/tmp/cp/", job(), true);
        assert_eq!(p.job_dir(), "tmp/cp/0123456789abcdef0123456789abcdef");
        assert_eq!(
            p.checkpoint_dir(CheckpointId(3)),
            "tmp/cp/0123456789abcdef0123456789abcdef/chk-3"
        );
        assert_eq!(
            metadata_path(&p.checkpoint_dir(CheckpointId(3))),
            "tmp/cp/0123456789abcdef0123456789abcdef/chk-3/_metadata"
        );
        assert_eq!(
            p.shared_dir(),
            "tmp/cp/0123456789abcdef0123456789abcdef/shared"
        );
        assert_eq!(
            p.taskowned_dir(),
            "tmp/cp/0123456789abcdef0123456789abcdef/taskowned"
        );

        let flat = CheckpointPaths::new("cp", job(), false);
        assert_eq!(flat.checkpoint_dir(CheckpointId(12)), "cp/chk-12");
        let root = CheckpointPaths::new("", job(), false);
        assert_eq!(root.checkpoint_dir(CheckpointId(1)), "chk-1");
        assert_eq!(root.shared_dir(), "shared");
    }

    #[test]
    fn checkpoint_dir_names_parse_back() {
        for id in [0, 1, 17, u64::MAX] {
            let name = checkpoint_dir_name(CheckpointId(id));
            assert_eq!(parse_checkpoint_dir_name(&name), Some(CheckpointId(id)));
        }
        for bad in [
            "chk-",
            "chk-x",
            "chk-01",
            "chk--1",
            "chk-+1",
            "chk-1a",
            "chk 1",
            "CHK-1",
            "chk-99999999999999999999",
            "savepoint-1",
        ] {
            assert_eq!(parse_checkpoint_dir_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn savepoint_names_carry_the_job_and_differ() {
        let a = savepoint_dir_name(job());
        let b = savepoint_dir_name(job());
        assert_ne!(a, b);
        assert!(a.starts_with("savepoint-012345-"), "{a}");
        let random = a.rsplit('-').next().unwrap();
        assert_eq!(random.len(), 12);
        assert!(random.bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(is_savepoint_dir_name(&a));
        assert!(!is_savepoint_dir_name("savepoint-"));
        assert!(!is_savepoint_dir_name("chk-1"));
    }

    #[test]
    fn job_dir_names() {
        assert!(is_job_dir_name(&job().to_hex()));
        assert!(!is_job_dir_name("shared"));
        assert!(!is_job_dir_name("0123456789ABCDEF0123456789ABCDEF"));
    }

    #[test]
    fn state_file_names_are_safe_unique_and_descriptive() {
        let hint = state_hint("my op/€", 3, StatePart::Keyed);
        assert_eq!(hint, "my op/€-3-keyed");
        let a = state_file_name(&hint);
        let b = state_file_name(&hint);
        assert_ne!(a, b);
        assert!(a.starts_with("my_op__-3-keyed-"), "{a}");
        assert!(is_safe_relative(&a));
        assert_eq!(state_hint("src", 0, StatePart::Operator), "src-0-operator");

        assert!(state_file_name("").starts_with("state-"));
        assert!(state_file_name("..").starts_with("s..-"));
        assert!(state_file_name("_metadata").starts_with("s_metadata-"));
        let long = state_file_name(&"x".repeat(1000));
        assert!(long.len() < 80 + 40, "{}", long.len());
    }

    #[test]
    fn relative_paths_that_escape_are_unsafe() {
        assert!(is_safe_relative("a"));
        assert!(is_safe_relative("a/b"));
        for bad in ["", "/a", "a/", "../a", "a/../b", "./a", "a//b", "a\\..\\b"] {
            assert!(!is_safe_relative(bad), "{bad}");
        }
    }

    #[test]
    fn key_arithmetic() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a", ""), "a");
        assert_eq!(join("a/b", "c"), "a/b/c");
        assert_eq!(parent("a/b/c"), "a/b");
        assert_eq!(parent("a"), "");
        assert_eq!(file_name("a/b/c"), "c");
        assert_eq!(file_name("c"), "c");
        assert_eq!(normalize("/a//b/./c/"), "a/b/c");
        assert_eq!(normalize("a/../../b"), "b");
        assert_eq!(normalize("/"), "");
        assert!(metadata_temp_path("d").starts_with("d/_metadata.inprogress-"));
        assert_ne!(metadata_temp_path("d"), metadata_temp_path("d"));
    }
}
