//! # Weir: the model
//!
//! Weir is a streaming dataflow engine with Flink-style fault tolerance. This crate holds what a
//! job *is* — its graph, its records and barriers, its state and its checkpoints — as plain
//! types and pure state machines. It has no actors: `weir-actors` runs the model on actix and
//! re-exports this crate, so applications depend on `weir-actors` alone.
//!
//! - [`ids`]: job, checkpoint and task identifiers.
//! - [`element`]: what flows on a channel: record batches, barriers, end of input.
//! - [`checkpoint`]: settings, the coordinator's decisions, barrier alignment, storage.
//! - [`state`]: keyed state in key groups, operator state, snapshots.
//! - [`restart`]: restart strategies.
//! - [`status`]: job status (Flink's names).
//! - [`format`]: magic/version/checksum framing of every persisted blob.

pub mod checkpoint;
pub mod element;
pub mod format;
pub mod ids;
pub mod restart;
pub mod status;
pub mod state;
