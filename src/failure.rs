//! Why an execution attempt failed, and whether retrying it can heal the failure.
//!
//! The restart strategy governs failures that can heal: an operator's error or panic, a
//! transient storage error, too many failed checkpoints. A failure that retrying the same input
//! cannot heal — the state an attempt restores is missing, truncated, corrupt, of an unknown
//! format version, or of a type the job cannot read — ends the job at once whatever the
//! strategy says, unless the job can fall back to an older checkpoint that verifies (see
//! `checkpoint::lifecycle`). Failures are classified by the types of their errors
//! ([`crate::state::StateError`], [`crate::checkpoint::storage::StateReadError`]), never by
//! their messages.

use serde::{Deserialize, Serialize};

use crate::operator::OperatorError;
use crate::state::StateError;

/// Whether retrying can heal a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureCause {
    /// An operator error, a transient storage error, a failed checkpoint: the restart strategy
    /// decides.
    Recoverable,
    /// The restored state is unusable; retrying the same snapshot cannot heal it.
    DamagedState,
}

impl OperatorError {
    /// [`FailureCause::DamagedState`] when this error, or any error it was caused by, is a
    /// [`StateError`] about restored state ([`StateError::is_damaged_state`]).
    pub fn cause(&self) -> FailureCause {
        let mut source: Option<&(dyn std::error::Error + 'static)> = self
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(e) = source {
            if e.downcast_ref::<StateError>()
                .is_some_and(StateError::is_damaged_state)
            {
                return FailureCause::DamagedState;
            }
            source = e.source();
        }
        FailureCause::Recoverable
    }
}

impl StateError {
    /// True for the errors that say restored state cannot be used as it is: a damaged or
    /// unknown blob, a payload that does not decode as the registered type, state registered
    /// with another type, a changed max parallelism or key hash, another operator's state.
    pub fn is_damaged_state(&self) -> bool {
        matches!(
            self,
            StateError::Incompatible { .. }
                | StateError::Format { .. }
                | StateError::Corrupt { .. }
                | StateError::Decode { .. }
                | StateError::MaxParallelismMismatch { .. }
                | StateError::WrongOperator { .. }
                | StateError::KeyGroupMoved { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::FormatError;

    fn damaged() -> StateError {
        StateError::Corrupt {
            what: "keyed state",
            operator: "count".into(),
            detail: "bad".into(),
        }
    }

    #[test]
    fn a_damaged_restored_blob_is_not_healed_by_retrying_however_deeply_it_is_wrapped() {
        let direct: OperatorError = damaged().into();
        assert_eq!(direct.cause(), FailureCause::DamagedState);
        let wrapped = OperatorError::with_source("opening the chain failed", direct);
        assert_eq!(wrapped.cause(), FailureCause::DamagedState);
        let format: OperatorError = StateError::Format {
            what: "operator state",
            operator: "src".into(),
            source: FormatError::UnsupportedVersion {
                what: "operator state",
                found: 9,
                supported: &[1],
            },
        }
        .into();
        assert_eq!(format.cause(), FailureCause::DamagedState);
    }

    #[test]
    fn operator_errors_and_other_state_errors_are_left_to_the_restart_strategy() {
        assert_eq!(
            OperatorError::msg("the user's function failed").cause(),
            FailureCause::Recoverable
        );
        let io = std::io::Error::other("disk full");
        assert_eq!(
            OperatorError::with_source("writing failed", io).cause(),
            FailureCause::Recoverable
        );
        let bad_backend: OperatorError = StateError::UnknownBackend {
            name: "x".into(),
            expected: "hashmap",
        }
        .into();
        assert_eq!(bad_backend.cause(), FailureCause::Recoverable);
    }
}
