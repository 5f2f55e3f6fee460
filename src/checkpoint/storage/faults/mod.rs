//! **A testing tool**: fault injection for checkpoint storage.
//!
//! Real storage fails: writes and reads error, a disk fills up, a crash tears a file, a slow
//! store makes checkpoints time out. This module makes any opendal service do so on purpose,
//! deterministically, so tests can show that Weir's commit protocol and recovery hold up.
//!
//! - [`plan`]: what to inject ([`Fault`]), where ([`PathMatch`]) and when ([`Trigger`]): a
//!   [`FaultRule`]; a [`FaultPlan`] is a seed and the rules armed from the start.
//! - [`injector`]: [`FaultInjector`] holds the armed rules (arm and disarm them at runtime),
//!   decides each operation, and counts what was injected.
//! - [`stats`]: [`FaultStats`], the faults injected by kind.
//! - [`layer`]: [`FaultLayer`], the opendal layer that carries the decisions out on any
//!   service (memory, fs, ...).
//! - [`registry`]: [`install`] / [`uninstall`] make the storage of a directory faulty, so a
//!   test can make a whole job's checkpoint storage faulty without any setting.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weir::checkpoint::storage::StorageError> {
//! use std::sync::Arc;
//! use weir::checkpoint::storage::faults::{self, FaultInjector, FaultPlan, FaultRule};
//!
//! let dir = "/tmp/unique-test-dir/checkpoints";
//! let injector = Arc::new(FaultInjector::new(FaultPlan::new(42)));
//! let _guard = faults::install(dir, Arc::clone(&injector))?; // before the job starts
//! // ... start a job checkpointing to `dir` ...
//! let rule = injector.arm(FaultRule::write_error().metadata().once()); // next `_metadata`
//! injector.arm(FaultRule::disk_full().in_dir("chk-7"));                 // all of chk-7
//! // ... later ...
//! injector.disarm(rule);
//! println!("faults injected: {}", injector.stats()); // e.g. `write-error=1 disk-full=3`
//! # Ok(()) }
//! ```
//!
//! Nothing here is a setting: a job without an installed directory never goes through the
//! fault layer.

pub mod injector;
pub mod layer;
pub mod plan;
pub mod registry;
pub mod stats;

#[cfg(test)]
mod tests;

pub use injector::{FaultInjector, RuleId};
pub use layer::{is_injected, FaultLayer};
pub use plan::{Fault, FaultKind, FaultPlan, FaultRule, OpKind, PathMatch, Trigger};
pub use registry::{install, uninstall, FaultGuard};
pub use stats::FaultStats;
