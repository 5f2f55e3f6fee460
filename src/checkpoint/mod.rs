//! Checkpoints: settings, the coordinator's decisions, barrier alignment, and what is stored.
//!
//! - [`options`]: `CheckpointConfig`, Flink's settings and defaults.
//! - [`coordinator`]: the pure state machine deciding when to trigger, when a checkpoint is
//!   complete, when it has failed, and what the failure count means.
//! - [`lifecycle`]: the job's checkpoint lifecycle around the coordinator — one in-flight record
//!   per checkpoint, admission of requests, the final checkpoint, `_metadata` from the
//!   acknowledgements ([`ack`]), restore points, statistics.
//! - [`aligner`]: per-subtask barrier alignment (exactly-once) or tracking (at-least-once).
//! - [`metadata`]: what `_metadata` holds, and its versioned file format.
//! - [`paths`]: the one place that builds storage paths.
//! - [`storage`]: writing and reading state and metadata through opendal.
//! - [`restore`]: which stored state each subtask of a (possibly rescaled) job restores.
//! - [`resume`]: which snapshot `-s latest` resumes from.
//! - [`retention`]: which completed checkpoints to keep.
//! - [`stats`]: checkpoint statistics in the shape of Flink's REST API.

pub mod ack;
pub mod aligner;
pub mod coordinator;
pub mod lifecycle;
pub mod metadata;
pub mod options;
pub mod paths;
pub mod restore;
pub mod resume;
pub mod retention;
pub mod stats;
pub mod storage;

pub use options::{
    CheckpointConfig, CheckpointingMode, ExternalizedRetention, InvalidCheckpointConfig,
    LocalRecoveryConfig, StorageConfig,
};
