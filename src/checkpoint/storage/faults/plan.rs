//! What to inject, where and when: a [`FaultPlan`] is a seed and a list of [`FaultRule`]s.
//!
//! A rule is a [`Fault`] (what happens), a [`PathMatch`] (which paths it applies to) and a
//! [`Trigger`] (which of the matching operations it hits):
//!
//! ```text
//! FaultRule::write_error().in_dir("chk-7")                 every write under a chk-7/
//! FaultRule::partial_write().containing("chk-5").nth(3)    the 3rd write whose path contains chk-5
//! FaultRule::write_error().metadata().once()               the next `_metadata` write
//! FaultRule::disk_full().with_probability(0.1)             one write in ten, seeded
//! FaultRule::latency(OpKind::Write, Duration::from_secs(5)) every write takes 5 s longer
//! ```
//!
//! Each fault applies to one kind of operation ([`OpKind`]); a rule counts only the operations
//! of that kind whose path it matches, from the moment it is armed.

use std::fmt;
use std::time::Duration;

use crate::checkpoint::paths;

/// A kind of storage operation, as the fault layer sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// Writing a whole file (state files, `_metadata` and its temporary file).
    Write,
    /// Reading a file.
    Read,
    /// Deleting one file or (empty) directory.
    Delete,
    /// Listing a directory.
    List,
    /// Asking whether a path exists and how large it is.
    Stat,
    /// Renaming a file (`_metadata` into place on services that can).
    Rename,
}

/// What an injected fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The write fails and nothing is written. An opendal `Unexpected` error, marked
    /// temporary (a transient I/O error).
    WriteError,
    /// The write fails as on a full disk and nothing is written. opendal has no "storage full"
    /// error kind: this is an `Unexpected` error, marked permanent, whose message says
    /// `no space left on device (disk full)`.
    DiskFull,
    /// A torn write: only the first half of the bytes (`n / 2` of `n`) are stored, and the
    /// write reports success. A later verified read sees a file shorter than recorded.
    PartialWrite,
    /// The read fails (every read of the file through that reader). `Unexpected`, temporary.
    ReadError,
    /// Deleting the path fails and it stays. `Unexpected`, temporary.
    DeleteError,
    /// Listing the directory fails. `Unexpected`, temporary.
    ListError,
    /// The operation is delayed by `delay`, then goes ahead (to make checkpoints time out).
    /// Needs a tokio runtime with timers.
    Latency { op: OpKind, delay: Duration },
}

impl Fault {
    /// The kind of operation this fault applies to.
    pub fn op(&self) -> OpKind {
        match self {
            Fault::WriteError | Fault::DiskFull | Fault::PartialWrite => OpKind::Write,
            Fault::ReadError => OpKind::Read,
            Fault::DeleteError => OpKind::Delete,
            Fault::ListError => OpKind::List,
            Fault::Latency { op, .. } => *op,
        }
    }

    /// What [`super::FaultStats`] counts it as.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::WriteError => FaultKind::WriteError,
            Fault::DiskFull => FaultKind::DiskFull,
            Fault::PartialWrite => FaultKind::PartialWrite,
            Fault::ReadError => FaultKind::ReadError,
            Fault::DeleteError => FaultKind::DeleteError,
            Fault::ListError => FaultKind::ListError,
            Fault::Latency { .. } => FaultKind::Latency,
        }
    }
}

/// A [`Fault`] without its parameters: what injected faults are counted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    WriteError,
    DiskFull,
    PartialWrite,
    ReadError,
    DeleteError,
    ListError,
    Latency,
}

impl FaultKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::WriteError,
        FaultKind::DiskFull,
        FaultKind::PartialWrite,
        FaultKind::ReadError,
        FaultKind::DeleteError,
        FaultKind::ListError,
        FaultKind::Latency,
    ];

    /// A short kebab-case name: `write-error`, `disk-full`, ...
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::WriteError => "write-error",
            FaultKind::DiskFull => "disk-full",
            FaultKind::PartialWrite => "partial-write",
            FaultKind::ReadError => "read-error",
            FaultKind::DeleteError => "delete-error",
            FaultKind::ListError => "list-error",
            FaultKind::Latency => "latency",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which paths a rule applies to. Paths are storage keys (`/`-separated, relative to the
/// service root, e.g. `tmp/x/<job>/chk-7/count-0-keyed-<uuid>`; a directory ends in `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// Every path.
    Any,
    /// Paths containing this text.
    Contains(String),
    /// Paths inside a directory with exactly this name at any depth: `InDir("chk-7")` matches
    /// `.../chk-7/x` and the directory `.../chk-7/` itself, but not `.../chk-70/x`.
    InDir(String),
    /// A snapshot's `_metadata` file or its temporary `_metadata.inprogress-*` file.
    Metadata,
}

impl PathMatch {
    /// Whether `path` (a storage key) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Any => true,
            PathMatch::Contains(text) => path.contains(text.as_str()),
            PathMatch::InDir(name) => {
                let trimmed = path.trim_end_matches('/');
                let is_dir = trimmed.len() != path.len();
                let mut segments: Vec<&str> = trimmed.split('/').collect();
                if !is_dir {
                    segments.pop(); // the file's own name is not a directory it is in
                }
                segments.contains(&name.as_str())
            }
            PathMatch::Metadata => {
                let name = paths::file_name(path);
                name == paths::METADATA_FILE
                    || name
                        .strip_prefix(paths::METADATA_FILE)
                        .is_some_and(|rest| rest.starts_with('.'))
            }
        }
    }
}

/// Which of the operations a rule matches it hits, counting from 1 since it was armed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trigger {
    /// Every matching operation.
    Always,
    /// Only the n-th matching operation (n ≥ 1).
    Nth(u64),
    /// The n-th matching operation and every one after it (n ≥ 1): "the disk fills up".
    FromNth(u64),
    /// Each matching operation with this probability (0 to 1), decided from the plan's seed,
    /// the rule and how many operations it has matched: the same operations in the same order
    /// get the same faults in every run.
    Probability(f64),
}

impl Trigger {
    /// Whether the `n`-th matching operation (from 1) is hit; `chance` is that operation's
    /// uniform draw in `[0, 1)`.
    pub(super) fn fires(self, n: u64, chance: impl FnOnce() -> f64) -> bool {
        match self {
            Trigger::Always => true,
            Trigger::Nth(k) => n == k,
            Trigger::FromNth(k) => n >= k,
            Trigger::Probability(p) => chance() < p,
        }
    }
}

/// One fault, the paths it applies to, and which of their operations it hits.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    pub fault: Fault,
    pub paths: PathMatch,
    pub trigger: Trigger,
}

impl FaultRule {
    /// `fault` on every path, every time; narrow it with the builder methods.
    pub fn new(fault: Fault) -> Self {
        Self {
            fault,
            paths: PathMatch::Any,
            trigger: Trigger::Always,
        }
    }

    /// [`Fault::WriteError`].
    pub fn write_error() -> Self {
        Self::new(Fault::WriteError)
    }

    /// [`Fault::DiskFull`].
    pub fn disk_full() -> Self {
        Self::new(Fault::DiskFull)
    }

    /// [`Fault::PartialWrite`].
    pub fn partial_write() -> Self {
        Self::new(Fault::PartialWrite)
    }

    /// [`Fault::ReadError`].
    pub fn read_error() -> Self {
        Self::new(Fault::ReadError)
    }

    /// [`Fault::DeleteError`].
    pub fn delete_error() -> Self {
        Self::new(Fault::DeleteError)
    }

    /// [`Fault::ListError`].
    pub fn list_error() -> Self {
        Self::new(Fault::ListError)
    }

    /// [`Fault::Latency`]: every `op` is `delay` slower.
    pub fn latency(op: OpKind, delay: Duration) -> Self {
        Self::new(Fault::Latency { op, delay })
    }

    /// Only paths that contain `text` ([`PathMatch::Contains`]).
    pub fn containing(mut self, text: impl Into<String>) -> Self {
        self.paths = PathMatch::Contains(text.into());
        self
    }

    /// Only paths inside a directory named `name`, e.g. `chk-7` ([`PathMatch::InDir`]).
    pub fn in_dir(mut self, name: impl Into<String>) -> Self {
        self.paths = PathMatch::InDir(name.into());
        self
    }

    /// Only `_metadata` files and their temporary files ([`PathMatch::Metadata`]).
    pub fn metadata(mut self) -> Self {
        self.paths = PathMatch::Metadata;
        self
    }

    /// Only the `n`-th matching operation ([`Trigger::Nth`]).
    ///
    /// # Panics
    ///
    /// When `n` is 0: operations are counted from 1.
    pub fn nth(mut self, n: u64) -> Self {
        assert!(
            n >= 1,
            "operations are counted from 1; nth(0) would never fire"
        );
        self.trigger = Trigger::Nth(n);
        self
    }

    /// Only the next matching operation: `nth(1)`.
    pub fn once(self) -> Self {
        self.nth(1)
    }

    /// The `n`-th matching operation and all after it ([`Trigger::FromNth`]).
    ///
    /// # Panics
    ///
    /// When `n` is 0: operations are counted from 1.
    pub fn from_nth(mut self, n: u64) -> Self {
        assert!(
            n >= 1,
            "operations are counted from 1; use the default trigger for all"
        );
        self.trigger = Trigger::FromNth(n);
        self
    }

    /// Each matching operation with probability `p` ([`Trigger::Probability`]).
    ///
    /// # Panics
    ///
    /// When `p` is not within `0.0..=1.0`.
    pub fn with_probability(mut self, p: f64) -> Self {
        assert!(
            (0.0..=1.0).contains(&p),
            "a probability is within 0..=1, got {p}"
        );
        self.trigger = Trigger::Probability(p);
        self
    }
}

/// A seed for the probabilistic rules and the rules armed from the start.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultPlan {
    pub seed: u64,
    pub rules: Vec<FaultRule>,
}

impl FaultPlan {
    /// No rules yet; `seed` decides every [`Trigger::Probability`].
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            rules: Vec::new(),
        }
    }

    /// Adds a rule, armed when the injector is built.
    pub fn with(mut self, rule: FaultRule) -> Self {
        self.rules.push(rule);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_matches() {
        let file = "tmp/x/job/chk-7/count-0-keyed-0190";
        assert!(PathMatch::Any.matches(file));
        assert!(PathMatch::InDir("chk-7".into()).matches(file));
        assert!(PathMatch::InDir("chk-7".into()).matches("tmp/x/job/chk-7/"));
        assert!(!PathMatch::InDir("chk-7".into()).matches("tmp/x/job/chk-70/a"));
        assert!(!PathMatch::InDir("chk-7".into()).matches("tmp/x/job/chk-7"));
        assert!(!PathMatch::InDir("count-0-keyed-0190".into()).matches(file));
        assert!(PathMatch::Contains("chk-7/count".into()).matches(file));
        assert!(!PathMatch::Contains("chk-5".into()).matches(file));
        assert!(PathMatch::Metadata.matches("a/chk-1/_metadata"));
        assert!(PathMatch::Metadata.matches("a/chk-1/_metadata.inprogress-12ab"));
        assert!(PathMatch::Metadata.matches("_metadata"));
        assert!(!PathMatch::Metadata.matches("a/chk-1/_metadatax"));
        assert!(!PathMatch::Metadata.matches("a/_metadata/x"));
        assert!(!PathMatch::Metadata.matches(file));
    }

    #[test]
    fn triggers_count_from_one() {
        let fired = |t: Trigger| -> Vec<u64> { (1..=5).filter(|&n| t.fires(n, || 0.5)).collect() };
        assert_eq!(fired(Trigger::Always), vec![1, 2, 3, 4, 5]);
        assert_eq!(fired(Trigger::Nth(3)), vec![3]);
        assert_eq!(fired(Trigger::FromNth(4)), vec![4, 5]);
        assert_eq!(fired(Trigger::Probability(0.6)), vec![1, 2, 3, 4, 5]);
        assert!(fired(Trigger::Probability(0.5)).is_empty());
        assert_eq!(FaultRule::write_error().once().trigger, Trigger::Nth(1));
    }

    #[test]
    #[should_panic(expected = "within 0..=1")]
    fn probability_out_of_range_is_refused() {
        let _ = FaultRule::read_error().with_probability(1.5);
    }

    #[test]
    fn every_fault_names_its_operation_and_kind() {
        let delay = Duration::from_millis(1);
        assert_eq!(Fault::DiskFull.op(), OpKind::Write);
        assert_eq!(Fault::PartialWrite.kind(), FaultKind::PartialWrite);
        let latency = Fault::Latency {
            op: OpKind::Delete,
            delay,
        };
        assert_eq!(latency.op(), OpKind::Delete);
        assert_eq!(latency.kind(), FaultKind::Latency);
        let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), 7);
        assert_eq!(FaultKind::DiskFull.to_string(), "disk-full");
    }
}
