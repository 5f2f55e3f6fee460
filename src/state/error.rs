//! [`StateError`]: everything that can go wrong registering, snapshotting or restoring state.
//!
//! Every variant names the operator (its uid) and, where there is one, the state, so a message
//! read in a failed job's log says which state of which operator to look at and what to do.
//! Misuse that can only be a bug in the runtime or the partitioner (a key routed to the wrong
//! subtask, a handle used with another store, state read before a key is set) panics instead;
//! the functions that can panic say so under `# Panics`.

use std::fmt;

use crate::format::FormatError;

/// Why state could not be registered, snapshotted or restored.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A state name was registered (or restored) with another kind or type.
    #[error(
        "state `{state}` of operator `{operator}` is {existing}, so it cannot be used as \
         {requested}; give each state one name and one type (or rename the new one)"
    )]
    Incompatible {
        operator: String,
        state: String,
        existing: String,
        requested: String,
    },

    /// A blob's frame is damaged or of an unknown kind or version.
    #[error("cannot read the {what} of operator `{operator}`: {source}")]
    Format {
        what: &'static str,
        operator: String,
        #[source]
        source: FormatError,
    },

    /// A blob's frame is intact but its payload is not the format it claims to be.
    #[error("the {what} of operator `{operator}` has a malformed payload: {detail}")]
    Corrupt {
        what: &'static str,
        operator: String,
        detail: String,
    },

    /// User state could not be serialised.
    #[error("cannot serialise state `{state}` of operator `{operator}`: {source}")]
    Encode {
        operator: String,
        state: String,
        #[source]
        source: rmp_serde::encode::Error,
    },

    /// Restored bytes do not decode as the registered type.
    #[error(
        "cannot restore state `{state}` of operator `{operator}` ({location}) as {requested}: \
         {source}; it was saved as {saved} — register it with a compatible type"
    )]
    Decode {
        operator: String,
        state: String,
        /// Which part failed.
        location: DecodeLocation,
        requested: String,
        saved: String,
        #[source]
        source: Box<rmp_serde::decode::Error>,
    },

    /// Keyed state cannot move between different numbers of key groups.
    #[error(
        "operator `{operator}`: the snapshot was taken with max parallelism {snapshot}, but the job \
         now runs it with max parallelism {configured}; key groups cannot be remapped, so set \
         the operator's max parallelism back to {snapshot}"
    )]
    MaxParallelismMismatch {
        operator: String,
        snapshot: u32,
        configured: u32,
    },

    /// A blob of another operator was handed to this one.
    #[error("operator `{operator}` was given the state of operator `{found}`")]
    WrongOperator { operator: String, found: String },

    /// A restored key hashes to another key group than the one it was saved in.
    #[error(
        "state `{state}` of operator `{operator}`: a restored key was saved in key group {saved} \
         but now belongs to key group {actual}; the key type's `Hash` implementation changed \
         since the snapshot, so its state could not be found — restore with the old key type"
    )]
    KeyGroupMoved {
        operator: String,
        state: String,
        saved: u32,
        actual: u32,
    },

    /// Restore was asked for a subtask that does not exist.
    #[error("operator `{operator}`: subtask index {index} is out of range for parallelism {parallelism}")]
    InvalidSubtask {
        operator: String,
        index: u32,
        parallelism: u32,
    },

    /// The state backend's storage failed (RocksDB could not open, write or checkpoint).
    #[error("the state backend of operator `{operator}` failed: {detail}")]
    Backend { operator: String, detail: String },

    /// An unknown `state.backend.type`.
    #[error("unknown state backend `{name}`; expected one of: {expected}")]
    UnknownBackend {
        name: String,
        expected: &'static str,
    },
}

/// Which part of a restored state failed to decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeLocation {
    /// The entries of a key group of keyed state.
    KeyGroup(u32),
    /// An element of an operator list state.
    Element(usize),
}

impl fmt::Display for DecodeLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeLocation::KeyGroup(kg) => write!(f, "key group {kg}"),
            DecodeLocation::Element(i) => write!(f, "element {i}"),
        }
    }
}
