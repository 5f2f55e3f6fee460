//! State: keyed state partitioned into key groups, operator state, and their snapshots.

pub mod key_group;
pub mod keyed;
pub mod operator_state;
pub mod snapshot;
