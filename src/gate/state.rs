//! The gate's lifecycle.

/// Where the gate stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GateState {
    /// Some input channel has not ended (a gate with no channels, a source's, stays here: it
    /// never receives anything).
    #[default]
    Receiving,
    /// Every input channel delivered its end of input and [`super::GateAction::InputsEnded`]
    /// was handed out (once).
    Ended,
}
